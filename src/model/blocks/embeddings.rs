//! Token embeddings: a word row plus an absolute position row (token type 0 already added),
//! then LayerNorm, for every token of a packed batch. A sentence pair's second segment (token
//! type 1, BERT's cross-encoders) adds the difference of the type rows from where it starts.

use candle_core::{bail, Result};

use super::Norm;

/// Where absolute position ids start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionIds {
    /// BERT, DistilBERT: token `i` has position `i`.
    FromZero,
    /// RoBERTa, XLM-R, CamemBERT, MPNet (fairseq's `make_positions`): the `n`-th non-padding
    /// token has position `pad + n` (so the first is `pad + 1`); a padding token has `pad`.
    AfterPadding { pad: u32 },
}

impl PositionIds {
    /// How many tokens a table of `rows` positions can embed.
    pub fn capacity(self, rows: usize) -> usize {
        match self {
            Self::FromZero => rows,
            Self::AfterPadding { pad } => rows.saturating_sub(pad as usize + 1),
        }
    }

    fn fill(self, seq: &[u32], out: &mut Vec<usize>) {
        out.clear();
        match self {
            Self::FromZero => out.extend(0..seq.len()),
            Self::AfterPadding { pad } => {
                let mut n = pad as usize;
                out.extend(seq.iter().map(|&id| {
                    if id == pad {
                        pad as usize
                    } else {
                        n += 1;
                        n
                    }
                }));
            }
        }
    }
}

pub struct Embeddings {
    /// `[vocab, hidden]`.
    pub word: Vec<f32>,
    /// `[positions, hidden]` absolute position rows with token type 0 folded in; `None` for
    /// families whose positions enter attention instead (rotary).
    pub positions: Option<(Vec<f32>, PositionIds)>,
    pub norm: Option<Norm>,
    pub hidden: usize,
    /// Token type 1's row minus token type 0's (which the position rows already hold), added to
    /// every token of a pair's second segment; `None` for families with one token type
    /// (RoBERTa, XLM-R, ...), whose pairs are one type whatever the tokenizer says.
    pub second_type: Option<Vec<f32>>,
}

impl Embeddings {
    /// Longest sequence the position table allows (`usize::MAX` without one).
    pub fn max_len(&self) -> usize {
        match &self.positions {
            Some((rows, ids)) => ids.capacity(rows.len() / self.hidden),
            None => usize::MAX,
        }
    }

    pub fn vocab(&self) -> usize {
        self.word.len() / self.hidden
    }

    /// Refuses sequences the tables cannot embed, before any compute.
    pub fn check(&self, seqs: &[&[u32]]) -> Result<()> {
        let (max_len, vocab) = (self.max_len(), self.vocab());
        for seq in seqs {
            if seq.len() > max_len {
                bail!(
                    "sequence of {} tokens exceeds {max_len} positions",
                    seq.len()
                );
            }
            if let Some(id) = seq.iter().find(|&&id| id as usize >= vocab) {
                bail!("token id {id} outside the vocabulary of {vocab}");
            }
        }
        Ok(())
    }

    /// The packed `[tokens, hidden]` embeddings of `seqs` (checked by [`Self::check`]);
    /// `seconds[i]`, when given, is where sequence `i`'s second segment (token type 1) starts.
    pub fn forward(&self, seqs: &[&[u32]], seconds: Option<&[usize]>) -> Vec<f32> {
        let h = self.hidden;
        let tokens: usize = seqs.iter().map(|s| s.len()).sum();
        let mut x = Vec::with_capacity(tokens * h);
        let mut ids = Vec::new();
        for (i, seq) in seqs.iter().enumerate() {
            let start = x.len();
            let Some((rows, kind)) = &self.positions else {
                for &id in seq.iter() {
                    x.extend_from_slice(&self.word[id as usize * h..][..h]);
                }
                continue;
            };
            kind.fill(seq, &mut ids);
            for (&id, &p) in seq.iter().zip(&ids) {
                let word = &self.word[id as usize * h..][..h];
                x.extend(word.iter().zip(&rows[p * h..][..h]).map(|(w, p)| w + p));
            }
            if let (Some(delta), Some(second)) = (&self.second_type, seconds.map(|s| s[i])) {
                for row in x[start + second.min(seq.len()) * h..].chunks_exact_mut(h) {
                    row.iter_mut().zip(delta).for_each(|(v, d)| *v += d);
                }
            }
        }
        if let Some(norm) = &self.norm {
            norm.normalize(&mut x);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_after_padding_skip_padding_tokens() {
        let mut out = Vec::new();
        PositionIds::AfterPadding { pad: 1 }.fill(&[0, 5, 1, 7], &mut out);
        assert_eq!(out, vec![2, 3, 1, 4]);
        PositionIds::FromZero.fill(&[0, 5, 1], &mut out);
        assert_eq!(out, vec![0, 1, 2]);
        assert_eq!(PositionIds::AfterPadding { pad: 1 }.capacity(514), 512);
    }
}
