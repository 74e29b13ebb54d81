use std::collections::HashMap;

use candle_core::{Device, Tensor};
use serde_json::json;

use super::*;

fn task(architectures: Value, family: Family) -> anyhow::Result<Task> {
    Task::detect(
        &json!({"architectures": architectures, "num_labels": 1}),
        family,
    )
}

#[test]
fn architectures_decide_the_task() {
    assert_eq!(
        task(json!(["BertModel"]), Family::Bert).unwrap(),
        Task::Embedding
    );
    assert_eq!(
        task(json!(["MPNetForMaskedLM"]), Family::MpNet).unwrap(),
        Task::Embedding
    );
    assert_eq!(
        Task::detect(&json!({}), Family::Bert).unwrap(),
        Task::Embedding
    );
    let bert = task(json!(["BertForSequenceClassification"]), Family::Bert).unwrap();
    assert_eq!(bert.kind(), ModelKind::Reranker);
    assert_eq!(bert.labels(), ["LABEL_0"]);
    let xlmr = task(
        json!(["XLMRobertaForSequenceClassification"]),
        Family::Roberta,
    )
    .unwrap();
    assert!(matches!(
        xlmr,
        Task::Classification {
            head: HeadKind::RobertaClassifier,
            ..
        }
    ));
}

#[test]
fn other_heads_are_refused_with_the_supported_list() {
    for class in [
        "DistilBertForSequenceClassification",
        "BertForTokenClassification",
        "BertForQuestionAnswering",
    ] {
        let err = task(json!([class]), Family::Bert).unwrap_err().to_string();
        assert!(err.contains(class), "{err}");
        assert!(err.contains("XLMRobertaForSequenceClassification"), "{err}");
    }
    let err = task(json!(["BertForSequenceClassification"]), Family::Roberta).unwrap_err();
    assert!(err.to_string().contains("model_type"), "{err}");
}

#[test]
fn id2label_gives_labels_in_id_order() {
    let config = json!({
        "architectures": ["BertForSequenceClassification"],
        "id2label": {"2": "positive", "0": "negative", "1": "neutral"}
    });
    let task = Task::detect(&config, Family::Bert).unwrap();
    assert_eq!(task.kind(), ModelKind::Classifier);
    assert_eq!(task.labels(), ["negative", "neutral", "positive"]);
    let gap = json!({"architectures": ["BertForSequenceClassification"], "id2label": {"0": "a", "2": "b"}});
    assert!(Task::detect(&gap, Family::Bert).is_err());
}

/// A head over hidden 2 with 1 label, weights chosen by hand.
fn head(kind: HeadKind) -> ClassifierHead {
    let t = |v: &[f32], shape: &[usize]| Tensor::from_slice(v, shape, &Device::Cpu).unwrap();
    let (dense, out) = match kind {
        HeadKind::BertPooler => ("bert.pooler.dense", "classifier"),
        HeadKind::RobertaClassifier => ("classifier.dense", "classifier.out_proj"),
        HeadKind::ModernBert => unreachable!("tested through a spawned server"),
    };
    let tensors = HashMap::from([
        (format!("{dense}.weight"), t(&[1.0, 0.0, 0.0, 2.0], &[2, 2])),
        (format!("{dense}.bias"), t(&[0.0, -1.0], &[2])),
        (format!("{out}.weight"), t(&[1.0, -1.0], &[1, 2])),
        (format!("{out}.bias"), t(&[0.5], &[1])),
    ]);
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    ClassifierHead::load(&vb, &json!({}), kind, 2, 1).unwrap()
}

#[test]
fn head_is_out_of_tanh_of_dense() {
    for kind in [HeadKind::BertPooler, HeadKind::RobertaClassifier] {
        let logits = head(kind).forward(&[0.5, 1.0]);
        // dense: [0.5, 2·1 − 1] = [0.5, 1]; tanh; out: tanh(0.5) − tanh(1) + 0.5.
        let want = 0.5f32.tanh() - 1f32.tanh() + 0.5;
        assert!((logits[0] - want).abs() < 1e-6, "{kind:?}: {logits:?}");
    }
}

#[test]
fn softmax_and_sigmoid() {
    let p = softmax(&[1000.0, 1000.0, 0.0]);
    assert!((p[0] - 0.5).abs() < 1e-6 && p[2] < 1e-6, "{p:?}");
    assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
    assert!(sigmoid(-10.0) < 1e-4);
}

#[test]
fn modernbert_head_pieces() {
    assert_eq!(mean_rows(&[1.0, 2.0, 3.0, 6.0], 2), vec![2.0, 4.0]);
    let norm = Norm {
        weight: vec![2.0; 4],
        bias: vec![1.0; 4],
        eps: 0.0,
    };
    let mut x = vec![1.0, 2.0, 3.0, 4.0];
    norm.forward(&mut x);
    // (x − 2.5) / √1.25 · 2 + 1
    let want: Vec<f32> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .map(|v| (v - 2.5) / 1.25f32.sqrt() * 2.0 + 1.0)
        .collect();
    assert!(
        x.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5),
        "{x:?}"
    );
    let gelu = Activation::parse("gelu").unwrap();
    assert!((gelu.apply(1.0) - 0.841_344_7).abs() < 1e-5);
    let approx = Activation::parse("gelu_pytorch_tanh").unwrap();
    assert!((approx.apply(1.0) - 0.841_192).abs() < 1e-5);
    let err = Activation::parse("mish").unwrap_err().to_string();
    assert!(err.contains("mish") && err.contains("gelu"), "{err}");
}
