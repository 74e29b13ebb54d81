//! Reading a sentence-transformers model directory's own configuration: the modules around the
//! transformer, and the prompts.
//!
//! `modules.json` lists the modules in order: `Transformer`, then `Pooling` (its folder's
//! `config.json`: `pooling_mode` as sentence-transformers ≥ 5 writes it, or the older
//! `pooling_mode_*` flags), any `Dense` layers (their folders' config and safetensors) and
//! `Normalize`. Any other module is refused at startup: serving a model without one of its
//! modules would give wrong vectors. `sentence_bert_config.json` gives `max_seq_length`
//! (overriding the tokenizer's truncation) and `config_sentence_transformers.json` the
//! `prompts` and `default_prompt_name`. A plain transformers directory without these files gets
//! mean pooling and normalisation, which is what sentence-transformers itself falls back to.

mod dense;
mod prompts;

use std::{collections::BTreeMap, path::Path};

use anyhow::{bail, Context};
use serde::Deserialize;

use super::pooling::PoolingMode;
pub use dense::{Activation, Dense};
pub use prompts::{Prompts, UnknownPrompt};

/// What the sentence-transformers files ask of the pipeline around the transformer.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    pub pooling: Vec<PoolingMode>,
    /// `Dense` modules after pooling, in order.
    pub dense: Vec<Dense>,
    pub normalize: bool,
    pub max_seq_length: Option<usize>,
    pub prompts: Prompts,
}

#[derive(Deserialize)]
struct Module {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

impl Module {
    /// `sentence_transformers.models.Pooling` → `Pooling` (any package path).
    fn name(&self) -> &str {
        self.kind.rsplit('.').next().unwrap_or(&self.kind)
    }
}

/// `pooling_mode` is one name or a list of them (sentence-transformers ≥ 5).
#[derive(Deserialize)]
#[serde(untagged)]
enum Modes {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PoolingFile {
    pooling_mode: Option<Modes>,
    include_prompt: Option<bool>,
    pooling_mode_cls_token: bool,
    pooling_mode_max_tokens: bool,
    pooling_mode_mean_tokens: bool,
    pooling_mode_mean_sqrt_len_tokens: bool,
    pooling_mode_weightedmean_tokens: bool,
    pooling_mode_lasttoken: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize, Default)]
struct SentenceTransformersConfig {
    #[serde(default)]
    prompts: BTreeMap<String, String>,
    #[serde(default)]
    default_prompt_name: Option<String>,
}

impl PipelineConfig {
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let max_seq_length = read_max_seq_length(dir)?;
        let prompts = read_prompts(dir)?;
        let modules: Option<Vec<Module>> = read_optional(&dir.join("modules.json"))?;
        let Some(modules) = modules else {
            return Ok(Self {
                pooling: vec![PoolingMode::Mean],
                dense: Vec::new(),
                normalize: true,
                max_seq_length,
                prompts,
            });
        };
        let mut config = Self {
            pooling: vec![PoolingMode::Mean],
            dense: Vec::new(),
            normalize: false,
            max_seq_length,
            prompts,
        };
        for (i, module) in modules.iter().enumerate() {
            let at = dir.join(&module.path);
            match (i, module.name()) {
                (0, "Transformer") => {}
                (_, "Pooling") => {
                    config.pooling = parse_pooling(&read_required(&at.join("config.json"))?)
                        .with_context(|| format!("pooling config in {}", at.display()))?
                }
                (_, "Dense") => config.dense.push(
                    Dense::load(&at).with_context(|| format!("Dense module {}", at.display()))?,
                ),
                (_, "Normalize") => config.normalize = true,
                (_, other) => bail!(
                    "modules.json lists module {i} `{}` ({other}), which inferd does not implement; \
                     supported: Transformer (first), Pooling, Dense, Normalize",
                    module.kind
                ),
            }
        }
        Ok(config)
    }
}

fn read_max_seq_length(dir: &Path) -> anyhow::Result<Option<usize>> {
    let cfg: Option<SentenceBertConfig> = read_optional(&dir.join("sentence_bert_config.json"))?;
    Ok(cfg.and_then(|c| c.max_seq_length))
}

fn read_prompts(dir: &Path) -> anyhow::Result<Prompts> {
    let path = dir.join("config_sentence_transformers.json");
    let cfg: Option<SentenceTransformersConfig> = read_optional(&path)?;
    let cfg = cfg.unwrap_or_default();
    Prompts::new(cfg.prompts, cfg.default_prompt_name)
        .with_context(|| format!("prompts in {}", path.display()))
}

fn parse_pooling(file: &PoolingFile) -> anyhow::Result<Vec<PoolingMode>> {
    if file.include_prompt == Some(false) {
        bail!("include_prompt: false (prompt tokens excluded from pooling) is not supported");
    }
    let names: Vec<String> = match &file.pooling_mode {
        Some(Modes::One(name)) => vec![name.clone()],
        Some(Modes::Many(names)) => names.clone(),
        // The legacy flags, in sentence-transformers' concatenation order.
        None => [
            (file.pooling_mode_cls_token, "cls"),
            (file.pooling_mode_max_tokens, "max"),
            (file.pooling_mode_mean_tokens, "mean"),
            (
                file.pooling_mode_mean_sqrt_len_tokens,
                "mean_sqrt_len_tokens",
            ),
            (file.pooling_mode_weightedmean_tokens, "weightedmean"),
            (file.pooling_mode_lasttoken, "lasttoken"),
        ]
        .into_iter()
        .filter(|&(on, _)| on)
        .map(|(_, name)| name.to_string())
        .collect(),
    };
    if names.is_empty() {
        bail!("the pooling config enables no pooling mode");
    }
    names.iter().map(|n| PoolingMode::parse(n)).collect()
}

fn read_optional<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Option<T>> {
    if !path.exists() {
        return Ok(None);
    }
    read_required(path).map(Some)
}

fn read_required<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, body: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }

    const MODULES: &str = r#"[
      {"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
      {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
      {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#;

    #[test]
    fn reads_minilm_layout() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "modules.json", MODULES);
        write(
            dir.path(),
            "1_Pooling/config.json",
            r#"{"word_embedding_dimension":384,"pooling_mode_mean_tokens":true}"#,
        );
        write(
            dir.path(),
            "sentence_bert_config.json",
            r#"{"max_seq_length":256,"do_lower_case":false}"#,
        );
        let cfg = PipelineConfig::read(dir.path()).unwrap();
        assert_eq!(cfg.pooling, vec![PoolingMode::Mean]);
        assert!(cfg.normalize);
        assert_eq!(cfg.max_seq_length, Some(256));
        assert!(cfg.dense.is_empty());
        assert_eq!(cfg.prompts, Prompts::default());
    }

    #[test]
    fn normalize_only_when_listed() {
        let dir = tempfile::tempdir().unwrap();
        let without_norm = MODULES.replace(
            r#",
      {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}"#,
            "",
        );
        write(dir.path(), "modules.json", &without_norm);
        write(
            dir.path(),
            "1_Pooling/config.json",
            r#"{"pooling_mode_cls_token":true}"#,
        );
        let cfg = PipelineConfig::read(dir.path()).unwrap();
        assert_eq!(cfg.pooling, vec![PoolingMode::Cls]);
        assert!(!cfg.normalize);
        assert_eq!(cfg.max_seq_length, None);
    }

    #[test]
    fn plain_transformers_dir_gets_mean_and_normalize() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = PipelineConfig::read(dir.path()).unwrap();
        assert_eq!(cfg.pooling, vec![PoolingMode::Mean]);
        assert!(cfg.normalize);
    }

    #[test]
    fn unsupported_or_empty_pooling_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "modules.json", MODULES);
        write(
            dir.path(),
            "1_Pooling/config.json",
            r#"{"pooling_mode_weightedmean_tokens":true}"#,
        );
        assert!(PipelineConfig::read(dir.path()).is_err());
        write(
            dir.path(),
            "1_Pooling/config.json",
            r#"{"pooling_mode":"mean","include_prompt":false}"#,
        );
        let err = format!("{:#}", PipelineConfig::read(dir.path()).unwrap_err());
        assert!(err.contains("include_prompt"), "{err}");
        write(dir.path(), "1_Pooling/config.json", r#"{}"#);
        let err = format!("{:#}", PipelineConfig::read(dir.path()).unwrap_err());
        assert!(err.contains("no pooling mode"), "{err}");
    }

    #[test]
    fn new_style_modes_keep_their_order_and_unknown_modules_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "modules.json",
            r#"[{"path":"","type":"sentence_transformers.models.Transformer"},
                {"path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]"#,
        );
        write(
            dir.path(),
            "1_Pooling/config.json",
            r#"{"embedding_dimension":8,"pooling_mode":["mean","cls","lasttoken"]}"#,
        );
        let cfg = PipelineConfig::read(dir.path()).unwrap();
        assert_eq!(
            cfg.pooling,
            vec![PoolingMode::Mean, PoolingMode::Cls, PoolingMode::LastToken]
        );
        assert!(!cfg.normalize);
        write(
            dir.path(),
            "modules.json",
            r#"[{"path":"","type":"sentence_transformers.models.Transformer"},
                {"path":"1_LayerNorm","type":"sentence_transformers.models.LayerNorm"}]"#,
        );
        let err = PipelineConfig::read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("LayerNorm") && err.contains("supported"),
            "{err}"
        );
    }

    #[test]
    fn prompts_are_read_and_a_missing_default_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "config_sentence_transformers.json",
            r#"{"prompts":{"query":"query: ","passage":"passage: "},"default_prompt_name":"query"}"#,
        );
        let cfg = PipelineConfig::read(dir.path()).unwrap();
        assert_eq!(cfg.prompts.resolve(None).unwrap(), Some("query: "));
        write(
            dir.path(),
            "config_sentence_transformers.json",
            r#"{"prompts":{"query":"q: "},"default_prompt_name":"doc"}"#,
        );
        assert!(PipelineConfig::read(dir.path()).is_err());
    }
}
