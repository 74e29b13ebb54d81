//! `name` or `name@version`: which model a request or an operation names.
//!
//! The only code that parses or formats `name@version`. A bare `name` leaves the version to the
//! deployment (the promoted one, or the canary by weight); `name@version` pins one loaded
//! version. Parsing never fails: an empty or unknown name is the registry's `model_not_found`,
//! and the text shown is always the caller's own spelling.

use std::{convert::Infallible, fmt, str::FromStr};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelRef {
    pub name: String,
    /// `None`: whichever version the deployment routes `name` to.
    pub version: Option<String>,
}

impl ModelRef {
    /// `name@version` pins a version; anything else is a bare name. Only the first `@` splits.
    pub fn parse(text: &str) -> Self {
        match text.split_once('@') {
            Some((name, version)) => Self::pinned(name, version),
            None => Self::named(text),
        }
    }

    /// A bare model name.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            version: None,
        }
    }

    /// One version of a model.
    pub fn pinned(name: &str, version: &str) -> Self {
        Self {
            name: name.to_string(),
            version: Some(version.to_string()),
        }
    }

    /// `self` with `version` instead of its own, when one is given (an explicit `version` field
    /// beside a `model` field wins over the `@version` in it).
    pub fn or_version(mut self, version: Option<&str>) -> Self {
        if let Some(version) = version {
            self.version = Some(version.to_string());
        }
        self
    }

    pub fn is_pinned(&self) -> bool {
        self.version.is_some()
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(version) => write!(f, "{}@{version}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl FromStr for ModelRef {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Infallible> {
        Ok(Self::parse(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_round_trip() {
        for text in ["tiny", "tiny@v2", "a@b@c", "@v1", ""] {
            assert_eq!(ModelRef::parse(text).to_string(), text);
        }
        assert_eq!(ModelRef::parse("tiny@v2"), ModelRef::pinned("tiny", "v2"));
        assert_eq!(ModelRef::parse("a@b@c").version.as_deref(), Some("b@c"));
        assert!(!ModelRef::parse("tiny").is_pinned());
    }

    #[test]
    fn an_explicit_version_wins() {
        let r = ModelRef::parse("tiny@v1").or_version(Some("v2"));
        assert_eq!(r.to_string(), "tiny@v2");
        assert_eq!(
            ModelRef::parse("tiny@v1").or_version(None).to_string(),
            "tiny@v1"
        );
        assert_eq!(
            ModelRef::parse("tiny").or_version(Some("v3")).to_string(),
            "tiny@v3"
        );
    }
}
