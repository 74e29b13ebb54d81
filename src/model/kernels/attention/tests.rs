//! Unit tests of the parent module.

use super::*;
use crate::model::kernels::tests::noise;

/// The f64 attention of `layout` over `qkv` + `bias`, with `relative(head, key - query)`
/// added to the scaled scores.
pub(in crate::model::kernels) fn reference(
    qkv: &[f32],
    bias: &[f32],
    lens: &[usize],
    layout: HeadLayout,
    relative: &dyn Fn(usize, i64) -> f64,
) -> Vec<Vec<f64>> {
    let (width, dim) = (layout.qkv_width(), layout.dim);
    let at = |row: usize, col: usize| (qkv[row * width + col] + bias[col]) as f64;
    let mut out = Vec::new();
    let mut start = 0;
    for &len in lens {
        for i in 0..len {
            let mut row = vec![0f64; layout.out_width()];
            for h in 0..layout.heads {
                let t = layout.task(start, len, h);
                let scores: Vec<f64> = (0..len)
                    .map(|j| {
                        let qk = (0..dim).map(|c| at(start + i, t.q + c) * at(start + j, t.k + c));
                        qk.sum::<f64>() / (dim as f64).sqrt() + relative(h, j as i64 - i as i64)
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let total: f64 = e.iter().sum();
                for c in 0..dim {
                    row[t.out + c] = (0..len)
                        .map(|j| e[j] / total * at(start + j, t.v + c))
                        .sum();
                }
            }
            out.push(row);
        }
        start += len;
    }
    out
}

/// A relative bias with a distinct value per head and distance.
pub(in crate::model::kernels) fn relative_value(h: usize, d: i64) -> f64 {
    ((h as f64 + 1.0) * 0.37 * d as f64).sin() * 2.0
}

#[test]
fn attention_matches_reference() -> Result<()> {
    // A head width that is not a multiple of the vector width; grouped-query heads too.
    for (heads, kv_heads, with_bias) in [(3, 3, false), (3, 3, true), (4, 2, true)] {
        let layout = HeadLayout {
            heads,
            kv_heads,
            dim: 24,
        };
        let lens = [1usize, 5, 17, 40, 0, 9];
        let tokens: usize = lens.iter().sum();
        let width = layout.qkv_width();
        let qkv = noise(tokens * width, 7, 2.0);
        let bias = noise(width, 8, 0.5);
        let rel = RelativeBias::new(heads, 40, |h, d| relative_value(h, d) as f32);
        let zero = |_: usize, _: i64| 0.0;
        let scores = Scores {
            relative: with_bias.then_some(&rel),
            ..Scores::default()
        };
        let value: &dyn Fn(usize, i64) -> f64 = if with_bias { &relative_value } else { &zero };
        let t = Tensor::from_vec(qkv.clone(), (tokens, width), &Device::Cpu)?;
        let got = attention(&t, &bias, &lens, layout, scores, Precision::F32)?;
        let want = reference(&qkv, &bias, &lens, layout, value);
        for (r, (g, w)) in got.to_vec2::<f32>()?.iter().zip(&want).enumerate() {
            for (c, (g, w)) in g.iter().zip(w).enumerate() {
                assert!(
                    (*g as f64 - w).abs() < 1e-5,
                    "{layout:?} bias {with_bias} row {r} col {c}: {g} vs {w}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn a_bias_too_short_for_the_sequence_is_refused() {
    let layout = HeadLayout::multi_head(8, 2);
    let rel = RelativeBias::new(2, 4, |_, _| 0.0);
    let t = Tensor::zeros((5, 24), candle_core::DType::F32, &Device::Cpu).unwrap();
    let scores = Scores {
        relative: Some(&rel),
        ..Scores::default()
    };
    assert!(attention(&t, &[0.0; 24], &[5], layout, scores, Precision::F32).is_err());
}

/// What a sliding window of `window` and causal masking hide, as a score term of the reference.
fn mask_value(window: Option<usize>, causal: bool) -> impl Fn(usize, i64) -> f64 {
    move |_, d| {
        let outside = window.is_some_and(|w| d.unsigned_abs() as usize > w);
        if outside || (causal && d > 0) {
            f64::NEG_INFINITY
        } else {
            0.0
        }
    }
}

#[test]
fn windows_and_causal_masks_match_reference() -> Result<()> {
    let layout = HeadLayout {
        heads: 4,
        kv_heads: 2,
        dim: 32,
    };
    let lens = [1usize, 5, 17, 40, 0, 9, 70];
    let tokens: usize = lens.iter().sum();
    let width = layout.qkv_width();
    let qkv = noise(tokens * width, 17, 2.0);
    let bias = noise(width, 18, 0.5);
    let t = Tensor::from_vec(qkv.clone(), (tokens, width), &Device::Cpu)?;
    for (window, causal) in [
        (Some(8), false),
        (Some(0), false),
        (None, true),
        (Some(3), true),
    ] {
        let scores = Scores {
            window,
            causal,
            ..Scores::default()
        };
        let want = reference(&qkv, &bias, &lens, layout, &mask_value(window, causal));
        let got = attention(&t, &bias, &lens, layout, scores, Precision::F32)?;
        for (r, (g, w)) in got.to_vec2::<f32>()?.iter().zip(&want).enumerate() {
            for (c, (g, w)) in g.iter().zip(w).enumerate() {
                assert!(
                    (*g as f64 - w).abs() < 1e-5,
                    "window {window:?} causal {causal} row {r} col {c}: {g} vs {w}"
                );
            }
        }
        // bf16 (AMX where this CPU has it): close, masked keys still hidden.
        let got = attention(&t, &bias, &lens, layout, scores, Precision::Bf16)?;
        for (r, (g, w)) in got.to_vec2::<f32>()?.iter().zip(&want).enumerate() {
            let err = g
                .iter()
                .zip(w)
                .map(|(g, w)| (*g as f64 - w).abs())
                .fold(0f64, f64::max);
            assert!(
                err < 0.05,
                "bf16 window {window:?} causal {causal} row {r}: {err}"
            );
        }
    }
    Ok(())
}
