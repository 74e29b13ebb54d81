//! The deployment artefacts only query metrics the service really exports.
//!
//! The Grafana dashboard, the alert rules (and the PrometheusRule generated from them), the HPA,
//! the Prometheus adapter rule and the canary AnalysisTemplate all name `inferd_*` metrics. A
//! renamed metric would silently flatten a panel, mute an alert or stall a canary, so this test
//! scrapes a spawned server and checks every name. It also runs `scripts/smoke-test.sh` against
//! that server, since the same script gates real deploys.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
};

use crate::common::{spawn_tiny, spawn_tiny_with, tiny_model};
use inferd::grpc::proto::tei::v1::{embed_client::EmbedClient, EmbedRequest};
use serde_json::json;

/// Every file under version control that queries inferd metrics.
const QUERY_FILES: &[&str] = &[
    "deploy/grafana/inferd.json",
    "deploy/prometheus/alerts.yml",
    "deploy/prometheus-adapter/values.yaml",
    "k8s/base/prometheusrule.yaml",
    "k8s/base/hpa.yaml",
    "k8s/components/canary/analysistemplate.yaml",
];

/// `inferd_*` metric names mentioned in `text` (PromQL, JSON or YAML), as written there:
/// histogram series keep their `_bucket`/`_sum`/`_count` suffix (see [`family_of`]).
fn metric_names(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut names = BTreeSet::new();
    let mut from = 0;
    while let Some(offset) = text[from..].find("inferd_") {
        let start = from + offset;
        let mut end = start + "inferd_".len();
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        // Skip matches inside longer identifiers (e.g. a recording rule `job:inferd_x:rate5m`).
        let inside_word = start > 0 && is_ident(bytes[start - 1]);
        let continues = end < bytes.len() && is_ident(bytes[end]);
        let name = text[start..end].trim_end_matches('_');
        if !inside_word && !continues && name.len() > "inferd_".len() {
            names.insert(name.to_string());
        }
        from = end;
    }
    names
}

/// `# TYPE <name> <type>` lines of a Prometheus text exposition, as name → type.
fn metric_families(exposition: &str) -> BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("# TYPE ")?.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect()
}

/// The exported family that serves the series `name`: itself, or for `x_bucket`, `x_sum` and
/// `x_count` the histogram (or, for `_sum`/`_count`, summary) `x`.
fn family_of<'a>(name: &'a str, families: &BTreeMap<String, String>) -> Option<&'a str> {
    if families.contains_key(name) {
        return Some(name);
    }
    for (suffix, kinds) in [
        ("_bucket", &["histogram"][..]),
        ("_sum", &["histogram", "summary"][..]),
        ("_count", &["histogram", "summary"][..]),
    ] {
        if let Some(base) = name.strip_suffix(suffix) {
            if families
                .get(base)
                .is_some_and(|t| kinds.contains(&t.as_str()))
            {
                return Some(base);
            }
        }
    }
    None
}

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

#[tokio::test]
async fn every_metric_used_by_deploy_artefacts_is_exported() {
    let mut used: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for file in QUERY_FILES {
        let names = metric_names(&repo_file(file));
        assert!(
            !names.is_empty(),
            "{file} names no inferd_* metric: is the list stale?"
        );
        for name in names {
            used.entry(name).or_default().push(file);
        }
    }

    // A state dir turns the Batch API on, and the gRPC listener (on by default in production) its
    // series: the dashboards and alerts query both. One gRPC call makes its histogram appear.
    // The input policy registers its counters; a one-input drift window has signals from the
    // second input on.
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let server = spawn_tiny_with(&[
        "--state-dir",
        state_dir,
        "--grpc-listen",
        "127.0.0.1:0",
        "--input-policy",
        "warn",
        "--drift-window",
        "1",
    ])
    .await;
    let channel = crate::grpc::connect(server.grpc_addr().await).await;
    EmbedClient::new(channel)
        .embed(EmbedRequest {
            inputs: "hello world".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let response = server
        .client
        .post(server.url("/infer"))
        .json(&json!({"inputs": ["hello world"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let exposition = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let families = metric_families(&exposition);

    let missing: Vec<String> = used
        .iter()
        .filter(|(name, _)| family_of(name, &families).is_none())
        .map(|(name, files)| format!("{name} (used in {})", files.join(", ")))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics queried by deploy artefacts but not exported as a family (`# TYPE`):\n  {}\n\
         exported: {:?}",
        missing.join("\n  "),
        families.keys().collect::<Vec<_>>()
    );
    // The latency SLO alert and the canary p99 need real buckets, not a summary.
    assert_eq!(
        families
            .get("inferd_http_request_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );
}

#[tokio::test]
async fn smoke_test_script_passes_against_a_running_server_and_catches_wrong_dims() {
    let server = spawn_tiny().await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/smoke-test.sh");
    let run = |dims: Option<usize>| {
        let mut cmd = Command::new("bash");
        cmd.arg(&script)
            .arg(server.url(""))
            .env("SMOKE_READY_TIMEOUT", "10");
        if let Some(d) = dims {
            cmd.arg(d.to_string());
        }
        cmd.output()
            .expect("running scripts/smoke-test.sh (needs bash, curl, python3)")
    };

    let ok = run(Some(tiny_model::HIDDEN));
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(out.contains("smoke-test: PASS"), "{out}");

    let own_dims = run(None);
    assert!(
        own_dims.status.success(),
        "{}",
        String::from_utf8_lossy(&own_dims.stderr)
    );

    let wrong = run(Some(tiny_model::HIDDEN + 1));
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success(), "wrong dimension count must fail");
    assert!(
        err.contains(&format!("expected {}", tiny_model::HIDDEN + 1)),
        "{err}"
    );
}

#[test]
fn metric_names_finds_promql_json_and_yaml_uses() {
    let text = r#"
        expr: sum(rate(inferd_http_requests_total{status=~"5.."}[5m])) / inferd_queue_capacity
        "expr": "histogram_quantile(0.99, sum by (le) (rate(inferd_http_request_duration_seconds_bucket[1m])))"
        name: inferd_queue_depth
        record: job:inferd_not_a_metric:rate5m
        description: "see inferd_errors_total by code"  # prose counts too: it names a metric
        title: inferd (dashboard), uid: inferd
    "#;
    let names: Vec<_> = metric_names(text).into_iter().collect();
    assert_eq!(
        names,
        [
            "inferd_errors_total",
            "inferd_http_request_duration_seconds_bucket",
            "inferd_http_requests_total",
            "inferd_queue_capacity",
            "inferd_queue_depth",
        ]
    );
}

#[test]
fn family_of_maps_histogram_series_to_their_family_only() {
    let families = metric_families(
        "# HELP inferd_batch_size Inputs per batch.\n\
         # TYPE inferd_batch_size histogram\n\
         inferd_batch_size_bucket{le=\"1\"} 0\n\
         # TYPE inferd_tokens_total counter\n\
         # TYPE inferd_ready gauge\n",
    );
    assert_eq!(
        families.get("inferd_batch_size").map(String::as_str),
        Some("histogram")
    );
    assert_eq!(
        family_of("inferd_batch_size_bucket", &families),
        Some("inferd_batch_size")
    );
    assert_eq!(
        family_of("inferd_batch_size_count", &families),
        Some("inferd_batch_size")
    );
    assert_eq!(
        family_of("inferd_tokens_total", &families),
        Some("inferd_tokens_total")
    );
    assert_eq!(
        family_of("inferd_ready_count", &families),
        None,
        "a gauge has no _count series"
    );
    assert_eq!(family_of("inferd_queue_depth", &families), None);
}
