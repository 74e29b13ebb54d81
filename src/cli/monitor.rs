//! Model-monitoring flags of `inferd serve` (input policy and drift, under Monitoring), and the
//! `inferd drift profile` command that writes a drift reference.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::{ModelArgs, OfflineArgs};

/// `--input-policy`: what to do with an input the checks flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputPolicyMode {
    /// No checks.
    Off,
    /// Count flagged inputs in `inferd_inputs_flagged_total`, serve them anyway.
    Warn,
    /// Count them and refuse the request with 422 and the reason's code.
    Enforce,
}

/// Checks at the door and drift monitoring.
#[derive(Debug, Clone, Args)]
pub struct MonitorArgs {
    /// Data validation of every input: `off`, `warn` (count flagged inputs) or `enforce` (refuse
    /// them with 422 `input_too_many_chars`, `input_empty`, `input_invalid_text` or
    /// `input_unknown_tokens`).
    #[arg(help_heading = "Monitoring", long, env = "INFERD_INPUT_POLICY", value_enum, default_value_t = InputPolicyMode::Off)]
    pub input_policy: InputPolicyMode,

    /// Characters one input may have before tokenization (input policy).
    #[arg(
        help_heading = "Monitoring",
        long,
        env = "INFERD_INPUT_MAX_CHARS",
        default_value_t = 100_000
    )]
    pub input_max_chars: usize,

    /// Share of an input's tokens that may be the tokenizer's unknown token, 0 to 1 (input policy).
    #[arg(
        help_heading = "Monitoring",
        long,
        env = "INFERD_INPUT_MAX_UNKNOWN_RATIO",
        default_value_t = 0.5
    )]
    pub input_max_unknown_ratio: f64,

    /// Share of an input's characters that may be U+FFFD (bytes that were not valid text),
    /// 0 to 1 (input policy).
    #[arg(
        help_heading = "Monitoring",
        long,
        env = "INFERD_INPUT_MAX_REPLACEMENT_RATIO",
        default_value_t = 0.1
    )]
    pub input_max_replacement_ratio: f64,

    /// Inputs in the drift window: recent inputs are weighted over about this many, and without
    /// `--drift-reference` a version's first this-many inputs become its reference. 0 turns
    /// drift monitoring off.
    #[arg(
        help_heading = "Monitoring",
        long,
        env = "INFERD_DRIFT_WINDOW",
        default_value_t = 1000
    )]
    pub drift_window: usize,

    /// A drift reference written by `inferd drift profile` (the inputs the model was validated
    /// on); default: each version's first `--drift-window` inputs.
    #[arg(help_heading = "Monitoring", long, env = "INFERD_DRIFT_REFERENCE")]
    pub drift_reference: Option<PathBuf>,
}

impl MonitorArgs {
    pub fn validate(&self) -> Result<(), String> {
        for (flag, value) in [
            ("--input-max-unknown-ratio", self.input_max_unknown_ratio),
            (
                "--input-max-replacement-ratio",
                self.input_max_replacement_ratio,
            ),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("{flag} must be between 0 and 1, got {value}"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Subcommand)]
pub enum DriftCommand {
    /// Embed a file of texts (one per line) with a model and write their drift profile, the
    /// reference `serve --drift-reference` compares live inputs with.
    Profile(Box<DriftProfileConfig>),
}

#[derive(Debug, Clone, Args)]
pub struct DriftProfileConfig {
    #[command(flatten)]
    pub load: ModelArgs,

    /// Texts the model was validated on, one per line (empty lines are skipped).
    #[arg(long, env = "INFERD_DRIFT_TEXTS")]
    pub texts: PathBuf,

    /// Where to write the profile (JSON).
    #[arg(long, env = "INFERD_DRIFT_OUT")]
    pub out: PathBuf,

    #[command(flatten)]
    pub run: OfflineArgs,
}
