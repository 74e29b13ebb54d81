//! The numbers drift is measured on: [`Moments`], running means of what each input looked like
//! (token-length histogram, unknown-token and truncation rates, non-Latin share, embedding norm
//! and direction), a [`Profile`] (frozen moments, the reference, as `drift profile` writes it)
//! and [`Signals`], how far recent moments are from the reference (0 = alike).
//!
//! A mean is exact while fewer than `window` inputs were seen and exponentially weighted after
//! (weight `1/window` per input), so "recent" means about the last `window` inputs at O(1) memory.

use serde::{Deserialize, Serialize};

use crate::serving::inspect::{TextStats, TokenStats};

/// Upper bounds of the token-length buckets (tokens the model sees); the last is open.
pub const LENGTH_BOUNDS: [usize; 9] = [4, 8, 16, 32, 64, 128, 256, 512, usize::MAX];

/// Shares below this count as this in the PSI, so an empty bucket does not make it infinite.
const PSI_FLOOR: f64 = 1e-4;

/// Running means of the inputs seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Inputs seen.
    pub texts: u64,
    /// Share of inputs in each [`LENGTH_BOUNDS`] bucket.
    pub token_length: Vec<f64>,
    pub mean_tokens: f64,
    pub unknown_rate: f64,
    pub truncation_rate: f64,
    pub non_latin_share: f64,
    /// Embeddings seen (0 for a reranker or classifier).
    pub embeddings: u64,
    /// Mean L2 norm of the embeddings before normalisation.
    pub mean_norm: f64,
    /// Mean of the unit-length embeddings (its direction is the centroid's).
    pub centroid: Vec<f64>,
    /// 0: exact means; otherwise the weight floor, `1/window`.
    #[serde(skip)]
    floor: f64,
}

impl Moments {
    /// Exact means of everything added (a reference in the making).
    pub fn exact() -> Self {
        Self::weighted(0)
    }

    /// Means over about the last `window` inputs.
    pub fn weighted(window: usize) -> Self {
        Self {
            texts: 0,
            token_length: vec![0.0; LENGTH_BOUNDS.len()],
            mean_tokens: 0.0,
            unknown_rate: 0.0,
            truncation_rate: 0.0,
            non_latin_share: 0.0,
            embeddings: 0,
            mean_norm: 0.0,
            centroid: Vec::new(),
            floor: if window == 0 {
                0.0
            } else {
                1.0 / window as f64
            },
        }
    }

    fn weight(&self, seen: u64) -> f64 {
        (1.0 / seen as f64).max(self.floor)
    }

    /// One tokenized input.
    pub fn add_input(&mut self, text: &TextStats, tokens: &TokenStats) {
        self.texts += 1;
        let w = self.weight(self.texts);
        let bucket = LENGTH_BOUNDS
            .iter()
            .position(|&bound| tokens.tokens <= bound)
            .unwrap_or(LENGTH_BOUNDS.len() - 1);
        for (i, share) in self.token_length.iter_mut().enumerate() {
            let hit = if i == bucket { 1.0 } else { 0.0 };
            *share += w * (hit - *share);
        }
        let step = |mean: &mut f64, x: f64| *mean += w * (x - *mean);
        step(&mut self.mean_tokens, tokens.tokens as f64);
        step(&mut self.unknown_rate, tokens.unknown_ratio());
        step(
            &mut self.truncation_rate,
            f64::from(u8::from(tokens.truncated)),
        );
        step(&mut self.non_latin_share, text.non_latin_share());
    }

    /// One embedding, before normalisation.
    pub fn add_embedding(&mut self, vector: &[f32]) {
        let norm = vector
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        if self.centroid.len() != vector.len() {
            self.centroid = vec![0.0; vector.len()];
        }
        self.embeddings += 1;
        let w = self.weight(self.embeddings);
        self.mean_norm += w * (norm - self.mean_norm);
        let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        for (c, &x) in self.centroid.iter_mut().zip(vector) {
            *c += w * (f64::from(x) * inv - *c);
        }
    }
}

/// A reference: the moments of the inputs a model version was validated on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Format of this file.
    pub format: u32,
    /// The model it was taken with (a profile fits the model whose embeddings it holds).
    pub model: String,
    /// Where it came from: `file` (`drift profile`) or `first_requests`.
    pub source: String,
    pub length_bounds: Vec<usize>,
    #[serde(flatten)]
    pub moments: Moments,
}

pub const PROFILE_FORMAT: u32 = 1;

impl Profile {
    pub fn new(model: &str, source: &str, moments: Moments) -> Self {
        Self {
            format: PROFILE_FORMAT,
            model: model.to_string(),
            source: source.to_string(),
            length_bounds: LENGTH_BOUNDS.to_vec(),
            moments,
        }
    }

    /// Reads a profile file, refusing one of another format or buckets, or with no inputs.
    pub fn read(path: &std::path::Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading drift reference {}", path.display()))?;
        let profile: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a drift profile", path.display()))?;
        anyhow::ensure!(
            profile.format == PROFILE_FORMAT && profile.length_bounds == LENGTH_BOUNDS,
            "{} is a drift profile of another format; write it again with `inferd drift profile`",
            path.display()
        );
        let m = &profile.moments;
        anyhow::ensure!(
            m.texts > 0 && m.token_length.len() == LENGTH_BOUNDS.len(),
            "{} holds no inputs",
            path.display()
        );
        Ok(profile)
    }
}

/// How far recent inputs are from the reference, one number per signal, 0 when alike.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Signals {
    /// Population stability index of the token-length histogram.
    pub token_length: f64,
    /// Absolute difference of the unknown-token rates.
    pub unknown_tokens: f64,
    /// Absolute difference of the truncation rates.
    pub truncation: f64,
    /// Absolute difference of the non-Latin letter shares.
    pub script: f64,
    /// 1 - cosine of the recent mean embedding to the reference centroid (`None` without both).
    pub embedding: Option<f64>,
    /// |recent mean norm / reference mean norm - 1|.
    pub embedding_norm: Option<f64>,
}

impl Signals {
    pub fn between(reference: &Moments, recent: &Moments) -> Self {
        let psi = reference
            .token_length
            .iter()
            .zip(&recent.token_length)
            .map(|(&p, &q)| {
                let (p, q) = (p.max(PSI_FLOOR), q.max(PSI_FLOOR));
                (q - p) * (q / p).ln()
            })
            .sum();
        let embedded = reference.embeddings > 0
            && recent.embeddings > 0
            && reference.centroid.len() == recent.centroid.len();
        Self {
            token_length: psi,
            unknown_tokens: (recent.unknown_rate - reference.unknown_rate).abs(),
            truncation: (recent.truncation_rate - reference.truncation_rate).abs(),
            script: (recent.non_latin_share - reference.non_latin_share).abs(),
            embedding: embedded.then(|| 1.0 - cosine(&reference.centroid, &recent.centroid)),
            embedding_norm: (embedded && reference.mean_norm > 0.0)
                .then(|| (recent.mean_norm / reference.mean_norm - 1.0).abs()),
        }
    }

    /// `(signal label, value)` for each signal there is.
    pub fn labelled(&self) -> Vec<(&'static str, f64)> {
        let mut out = vec![
            ("token_length", self.token_length),
            ("unknown_tokens", self.unknown_tokens),
            ("truncation", self.truncation),
            ("script", self.script),
        ];
        out.extend(self.embedding.map(|v| ("embedding", v)));
        out.extend(self.embedding_norm.map(|v| ("embedding_norm", v)));
        out
    }
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        (dot / (na * nb)).clamp(-1.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(tokens: usize, unknown: usize, text: &str) -> (TextStats, TokenStats) {
        let stats = TokenStats {
            tokens,
            content: tokens.saturating_sub(2),
            unknown,
            truncated: tokens >= 512,
        };
        (TextStats::of(text), stats)
    }

    fn moments(inputs: &[(TextStats, TokenStats)], window: usize) -> Moments {
        let mut m = Moments::weighted(window);
        for (text, tokens) in inputs {
            m.add_input(text, tokens);
        }
        m
    }

    #[test]
    fn like_inputs_give_small_signals_and_unlike_ones_large() {
        let usual: Vec<_> = (0..200)
            .map(|i| input(10 + i % 7, 0, "plain words"))
            .collect();
        let reference = moments(&usual, 0);
        let alike = Signals::between(&reference, &moments(&usual[..100], 50));
        assert!(
            alike.token_length < 0.01 && alike.script == 0.0,
            "{alike:?}"
        );
        let long: Vec<_> = (0..100).map(|_| input(512, 0, "deadbeef")).collect();
        let far = Signals::between(&reference, &moments(&long, 50));
        assert!(far.token_length > 1.0 && far.truncation > 0.9, "{far:?}");
        let other: Vec<_> = (0..100).map(|_| input(12, 8, "東京の天気")).collect();
        let far = Signals::between(&reference, &moments(&other, 50));
        assert!(far.script > 0.9 && far.unknown_tokens > 0.7, "{far:?}");
        assert_eq!(far.embedding, None);
    }

    #[test]
    fn recent_means_forget_what_is_older_than_the_window() {
        let mut m = Moments::weighted(10);
        let (text, tokens) = input(10, 0, "a");
        for _ in 0..10 {
            m.add_input(&text, &tokens);
        }
        let (text, tokens) = input(10, 8, "a");
        for _ in 0..50 {
            m.add_input(&text, &tokens);
        }
        assert!(m.unknown_rate > 0.99, "{}", m.unknown_rate);
    }

    #[test]
    fn embedding_signals_measure_direction_and_norm() {
        let mut reference = Moments::exact();
        let mut recent = Moments::weighted(4);
        for _ in 0..4 {
            reference.add_embedding(&[2.0, 0.0]);
            recent.add_embedding(&[0.0, 3.0]);
        }
        reference.add_input(&TextStats::default(), &TokenStats::default());
        let s = Signals::between(&reference, &recent);
        assert!((s.embedding.unwrap() - 1.0).abs() < 1e-9, "{s:?}");
        assert!((s.embedding_norm.unwrap() - 0.5).abs() < 1e-9, "{s:?}");
    }
}
