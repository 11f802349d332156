//! The committed OpenAPI document is the code's document, and every operation
//! is fit for SDK generators.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use serde_json::Value;

const REGENERATE: &str = "run `scripts/openapi.sh` (or `cargo run -p portcullis-api -- openapi > openapi/openapi.json`) and commit the result";

fn committed(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/");
    std::fs::read_to_string(format!("{path}{name}"))
        .unwrap_or_else(|e| panic!("openapi/{name} missing ({e}); {REGENERATE}"))
}

#[test]
fn committed_json_matches_the_code() {
    let generated = portcullis_api::openapi_json();
    let committed = committed("openapi.json");
    assert!(
        generated.trim_end() == committed.trim_end(),
        "openapi/openapi.json differs from the code: {REGENERATE}"
    );
}

#[test]
fn committed_yaml_matches_the_code() {
    let generated = portcullis_api::openapi_yaml();
    let committed = committed("openapi.yaml");
    assert!(
        generated.trim_end() == committed.trim_end(),
        "openapi/openapi.yaml differs from the code: {REGENERATE}"
    );
}

#[test]
fn every_operation_is_fit_for_generators() {
    let doc: Value = serde_json::from_str(&portcullis_api::openapi_json()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    for field in ["title", "version", "license", "contact"] {
        assert!(!doc["info"][field].is_null(), "info.{field} missing");
    }
    assert!(!doc["servers"].as_array().unwrap().is_empty());
    assert!(
        !doc["components"]["securitySchemes"]
            .as_object()
            .unwrap()
            .is_empty()
    );

    let mut ids = HashSet::new();
    let mut count = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            count += 1;
            let where_ = format!("{method} {path}");
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{where_}: no operationId"));
            assert!(
                id.chars().next().unwrap().is_ascii_lowercase()
                    && id.chars().all(|c| c.is_ascii_alphanumeric()),
                "{where_}: operationId {id} is not camelCase"
            );
            assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{where_}: no summary"
            );
            assert!(
                op["description"].as_str().is_some_and(|s| !s.is_empty()),
                "{where_}: no description"
            );
            assert!(
                !op["tags"].as_array().unwrap().is_empty(),
                "{where_}: no tag"
            );
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{where_}: no success response"
            );
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let content = response["content"]
                        .as_object()
                        .unwrap_or_else(|| panic!("{where_} {status}: no content"));
                    assert!(
                        content.contains_key("application/problem+json"),
                        "{where_} {status}: not problem+json"
                    );
                }
            }
            if op.get("security").is_some() {
                assert!(
                    responses.contains_key("401"),
                    "{where_}: protected but 401 undocumented"
                );
            }
        }
    }
    assert!(count >= 16, "only {count} operations");
    // Generators mishandle unsigned 64-bit integers.
    let text = serde_json::to_string(&doc).unwrap();
    assert!(!text.contains("\"uint64\""), "the document has a uint64");
}
