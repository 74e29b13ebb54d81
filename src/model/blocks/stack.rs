//! A whole packed encoder: embeddings, then layers (then a final norm where the family has one),
//! over groups of whole sequences.

use candle_core::{Device, Result, Tensor};

use super::{Embeddings, Layer, Norm, Precision, RelativeBias, Scores};

/// Whole sequences are run through all layers in groups of about this many tokens, which keeps
/// the intermediates cache-sized and out of fresh (page-faulting) allocations.
const GROUP_TOKENS: usize = 1024;

pub struct Stack {
    pub embeddings: Embeddings,
    pub layers: Vec<Layer>,
    /// After the last layer (pre-norm families: ModernBERT), or none.
    pub final_norm: Option<Norm>,
    /// One relative-position bias shared by every layer (MPNet), or none.
    pub relative: Option<RelativeBias>,
    /// Arithmetic of the matrix products (projections, and attention's where AMX runs it).
    pub precision: Precision,
}

impl Stack {
    pub fn hidden(&self) -> usize {
        self.embeddings.hidden
    }

    /// Longest sequence the encoder takes.
    pub fn max_len(&self) -> usize {
        self.embeddings.max_len()
    }

    /// Final hidden states of `seqs` packed as `[total tokens, hidden]`, sequence after sequence.
    pub fn forward(&self, seqs: &[&[u32]]) -> Result<Tensor> {
        self.forward_segments(seqs, None)
    }

    /// [`Self::forward`] where `seconds[i]` is the token at which sequence `i`'s second segment
    /// (a sentence pair's token type 1) starts.
    pub fn forward_segments(&self, seqs: &[&[u32]], seconds: Option<&[usize]>) -> Result<Tensor> {
        self.embeddings.check(seqs)?;
        let mut groups = Vec::new();
        let (mut first, mut tokens) = (0, 0);
        for (i, seq) in seqs.iter().enumerate() {
            if tokens > 0 && tokens + seq.len() > GROUP_TOKENS {
                groups.push(self.forward_group(&seqs[first..i], seconds.map(|s| &s[first..i]))?);
                (first, tokens) = (i, 0);
            }
            tokens += seq.len();
        }
        groups.push(self.forward_group(&seqs[first..], seconds.map(|s| &s[first..]))?);
        if groups.len() == 1 {
            return Ok(groups.pop().expect("one group"));
        }
        Tensor::cat(&groups, 0)
    }

    /// All layers over one group of whole sequences.
    fn forward_group(&self, seqs: &[&[u32]], seconds: Option<&[usize]>) -> Result<Tensor> {
        let lens: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        let x = self.embeddings.forward(seqs, seconds);
        let tokens = x.len() / self.hidden();
        let x = Tensor::from_vec(x, (tokens, self.hidden()), &Device::Cpu)?;
        let scores = Scores {
            relative: self.relative.as_ref(),
            ..Scores::default()
        };
        for layer in &self.layers {
            layer.forward(&x, &lens, scores, self.precision)?;
        }
        if let Some(norm) = &self.final_norm {
            x.inplace_op1(norm)?;
        }
        Ok(x)
    }
}
