//! KServe v2 for rerankers and classifiers, REST and gRPC: BYTES `text` (and optionally
//! `text_pair`) in, FP32 `logits` `[n, labels]` out, within [`TOLERANCE`] of transformers' logits
//! for the same texts and pairs, in JSON, binary and raw tensor form; metadata names the tensors;
//! tensors that do not fit the model's signature are 422 / INVALID_ARGUMENT.

use std::collections::HashMap;

use inferd::{
    grpc::proto::inference::{
        grpc_inference_service_client::GrpcInferenceServiceClient,
        model_infer_request::InferInputTensor, ModelInferRequest, ModelMetadataRequest,
    },
    serving::bytes_tensor,
};
use serde_json::{json, Value};
use tonic::Code;

use super::{reference, serve, Case, TOLERANCE};
use crate::{
    common::{floats, TestServer},
    grpc::connect,
};

async fn model_name(server: &TestServer) -> String {
    let (_, info) = server.get_json("/info").await;
    info["model"].as_str().unwrap().to_string()
}

/// A JSON BYTES tensor.
fn tensor(name: &str, data: &[&str]) -> Value {
    json!({"name": name, "datatype": "BYTES", "shape": [data.len()], "data": data})
}

/// The worst difference between an answer's `logits` rows and the cases' logits.
fn worst(answer: &Value, cases: &[&Case], labels: usize) -> f32 {
    let output = &answer["outputs"][0];
    assert_eq!(output["name"], "logits", "{answer}");
    assert_eq!(output["shape"], json!([cases.len(), labels]), "{answer}");
    let flat = floats(&output["data"]);
    let rows = flat.chunks(labels);
    rows.zip(cases)
        .flat_map(|(row, case)| row.iter().zip(&case.logits).map(|(a, b)| (a - b).abs()))
        .fold(0f32, f32::max)
}

/// The first and second texts of the pairs.
fn pair_texts(pairs: &[Case]) -> (Vec<&str>, Vec<&str>) {
    pairs
        .iter()
        .map(|c| (c.first.as_str(), c.second.as_deref().unwrap()))
        .unzip()
}

async fn infer(server: &TestServer, model: &str, body: Value) -> (u16, Value) {
    server
        .post_json(&format!("/v2/models/{model}/infer"), body)
        .await
}

/// Texts alone and (query, text) pairs through REST KServe, JSON and binary, against
/// transformers' logits; metadata lists both inputs and the `logits` output.
async fn assert_rest(name: &str) {
    let server = serve(name, &[]).await;
    let model = model_name(&server).await;
    let reference = reference(name);
    let labels = reference.labels.len();
    let (status, meta) = server.get_json(&format!("/v2/models/{model}")).await;
    assert_eq!(status, 200, "{meta}");
    let names: Vec<&str> = meta["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["text", "text_pair"], "{meta}");
    assert_eq!(meta["outputs"][0]["name"], "logits");
    assert_eq!(meta["outputs"][0]["shape"], json!([-1, labels]));

    let texts: Vec<&str> = reference.texts.iter().map(|c| c.first.as_str()).collect();
    let (status, answer) =
        infer(&server, &model, json!({"inputs": [tensor("text", &texts)]})).await;
    assert_eq!(status, 200, "{answer}");
    let singles: Vec<&Case> = reference.texts.iter().collect();
    let mut diff = worst(&answer, &singles, labels);

    let (firsts, seconds) = pair_texts(&reference.pairs);
    let pairs: Vec<&Case> = reference.pairs.iter().collect();
    let body = json!({
        "inputs": [tensor("text", &firsts), tensor("text_pair", &seconds)],
        "parameters": {"truncate": true},
    });
    let (status, answer) = infer(&server, &model, body).await;
    assert_eq!(status, 200, "{answer}");
    diff = diff.max(worst(&answer, &pairs, labels));

    // Binary tensors (what tritonclient sends): each input's bytes after the previous one's.
    let (a, b) = (
        bytes_tensor::encode(&firsts),
        bytes_tensor::encode(&seconds),
    );
    let binary = |name: &str, n: usize, size: usize| {
        json!({"name": name, "datatype": "BYTES", "shape": [n],
            "parameters": {"binary_data_size": size}})
    };
    let header = json!({
        "inputs": [binary("text", firsts.len(), a.len()), binary("text_pair", seconds.len(), b.len())],
        "parameters": {"truncate": true},
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&a);
    body.extend_from_slice(&b);
    let response = server
        .client
        .post(server.url(&format!("/v2/models/{model}/infer")))
        .header("inference-header-content-length", header.len())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    diff = diff.max(worst(&answer, &pairs, labels));
    eprintln!("{name}: worst KServe logits difference {diff:.2e} to transformers");
    assert!(diff <= TOLERANCE, "{name}: {diff} > {TOLERANCE}");
}

#[tokio::test]
async fn kserve_classifier_logits_match_transformers() {
    assert_rest("bert-classifier").await;
}

#[tokio::test]
async fn kserve_reranker_logits_match_transformers() {
    assert_rest("modernbert-reranker").await;
}

/// Tensors that do not fit (422 `invalid_input`, in OIP's `{"error"}` shape): pairs without their texts, a `text_pair` of another length, the
/// embedding output's name, and `text_pair` on an embedding model.
#[tokio::test]
async fn kserve_tensors_must_fit_the_models_signature() {
    let server = serve("bert-reranker", &[]).await;
    let model = model_name(&server).await;
    let cases = [
        (
            json!({"inputs": [tensor("text_pair", &["a"])]}),
            "`text` is required",
        ),
        (
            json!({"inputs": [tensor("text", &["a", "b"]), tensor("text_pair", &["c"])]}),
            "`text_pair` has 1 elements for 2 texts",
        ),
        (
            json!({"inputs": [tensor("text", &["a"])], "outputs": [{"name": "embedding"}]}),
            "the model's output is `logits`",
        ),
        (
            json!({"inputs": [tensor("text", &["a"]), tensor("text", &["b"])]}),
            "given twice",
        ),
    ];
    for (body, message) in cases {
        let (status, err) = infer(&server, &model, body.clone()).await;
        assert_eq!(status, 422, "{body}: {err}");
        let got = err["error"].as_str().unwrap();
        assert!(got.contains(message), "{body}: {got}");
    }
    let embedder = crate::common::spawn_tiny().await;
    let model = model_name(&embedder).await;
    let body = json!({"inputs": [tensor("text", &["a"]), tensor("text_pair", &["b"])]});
    let (status, err) = infer(&embedder, &model, body).await;
    assert_eq!(status, 422, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("unknown input"),
        "{err}"
    );
}

/// gRPC `ModelInfer` on a classifier, pairs in `raw_input_contents` (one entry per input) and
/// texts typed: the same logits as transformers'; a lone `text_pair` is INVALID_ARGUMENT.
#[tokio::test]
async fn grpc_model_infer_scores_pairs_on_a_classifier() {
    let name = "bert-classifier";
    let server = serve(name, &["--grpc-listen", "127.0.0.1:0"]).await;
    let model = model_name(&server).await;
    let mut client = GrpcInferenceServiceClient::new(connect(server.grpc_addr().await).await);
    let reference = reference(name);
    let labels = reference.labels.len();
    let meta = client
        .model_metadata(ModelMetadataRequest {
            name: model.clone(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let inputs: Vec<&str> = meta.inputs.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(inputs, ["text", "text_pair"]);
    assert_eq!(meta.outputs[0].shape, vec![-1, labels as i64]);

    let (firsts, seconds) = pair_texts(&reference.pairs);
    let input = |name: &str, n: usize| InferInputTensor {
        name: name.into(),
        datatype: "BYTES".into(),
        shape: vec![n as i64],
        parameters: HashMap::new(),
        contents: None,
    };
    let request = ModelInferRequest {
        model_name: model.clone(),
        inputs: vec![
            input("text", firsts.len()),
            input("text_pair", seconds.len()),
        ],
        raw_input_contents: vec![
            bytes_tensor::encode(&firsts),
            bytes_tensor::encode(&seconds),
        ],
        ..Default::default()
    };
    let answer = client.model_infer(request).await.unwrap().into_inner();
    assert_eq!(answer.outputs[0].name, "logits");
    assert_eq!(
        answer.outputs[0].shape,
        vec![firsts.len() as i64, labels as i64]
    );
    let flat: Vec<f32> = answer.raw_output_contents[0]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let diff = flat
        .chunks(labels)
        .zip(&reference.pairs)
        .flat_map(|(row, case)| row.iter().zip(&case.logits).map(|(a, b)| (a - b).abs()))
        .fold(0f32, f32::max);
    assert!(diff <= TOLERANCE, "gRPC logits differ by {diff}");

    let lone = ModelInferRequest {
        model_name: model,
        inputs: vec![input("text_pair", 1)],
        raw_input_contents: vec![bytes_tensor::encode(&["b"])],
        ..Default::default()
    };
    let status = client.model_infer(lone).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}
