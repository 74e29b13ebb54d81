//! Writes a tiny random BERT sentence-transformers directory: config, safetensors weights,
//! a WordPiece tokenizer (with the fixed padding real tokenizer.json files carry), and the
//! sentence-transformers module files. Loads in milliseconds; no downloads.

use std::{collections::HashMap, path::Path};

use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};

pub const HIDDEN: usize = 32;
pub const MAX_SEQ_LENGTH: usize = 32;
const LAYERS: usize = 2;
const INTERMEDIATE: usize = 64;
const MAX_POSITIONS: usize = 64;

/// Special tokens first, then single characters and their `##` continuations.
fn vocab() -> Vec<String> {
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let chars: Vec<char> = ('a'..='z').chain('0'..='9').collect();
    vocab.extend(chars.iter().map(|c| c.to_string()));
    vocab.extend(chars.iter().map(|c| format!("##{c}")));
    vocab.extend(".,!?-'\"():;/".chars().map(|c| c.to_string()));
    vocab
}

/// Writes a tiny model with fresh random weights.
pub fn write(dir: &Path) {
    write_seeded(dir, fastrand::u64(..));
}

/// Writes a tiny model whose weights are a function of `seed`: the same seed gives
/// byte-identical weights, different seeds give unrelated models.
pub fn write_seeded(dir: &Path, seed: u64) {
    let vocab = vocab();
    write_json(dir, "config.json", &config(vocab.len()));
    write_json(dir, "tokenizer.json", &tokenizer(&vocab));
    write_json(
        dir,
        "modules.json",
        &json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        ]),
    );
    write_json(
        dir,
        "1_Pooling/config.json",
        &json!({"word_embedding_dimension": HIDDEN, "pooling_mode_mean_tokens": true}),
    );
    write_json(
        dir,
        "sentence_bert_config.json",
        &json!({"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": false}),
    );
    write_weights(dir, vocab.len(), seed);
}

fn write_json(dir: &Path, rel: &str, value: &Value) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

fn config(vocab_size: usize) -> Value {
    json!({
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": vocab_size, "hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
        "num_attention_heads": 4, "intermediate_size": INTERMEDIATE, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": MAX_POSITIONS, "type_vocab_size": 2,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0
    })
}

fn tokenizer(vocab: &[String]) -> Value {
    let ids: serde_json::Map<String, Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let added: Vec<Value> = vocab[..5]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                             "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let special = |t: &str| json!({"SpecialToken": {"id": t, "type_id": 0}});
    json!({
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": 128, "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": {"Fixed": 128}, "direction": "Right", "pad_to_multiple_of": null,
                    "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [special("[CLS]"), {"Sequence": {"id": "A", "type_id": 0}}, special("[SEP]")],
            "pair": [special("[CLS]"), {"Sequence": {"id": "A", "type_id": 0}}, special("[SEP]"),
                     {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}
            }
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": ids}
    })
}

fn write_weights(dir: &Path, vocab_size: usize, seed: u64) {
    let dev = Device::Cpu;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut random = |name: String, shape: &[usize]| {
        // Box-Muller: N(0, 0.5) from the seeded generator (candle's CPU RNG cannot be seeded).
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| {
                let (u, v) = (rng.f32().max(f32::MIN_POSITIVE), rng.f32());
                0.5 * (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
            })
            .collect();
        let t = Tensor::from_vec(values, shape, &dev).unwrap();
        tensors.insert(name, t);
    };
    random(
        "embeddings.word_embeddings.weight".into(),
        &[vocab_size, HIDDEN],
    );
    random(
        "embeddings.position_embeddings.weight".into(),
        &[MAX_POSITIONS, HIDDEN],
    );
    random(
        "embeddings.token_type_embeddings.weight".into(),
        &[2, HIDDEN],
    );
    for layer in 0..LAYERS {
        let p = format!("encoder.layer.{layer}");
        for part in ["query", "key", "value"] {
            random(
                format!("{p}.attention.self.{part}.weight"),
                &[HIDDEN, HIDDEN],
            );
            random(format!("{p}.attention.self.{part}.bias"), &[HIDDEN]);
        }
        random(
            format!("{p}.attention.output.dense.weight"),
            &[HIDDEN, HIDDEN],
        );
        random(format!("{p}.attention.output.dense.bias"), &[HIDDEN]);
        random(
            format!("{p}.intermediate.dense.weight"),
            &[INTERMEDIATE, HIDDEN],
        );
        random(format!("{p}.intermediate.dense.bias"), &[INTERMEDIATE]);
        random(format!("{p}.output.dense.weight"), &[HIDDEN, INTERMEDIATE]);
        random(format!("{p}.output.dense.bias"), &[HIDDEN]);
    }
    let norms =
        std::iter::once("embeddings.LayerNorm".to_string()).chain((0..LAYERS).flat_map(|l| {
            [
                format!("encoder.layer.{l}.attention.output.LayerNorm"),
                format!("encoder.layer.{l}.output.LayerNorm"),
            ]
        }));
    for norm in norms {
        tensors.insert(
            format!("{norm}.weight"),
            Tensor::ones(HIDDEN, DType::F32, &dev).unwrap(),
        );
        tensors.insert(
            format!("{norm}.bias"),
            Tensor::zeros(HIDDEN, DType::F32, &dev).unwrap(),
        );
    }
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
}
