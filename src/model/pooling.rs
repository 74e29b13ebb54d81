//! Pooling and normalisation: pure functions from token states to one vector per sequence.
//!
//! Mirrors sentence-transformers' `Pooling` and `Normalize` modules, and its Matryoshka cut
//! (`truncate_dim`). When a model enables several pooling modes their outputs are concatenated in
//! the order its pooling config lists them. Sequences are padded on the right (padded path) or
//! packed (CPU), so the last token of a sequence is at its length − 1.

use candle_core::{DType, Result, Tensor, D};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolingMode {
    Cls,
    Max,
    Mean,
    MeanSqrtLen,
    /// The last real token (decoder-style embedders such as Qwen3-Embedding).
    LastToken,
}

impl PoolingMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Cls => "cls",
            Self::Max => "max",
            Self::Mean => "mean",
            Self::MeanSqrtLen => "mean_sqrt_len",
            Self::LastToken => "lasttoken",
        }
    }

    /// A sentence-transformers `pooling_mode` name.
    pub fn parse(name: &str) -> anyhow::Result<Self> {
        Ok(match name {
            "cls" => Self::Cls,
            "max" => Self::Max,
            "mean" => Self::Mean,
            "mean_sqrt_len_tokens" | "mean_sqrt_len" => Self::MeanSqrtLen,
            "lasttoken" => Self::LastToken,
            other => anyhow::bail!(
                "pooling mode {other:?} is not supported (cls, max, mean, mean_sqrt_len_tokens, lasttoken)"
            ),
        })
    }
}

/// Pools `hidden` `[batch, seq, hidden]` under `mask` `[batch, seq]` (1 = token, 0 = padding)
/// into `[batch, hidden × modes]`, in f32.
pub fn pool(hidden: &Tensor, mask: &Tensor, modes: &[PoolingMode]) -> Result<Tensor> {
    let hidden = hidden.to_dtype(DType::F32)?;
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?; // [b, s, 1]
    let pooled = modes
        .iter()
        .map(|mode| pool_one(&hidden, &mask, *mode))
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&pooled, D::Minus1)
}

fn pool_one(hidden: &Tensor, mask: &Tensor, mode: PoolingMode) -> Result<Tensor> {
    match mode {
        PoolingMode::Cls => hidden.narrow(1, 0, 1)?.squeeze(1),
        PoolingMode::LastToken => {
            let lens = mask.squeeze(D::Minus1)?.sum(1)?.to_vec1::<f32>()?;
            let rows = lens
                .iter()
                .enumerate()
                .map(|(b, &n)| hidden.get(b)?.get((n as usize).max(1) - 1))
                .collect::<Result<Vec<_>>>()?;
            Tensor::stack(&rows, 0)
        }
        PoolingMode::Max => {
            // Padding gets a large negative offset so it never wins the max.
            let offset = ((mask - 1.0)? * 1e9)?;
            hidden.broadcast_add(&offset)?.max(1)
        }
        PoolingMode::Mean | PoolingMode::MeanSqrtLen => {
            let summed = hidden.broadcast_mul(mask)?.sum(1)?; // [b, h]
            let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?; // [b, 1]
            let divisor = match mode {
                PoolingMode::Mean => counts,
                _ => counts.sqrt()?,
            };
            summed.broadcast_div(&divisor)
        }
    }
}

/// Pools packed hidden states — `hidden` is `[tokens, width]` row-major with sequence `i`'s
/// rows following sequence `i-1`'s — into one vector per sequence (see [`pool`]).
pub fn pool_packed(
    hidden: &[f32],
    width: usize,
    lens: &[usize],
    modes: &[PoolingMode],
) -> Vec<Vec<f32>> {
    let mut start = 0;
    lens.iter()
        .map(|&len| {
            let rows = &hidden[start * width..(start + len) * width];
            start += len;
            modes
                .iter()
                .flat_map(|&mode| pool_rows(rows, width, mode))
                .collect()
        })
        .collect()
}

fn pool_rows(rows: &[f32], width: usize, mode: PoolingMode) -> Vec<f32> {
    let n = rows.len() / width;
    if n == 0 {
        return vec![0.0; width];
    }
    let fold = |init: f32, f: fn(f32, f32) -> f32| {
        rows.chunks_exact(width)
            .fold(vec![init; width], |mut acc, row| {
                acc.iter_mut().zip(row).for_each(|(a, &x)| *a = f(*a, x));
                acc
            })
    };
    match mode {
        PoolingMode::Cls => rows[..width].to_vec(),
        PoolingMode::LastToken => rows[(n - 1) * width..].to_vec(),
        PoolingMode::Max => fold(f32::NEG_INFINITY, f32::max),
        PoolingMode::Mean | PoolingMode::MeanSqrtLen => {
            let divisor = match mode {
                PoolingMode::Mean => n as f32,
                _ => (n as f32).sqrt(),
            };
            let mut sum = fold(0.0, |a, x| a + x);
            sum.iter_mut().for_each(|x| *x /= divisor);
            sum
        }
    }
}

/// Matryoshka truncation: keeps the first `dimensions` values of `v`, renormalised to unit
/// length when `normalize` (as sentence-transformers' `truncate_dim` then `normalize_embeddings`).
pub fn truncate_dimensions(v: &mut Vec<f32>, dimensions: usize, normalize: bool) {
    if dimensions < v.len() {
        v.truncate(dimensions);
        if normalize {
            l2_normalize(v);
        }
    }
}

/// Scales `v` to unit L2 norm in place; an all-zero vector stays zero.
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Two sequences of hidden size 2; the second has one padding position.
    fn fixture() -> (Tensor, Tensor) {
        let hidden = Tensor::new(
            &[
                [[1f32, 2.], [3., 4.], [5., 6.]],
                [[-1., 0.], [1., 2.], [100., 100.]],
            ],
            &Device::Cpu,
        )
        .unwrap();
        let mask = Tensor::new(&[[1u32, 1, 1], [1, 1, 0]], &Device::Cpu).unwrap();
        (hidden, mask)
    }

    fn pooled(modes: &[PoolingMode]) -> Vec<Vec<f32>> {
        let (h, m) = fixture();
        pool(&h, &m, modes).unwrap().to_vec2().unwrap()
    }

    #[test]
    fn mean_ignores_padding() {
        assert_eq!(
            pooled(&[PoolingMode::Mean]),
            vec![vec![3., 4.], vec![0., 1.]]
        );
    }

    #[test]
    fn cls_takes_first_token() {
        assert_eq!(
            pooled(&[PoolingMode::Cls]),
            vec![vec![1., 2.], vec![-1., 0.]]
        );
    }

    #[test]
    fn max_ignores_padding() {
        assert_eq!(
            pooled(&[PoolingMode::Max]),
            vec![vec![5., 6.], vec![1., 2.]]
        );
    }

    #[test]
    fn mean_sqrt_len_divides_by_root_of_length() {
        let got = pooled(&[PoolingMode::MeanSqrtLen]);
        let s3 = 3f32.sqrt();
        let s2 = 2f32.sqrt();
        let want = [[9. / s3, 12. / s3], [0. / s2, 2. / s2]];
        for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }

    #[test]
    fn last_token_takes_the_last_real_token() {
        assert_eq!(
            pooled(&[PoolingMode::LastToken]),
            vec![vec![5., 6.], vec![1., 2.]]
        );
    }

    #[test]
    fn matryoshka_cut_renormalises() {
        let mut v = vec![3.0f32, 4.0, 12.0];
        truncate_dimensions(&mut v, 2, true);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut raw = vec![3.0f32, 4.0, 12.0];
        truncate_dimensions(&mut raw, 2, false);
        assert_eq!(raw, vec![3.0, 4.0]);
        let mut same = vec![1.0f32, 2.0];
        truncate_dimensions(&mut same, 2, true);
        assert_eq!(same, vec![1.0, 2.0]);
    }

    #[test]
    fn modes_concatenate_in_order() {
        let got = pooled(&[PoolingMode::Cls, PoolingMode::Mean]);
        assert_eq!(got[0], vec![1., 2., 3., 4.]);
    }

    #[test]
    fn packed_pooling_matches_padded_pooling() {
        // The fixture's real tokens, packed: 3 rows then 2 rows.
        let packed = [1f32, 2., 3., 4., 5., 6., -1., 0., 1., 2.];
        let all = [
            PoolingMode::Cls,
            PoolingMode::Max,
            PoolingMode::Mean,
            PoolingMode::MeanSqrtLen,
            PoolingMode::LastToken,
        ];
        let got = pool_packed(&packed, 2, &[3, 2], &all);
        let want = pooled(&all);
        for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }

    #[test]
    fn normalisation_gives_unit_norm_and_keeps_zero() {
        let mut v = vec![3.0f32, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut z = vec![0.0f32; 3];
        l2_normalize(&mut z);
        assert_eq!(z, vec![0.0; 3]);
    }
}
