//! KServe's `inference.GRPCInferenceService` from outside, with a tonic client generated from
//! `proto/grpc_predict_v2.proto`: `ModelInfer` equals the REST `/v2/models/{name}/infer` for the
//! same texts, in raw and typed tensor form; health and metadata; bad tensors get
//! INVALID_ARGUMENT (unknown model NOT_FOUND) and the server keeps serving.

use std::collections::HashMap;

use inferd::{
    grpc::proto::inference::{
        grpc_inference_service_client::GrpcInferenceServiceClient,
        infer_parameter::ParameterChoice,
        model_infer_request::{InferInputTensor, InferRequestedOutputTensor},
        InferParameter, InferTensorContents, ModelInferRequest, ModelInferResponse,
        ModelMetadataRequest, ModelReadyRequest, ServerLiveRequest, ServerReadyRequest,
    },
    serving::bytes_tensor,
};
use serde_json::{json, Value};
use tonic::Code;

use super::{max_abs_diff, spawn_grpc, TEXTS};
use crate::common::TestServer;

/// One BYTES input `text` of `texts`, raw or typed, with `normalize` when given.
fn infer_request(
    model: &str,
    texts: &[&str],
    raw: bool,
    normalize: Option<bool>,
) -> ModelInferRequest {
    let mut parameters = HashMap::new();
    if let Some(normalize) = normalize {
        let choice = Some(ParameterChoice::BoolParam(normalize));
        parameters.insert(
            "normalize".into(),
            InferParameter {
                parameter_choice: choice,
            },
        );
    }
    let contents = (!raw).then(|| InferTensorContents {
        bytes_contents: texts.iter().map(|t| t.as_bytes().to_vec()).collect(),
        ..Default::default()
    });
    ModelInferRequest {
        model_name: model.into(),
        id: "req-7".into(),
        parameters,
        inputs: vec![InferInputTensor {
            name: "text".into(),
            datatype: "BYTES".into(),
            shape: vec![texts.len() as i64],
            parameters: HashMap::new(),
            contents,
        }],
        outputs: vec![InferRequestedOutputTensor {
            name: "embedding".into(),
            parameters: HashMap::new(),
        }],
        raw_input_contents: match raw {
            true => vec![bytes_tensor::encode(texts)],
            false => Vec::new(),
        },
        ..Default::default()
    }
}

/// The answer's `[n, dims]` FP32 tensor as rows, from raw or typed contents.
fn rows(answer: &ModelInferResponse) -> Vec<Vec<f32>> {
    let [output] = answer.outputs.as_slice() else {
        panic!("expected one output: {answer:?}");
    };
    assert_eq!(
        (output.name.as_str(), output.datatype.as_str()),
        ("embedding", "FP32")
    );
    let flat: Vec<f32> = match (&output.contents, answer.raw_output_contents.as_slice()) {
        (None, [raw]) => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        (Some(c), []) => c.fp32_contents.clone(),
        other => panic!("expected raw or typed contents, got {other:?}"),
    };
    let dims = output.shape[1] as usize;
    assert_eq!(flat.len(), output.shape[0] as usize * dims);
    flat.chunks(dims).map(<[f32]>::to_vec).collect()
}

/// REST KServe's rows for the same texts.
async fn rest_rows(server: &TestServer, model: &str, normalize: bool) -> Vec<Vec<f32>> {
    let body = json!({
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [TEXTS.len()], "data": TEXTS}],
        "parameters": {"normalize": normalize},
    });
    let answer: Value = server
        .client
        .post(server.url(&format!("/v2/models/{model}/infer")))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dims = answer["outputs"][0]["shape"][1].as_u64().unwrap() as usize;
    let flat = crate::common::floats(&answer["outputs"][0]["data"]);
    flat.chunks(dims).map(<[f32]>::to_vec).collect()
}

async fn model_name(server: &TestServer) -> String {
    let (_, info) = server.get_json("/info").await;
    info["model"].as_str().unwrap().to_string()
}

/// Sharp: the texts embed far apart and normalising changes the vectors (both checked), so an
/// answer in the wrong order, for the wrong text, or ignoring `normalize` fails the 1e-5 bound.
#[tokio::test]
async fn model_infer_matches_rest_kserve_in_raw_and_typed_form() {
    let (server, channel) = spawn_grpc(&[]).await;
    let model = model_name(&server).await;
    let mut client = GrpcInferenceServiceClient::new(channel);
    for normalize in [true, false] {
        let want = rest_rows(&server, &model, normalize).await;
        assert!(max_abs_diff(&want[0], &want[1]) > 1e-2, "texts must differ");
        for raw in [true, false] {
            let answer = client
                .model_infer(infer_request(&model, &TEXTS, raw, Some(normalize)))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(answer.id, "req-7");
            assert_eq!(answer.model_name, model);
            assert_eq!(
                answer.raw_output_contents.is_empty(),
                !raw,
                "raw in, raw out"
            );
            let got = rows(&answer);
            assert_eq!(got.len(), TEXTS.len());
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    max_abs_diff(g, w) < 1e-5,
                    "normalize {normalize}, raw {raw}"
                );
            }
        }
    }
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let raw_rows = rest_rows(&server, &model, false).await;
    assert!(
        (norm(&raw_rows[0]) - 1.0).abs() > 1e-3,
        "normalize must matter"
    );
    // A pinned version answers as that version.
    let mut pinned = infer_request(&model, &TEXTS[..1], true, None);
    let version = client
        .model_infer(infer_request(&model, &TEXTS[..1], true, None))
        .await
        .unwrap()
        .into_inner()
        .model_version;
    pinned.model_version = version.clone();
    let answer = client.model_infer(pinned).await.unwrap().into_inner();
    assert_eq!(answer.model_version, version);
}

#[tokio::test]
async fn health_metadata_and_bad_tensors() {
    let (server, channel) = spawn_grpc(&[]).await;
    let model = model_name(&server).await;
    let mut client = GrpcInferenceServiceClient::new(channel);
    assert!(
        client
            .server_live(ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        client
            .server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let ready = |name: &str| ModelReadyRequest {
        name: name.into(),
        version: String::new(),
    };
    assert!(
        client
            .model_ready(ready(&model))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let unknown = client
        .model_ready(ready("no-such-model"))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    let meta = client
        .model_metadata(ModelMetadataRequest {
            name: model.clone(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let (_, info) = server.get_json("/info").await;
    assert_eq!(meta.inputs[0].datatype, "BYTES");
    assert_eq!(
        meta.outputs[0].shape[1],
        info["dimensions"].as_i64().unwrap()
    );

    let bad = |f: fn(&mut ModelInferRequest)| {
        let mut req = infer_request(&model, &TEXTS, false, None);
        f(&mut req);
        req
    };
    let cases: Vec<(&str, ModelInferRequest, Code)> = vec![
        (
            "wrong datatype",
            bad(|r| r.inputs[0].datatype = "FP32".into()),
            Code::InvalidArgument,
        ),
        (
            "wrong input name",
            bad(|r| r.inputs[0].name = "x".into()),
            Code::InvalidArgument,
        ),
        (
            "shape mismatch",
            bad(|r| r.inputs[0].shape = vec![2]),
            Code::InvalidArgument,
        ),
        (
            "no data",
            bad(|r| r.inputs[0].contents = None),
            Code::InvalidArgument,
        ),
        (
            "unknown output",
            bad(|r| r.outputs[0].name = "logits".into()),
            Code::InvalidArgument,
        ),
        (
            "no model name",
            bad(|r| r.model_name.clear()),
            Code::InvalidArgument,
        ),
        (
            "unknown model",
            bad(|r| r.model_name = "nope".into()),
            Code::NotFound,
        ),
        (
            "empty text",
            bad(|r| r.inputs[0].contents.as_mut().unwrap().bytes_contents[1].clear()),
            Code::InvalidArgument,
        ),
        (
            "bad utf-8",
            bad(|r| r.inputs[0].contents.as_mut().unwrap().bytes_contents[0] = vec![0xff]),
            Code::InvalidArgument,
        ),
        (
            "cut raw data",
            bad(|r| {
                let mut raw = bytes_tensor::encode(&TEXTS);
                raw.pop();
                r.inputs[0].contents = None;
                r.raw_input_contents = vec![raw];
            }),
            Code::InvalidArgument,
        ),
        (
            "non-bool parameter",
            bad(|r| {
                let choice = Some(ParameterChoice::StringParam("yes".into()));
                r.parameters.insert(
                    "truncate".into(),
                    InferParameter {
                        parameter_choice: choice,
                    },
                );
            }),
            Code::InvalidArgument,
        ),
    ];
    for (what, req, code) in cases {
        let err = client.model_infer(req).await.unwrap_err();
        assert_eq!(err.code(), code, "{what}: {err:?}");
        assert!(!err.message().is_empty(), "{what}");
    }
    let ok = client
        .model_infer(infer_request(&model, &TEXTS, true, None))
        .await;
    assert!(ok.is_ok(), "still serving: {ok:?}");
}
