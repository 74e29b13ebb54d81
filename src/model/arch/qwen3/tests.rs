//! Unit tests of the parent module: config spellings and refusals, and the packed Qwen3 against
//! candle-transformers' `qwen3::Model` on random weights (each sequence alone, so its causal
//! mask needs no padding), with q/k norms, causal masking and the grouped heads shown to matter.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::qwen3 as reference;
use serde_json::json;

use super::super::Family;
use super::*;

fn base() -> Value {
    json!({
        "model_type": "qwen3", "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 12,
        "intermediate_size": 48, "max_position_embeddings": 96, "rms_norm_eps": 1e-6,
        "hidden_act": "silu"
    })
}

fn thetas(json: &Value) -> Vec<f64> {
    let c = config(json).unwrap();
    c.rotary.unwrap().layers.iter().map(|l| l.theta).collect()
}

#[test]
fn reads_the_4x_and_5x_spellings_alike() {
    let mut v4 = base();
    v4["rope_theta"] = json!(1_000_000.0);
    v4["rope_scaling"] = Value::Null;
    let mut v5 = base();
    v5["rope_parameters"] = json!({"rope_type": "default", "rope_theta": 1_000_000.0});
    v5["layer_types"] = json!(["full_attention", "full_attention"]);
    v5["use_sliding_window"] = json!(false);
    v5["sliding_window"] = Value::Null;
    assert_eq!(thetas(&v4), vec![1e6, 1e6]);
    assert_eq!(config(&v4).unwrap(), config(&v5).unwrap());
    let d = config(&v5).unwrap().decoder.unwrap();
    assert_eq!((d.kv_heads, d.head_dim, d.causal), (2, 12, true));
}

#[test]
fn defaults_follow_transformers() {
    let mut json = base();
    for key in [
        "num_key_value_heads",
        "head_dim",
        "rms_norm_eps",
        "hidden_act",
    ] {
        json.as_object_mut().unwrap().remove(key);
    }
    json["num_attention_heads"] = json!(32);
    let c = config(&json).unwrap();
    let d = c.decoder.unwrap();
    assert_eq!((d.kv_heads, d.head_dim), (KV_HEADS, HEAD_DIM));
    assert_eq!((c.eps, thetas(&json)[0]), (1e-6, THETA));
    assert!(!c.rotary.unwrap().attention_bias);
    // `null` means "as many as the query heads" / "hidden / heads".
    json["num_key_value_heads"] = Value::Null;
    json["head_dim"] = Value::Null;
    json["is_causal"] = json!(false);
    json["hidden_size"] = json!(64);
    let d = config(&json).unwrap().decoder.unwrap();
    assert_eq!((d.kv_heads, d.head_dim, d.causal), (32, 2, false));
}

#[test]
fn unsupported_settings_are_refused() {
    let cases = [
        ("use_sliding_window", json!(true)),
        (
            "layer_types",
            json!(["full_attention", "sliding_attention"]),
        ),
        ("layer_types", json!(["full_attention"])),
        ("hidden_act", json!("gelu")),
        ("num_key_value_heads", json!(3)),
        ("head_dim", json!(13)),
        ("rope_scaling", json!({"rope_type": "yarn", "factor": 4.0})),
        ("rope_scaling", json!({"type": "linear", "factor": 2.0})),
        (
            "rope_parameters",
            json!({"rope_type": "dynamic", "rope_theta": 1e6}),
        ),
        (
            "rope_parameters",
            json!({"full_attention": {"rope_type": "default", "rope_theta": 1e6}}),
        ),
        ("rope_theta", json!(-1.0)),
    ];
    for (key, value) in cases {
        let mut c = base();
        c[key] = value.clone();
        let err = config(&c).map(|_| ()).unwrap_err().to_string();
        eprintln!("{key} = {value}: {err}");
    }
    let mut sliding = base();
    sliding["use_sliding_window"] = json!(true);
    let err = config(&sliding).unwrap_err().to_string();
    assert!(
        err.contains("sliding-window attention is not implemented"),
        "{err}"
    );
}

/// The tiny config as candle-transformers reads it.
fn candle_config(json: &Value, bias: bool) -> reference::Config {
    let c = config(json).unwrap();
    let d = c.decoder.unwrap();
    reference::Config {
        vocab_size: c.vocab_size,
        hidden_size: c.hidden,
        intermediate_size: c.intermediate,
        num_hidden_layers: c.layers,
        num_attention_heads: c.heads,
        head_dim: d.head_dim,
        attention_bias: bias,
        num_key_value_heads: d.kv_heads,
        max_position_embeddings: c.max_positions,
        sliding_window: None,
        max_window_layers: c.layers,
        tie_word_embeddings: false,
        rope_theta: thetas(json)[0],
        rms_norm_eps: c.eps,
        use_sliding_window: false,
        hidden_act: candle_nn::Activation::Silu,
    }
}

/// Random weights under `Qwen3ForCausalLM`'s names (`model.` prefix, as candle reads them);
/// norm weights around 1, the rest wide enough that every term matters.
fn random_weights(c: &reference::Config, bias: bool) -> candle_core::Result<VarBuilder<'static>> {
    let (h, i, d) = (c.hidden_size, c.intermediate_size, c.head_dim);
    let (q, kv) = (c.num_attention_heads * d, c.num_key_value_heads * d);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("embed_tokens.weight".into(), vec![c.vocab_size, h]),
        ("norm.weight".into(), vec![h]),
    ];
    for l in 0..c.num_hidden_layers {
        let p = format!("layers.{l}");
        let mut add = |name: &str, shape: Vec<usize>| shapes.push((format!("{p}.{name}"), shape));
        for (name, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
            add(&format!("self_attn.{name}.weight"), vec![rows, h]);
            if bias {
                add(&format!("self_attn.{name}.bias"), vec![rows]);
            }
        }
        add("self_attn.o_proj.weight", vec![h, q]);
        if bias {
            add("self_attn.o_proj.bias", vec![h]);
        }
        add("self_attn.q_norm.weight", vec![d]);
        add("self_attn.k_norm.weight", vec![d]);
        add("input_layernorm.weight", vec![h]);
        add("post_attention_layernorm.weight", vec![h]);
        add("mlp.gate_proj.weight", vec![i, h]);
        add("mlp.up_proj.weight", vec![i, h]);
        add("mlp.down_proj.weight", vec![h, i]);
    }
    let mut map = HashMap::new();
    for (name, shape) in shapes {
        let norm = name.ends_with("norm.weight");
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

/// Worst per-token cosine of the packed stack (after `edit`) against `want`.
fn worst(
    vb: &VarBuilder<'static>,
    c: &EncoderConfig,
    seqs: &[&[u32]],
    want: &[Vec<f32>],
    edit: impl Fn(&mut SelfAttention),
) -> anyhow::Result<f64> {
    let w = Weights::new(vb.clone(), &["model"], PROBE, Precision::F32);
    let mut stack = packed(&w, c, Precision::F32)?;
    for layer in &mut stack.layers {
        if let Layer::Pre(layer) = layer {
            edit(&mut layer.attn);
        }
    }
    let got = stack.forward(seqs)?.to_vec2::<f32>()?;
    assert_eq!(got.len(), want.len());
    Ok(got
        .iter()
        .zip(want)
        .map(|(g, w)| cosine(g, w))
        .fold(1.0, f64::min))
}

/// Packed (several sequences in one buffer, rotary positions restarting per sequence) against
/// candle-transformers' Qwen3 run on each sequence alone, with and without attention biases.
/// Shown sharp: the packed model without q/k norms, or attending both ways, must fail it (the
/// grouped-head pairing is checked by the attention kernel's tests and by the
/// `qwen3-kv-groups-interleaved` tiny model in `tests/architectures/`).
#[test]
fn matches_candle_transformers_qwen3() -> anyhow::Result<()> {
    for bias in [false, true] {
        let json = base();
        let cc = candle_config(&json, bias);
        let vb = random_weights(&cc, bias)?;
        let model = reference::Model::new(&cc, vb.clone())?;
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
            // A fresh copy each time: the model keeps a KV cache across calls.
            let ids = Tensor::new(*seq, &Device::Cpu)?.unsqueeze(0)?;
            let out = model.clone().forward(&ids, 0)?;
            want.extend(out.squeeze(0)?.to_vec2::<f32>()?);
        }
        let mut c = config(&json)?;
        c.rotary.as_mut().unwrap().attention_bias = bias;
        let exact = worst(&vb, &c, &seqs, &want, |_| {})?;
        let no_norms = worst(&vb, &c, &seqs, &want, |a| a.head_norms = None)?;
        let both_ways = worst(&vb, &c, &seqs, &want, |a| a.causal = false)?;
        eprintln!(
            "packed Qwen3 (bias {bias}) vs candle: worst cosine {exact:.9}; without q/k norms \
             {no_norms:.5}, bidirectional {both_ways:.5}"
        );
        assert!(exact >= 0.99999, "{exact}");
        for (what, wrong) in [("q/k norms", no_norms), ("the causal mask", both_ways)] {
            assert!(wrong < 0.9995, "{what} made no difference ({wrong})");
        }
    }
    Ok(())
}

#[test]
fn qwen3_is_detected_and_refused_on_cuda() {
    let (family, model_type) = Family::detect(&json!({"model_type": "qwen3"})).unwrap();
    assert_eq!((family, model_type.as_str()), (Family::Qwen3, "qwen3"));
    let by_class = Family::detect(&json!({"architectures": ["Qwen3ForCausalLM"]})).unwrap();
    assert_eq!(by_class.0, Family::Qwen3);
    assert!(!Family::Qwen3.runs_on_cuda());
    let err = Family::detect(&json!({"model_type": "qwen3_moe"})).unwrap_err();
    assert!(err.to_string().contains("qwen3"), "{err}");
}
