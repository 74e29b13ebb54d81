//! Data validation at the door (`--input-policy`): inputs too long in characters, empty once
//! whitespace and control characters are stripped, invalid or mostly U+FFFD, or mostly unknown
//! tokens. Each flagged input is counted (`inferd_inputs_flagged_total{reason}`); `enforce`
//! refuses the request with the reason's code, `warn` only counts. The text checks run before
//! the prompt is prepended and the cache is consulted; the unknown-token check runs on what is
//! tokenized (a cached text passed it when it was first embedded).

use metrics::counter;

use super::{
    inspect::{TextStats, TokenStats},
    EmbedError,
};
use crate::telemetry;

/// What the policy does with a flagged input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyMode {
    /// No checks.
    #[default]
    Off,
    /// Count flagged inputs, serve them anyway.
    Warn,
    /// Count them and refuse the request (422 with the reason's code).
    Enforce,
}

/// Why an input was flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagReason {
    TooManyChars,
    Empty,
    InvalidText,
    UnknownTokens,
}

impl FlagReason {
    pub const ALL: [Self; 4] = [
        Self::TooManyChars,
        Self::Empty,
        Self::InvalidText,
        Self::UnknownTokens,
    ];

    /// The `reason` label of `inferd_inputs_flagged_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooManyChars => "too_many_chars",
            Self::Empty => "empty",
            Self::InvalidText => "invalid_text",
            Self::UnknownTokens => "unknown_tokens",
        }
    }

    /// The error code a refused request carries.
    pub fn code(self) -> &'static str {
        match self {
            Self::TooManyChars => "input_too_many_chars",
            Self::Empty => "input_empty",
            Self::InvalidText => "input_invalid_text",
            Self::UnknownTokens => "input_unknown_tokens",
        }
    }
}

/// The version a flagged input is counted for.
#[derive(Debug, Clone, Copy)]
pub struct Counted<'a> {
    pub model: &'a str,
    pub version: &'a str,
}

/// The checks and their bounds (`--input-policy`, `--input-max-chars`,
/// `--input-max-unknown-ratio`, `--input-max-replacement-ratio`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputPolicy {
    pub mode: PolicyMode,
    pub max_chars: usize,
    pub max_unknown_ratio: f64,
    pub max_replacement_ratio: f64,
}

impl Default for InputPolicy {
    fn default() -> Self {
        Self {
            mode: PolicyMode::Off,
            max_chars: 100_000,
            max_unknown_ratio: 0.5,
            max_replacement_ratio: 0.1,
        }
    }
}

impl InputPolicy {
    pub fn is_on(&self) -> bool {
        self.mode != PolicyMode::Off
    }

    /// Registers the flag counters of version `model` at zero (when the policy is on).
    pub fn register(&self, model: Counted<'_>) {
        if self.is_on() {
            for reason in FlagReason::ALL {
                flagged_counter(model, reason).absolute(0);
            }
        }
    }

    /// Checks each `(input index, text)`'s characters; under `enforce`, the first flagged one
    /// refuses the request.
    pub fn check_texts<'a>(
        &self,
        model: Counted<'_>,
        texts: impl IntoIterator<Item = (usize, &'a str)>,
    ) -> Result<(), EmbedError> {
        if !self.is_on() {
            return Ok(());
        }
        for (index, text) in texts {
            let stats = TextStats::of(text);
            if let Some((reason, why)) = self.text_flag(&stats) {
                self.flagged(model, index, reason, why)?;
            }
        }
        Ok(())
    }

    /// Checks each tokenized text's share of unknown tokens.
    pub fn check_tokens(
        &self,
        model: Counted<'_>,
        tokens: &[TokenStats],
    ) -> Result<(), EmbedError> {
        if !self.is_on() {
            return Ok(());
        }
        for (index, stats) in tokens.iter().enumerate() {
            let ratio = stats.unknown_ratio();
            if ratio > self.max_unknown_ratio {
                let why = format!(
                    "{} of its {} tokens ({:.0}%) are unknown to the model's tokenizer, more \
                     than the {:.0}% allowed (--input-max-unknown-ratio)",
                    stats.unknown,
                    stats.content,
                    ratio * 100.0,
                    self.max_unknown_ratio * 100.0
                );
                self.flagged(model, index, FlagReason::UnknownTokens, why)?;
            }
        }
        Ok(())
    }

    fn text_flag(&self, stats: &TextStats) -> Option<(FlagReason, String)> {
        if stats.chars > self.max_chars {
            let why = format!(
                "it has {} characters, more than the {} allowed (--input-max-chars)",
                stats.chars, self.max_chars
            );
            return Some((FlagReason::TooManyChars, why));
        }
        if stats.invalid > 0 {
            let why = "it contains NUL, control characters or Unicode noncharacters".to_string();
            return Some((FlagReason::InvalidText, why));
        }
        let replacement = stats.replacement as f64 / stats.chars.max(1) as f64;
        if replacement > self.max_replacement_ratio {
            let why = format!(
                "{:.0}% of its characters are U+FFFD (bytes that were not valid text), more than \
                 the {:.0}% allowed (--input-max-replacement-ratio)",
                replacement * 100.0,
                self.max_replacement_ratio * 100.0
            );
            return Some((FlagReason::InvalidText, why));
        }
        if stats.visible == 0 {
            let why = "it is empty once whitespace and control characters are removed".to_string();
            return Some((FlagReason::Empty, why));
        }
        None
    }

    fn flagged(
        &self,
        model: Counted<'_>,
        index: usize,
        reason: FlagReason,
        why: String,
    ) -> Result<(), EmbedError> {
        flagged_counter(model, reason).increment(1);
        match self.mode {
            PolicyMode::Enforce => Err(EmbedError::InputFlagged { index, reason, why }),
            _ => Ok(()),
        }
    }
}

/// Each version counts its own flagged inputs (a shadow candidate's copies included).
fn flagged_counter(model: Counted<'_>, reason: FlagReason) -> metrics::Counter {
    counter!(telemetry::INPUTS_FLAGGED, "model" => model.model.to_string(),
        "version" => model.version.to_string(), "reason" => reason.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Counted = Counted {
        model: "m",
        version: "1",
    };

    fn enforce() -> InputPolicy {
        InputPolicy {
            mode: PolicyMode::Enforce,
            max_chars: 10,
            ..InputPolicy::default()
        }
    }

    fn reason(texts: &[&str]) -> Option<FlagReason> {
        match enforce().check_texts(M, texts.iter().copied().enumerate()) {
            Ok(()) => None,
            Err(EmbedError::InputFlagged { reason, .. }) => Some(reason),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn each_text_check_has_its_reason() {
        assert_eq!(reason(&["fine", "also fine"]), None);
        assert_eq!(
            reason(&["ok", "eleven char"]),
            Some(FlagReason::TooManyChars)
        );
        assert_eq!(reason(&[" \t\u{200B}\n"]), Some(FlagReason::Empty));
        assert_eq!(reason(&["a\u{0}b"]), Some(FlagReason::InvalidText));
        assert_eq!(
            reason(&["ab\u{FFFD}\u{FFFD}"]),
            Some(FlagReason::InvalidText)
        );
        assert_eq!(reason(&["abcdefghi\u{FFFD}"]), None); // 10 %: at the bound
    }

    #[test]
    fn unknown_tokens_above_the_bound_are_flagged_and_warn_only_counts() {
        let mostly_unknown = TokenStats {
            tokens: 6,
            content: 4,
            unknown: 3,
            truncated: false,
        };
        let err = enforce().check_tokens(M, &[TokenStats::default(), mostly_unknown]);
        match err {
            Err(err @ EmbedError::InputFlagged { reason, index, .. }) => {
                assert_eq!((reason, index), (FlagReason::UnknownTokens, 1));
                let message = err.to_string();
                assert!(message.contains("(input_unknown_tokens)"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let warn = InputPolicy {
            mode: PolicyMode::Warn,
            ..enforce()
        };
        assert!(warn.check_tokens(M, &[mostly_unknown]).is_ok());
        assert!(warn.check_texts(M, [(0, "\u{0}")]).is_ok());
    }
}
