//! Unit tests of the parent module: config spellings, and the packed ModernBERT against
//! candle-transformers' (padded) `ModernBert` on random weights.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::modernbert as reference;
use serde_json::json;

use super::*;

fn base() -> Value {
    json!({
        "model_type": "modernbert", "vocab_size": 100, "hidden_size": 32,
        "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 48,
        "local_attention": 16, "pad_token_id": 0
    })
}

fn layers(json: &Value) -> Vec<LayerAttention> {
    config(json).unwrap().rotary.unwrap().layers
}

#[test]
fn reads_the_4x_and_5x_spellings_alike() {
    let mut v4 = base();
    v4["global_attn_every_n_layers"] = json!(2);
    v4["global_rope_theta"] = json!(1000.0);
    v4["local_rope_theta"] = json!(20.0);
    let mut v5 = base();
    v5["layer_types"] = json!([
        "full_attention",
        "sliding_attention",
        "full_attention",
        "sliding_attention"
    ]);
    v5["rope_parameters"] = json!({
        "full_attention": {"rope_theta": 1000.0, "rope_type": "default"},
        "sliding_attention": {"rope_theta": 20.0, "rope_type": "default"}
    });
    // 5.x also keeps the 4.x keys around; `layer_types` and `rope_parameters` win.
    let mut both = v5.clone();
    both["global_attn_every_n_layers"] = json!(3);
    both["local_rope_theta"] = json!(7.0);
    let want = vec![
        LayerAttention {
            theta: 1000.0,
            window: None,
        },
        LayerAttention {
            theta: 20.0,
            window: Some(8),
        },
        LayerAttention {
            theta: 1000.0,
            window: None,
        },
        LayerAttention {
            theta: 20.0,
            window: Some(8),
        },
    ];
    assert_eq!(layers(&v4), want);
    assert_eq!(layers(&v5), want);
    assert_eq!(layers(&both), want);
}

#[test]
fn defaults_follow_transformers() {
    let l = layers(&base());
    let kinds: Vec<_> = l.iter().map(|a| (a.theta, a.window)).collect();
    assert_eq!(
        kinds,
        vec![
            (GLOBAL_THETA, None),
            (LOCAL_THETA, Some(8)),
            (LOCAL_THETA, Some(8)),
            (GLOBAL_THETA, None)
        ]
    );
    let mut null_local = base();
    null_local["local_rope_theta"] = Value::Null;
    assert!(layers(&null_local).iter().all(|a| a.theta == GLOBAL_THETA));
    let c = config(&base()).unwrap();
    assert_eq!((c.eps, c.max_positions), (1e-5, 8192));
    let r = c.rotary.unwrap();
    assert!(!r.attention_bias && !r.mlp_bias && !r.norm_bias);
}

#[test]
fn unsupported_settings_are_refused() {
    let cases = [
        ("hidden_activation", json!("silu")),
        (
            "rope_scaling",
            json!({"rope_type": "linear", "factor": 2.0}),
        ),
        ("layer_types", json!(["full_attention"])),
        (
            "layer_types",
            json!(["full_attention", "chunked", "x", "y"]),
        ),
        ("global_attn_every_n_layers", json!(0)),
        (
            "rope_parameters",
            json!({"full_attention": {"rope_type": "yarn", "rope_theta": 1.0}}),
        ),
    ];
    for (key, value) in cases {
        let mut c = base();
        c[key] = value.clone();
        assert!(config(&c).is_err(), "{key} = {value} was accepted");
    }
}

/// The tiny config as candle-transformers reads it (no biases: its model has none).
fn candle_config(json: &Value) -> reference::Config {
    let c = config(json).unwrap();
    reference::Config {
        vocab_size: c.vocab_size,
        hidden_size: c.hidden,
        num_hidden_layers: c.layers,
        num_attention_heads: c.heads,
        intermediate_size: c.intermediate,
        max_position_embeddings: 96,
        layer_norm_eps: c.eps,
        pad_token_id: 0,
        global_attn_every_n_layers: 3,
        global_rope_theta: 160_000.0,
        local_attention: 16,
        local_rope_theta: 10_000.0,
        classifier_config: None,
    }
}

/// Random weights under `ModernBertForMaskedLM`'s names (`model.` prefix, as candle reads them).
fn random_weights(c: &reference::Config) -> candle_core::Result<VarBuilder<'static>> {
    let (h, i) = (c.hidden_size, c.intermediate_size);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        (
            "embeddings.tok_embeddings.weight".into(),
            vec![c.vocab_size, h],
        ),
        ("embeddings.norm.weight".into(), vec![h]),
        ("final_norm.weight".into(), vec![h]),
    ];
    for l in 0..c.num_hidden_layers {
        let p = format!("layers.{l}");
        if l > 0 {
            shapes.push((format!("{p}.attn_norm.weight"), vec![h]));
        }
        shapes.push((format!("{p}.attn.Wqkv.weight"), vec![3 * h, h]));
        shapes.push((format!("{p}.attn.Wo.weight"), vec![h, h]));
        shapes.push((format!("{p}.mlp_norm.weight"), vec![h]));
        shapes.push((format!("{p}.mlp.Wi.weight"), vec![2 * i, h]));
        shapes.push((format!("{p}.mlp.Wo.weight"), vec![h, i]));
    }
    let mut map = HashMap::new();
    for (name, shape) in shapes {
        let norm = shape.len() == 1;
        let t = crate::model::arch::test_weights::normal(&name, 0.3, shape)?;
        let t = if norm { (t + 1.0)? } else { t };
        map.insert(format!("model.{name}"), t);
    }
    Ok(VarBuilder::from_tensors(map, DType::F32, &Device::Cpu))
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(x, y)| *x as f64 * *y as f64)
            .sum::<f64>()
    };
    dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
}

/// Packed (several sequences in one buffer, rotary positions restarting per sequence) against
/// candle-transformers' model run on each sequence alone. Sequences longer than the window
/// (16, so ±8) make the local layers differ from global ones; the check is shown sharp by
/// running the packed model with the window removed, which must fail it.
#[test]
fn matches_candle_transformers_modernbert() -> anyhow::Result<()> {
    let mut json = base();
    json["max_position_embeddings"] = json!(96);
    json["hidden_size"] = json!(64);
    json["intermediate_size"] = json!(80);
    let cc = candle_config(&json);
    let vb = random_weights(&cc)?;
    let model = reference::ModernBert::load(vb.clone(), &cc)?;
    let seqs: Vec<Vec<u32>> = [5usize, 1, 90, 17, 40]
        .iter()
        .enumerate()
        .map(|(s, &n)| {
            (0..n)
                .map(|p| ((s * 31 + p * 7) % cc.vocab_size) as u32)
                .collect()
        })
        .collect();
    let seqs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
    let mut want = Vec::new();
    for seq in &seqs {
        let ids = Tensor::new(*seq, &Device::Cpu)?.unsqueeze(0)?;
        let mask = ids.ones_like()?;
        want.extend(model.forward(&ids, &mask)?.squeeze(0)?.to_vec2::<f32>()?);
    }
    let c = config(&json)?;
    let worst = |c: &EncoderConfig| -> anyhow::Result<f64> {
        let w = Weights::new(vb.clone(), &["model"], PROBE, Precision::F32);
        let got = packed(&w, c, Precision::F32)?
            .forward(&seqs)?
            .to_vec2::<f32>()?;
        assert_eq!(got.len(), want.len());
        Ok(got
            .iter()
            .zip(&want)
            .map(|(g, w)| cosine(g, w))
            .fold(1.0, f64::min))
    };
    let exact = worst(&c)?;
    let mut no_window = c.clone();
    for l in &mut no_window.rotary.as_mut().unwrap().layers {
        l.window = None;
    }
    let wrong = worst(&no_window)?;
    eprintln!(
        "packed ModernBERT vs candle: worst cosine {exact:.9}; without the window {wrong:.6}"
    );
    assert!(exact >= 0.99999, "{exact}");
    assert!(wrong < 0.9995, "the window made no difference ({wrong})");
    Ok(())
}
