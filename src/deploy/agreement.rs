//! Agreement between a promoted version and a candidate, over a window of shadowed texts.
//!
//! Two embedding models rarely share a vector space, so comparing their vectors directly only
//! means something when they do (same dimensions, e.g. a fine-tune of the same base). What every
//! consumer of embeddings relies on is the *similarity structure*: which texts are close to which.
//! So over the window we compute, for the same texts under both versions:
//!
//! - `mean_cosine`: mean cosine between the old and new vector of each text (equal dims only);
//! - `rank_correlation`: Spearman correlation of all pairwise cosine similarities, old vs new;
//! - `topk_overlap`: mean share of each text's k nearest neighbours that both versions agree on.
//!
//! `rank_correlation` is the gate `promote` checks. Pure functions; unit-tested on hand-made
//! vectors.

use serde::Serialize;

/// Neighbours compared by `topk_overlap`.
pub const TOP_K: usize = 5;

#[derive(Debug, Clone, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Agreement {
    /// Distinct texts in the window.
    pub samples: usize,
    pub mean_cosine: Option<f64>,
    pub rank_correlation: Option<f64>,
    pub topk_overlap: Option<f64>,
}

/// Agreement of two rerankers' or classifiers' logits for the same inputs (one row per input):
/// `rank_correlation` is the Spearman correlation of every logit, label by label (a reranker's
/// one score per input); vectors' `mean_cosine` and `topk_overlap` do not apply. Rows of
/// different lengths (another label set) have no correlation.
pub fn score_agreement(old: &[Vec<f32>], new: &[Vec<f32>]) -> Agreement {
    let n = old.len().min(new.len());
    let (old, new) = (&old[..n], &new[..n]);
    let same_labels = n > 0 && old[0].len() == new[0].len();
    let flat = |rows: &[Vec<f32>]| -> Vec<f64> {
        let labels = rows.first().map_or(0, Vec::len);
        (0..labels)
            .flat_map(|l| rows.iter().map(move |r| f64::from(r[l])))
            .collect()
    };
    Agreement {
        samples: n,
        mean_cosine: None,
        rank_correlation: same_labels
            .then(|| spearman(&flat(old), &flat(new)))
            .flatten(),
        topk_overlap: None,
    }
}

/// Agreement of `old[i]` with `new[i]` over the window.
pub fn agreement(old: &[Vec<f32>], new: &[Vec<f32>]) -> Agreement {
    let n = old.len().min(new.len());
    let (old, new) = (&old[..n], &new[..n]);
    let same_space = n > 0 && old[0].len() == new[0].len();
    let mean_cosine =
        same_space.then(|| old.iter().zip(new).map(|(a, b)| cosine(a, b)).sum::<f64>() / n as f64);
    let sim_old = similarities(old);
    let sim_new = similarities(new);
    let mut pairs_old = Vec::new();
    let mut pairs_new = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            pairs_old.push(sim_old[i][j]);
            pairs_new.push(sim_new[i][j]);
        }
    }
    Agreement {
        samples: n,
        mean_cosine,
        rank_correlation: spearman(&pairs_old, &pairs_new),
        topk_overlap: topk_overlap(&sim_old, &sim_new, TOP_K),
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

fn similarities(vectors: &[Vec<f32>]) -> Vec<Vec<f64>> {
    let n = vectors.len();
    let mut sim = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in i + 1..n {
            let s = cosine(&vectors[i], &vectors[j]);
            sim[i][j] = s;
            sim[j][i] = s;
        }
    }
    sim
}

/// Spearman rank correlation (Pearson on average ranks); `None` with fewer than 3 pairs or
/// when either side is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() < 3 || a.len() != b.len() {
        return None;
    }
    pearson(&ranks(a), &ranks(b))
}

fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end - 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        cov += (x - ma) * (y - mb);
        va += (x - ma).powi(2);
        vb += (y - mb).powi(2);
    }
    (va > 0.0 && vb > 0.0).then(|| cov / (va.sqrt() * vb.sqrt()))
}

/// Mean over texts of |top-k(old) ∩ top-k(new)| / k; `None` when there are not k+1 texts.
fn topk_overlap(sim_old: &[Vec<f64>], sim_new: &[Vec<f64>], k: usize) -> Option<f64> {
    let n = sim_old.len();
    if n <= k {
        return None;
    }
    let top = |row: &[f64], i: usize| {
        let mut idx: Vec<usize> = (0..n).filter(|&j| j != i).collect();
        idx.sort_by(|&x, &y| row[y].total_cmp(&row[x]));
        idx.truncate(k);
        idx
    };
    let total: f64 = (0..n)
        .map(|i| {
            let a = top(&sim_old[i], i);
            let b = top(&sim_new[i], i);
            a.iter().filter(|j| b.contains(j)).count() as f64 / k as f64
        })
        .sum();
    Some(total / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..n)
            .map(|_| (0..dims).map(|_| rng.f32() - 0.5).collect())
            .collect()
    }

    #[test]
    fn identical_vectors_agree_perfectly() {
        let v = pseudo_random(20, 8, 1);
        let a = agreement(&v, &v);
        assert_eq!(a.samples, 20);
        assert!((a.mean_cosine.unwrap() - 1.0).abs() < 1e-9);
        assert!((a.rank_correlation.unwrap() - 1.0).abs() < 1e-9);
        assert!((a.topk_overlap.unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_rotation_keeps_structure_but_not_cosine() {
        // Swapping and negating coordinates is orthogonal: similarities are unchanged.
        let v = pseudo_random(20, 8, 2);
        let rotated: Vec<Vec<f32>> = v
            .iter()
            .map(|x| {
                let mut y: Vec<f32> = x.iter().rev().copied().collect();
                y[0] = -y[0];
                y
            })
            .collect();
        let a = agreement(&v, &rotated);
        assert!(a.mean_cosine.unwrap() < 0.9);
        assert!((a.rank_correlation.unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn unrelated_spaces_disagree_and_different_dims_skip_cosine() {
        let a = agreement(&pseudo_random(40, 8, 3), &pseudo_random(40, 16, 4));
        assert_eq!(a.mean_cosine, None);
        assert!(a.rank_correlation.unwrap().abs() < 0.3, "{a:?}");
        assert!(a.topk_overlap.unwrap() < 0.5, "{a:?}");
    }

    #[test]
    fn score_agreement_ranks_scores() {
        let old: Vec<Vec<f32>> = [0.1, 2.0, -1.0, 0.5].iter().map(|&s| vec![s]).collect();
        // Same order, other scale: perfect rank correlation.
        let scaled: Vec<Vec<f32>> = old.iter().map(|r| vec![r[0] * 3.0 - 1.0]).collect();
        let a = score_agreement(&old, &scaled);
        assert_eq!((a.samples, a.mean_cosine, a.topk_overlap), (4, None, None));
        assert!((a.rank_correlation.unwrap() - 1.0).abs() < 1e-9);
        // Reversed order: -1.
        let reversed: Vec<Vec<f32>> = old.iter().map(|r| vec![-r[0]]).collect();
        let r = score_agreement(&old, &reversed).rank_correlation.unwrap();
        assert!((r + 1.0).abs() < 1e-9, "{r}");
        // Another label set: no correlation.
        let three: Vec<Vec<f32>> = old.iter().map(|r| vec![r[0]; 3]).collect();
        assert_eq!(score_agreement(&old, &three).rank_correlation, None);
    }

    #[test]
    fn spearman_handles_ties_and_constants() {
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[1.0, 1.0, 1.0]), None);
        let r = spearman(&[1.0, 2.0, 2.0, 3.0], &[10.0, 20.0, 20.0, 30.0]).unwrap();
        assert!((r - 1.0).abs() < 1e-12);
        let r = spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).unwrap();
        assert!((r + 1.0).abs() < 1e-12);
    }
}
