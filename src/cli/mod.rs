//! Command-line and environment configuration: clap types only.
//!
//! Every flag has an `INFERD_*` environment variable and a doc comment, which is what `--help`
//! prints. This module only parses; it never touches the model or the network. It imports only
//! value types from below ([`crate::model`]'s device and precision, [`crate::index`]'s search
//! kind and location, [`crate::telemetry`]'s log format and trace export settings); `app` turns
//! the parsed flags into settings.

mod batch;
mod index;
mod jobs;
mod listen;
mod monitor;
mod parse;
mod serve;
mod traces;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::model::{DTypeRequest, DeviceRequest, LoadOptions};
pub use crate::telemetry::LogFormat;
pub use batch::{BatchCommand, EmbedConfig, OutputArgs, ServerArgs, SubmitArgs};
pub use index::IndexBuildConfig;
pub use jobs::JobsArgs;
pub use listen::ListenArgs;
pub use monitor::{DriftCommand, DriftProfileConfig, InputPolicyMode, MonitorArgs};
pub use parse::{parse_duration, IndexLocation, IndexSpec};
pub use serve::{GrpcListen, OpenAiTokenIds, ServeConfig};
pub use traces::TraceArgs;

/// inferd: a dedicated inference microservice for embedding models.
#[derive(Debug, Parser)]
#[command(name = "inferd", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load a model and serve it over HTTP.
    Serve(Box<ServeConfig>),
    /// Inspect model manifests.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Item indexes for `POST /recommend`.
    #[command(subcommand)]
    Index(IndexCommand),
    /// The Batch API of a running server: submit a file, follow it, download its results.
    #[command(subcommand)]
    Batch(BatchCommand),
    /// Run a batch input file through a local model (no server), with a progress bar.
    Embed(Box<EmbedConfig>),
    /// Input drift references.
    #[command(subcommand)]
    Drift(DriftCommand),
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Check every version of every manifest: parse, lineage, and the sha256 of every weight
    /// file present locally. Exits non-zero on any mismatch or invalid manifest.
    Verify {
        /// Folder of `*.toml` manifests.
        #[arg(long, env = "INFERD_MANIFEST_DIR", default_value = "models")]
        manifest_dir: PathBuf,
        /// Also fail when a version's files are not present locally.
        #[arg(long)]
        require_local: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Embed a JSON-lines catalog with a model and write an index (a directory or PostgreSQL).
    Build(Box<IndexBuildConfig>),
}

/// How a command that runs the model in this process (`index build`, `embed`) batches, uses
/// threads and logs.
#[derive(Debug, Clone, Args)]
pub struct OfflineArgs {
    /// Token budget of one forward batch (as `serve`).
    #[arg(long, env = "INFERD_MAX_BATCH_TOKENS", default_value_t = 16384)]
    pub max_batch_tokens: usize,

    /// Inputs in one forward batch, at most (as `serve`).
    #[arg(long, env = "INFERD_MAX_BATCH_REQUESTS", default_value_t = 64)]
    pub max_batch_requests: usize,

    /// Threads the model's CPU kernels use (default: all cores).
    #[arg(long, env = "INFERD_THREADS")]
    pub threads: Option<usize>,

    /// Log format.
    #[arg(long, env = "INFERD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Which model to load, and on what: shared by `serve` and `index build`.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Model: a manifest (.toml under models/), a local Hugging Face directory, or a
    /// Hugging Face repo id with an optional revision (`owner/name@revision`).
    #[arg(
        long,
        env = "INFERD_MODEL",
        default_value = "models/all-MiniLM-L6-v2.toml"
    )]
    pub model: String,

    /// Name the model is served under (default: the manifest's name or the directory/repo name).
    #[arg(long, env = "INFERD_MODEL_NAME")]
    pub model_name: Option<String>,

    /// Version to serve from a multi-version manifest (default: the manifest's `version`, else
    /// its last listed); for a directory or hub id, the version label.
    #[arg(long, env = "INFERD_MODEL_VERSION")]
    pub model_version: Option<String>,

    /// Device: auto (CUDA when one initialises, else CPU), cpu, cuda or cuda:N.
    #[arg(long, env = "INFERD_DEVICE", default_value = "auto")]
    pub device: DeviceRequest,

    /// Precision: f32, bf16 (CUDA, or CPU matrix products where the CPU has AVX-512 BF16), f16
    /// (CUDA); auto picks f16 on CUDA, bf16 on CPUs with AMX-BF16 and f32 on other CPUs.
    #[arg(long, env = "INFERD_DTYPE", value_enum, default_value_t = DTypeRequest::Auto)]
    pub dtype: DTypeRequest,
}

impl ModelArgs {
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            source: self.model.clone(),
            name: self.model_name.clone(),
            version: self.model_version.clone(),
            device: self.device,
            dtype: self.dtype,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn index_specs_parse() {
        let spec: IndexSpec = "catalog=/data/idx".parse().unwrap();
        assert_eq!(spec.name, "catalog");
        assert_eq!(
            spec.location,
            IndexLocation::Dir(PathBuf::from("/data/idx"))
        );
        let pg: IndexSpec = "shared=postgresql://u:p@db:5432/items".parse().unwrap();
        assert_eq!(pg.name, "shared");
        assert_eq!(
            pg.location,
            IndexLocation::Postgres("postgresql://u:p@db:5432/items".into())
        );
        assert_eq!(
            format!("{:?}", pg.location),
            "postgresql://u:***@db:5432/items"
        );
        assert!("postgresql://u:p@db/items".parse::<IndexSpec>().is_err());
        assert_eq!("/data/items".parse::<IndexSpec>().unwrap().name, "items");
        assert!("bad name=/x".parse::<IndexSpec>().is_err());
        assert!("x=".parse::<IndexSpec>().is_err());
        let cli = Cli::try_parse_from(["inferd", "serve", "--index", "a=/1", "--index", "b=/2"]);
        let Command::Serve(cfg) = cli.unwrap().command else {
            panic!("serve parses as serve")
        };
        assert_eq!(cfg.indexes.len(), 2);
    }

    #[test]
    fn every_flag_has_an_env_var() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        let serve = cmd.find_subcommand("serve").unwrap();
        for arg in serve.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            assert!(arg.get_env().is_some(), "--{id} has no INFERD_* env var");
        }
    }

    /// The `--long` names `serve` accepts, hidden fault-injection flags aside.
    fn serve_flags() -> Vec<String> {
        use clap::CommandFactory;
        let cmd = Cli::command();
        let serve = cmd.find_subcommand("serve").unwrap().clone();
        serve
            .get_arguments()
            .filter(|arg| !arg.is_hide_set())
            .filter_map(|arg| arg.get_long().map(|l| format!("--{l}")))
            .filter(|l| l != "--help")
            .collect()
    }

    #[test]
    fn the_readme_configuration_table_lists_every_serve_flag() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("## Configuration")
            .expect("a Configuration section");
        let section = &readme[start..];
        let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
        let rows: Vec<&str> = section.lines().filter(|l| l.starts_with("| `--")).collect();
        let flags = serve_flags();
        assert!(flags.len() > 40, "{flags:?}");
        for flag in flags {
            let cell = format!("`{flag}`");
            assert!(
                rows.iter()
                    .any(|row| row.split(" | ").next().unwrap().contains(&cell)),
                "README's configuration table has no row for {flag}"
            );
        }
    }

    #[test]
    fn serve_help_is_grouped_under_headings() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut("serve")
            .unwrap()
            .render_help()
            .to_string();
        let mut at = 0;
        for heading in [
            "Serving:",
            "Batching:",
            "Limits:",
            "Gateway:",
            "Lifecycle:",
            "Index:",
            "Observability:",
            "Batch jobs and webhooks:",
        ] {
            let found = help[at..].find(heading);
            assert!(
                found.is_some(),
                "{heading} missing or out of order in:\n{help}"
            );
            at += found.unwrap();
        }
        let serving = &help[help.find("Serving:").unwrap()..help.find("Batching:").unwrap()];
        for flag in [
            "--model ",
            "--listen",
            "--model-alias",
            "--openai-token-ids",
        ] {
            assert!(
                serving.contains(flag),
                "{flag} is not under Serving:\n{serving}"
            );
        }
    }

    #[test]
    fn defaults_are_valid_and_zero_limits_are_refused() {
        let cli = Cli::try_parse_from(["inferd", "serve"]).unwrap();
        let Command::Serve(mut cfg) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(cfg.max_queue_requests, 1024);
        assert_eq!(cfg.request_timeout, Duration::from_secs(30));
        // What OpenAI clients and RAG frameworks send by default must fit.
        assert_eq!(cfg.max_client_batch, 2048);
        assert_eq!(cfg.max_body_bytes, 16 * 1024 * 1024);
        assert!(cfg.auto_truncate);
        assert_eq!(cfg.openai_token_ids, OpenAiTokenIds::Tiktoken);
        assert!(cfg.validate().is_ok());
        cfg.max_batch_tokens = 0;
        assert!(cfg.validate().unwrap_err().contains("--max-batch-tokens"));
    }
}
