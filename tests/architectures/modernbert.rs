//! ModernBERT (rotary with a global and a local base, sliding-window local layers, GeGLU, no
//! biases) on tiny random models whose window (`local_attention` 16: ±8 tokens) is far shorter
//! than the long texts (200+ tokens), so the local layers matter. The check is shown sharp: the
//! same model with its local layers' rotary base set to the global one, or with the window so
//! wide that every layer attends to everything, must fail it. The same model written in the
//! transformers 4.x config spelling must pass it.

use serde_json::json;

use super::{assert_parity, serve, worst_cosine, BAR};
use crate::common::refuses;

#[tokio::test]
async fn modernbert_with_mean_pooling() {
    let info = assert_parity("modernbert", "modernbert").await;
    assert_eq!(info["pooling"], json!(["mean"]));
    assert_eq!(info["dimensions"], 64);
}

/// `attention_bias`, `mlp_bias` and `norm_bias` all true, their biases perturbed.
#[tokio::test]
async fn modernbert_with_every_bias_and_cls_pooling() {
    let info = assert_parity("modernbert-biased", "modernbert").await;
    assert_eq!(info["pooling"], json!(["cls"]));
}

/// `global_attn_every_n_layers`, `global_rope_theta`, `local_rope_theta` (transformers 4.x)
/// instead of `layer_types` and `rope_parameters` (5.x): the same vectors.
#[tokio::test]
async fn modernbert_in_the_4x_config_spelling() {
    let server = serve("modernbert-v4-config").await;
    let worst = worst_cosine(&server, "modernbert").await;
    eprintln!("modernbert, 4.x config: worst cosine {worst:.7}");
    assert!(
        worst >= BAR,
        "the 4.x spelling served other vectors ({worst})"
    );
}

#[tokio::test]
async fn modernbert_with_the_global_base_on_local_layers_fails_the_check() {
    let server = serve("modernbert-local-theta-as-global").await;
    let worst = worst_cosine(&server, "modernbert").await;
    eprintln!("modernbert, local base = global base: worst cosine {worst:.5}");
    assert!(
        worst < BAR,
        "a wrong local rotary base still passed ({worst})"
    );
}

#[tokio::test]
async fn modernbert_without_its_sliding_window_fails_the_check() {
    let server = serve("modernbert-window-ignored").await;
    let worst = worst_cosine(&server, "modernbert").await;
    eprintln!("modernbert, window ignored: worst cosine {worst:.5}");
    assert!(
        worst < BAR,
        "attention without the window still passed ({worst})"
    );
}

#[tokio::test]
async fn modernbert_on_cuda_is_a_clear_startup_error() {
    let model = super::models_dir().join("modernbert");
    let out = refuses(model.to_str().unwrap(), &[], &["--device", "cuda"]);
    assert!(
        out.contains("modernbert models have no CUDA implementation"),
        "{out}"
    );
}
