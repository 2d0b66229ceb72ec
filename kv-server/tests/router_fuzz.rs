//! Random methods, paths, queries, headers and bodies thrown at the router: every answer is a
//! 2xx or a 4xx, and every JSON answer is a well-formed envelope whose `success` matches the
//! status. Never a 5xx, never a panic.

use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use kv_core::Store;
use kv_server::{router, ServerConfig};
use proptest::prelude::*;
use serde_json::Value;
use tower::ServiceExt;

const BASE: &str = "/client/v4/accounts/acc/storage/kv/namespaces";

fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::PUT),
        Just(Method::POST),
        Just(Method::DELETE),
        Just(Method::PATCH),
        Just(Method::HEAD),
        Just(Method::OPTIONS),
    ]
}

/// A key: plain text, arbitrary bytes, long, or dots.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{1,8}".prop_map(|k| k),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(|b| percent_encode(&b)),
        (500usize..530).prop_map(|n| "k".repeat(n)),
        Just("%2E%2E".to_owned()),
        Just("a/b/c".to_owned()),
    ]
}

fn path(ns: String) -> impl Strategy<Value = String> {
    let ns_segment = prop_oneof![
        Just(ns),
        "[0-9a-f]{32}".prop_map(|s| s),
        "[a-zA-Z%0-9]{0,6}".prop_map(|s| s),
    ];
    let resource = prop_oneof![
        key().prop_map(|k| format!("values/{k}")),
        key().prop_map(|k| format!("metadata/{k}")),
        Just("keys".to_owned()),
        Just("bulk".to_owned()),
        Just("bulk/get".to_owned()),
        Just("bulk/delete".to_owned()),
        Just(String::new()),
        "[a-z/]{0,10}".prop_map(|s| s),
    ];
    prop_oneof![
        4 => (ns_segment, resource).prop_map(|(ns, r)| format!("{BASE}/{ns}/{r}")),
        1 => Just(BASE.to_owned()),
        1 => Just("/metrics".to_owned()),
        1 => "/[a-z0-9/]{0,20}".prop_map(|s| s),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("expiration"),
        Just("expiration_ttl"),
        Just("limit"),
        Just("cursor"),
        Just("prefix"),
        Just("x"),
    ];
    let value = prop_oneof![
        "[0-9]{0,12}".prop_map(|s| s),
        "-?[0-9a-zA-Z%]{0,8}".prop_map(|s| s),
        Just("18446744073709551616".to_owned()),
    ];
    proptest::collection::vec((name, value), 0..3).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        Just(br#"{"title":"x"}"#.to_vec()),
        Just(br#"[{"key":"a","value":"b"}]"#.to_vec()),
        Just(br#"[{"key":"a","value":"!","base64":true}]"#.to_vec()),
        Just(br#"{"keys":["a"],"type":"json","withMetadata":true}"#.to_vec()),
        Just(br#"["a","b"]"#.to_vec()),
        Just(
            b"--b\r\nContent-Disposition: form-data; name=\"value\"\r\n\r\nv\r\n--b--\r\n".to_vec()
        ),
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json")),
        Just(Some("multipart/form-data; boundary=b")),
        Just(Some("multipart/form-data")),
        Just(Some("text/plain")),
    ]
}

fn condition() -> impl Strategy<Value = Option<(&'static str, String)>> {
    prop_oneof![
        Just(None),
        Just(Some(("if-none-match", "*".to_owned()))),
        Just(Some(("if-none-match", "\"x\"".to_owned()))),
        "[\"a-f0-9*]{0,18}".prop_map(|tag| Some(("if-match", tag))),
    ]
}

#[derive(Debug)]
struct Case {
    method: Method,
    uri: String,
    content_type: Option<&'static str>,
    condition: Option<(&'static str, String)>,
    body: Vec<u8>,
}

fn case(ns: String) -> impl Strategy<Value = Case> {
    (
        method(),
        path(ns),
        query(),
        content_type(),
        condition(),
        body(),
    )
        .prop_map(
            |(method, path, query, content_type, condition, body)| Case {
                method,
                uri: if query.is_empty() {
                    path
                } else {
                    format!("{path}?{query}")
                },
                content_type,
                condition,
                body,
            },
        )
}

async fn check(app: axum::Router, case: Case) -> Result<(), TestCaseError> {
    let mut request = Request::builder()
        .method(case.method.clone())
        .uri(&case.uri);
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    if let Some((name, value)) = &case.condition {
        request = request.header(*name, value);
    }
    let Ok(request) = request.body(Body::from(case.body)) else {
        return Ok(()); // not a request an HTTP client could send
    };
    let response = app
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    prop_assert!(
        status.is_success() || status.is_client_error(),
        "{} {} gave {status}",
        case.method,
        case.uri
    );
    let is_json = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    if status.is_client_error() {
        prop_assert!(
            is_json || case.method == Method::HEAD,
            "errors are JSON envelopes"
        );
    }
    if is_json && case.method != Method::HEAD {
        let body: Value = serde_json::from_slice(&bytes).expect("JSON answers parse");
        prop_assert_eq!(body["success"].as_bool(), Some(status.is_success()));
        prop_assert!(body["errors"].is_array() && body["messages"].is_array());
        prop_assert!(body.get("result").is_some());
        if status.is_client_error() {
            prop_assert!(body["errors"][0]["code"].is_u64());
            prop_assert!(body["errors"][0]["message"].is_string());
        }
    }
    Ok(())
}

#[test]
fn random_requests_get_envelopes_never_5xx() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (app, ns) = runtime.block_on(async {
        let store = Store::new(kv_backends::memory::MemoryBackend::new());
        let info = store.create_namespace("FUZZ").await.unwrap();
        let ns = store.namespace_by_id(&info.id).await.unwrap();
        ns.put_text("a", "{}").await.unwrap();
        (router(store, ServerConfig::default()), info.id)
    });
    let config = ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(case in case(ns.clone()))| {
        runtime.block_on(check(app.clone(), case))?;
    });
}
