//! Batch forming: which waiting sequences run together in the next forward pass.
//!
//! Pure function over sequence lengths in arrival order, so it is unit-tested without a model.
//! Rules, in order:
//! 1. The oldest waiting sequence is always in the batch, so nothing starves.
//! 2. Others join by closeness of length to it, so a batch pads little (it is padded only to its
//!    own longest sequence, never to a fixed length).
//! 3. The batch stays within `max_sequences` and within `max_tokens`, counted as the work the
//!    forward pass will really do: real tokens for the packed (CPU) forward, `sequences ×
//!    longest` for the padded (CUDA) one, plus attention's share, which grows with the square
//!    of each sequence's length. A single sequence over the budget still runs alone.
//!
//! The attention share in token-equivalents: per token and layer the projections cost
//! `8h² + 4hi` FLOPs (hidden `h`, intermediate `i`) and attention `4·len·h`, so a sequence of
//! `len` tokens costs `len + len² / (2h + i)`. For all-MiniLM-L6-v2 (`2h + i` = 2304) a
//! 256-token text counts as 284 tokens and a 12-token one as 12.

/// Limits one forward batch obeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_tokens: usize,
    pub max_sequences: usize,
    /// The forward pass packs sequences without padding, so a batch costs its real tokens.
    pub packed: bool,
    /// `2 · hidden + intermediate` of the model: the length at which a token's attention costs
    /// as much as its projections; 0 leaves attention out of the cost.
    pub attention_span: usize,
}

/// Lengths of a batch so far, for its cost.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    count: usize,
    total: usize,
    squares: usize,
    longest: usize,
}

impl Tally {
    fn with(self, len: usize) -> Self {
        Self {
            count: self.count + 1,
            total: self.total + len,
            squares: self.squares + len * len,
            longest: self.longest.max(len),
        }
    }
}

impl BatchLimits {
    /// Token-equivalents of work for a batch (see the module docs).
    fn cost(&self, t: Tally) -> usize {
        let (linear, squares) = if self.packed {
            (t.total, t.squares)
        } else {
            (t.count * t.longest, t.count * t.longest * t.longest)
        };
        linear + squares.checked_div(self.attention_span).unwrap_or(0)
    }
}

/// How far into the queue the former looks for partners, bounding its cost per batch.
const WINDOW: usize = 4096;

/// Returns the positions (ascending) of the sequences to run next. `lens` is in arrival order;
/// an empty slice gives an empty batch.
pub fn select(lens: &[usize], limits: BatchLimits) -> Vec<usize> {
    let Some(&anchor) = lens.first() else {
        return Vec::new();
    };
    let mut candidates: Vec<usize> = (1..lens.len().min(WINDOW)).collect();
    candidates.sort_by_key(|&i| (lens[i].abs_diff(anchor), i));

    let mut picked = vec![0];
    let mut tally = Tally::default().with(anchor);
    for i in candidates {
        if picked.len() >= limits.max_sequences {
            break;
        }
        let next = tally.with(lens[i]);
        if limits.cost(next) > limits.max_tokens {
            continue; // a shorter candidate further on may still fit
        }
        picked.push(i);
        tally = next;
    }
    picked.sort_unstable();
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BatchLimits = BatchLimits {
        max_tokens: 100,
        max_sequences: 4,
        packed: false,
        attention_span: 0,
    };

    #[test]
    fn empty_queue_gives_empty_batch() {
        assert!(select(&[], LIMITS).is_empty());
    }

    #[test]
    fn oldest_is_always_taken_even_over_budget() {
        assert_eq!(select(&[500, 10, 10], LIMITS), vec![0]);
    }

    #[test]
    fn respects_sequence_limit() {
        assert_eq!(select(&[5; 10], LIMITS), vec![0, 1, 2, 3]);
    }

    #[test]
    fn groups_similar_lengths() {
        // anchor 10: the 11 and 9 join before the 40s.
        let lens = [10, 40, 11, 40, 9];
        assert_eq!(select(&lens, LIMITS), vec![0, 2, 4]);
    }

    #[test]
    fn padded_cost_stays_within_budget() {
        let lens = [30, 30, 30, 60, 5];
        let batch = select(&lens, LIMITS);
        let longest = batch.iter().map(|&i| lens[i]).max().unwrap();
        assert!(longest * batch.len() <= LIMITS.max_tokens);
        assert_eq!(batch, vec![0, 1, 2]);
    }

    #[test]
    fn skips_a_long_partner_but_takes_a_later_short_one() {
        let limits = BatchLimits {
            max_tokens: 60,
            max_sequences: 8,
            ..LIMITS
        };
        // anchor 20; 45 would make 2 × 45 = 90 > 60 → skipped; 21 fits (2 × 21).
        assert_eq!(select(&[20, 45, 21], limits), vec![0, 2]);
    }

    #[test]
    fn packed_batches_count_real_tokens() {
        let packed = BatchLimits {
            packed: true,
            ..LIMITS
        };
        // Padded, 10 + 90 costs 2 × 90 = 180 > 100; packed it costs 100 and fits.
        assert_eq!(select(&[10, 90], LIMITS), vec![0]);
        assert_eq!(select(&[10, 90], packed), vec![0, 1]);
        assert_eq!(select(&[10, 90, 5], packed), vec![0, 2]);
    }

    #[test]
    fn attention_makes_long_sequences_cost_more() {
        let limits = BatchLimits {
            max_tokens: 1000,
            max_sequences: 64,
            packed: true,
            attention_span: 1000,
        };
        // 4 × 250 tokens: 1000 linear + 4 × 62.5 attention > 1000, so only three fit
        // (750 + 187); 40 × 25 short ones: 1000 + 25 > 1000, so 39 of them.
        assert_eq!(select(&[250; 4], limits), vec![0, 1, 2]);
        assert_eq!(select(&[25; 40], limits).len(), 39);
        let no_attention = BatchLimits {
            attention_span: 0,
            ..limits
        };
        assert_eq!(select(&[250; 4], no_attention).len(), 4);
    }
}
