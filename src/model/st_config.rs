//! Reading a sentence-transformers model directory's own configuration.
//!
//! `modules.json` says which modules run (Transformer, Pooling, Normalize),
//! `1_Pooling/config.json` (or the folder modules.json names) the pooling modes, and
//! `sentence_bert_config.json` the `max_seq_length`, which overrides the tokenizer's truncation.
//! A plain transformers directory without these files gets mean pooling and normalisation,
//! which is what sentence-transformers itself falls back to.

use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;

use super::pooling::PoolingMode;

/// What the sentence-transformers files ask of the pipeline around the transformer.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    pub pooling: Vec<PoolingMode>,
    pub normalize: bool,
    pub max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct Module {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PoolingFile {
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

impl PipelineConfig {
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let modules: Option<Vec<Module>> = read_optional(&dir.join("modules.json"))?;
        let Some(modules) = modules else {
            return Ok(Self {
                pooling: vec![PoolingMode::Mean],
                normalize: true,
                max_seq_length: read_max_seq_length(dir)?,
            });
        };
        let pooling_dir = modules
            .iter()
            .find(|m| m.kind.ends_with(".Pooling"))
            .map(|m| dir.join(&m.path));
        let pooling = match pooling_dir {
            Some(p) => parse_pooling(&read_required(&p.join("config.json"))?)?,
            None => vec![PoolingMode::Mean],
        };
        Ok(Self {
            pooling,
            normalize: modules.iter().any(|m| m.kind.ends_with(".Normalize")),
            max_seq_length: read_max_seq_length(dir)?,
        })
    }
}

fn read_max_seq_length(dir: &Path) -> anyhow::Result<Option<usize>> {
    let cfg: Option<SentenceBertConfig> = read_optional(&dir.join("sentence_bert_config.json"))?;
    Ok(cfg.and_then(|c| c.max_seq_length))
}

fn parse_pooling(file: &PoolingFile) -> anyhow::Result<Vec<PoolingMode>> {
    if file.pooling_mode_weightedmean_tokens || file.pooling_mode_lasttoken {
        bail!("pooling modes weightedmean and lasttoken are not supported");
    }
    let modes: Vec<PoolingMode> = [
        (file.pooling_mode_cls_token, PoolingMode::Cls),
        (file.pooling_mode_max_tokens, PoolingMode::Max),
        (file.pooling_mode_mean_tokens, PoolingMode::Mean),
        (
            file.pooling_mode_mean_sqrt_len_tokens,
            PoolingMode::MeanSqrtLen,
        ),
    ]
    .into_iter()
    .filter_map(|(on, mode)| on.then_some(mode))
    .collect();
    if modes.is_empty() {
        bail!("the pooling config enables no pooling mode");
    }
    Ok(modes)
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
            r#"{"pooling_mode_lasttoken":true}"#,
        );
        assert!(PipelineConfig::read(dir.path()).is_err());
        write(dir.path(), "1_Pooling/config.json", r#"{}"#);
        let err = PipelineConfig::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no pooling mode"), "{err}");
    }
}
