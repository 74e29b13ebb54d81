//! sentence-transformers prompts: named strings prepended to every input before tokenizing
//! (`encode(..., prompt_name=...)`), and the default applied when a request names none.

use std::collections::BTreeMap;

use anyhow::bail;
use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Prompts {
    /// Prompt name → text prepended to each input.
    pub prompts: BTreeMap<String, String>,
    /// Applied when a request names no prompt.
    pub default_prompt_name: Option<String>,
}

/// A request named a prompt the model does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("prompt {name:?} is not defined by this model; its prompts are: {known}")]
pub struct UnknownPrompt {
    pub name: String,
    /// The defined names, comma-separated (or "none").
    pub known: String,
}

impl Prompts {
    pub fn new(
        prompts: BTreeMap<String, String>,
        default_prompt_name: Option<String>,
    ) -> anyhow::Result<Self> {
        if let Some(name) = &default_prompt_name {
            if !prompts.contains_key(name) {
                bail!("default_prompt_name {name:?} is not one of the prompts");
            }
        }
        Ok(Self {
            prompts,
            default_prompt_name,
        })
    }

    /// The text to prepend for a request naming `name` (or none: the default prompt, if any).
    pub fn resolve(&self, name: Option<&str>) -> Result<Option<&str>, UnknownPrompt> {
        let Some(name) = name.or(self.default_prompt_name.as_deref()) else {
            return Ok(None);
        };
        match self.prompts.get(name) {
            Some(text) => Ok(Some(text)),
            None => Err(UnknownPrompt {
                name: name.to_string(),
                known: if self.prompts.is_empty() {
                    "none".into()
                } else {
                    self.prompts.keys().cloned().collect::<Vec<_>>().join(", ")
                },
            }),
        }
    }

    /// `texts` with the resolved prompt prepended to each, as sentence-transformers does.
    pub fn apply(
        &self,
        name: Option<&str>,
        texts: Vec<String>,
    ) -> Result<Vec<String>, UnknownPrompt> {
        Ok(match self.resolve(name)? {
            Some(prompt) if !prompt.is_empty() => {
                texts.into_iter().map(|t| format!("{prompt}{t}")).collect()
            }
            _ => texts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_default_and_unknown() {
        let p = Prompts::new(
            [("query".to_string(), "q: ".to_string())].into(),
            Some("query".into()),
        )
        .unwrap();
        assert_eq!(p.apply(None, vec!["a".into()]).unwrap(), vec!["q: a"]);
        assert_eq!(
            p.apply(Some("query"), vec!["a".into()]).unwrap(),
            vec!["q: a"]
        );
        let err = p.apply(Some("doc"), vec!["a".into()]).unwrap_err();
        assert!(err.to_string().contains("query"));
        assert_eq!(
            Prompts::default().apply(None, vec!["a".into()]).unwrap(),
            vec!["a"]
        );
        assert!(Prompts::default().resolve(Some("x")).unwrap_err().known == "none");
    }
}
