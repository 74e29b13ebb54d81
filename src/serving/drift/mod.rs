//! Input drift of one served model version: is what it is fed now like what it was validated on?
//!
//! Every tokenized input (and its embedding, before normalisation) is added to running means of
//! the recent inputs ([`profile::Moments`]) and compared with a reference: a [`Profile`] file
//! (`--drift-reference`, written by `inferd drift profile`), or else the version's own first
//! `--drift-window` inputs. The [`Signals`] are exported as `inferd_drift{model,version,signal}`
//! and reported by `GET /drift`. A version loaded later (a canary, a shadow candidate) measures
//! its own, so a candidate's drift shows beside the stable one's. One lock and a few hundred
//! flops per input: cheap enough for every request.

pub mod profile;

use std::sync::Mutex;

use metrics::gauge;
use serde::Serialize;

pub use profile::{Moments, Profile, Signals};

use super::inspect::{TextStats, TokenStats};
use crate::telemetry;

/// `--drift-window`'s default.
pub const DEFAULT_WINDOW: usize = 1000;

/// How a version measures drift (`--drift-window`, `--drift-reference`).
#[derive(Debug, Clone, Default)]
pub struct DriftConfig {
    /// Inputs in the recent window and in a learned reference; 0 turns drift off.
    pub window: usize,
    /// The reference profile; `None`: learn it from the first `window` inputs.
    pub reference: Option<Profile>,
}

/// What the monitor compares against.
enum Reference {
    Learning(Moments),
    Fixed(Profile),
}

struct State {
    reference: Reference,
    recent: Moments,
}

/// One version's drift monitor.
pub struct DriftMonitor {
    model: String,
    version: String,
    window: usize,
    state: Mutex<State>,
}

/// `GET /drift`'s view of one version.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub model: String,
    pub version: String,
    /// `learning` (the reference is being taken from the first inputs) or `monitoring`.
    pub state: &'static str,
    pub window: usize,
    /// `file` or `first_requests`, and how many inputs it holds (so far, while learning).
    pub reference_source: &'static str,
    pub reference_texts: u64,
    /// Inputs seen since the reference was fixed.
    pub recent_texts: u64,
    /// `None` until a tenth of a window of recent inputs has been seen.
    pub signals: Option<Signals>,
    pub reference: Moments,
    pub recent: Moments,
}

impl DriftMonitor {
    /// A monitor for `model@version` with `dimensions`-wide embeddings, or `None` when drift is
    /// off. A reference of another embedding size (another model) is set aside, with a warning,
    /// for the version's own first inputs.
    pub fn new(
        model: &str,
        version: &str,
        dimensions: usize,
        config: &DriftConfig,
    ) -> Option<Self> {
        if config.window == 0 {
            return None;
        }
        let reference = match &config.reference {
            Some(p) if p.moments.centroid.is_empty() || p.moments.centroid.len() == dimensions => {
                Reference::Fixed(p.clone())
            }
            Some(p) => {
                tracing::warn!(model, version, reference_model = %p.model,
                    reference_dimensions = p.moments.centroid.len(), dimensions,
                    "the drift reference holds embeddings of another size; learning this version's own from its first inputs");
                Reference::Learning(Moments::exact())
            }
            None => Reference::Learning(Moments::exact()),
        };
        Some(Self {
            model: model.to_string(),
            version: version.to_string(),
            window: config.window,
            state: Mutex::new(State {
                reference,
                recent: Moments::weighted(config.window),
            }),
        })
    }

    /// Adds a request's tokenized inputs and, for an embedding model, their vectors (before
    /// normalisation, one per input), then updates the gauges.
    pub fn record(&self, texts: &[TextStats], tokens: &[TokenStats], vectors: &[Vec<f32>]) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (i, (text, token)) in texts.iter().zip(tokens).enumerate() {
            let vector = vectors.get(i).map(Vec::as_slice);
            state.add(text, token, vector, self.window, &self.model);
        }
        if let Some(signals) = state.signals(self.window) {
            for (signal, value) in signals.labelled() {
                gauge!(telemetry::DRIFT, "model" => self.model.clone(), "version" => self.version.clone(), "signal" => signal)
                    .set(value);
            }
        }
    }

    pub fn report(&self) -> DriftReport {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (label, source, reference) = match &state.reference {
            Reference::Learning(m) => ("learning", "first_requests", m.clone()),
            Reference::Fixed(p) => ("monitoring", source_label(&p.source), p.moments.clone()),
        };
        DriftReport {
            model: self.model.clone(),
            version: self.version.clone(),
            state: label,
            window: self.window,
            reference_source: source,
            reference_texts: reference.texts,
            recent_texts: state.recent.texts,
            signals: state.signals(self.window),
            reference,
            recent: state.recent.clone(),
        }
    }

    /// The reference as a profile file holds it (all inputs seen, for `drift profile`).
    pub fn profile(&self) -> Profile {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &state.reference {
            Reference::Learning(m) => Profile::new(&self.model, "file", m.clone()),
            Reference::Fixed(p) => p.clone(),
        }
    }
}

impl State {
    fn add(
        &mut self,
        text: &TextStats,
        tokens: &TokenStats,
        vector: Option<&[f32]>,
        window: usize,
        model: &str,
    ) {
        let target = match &mut self.reference {
            Reference::Learning(m) if (m.texts as usize) < window => m,
            _ => &mut self.recent,
        };
        target.add_input(text, tokens);
        if let Some(v) = vector {
            target.add_embedding(v);
        }
        if let Reference::Learning(m) = &self.reference {
            if m.texts as usize >= window {
                let fixed = Profile::new(model, "first_requests", m.clone());
                self.reference = Reference::Fixed(fixed);
            }
        }
    }

    fn signals(&self, window: usize) -> Option<Signals> {
        let Reference::Fixed(reference) = &self.reference else {
            return None;
        };
        let enough = self.recent.texts as usize * 10 >= window;
        enough.then(|| Signals::between(&reference.moments, &self.recent))
    }
}

fn source_label(source: &str) -> &'static str {
    if source == "first_requests" {
        "first_requests"
    } else {
        "file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(n: usize) -> TokenStats {
        TokenStats {
            tokens: n,
            content: n - 2,
            unknown: 0,
            truncated: false,
        }
    }

    #[test]
    fn the_first_window_becomes_the_reference_then_recent_inputs_are_compared() {
        let config = DriftConfig {
            window: 20,
            reference: None,
        };
        let monitor = DriftMonitor::new("m", "1", 4, &config).unwrap();
        let text = TextStats::of("plain text");
        let short = vec![tokens(10); 20];
        monitor.record(&vec![text; 20], &short, &[]);
        let report = monitor.report();
        assert_eq!((report.state, report.reference_texts), ("monitoring", 20));
        assert!(report.signals.is_none(), "no recent inputs yet");
        let long = vec![tokens(300); 20];
        monitor.record(&vec![text; 20], &long, &[]);
        let report = monitor.report();
        assert_eq!(report.recent_texts, 20);
        assert!(report.signals.unwrap().token_length > 1.0, "{report:?}");
        assert!(DriftMonitor::new("m", "1", 4, &DriftConfig::default()).is_none());
    }
}
