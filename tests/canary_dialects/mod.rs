//! One embedding path for every dialect, seen from outside: under a canary, `/infer`, OpenAI
//! `/v1/embeddings`, TEI `/embed` and KServe `/v2/models/{name}/infer` each split traffic
//! between the two versions, and so do gRPC `tei.v1.Embed` and KServe's gRPC `ModelInfer`; a
//! caller's `x-inferd-route-key` (header or metadata) lands on the same version on every one of
//! them. KServe's unversioned route takes part in shadows too; its versioned route
//! pins. The versions are tiny models with different seeds, so which one answered is read off
//! the vector itself where a dialect does not name the version.

use std::time::{Duration, Instant};

use inferd::grpc::proto::{
    inference::{
        grpc_inference_service_client::GrpcInferenceServiceClient,
        model_infer_request::InferInputTensor, InferTensorContents, ModelInferRequest,
    },
    tei::v1::{embed_client::EmbedClient, EmbedRequest},
};
use serde_json::{json, Value};
use tonic::{transport::Channel, Request};

use crate::common::{
    cosine,
    lifecycle::{infer_as, manifest, start, TOKEN},
    TestServer,
};

const TEXT: &str = "canary text";

async fn admin(server: &TestServer, path: &str, body: Value) {
    let (code, reply) = server.admin(Some(TOKEN), path, Some(body)).await;
    assert_eq!(code, 200, "{path}: {reply}");
}

/// POSTs `body` with an optional route key; the answer must be 200.
async fn post(server: &TestServer, path: &str, key: Option<&str>, body: Value) -> Value {
    let mut request = server.client.post(server.url(path)).json(&body);
    if let Some(key) = key {
        request = request.header("x-inferd-route-key", key);
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn kserve_tensor(text: &str) -> Value {
    json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]})
}

/// The two versions' vectors of [`TEXT`], from pinned requests (no canary involved).
struct References {
    v1: Vec<f32>,
    v2: Vec<f32>,
}

impl References {
    async fn fetch(server: &TestServer) -> Self {
        let pinned = |model: &'static str| async move {
            let body = post(
                server,
                "/infer",
                None,
                json!({"inputs": TEXT, "model": model}),
            )
            .await;
            floats(&body["embeddings"][0])
        };
        let (v1, v2) = (pinned("tiny@v1").await, pinned("tiny@v2").await);
        assert!(
            cosine(&v1, &v2) < 0.9,
            "the two versions must be told apart"
        );
        Self { v1, v2 }
    }

    /// Which version produced `vector`.
    fn version_of(&self, vector: &[f32]) -> &'static str {
        match (cosine(vector, &self.v1), cosine(vector, &self.v2)) {
            (a, _) if a > 0.9999 => "v1",
            (_, b) if b > 0.9999 => "v2",
            (a, b) => panic!("a vector of neither version (cosines {a}, {b})"),
        }
    }
}

/// `message` with the sticky key in its metadata.
fn keyed<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value = key.parse().unwrap();
    request.metadata_mut().insert("x-inferd-route-key", value);
    request
}

/// The versions gRPC `tei.v1.Embed` and KServe `ModelInfer` answered `key` with.
async fn grpc_versions_for(channel: &Channel, refs: &References, key: &str) -> [String; 2] {
    let embed = EmbedRequest {
        inputs: TEXT.into(),
        normalize: Some(true),
        ..Default::default()
    };
    let answer = EmbedClient::new(channel.clone())
        .embed(keyed(embed, key))
        .await
        .unwrap()
        .into_inner();
    let tei = refs.version_of(&answer.embeddings);
    let infer = ModelInferRequest {
        model_name: "tiny".into(),
        inputs: vec![InferInputTensor {
            name: "text".into(),
            datatype: "BYTES".into(),
            shape: vec![1],
            contents: Some(InferTensorContents {
                bytes_contents: vec![TEXT.into()],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let answer = GrpcInferenceServiceClient::new(channel.clone())
        .model_infer(keyed(infer, key))
        .await
        .unwrap()
        .into_inner();
    let vector = &answer.outputs[0].contents.as_ref().unwrap().fp32_contents;
    assert_eq!(refs.version_of(vector), answer.model_version);
    [tei.into(), answer.model_version]
}

/// The version each dialect answered `key` with: `/infer` (its header), OpenAI, TEI, KServe,
/// gRPC TEI and gRPC KServe.
async fn versions_for(
    server: &TestServer,
    channel: &Channel,
    refs: &References,
    key: &str,
) -> [String; 6] {
    let (status, infer) = infer_as(server, key, TEXT).await;
    assert_eq!(status, 200);
    let [grpc_tei, grpc_kserve] = grpc_versions_for(channel, refs, key).await;

    let key = Some(key);
    let openai = json!({"model": "tiny", "input": TEXT});
    let body = post(server, "/v1/embeddings", key, openai).await;
    let openai = refs.version_of(&floats(&body["data"][0]["embedding"]));

    let body = post(server, "/embed", key, json!({"inputs": TEXT})).await;
    let tei = refs.version_of(&floats(&body[0]));

    let body = post(server, "/v2/models/tiny/infer", key, kserve_tensor(TEXT)).await;
    let kserve = body["model_version"].as_str().unwrap().to_string();
    assert_eq!(
        refs.version_of(&floats(&body["outputs"][0]["data"])),
        kserve
    );

    [
        infer,
        openai.into(),
        tei.into(),
        kserve,
        grpc_tei,
        grpc_kserve,
    ]
}

#[tokio::test]
async fn every_dialect_splits_a_canary_and_keeps_a_route_key_on_one_version() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), &[("v1", 1), ("v2", 2)], None);
    let server = start(dir.path(), &["--grpc-listen", "127.0.0.1:0"]).await;
    let channel = crate::grpc::connect(server.grpc_addr().await).await;
    admin(&server, "/admin/load", json!({"model": "tiny@v2"})).await;
    let canary = json!({"model": "tiny@v2", "weight": 0.5});
    admin(&server, "/admin/canary", canary).await;
    let refs = References::fetch(&server).await;

    let dialects = [
        "/infer",
        "openai",
        "tei",
        "kserve",
        "grpc tei",
        "grpc kserve",
    ];
    let mut on_canary = [0usize; 6];
    let keys = 40;
    for user in 0..keys {
        let key = format!("user-{user}");
        let first = versions_for(&server, &channel, &refs, &key).await;
        assert!(
            first.iter().all(|v| *v == first[0]),
            "{key} answered by different versions per dialect: {dialects:?} → {first:?}"
        );
        let again = versions_for(&server, &channel, &refs, &key).await;
        assert_eq!(again, first, "{key} moved");
        for (count, version) in on_canary.iter_mut().zip(&first) {
            *count += usize::from(version == "v2");
        }
    }
    for (dialect, canary) in dialects.iter().zip(on_canary) {
        assert!(
            (1..keys).contains(&canary),
            "{dialect}: {canary} of {keys} keys on the canary: no split"
        );
    }
}

/// Waits until at least `at_least` shadow copies for `tiny@v3` are counted (any outcome: ok,
/// failed, dropped), then returns the count.
async fn shadow_copies(server: &TestServer, at_least: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = server
            .metric("inferd_shadow_requests_total", &["version=\"v3\""])
            .await;
        if n >= at_least {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "{n} shadow copies, expected {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn kserve_takes_part_in_shadows_and_a_versioned_url_pins() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), &[("v1", 1), ("v2", 2), ("v3", 3)], None);
    let server = start(dir.path(), &[]).await;
    for v in ["v2", "v3"] {
        admin(
            &server,
            "/admin/load",
            json!({"model": "tiny", "version": v}),
        )
        .await;
    }
    let canary = json!({"model": "tiny@v2", "weight": 1.0});
    admin(&server, "/admin/canary", canary).await;
    let shadow = json!({"model": "tiny@v3", "sample_rate": 1.0});
    admin(&server, "/admin/shadow", shadow).await;

    let n = 6;
    for i in 0..n {
        let text = format!("shadowed text {i}");
        let body = post(&server, "/v2/models/tiny/infer", None, kserve_tensor(&text)).await;
        assert_eq!(body["model_version"], "v2", "the canary takes all: {body}");
    }
    assert_eq!(shadow_copies(&server, n as f64).await, n as f64);

    // Pinned: the version asked for, canary or not, and no shadow copy.
    for (i, version) in ["v1", "v3", "v1"].iter().enumerate() {
        let path = format!("/v2/models/tiny/versions/{version}/infer");
        let text = format!("pinned text {i}");
        let body = post(&server, &path, None, kserve_tensor(&text)).await;
        assert_eq!(body["model_version"], *version, "{body}");
    }
    // One more unpinned request: copies are handled in order, so once its copy is counted,
    // any copy of the pinned requests would have been counted before it.
    post(
        &server,
        "/v2/models/tiny/infer",
        None,
        kserve_tensor("last"),
    )
    .await;
    assert_eq!(
        shadow_copies(&server, n as f64 + 1.0).await,
        n as f64 + 1.0,
        "a pinned KServe request was shadowed"
    );
}

#[tokio::test]
async fn the_admin_api_describes_itself_on_its_own_listener() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), &[("v1", 1)], None);
    let server = start(dir.path(), &[]).await;
    let (code, _) = server.admin(None, "/admin/openapi.json", None).await;
    assert_eq!(code, 401, "the admin document is behind the token too");
    let (code, doc) = server.admin(Some(TOKEN), "/admin/openapi.json", None).await;
    assert_eq!(code, 200, "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/admin/status",
        "/admin/load",
        "/admin/canary",
        "/admin/promote",
    ] {
        assert!(paths.contains_key(route), "{route} missing");
    }
    assert!(doc["components"]["schemas"]["StatusView"].is_object());
    // The serving document lists no admin route: they are not served there.
    let (_, public) = server.get_json("/openapi.json").await;
    let public = public["paths"].as_object().unwrap();
    assert!(public.keys().all(|p| !p.starts_with("/admin")));
}
