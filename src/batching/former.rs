//! Batch forming: which waiting sequences run together in the next forward pass.
//!
//! Pure function over the waiting sequences (length and priority, in arrival order), so it is
//! unit-tested without a model. Rules, in order:
//! 1. The oldest waiting *interactive* sequence is always in the batch, so no request starves.
//!    Background work (batch jobs) is never starved either: once [`PATIENCE`] batches in a row
//!    were formed without any background sequence while some waited, the oldest background
//!    sequence takes that seat instead.
//! 2. Other interactive sequences join by closeness of length to it, so a batch pads little (it
//!    is padded only to its own longest sequence, never to a fixed length).
//! 3. Background sequences only fill *spare room*: they join, closest length first, while the
//!    batch costs no more than the larger of what its interactive sequences already cost and
//!    [`Spare::budget`]. A batch full of interactive work takes no background at all, and a
//!    batch of background work alone stays within the budget, so an interactive request never
//!    waits behind more than one budget's worth of background compute.
//! 4. The batch stays within `max_sequences` and within `max_tokens`, counted as the work the
//!    forward pass will really do: real tokens for the packed (CPU) forward, `sequences ×
//!    longest` for the padded (CUDA) one, plus attention's share, which grows with the square
//!    of each sequence's length. A single sequence over the budget still runs alone.
//!
//! The attention share in token-equivalents: per token and layer the projections cost
//! `8h² + 4hi` FLOPs (hidden `h`, intermediate `i`) and attention `4·len·h`, so a sequence of
//! `len` tokens costs `len + len² / (2h + i)`. For all-MiniLM-L6-v2 (`2h + i` = 2304) a
//! 256-token text counts as 284 tokens and a 12-token one as 12.

/// Who is waiting for a sequence: a caller on the line, or a batch job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Priority {
    #[default]
    Interactive,
    /// Fills spare batch capacity only (see the module docs).
    Background,
}

/// One waiting sequence, as the former sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    pub len: usize,
    pub priority: Priority,
}

impl Waiting {
    pub fn interactive(len: usize) -> Self {
        Self {
            len,
            priority: Priority::Interactive,
        }
    }

    pub fn background(len: usize) -> Self {
        Self {
            len,
            priority: Priority::Background,
        }
    }
}

/// Batches in a row without background work, while some waited, after which the oldest
/// background sequence is guaranteed the next batch's first seat.
pub const PATIENCE: u32 = 8;

/// What background work may take from the next batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spare {
    /// Token-equivalents background sequences may fill a batch up to. The worker derives it
    /// from the background time budget and the compute rate it measures; 0 lets only a lone
    /// background sequence run.
    pub budget: usize,
    /// Batches in a row formed without any background sequence while some waited.
    pub starved: u32,
}

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

    /// Token-equivalents of work for a batch of these lengths: what the worker divides the
    /// measured compute time by to learn its rate.
    pub fn cost_of(&self, lens: impl IntoIterator<Item = usize>) -> usize {
        self.cost(lens.into_iter().fold(Tally::default(), Tally::with))
    }
}

/// How far into the queue the former looks for partners, bounding its cost per batch.
const WINDOW: usize = 4096;

/// Returns the positions (ascending) of the sequences to run next. `waiting` is in arrival
/// order; an empty slice gives an empty batch.
pub fn select(waiting: &[Waiting], limits: BatchLimits, spare: Spare) -> Vec<usize> {
    let background = |i: &usize| waiting[*i].priority == Priority::Background;
    let oldest_interactive = waiting
        .iter()
        .position(|w| w.priority == Priority::Interactive);
    let anchor = match oldest_interactive {
        Some(i) if spare.starved < PATIENCE => i,
        Some(i) => waiting
            .iter()
            .position(|w| w.priority == Priority::Background)
            .unwrap_or(i),
        None if waiting.is_empty() => return Vec::new(),
        None => 0,
    };
    let anchor_len = waiting[anchor].len;
    let mut candidates: Vec<usize> = (0..waiting.len().min(WINDOW))
        .filter(|&i| i != anchor)
        .collect();
    candidates.sort_by_key(|&i| (background(&i), waiting[i].len.abs_diff(anchor_len), i));

    let mut picked = vec![anchor];
    let mut tally = Tally::default().with(anchor_len);
    // Interactive work (and a starved anchor) sets what the batch costs anyway; background
    // only fills room up to that, or up to its own budget.
    let mut spare_cap = None;
    for i in candidates {
        if picked.len() >= limits.max_sequences {
            break;
        }
        let next = tally.with(waiting[i].len);
        let cap = if background(&i) {
            let room = *spare_cap.get_or_insert_with(|| limits.cost(tally).max(spare.budget));
            room.min(limits.max_tokens)
        } else {
            limits.max_tokens
        };
        if limits.cost(next) > cap {
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

    /// Interactive sequences of these lengths, no background.
    fn pick(lens: &[usize], limits: BatchLimits) -> Vec<usize> {
        let waiting: Vec<Waiting> = lens.iter().map(|&l| Waiting::interactive(l)).collect();
        select(&waiting, limits, Spare::default())
    }

    const PACKED: BatchLimits = BatchLimits {
        max_tokens: 1000,
        max_sequences: 64,
        packed: true,
        attention_span: 0,
    };

    fn spare(budget: usize) -> Spare {
        Spare { budget, starved: 0 }
    }

    #[test]
    fn empty_queue_gives_empty_batch() {
        assert!(select(&[], LIMITS, Spare::default()).is_empty());
    }

    #[test]
    fn oldest_is_always_taken_even_over_budget() {
        assert_eq!(pick(&[500, 10, 10], LIMITS), vec![0]);
    }

    #[test]
    fn respects_sequence_limit() {
        assert_eq!(pick(&[5; 10], LIMITS), vec![0, 1, 2, 3]);
    }

    #[test]
    fn groups_similar_lengths() {
        // anchor 10: the 11 and 9 join before the 40s.
        let lens = [10, 40, 11, 40, 9];
        assert_eq!(pick(&lens, LIMITS), vec![0, 2, 4]);
    }

    #[test]
    fn padded_cost_stays_within_budget() {
        let lens = [30, 30, 30, 60, 5];
        let batch = pick(&lens, LIMITS);
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
        assert_eq!(pick(&[20, 45, 21], limits), vec![0, 2]);
    }

    #[test]
    fn packed_batches_count_real_tokens() {
        let packed = BatchLimits {
            packed: true,
            ..LIMITS
        };
        // Padded, 10 + 90 costs 2 × 90 = 180 > 100; packed it costs 100 and fits.
        assert_eq!(pick(&[10, 90], LIMITS), vec![0]);
        assert_eq!(pick(&[10, 90], packed), vec![0, 1]);
        assert_eq!(pick(&[10, 90, 5], packed), vec![0, 2]);
    }

    #[test]
    fn attention_makes_long_sequences_cost_more() {
        let limits = BatchLimits {
            attention_span: 1000,
            ..PACKED
        };
        // 4 × 250 tokens: 1000 linear + 4 × 62.5 attention > 1000, so only three fit
        // (750 + 187); 40 × 25 short ones: 1000 + 25 > 1000, so 39 of them.
        assert_eq!(pick(&[250; 4], limits), vec![0, 1, 2]);
        assert_eq!(pick(&[25; 40], limits).len(), 39);
        assert_eq!(pick(&[250; 4], PACKED).len(), 4);
        assert_eq!(limits.cost_of([250, 250]), 500 + 125);
    }

    #[test]
    fn interactive_goes_first_even_behind_older_background() {
        let waiting = [
            Waiting::background(10),
            Waiting::background(10),
            Waiting::interactive(10),
        ];
        let limits = BatchLimits {
            max_sequences: 1,
            ..PACKED
        };
        assert_eq!(select(&waiting, limits, spare(1000)), vec![2]);
    }

    #[test]
    fn background_fills_only_the_spare_room() {
        // Interactive 10 + 10 cost 20; a budget of 50 lets background add up to 50 in all.
        let mut waiting = vec![Waiting::interactive(10), Waiting::interactive(10)];
        waiting.extend([Waiting::background(10); 10]);
        let batch = select(&waiting, PACKED, spare(50));
        assert_eq!(batch, vec![0, 1, 2, 3, 4]);
        // With no budget, background joins nothing: interactive alone sets the cost.
        assert_eq!(select(&waiting, PACKED, spare(0)), vec![0, 1]);
        // Interactive work that already costs more than the budget takes no background.
        let mut heavy = vec![Waiting::interactive(80)];
        heavy.extend([Waiting::background(5); 4]);
        assert_eq!(select(&heavy, PACKED, spare(50)), vec![0]);
    }

    #[test]
    fn background_alone_stays_within_its_budget_but_always_runs() {
        let waiting = [Waiting::background(30); 10];
        assert_eq!(select(&waiting, PACKED, spare(100)), vec![0, 1, 2]);
        // A budget smaller than one sequence still lets the oldest run alone.
        assert_eq!(select(&waiting, PACKED, spare(0)), vec![0]);
        // The batch limits bound background too.
        let small = BatchLimits {
            max_sequences: 2,
            ..PACKED
        };
        assert_eq!(select(&waiting, small, spare(1000)), vec![0, 1]);
    }

    #[test]
    fn starved_background_takes_the_first_seat() {
        let waiting = [
            Waiting::background(7),
            Waiting::interactive(80),
            Waiting::interactive(90),
        ];
        let limits = BatchLimits {
            max_tokens: 100,
            max_sequences: 2,
            ..PACKED
        };
        let starved = |starved| Spare { budget: 0, starved };
        assert_eq!(select(&waiting, limits, starved(PATIENCE - 1)), vec![1]);
        // The anchor is the background sequence; interactive work still joins by closeness.
        assert_eq!(select(&waiting, limits, starved(PATIENCE)), vec![0, 1]);
    }

    /// Under interactive load that fills every batch, a background sequence still runs within
    /// `PATIENCE + 1` batches: the worker counts batches without background as `starved`.
    #[test]
    fn background_is_never_starved_forever() {
        let limits = BatchLimits {
            max_tokens: 100,
            max_sequences: 4,
            ..PACKED
        };
        let mut queue: Vec<Waiting> = vec![Waiting::background(10)];
        for batch in 1..=PATIENCE + 1 {
            // Every earlier batch ran without the background sequence.
            let starved = batch - 1;
            // Always more interactive work waiting than a batch holds.
            while queue.len() < 12 {
                queue.push(Waiting::interactive(30));
            }
            let picked = select(&queue, limits, Spare { budget: 0, starved });
            let ran_background = picked
                .iter()
                .any(|&i| queue[i].priority == Priority::Background);
            if ran_background {
                assert_eq!(batch, PATIENCE + 1, "background ran early");
                return;
            }
            for &i in picked.iter().rev() {
                queue.remove(i);
            }
        }
        panic!("background did not run within {} batches", PATIENCE + 1);
    }
}
