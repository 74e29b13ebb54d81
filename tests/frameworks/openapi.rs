//! The served OpenAPI document as client generators read it: one `operationId` per operation,
//! one definition per schema name (`/infer`'s request is not KServe's), `POST /` documented, and
//! the API-key schemes declared and used.

use std::collections::BTreeSet;

use crate::common::spawn_tiny;

#[tokio::test]
async fn operation_ids_are_unique_and_security_is_declared() {
    let server = spawn_tiny().await;
    let (status, doc) = server.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(
                ids.insert(id.to_string()),
                "operationId {id} twice (again at {method} {path})"
            );
        }
    }
    assert!(
        doc["paths"]["/"]["post"].is_object(),
        "POST / is documented"
    );
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let infer = &schemas["InferRequest"];
    assert!(
        infer["properties"]["inputs"].is_object(),
        "/infer's request: {infer}"
    );
    assert!(
        schemas.contains_key("InferenceRequest"),
        "KServe's request keeps its own name"
    );

    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["in"], "header");
    let secured = &doc["paths"]["/v1/embeddings"]["post"]["security"];
    assert!(secured.to_string().contains("bearer"), "{secured}");
    // Probes take no key.
    assert!(doc["paths"]["/livez"]["get"]["security"].is_null());
}
