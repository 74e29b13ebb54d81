//! `GET /openapi.json` (OpenAPI 3.1), `GET /docs`, a self-contained page that renders it (no
//! CDN, so it works air-gapped; links are relative, so it works behind a path prefix), and
//! `GET /`, which redirects to the page.
//!
//! The document is not a list kept here: each route folder declares its operations with its
//! routes (`utoipa_axum::routes!`) and owns its fragment (tags, schemas); this module only adds
//! the title and the security schemes (`bearer`, `api_key`) and merges them; [`secured`] marks
//! the operations that take an API key. The admin API has its own document on its own listener
//! (`GET /admin/openapi.json`, see [`super::admin`]): its routes are not served here. Both are
//! open like the probes: they describe the API and serve no model.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use axum::{
    http::header,
    response::{Html, IntoResponse, Redirect},
    routing::get,
    Router,
};
use utoipa::openapi::{
    security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme},
    ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder,
};

use super::state::AppState;

/// The document's head: title, description and version; fragments are merged into it.
pub fn base() -> OpenApi {
    let info = InfoBuilder::new()
        .title("inferd")
        .description(Some(
            "Embedding inference: inferd's own API plus OpenAI, text-embeddings-inference \
             and KServe Open Inference Protocol v2 dialects. Model routes need an API key \
             (`Authorization: Bearer` or `X-API-Key`) when the server runs with `--api-key-file`. \
             Every embedding route honours canaries and the `x-inferd-route-key` header.",
        ))
        .version(env!("CARGO_PKG_VERSION"))
        .build();
    let components = ComponentsBuilder::new()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        )
        .build();
    OpenApiBuilder::new()
        .info(info)
        .components(Some(components))
        .build()
}

/// Marks every operation of `doc` as taking an API key (bearer or `X-API-Key`) — or none, as a
/// server without `--api-key-file` needs none.
pub fn secured(doc: &mut OpenApi) {
    let no_scopes = Vec::<String>::new;
    let requirements = vec![
        SecurityRequirement::new("bearer", no_scopes()),
        SecurityRequirement::new("api_key", no_scopes()),
        SecurityRequirement::default(),
    ];
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            op.security = Some(requirements.clone());
        }
    }
}

/// [`base`] with `fragments` merged in order (their tags keep that order).
pub fn merged(fragments: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    fragments.into_iter().fold(base(), |mut doc, fragment| {
        doc.merge(fragment);
        doc
    })
}

/// `GET /`: a redirect to the API description page, `./docs`. Declared in the document (its
/// path also serves `POST /`, so the methods a client is told of must list it).
#[utoipa::path(get, path = "/", tag = "inferd", operation_id = "home",
    responses((status = 303, description = "See Other: the API description page, `./docs`")))]
async fn home() -> Redirect {
    Redirect::to("./docs")
}

/// [`home`], in the open (keyless) group.
pub fn home_routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(home))
}

/// `/openapi.json` (serialised once, here) and `/docs`.
pub fn routes(doc: OpenApi) -> Router<AppState> {
    let body: Arc<str> = doc
        .to_json()
        .expect("the OpenAPI document serialises")
        .into();
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let body = Arc::clone(&body);
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        body.to_string(),
                    )
                }
            }),
        )
        .route("/docs", get(docs))
}

async fn docs() -> impl IntoResponse {
    Html(DOCS_PAGE)
}

/// Problems that merging would hide: an `operationId` used twice, or a schema name that two
/// fragments define differently (merging keeps the first silently).
pub fn conflicts(fragments: &[OpenApi]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut operations = BTreeSet::new();
    let mut schemas: BTreeMap<String, String> = BTreeMap::new();
    for fragment in fragments {
        for (path, item) in &fragment.paths.paths {
            let item = serde_json::to_value(item).expect("path item serialises");
            let ops = item.as_object().into_iter().flat_map(|o| o.values());
            for id in ops.filter_map(|op| op.get("operationId")?.as_str()) {
                if !operations.insert(id.to_string()) {
                    problems.push(format!(
                        "operationId {id:?} is used twice (again at {path})"
                    ));
                }
            }
        }
        let Some(components) = &fragment.components else {
            continue;
        };
        for (name, schema) in &components.schemas {
            let json = serde_json::to_string(schema).expect("schema serialises");
            match schemas.get(name) {
                Some(seen) if *seen != json => {
                    problems.push(format!("schema {name:?} has two different definitions"))
                }
                Some(_) => {}
                None => {
                    schemas.insert(name.clone(), json);
                }
            }
        }
    }
    problems
}

/// Lists every operation with its request and response schemas, fetched from `/openapi.json`.
const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>inferd API</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;color:#222}
details{border:1px solid #ddd;border-radius:6px;margin:.4rem 0;padding:.3rem .7rem}
summary{cursor:pointer}.m{display:inline-block;width:4.2rem;font-weight:700}
.get{color:#1769aa}.post{color:#2e7d32}code{font-size:13px}
pre{background:#f6f8fa;padding:.6rem;overflow:auto;font-size:12px}h2{margin-top:2rem}
</style></head><body>
<h1>inferd API</h1>
<p>Generated from <a href="openapi.json">openapi.json</a> (OpenAPI 3.1).</p>
<div id="ops">Loading…</div>
<script>
const esc = s => String(s).replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
const md = s => esc(s).replace(/`([^`]+)`/g, "<code>$1</code>").replace(/\n\n/g, "<br><br>");
fetch("openapi.json").then(r => r.json()).then(doc => {
  const schemas = (doc.components || {}).schemas || {};
  const resolve = (s, depth) => {
    if (!s || depth > 6) return s;
    if (s.$ref) return resolve(schemas[s.$ref.split("/").pop()], depth + 1);
    const out = Array.isArray(s) ? [] : {};
    for (const [k, v] of Object.entries(s)) out[k] = typeof v === "object" ? resolve(v, depth + 1) : v;
    return out;
  };
  const body = c => { const j = c && c["application/json"]; return j ? "<pre>" + esc(JSON.stringify(resolve(j.schema, 0), null, 2)) + "</pre>" : ""; };
  const byTag = {};
  for (const [path, item] of Object.entries(doc.paths)) for (const [method, op] of Object.entries(item)) {
    const tag = (op.tags || ["other"])[0];
    (byTag[tag] = byTag[tag] || []).push({path, method, op});
  }
  let html = "";
  for (const t of doc.tags || []) {
    html += "<h2>" + md(t.description || t.name) + "</h2>";
    for (const {path, method, op} of byTag[t.name] || []) {
      html += '<details><summary><span class="m ' + method + '">' + method.toUpperCase() + "</span><code>" + esc(path) + "</code> — " + md(op.summary || op.description || "") + "</summary>";
      if (op.summary && op.description && op.description !== op.summary) html += "<p>" + md(op.description) + "</p>";
      if (op.requestBody) html += "<h4>Request</h4>" + body(op.requestBody.content);
      for (const [status, r] of Object.entries(op.responses || {})) html += "<h4>" + esc(status) + "</h4>" + body(r.content);
      html += "</details>";
    }
  }
  document.getElementById("ops").innerHTML = html;
}).catch(e => { document.getElementById("ops").textContent = "Could not load openapi.json: " + e; });
</script></body></html>"#;

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    use super::*;

    #[test]
    fn fragments_agree_and_every_operation_id_is_unique() {
        let problems = conflicts(&crate::http::fragments());
        assert!(problems.is_empty(), "{problems:#?}");
        let doc = crate::http::document();
        assert!(doc.paths.paths.contains_key("/v2/models/{name}/infer"));
        let names: Vec<_> = doc.components.unwrap().schemas.into_keys().collect();
        for name in [
            "InferRequest",
            "InferenceRequest",
            "InferResponse",
            "InferenceResponse",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
        }
    }

    // Two fragments that reuse an operationId and a schema name for different types: the
    // check must name both (the bug the serving document had: `infer` twice, two
    // `InferRequest`s).
    #[allow(dead_code)] // declarations only: the fragments are what the test reads
    mod first {
        #[derive(serde::Deserialize, utoipa::ToSchema)]
        pub struct Body {
            pub text: String,
        }
        #[utoipa::path(post, path = "/a", request_body = Body, responses((status = 200)))]
        pub async fn infer() {}
        #[derive(utoipa::OpenApi)]
        #[openapi(paths(infer))]
        pub struct Api;
    }
    #[allow(dead_code)]
    mod second {
        #[derive(serde::Deserialize, utoipa::ToSchema)]
        pub struct Body {
            pub tensor: Vec<f32>,
        }
        #[utoipa::path(post, path = "/b", request_body = Body, responses((status = 200)))]
        pub async fn infer() {}
        #[derive(utoipa::OpenApi)]
        #[openapi(paths(infer))]
        pub struct Api;
    }

    #[test]
    fn conflicts_are_caught() {
        let problems = conflicts(&[first::Api::openapi(), second::Api::openapi()]);
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].contains("\"infer\""), "{problems:?}");
        assert!(problems[1].contains("\"Body\""), "{problems:?}");
    }
}
