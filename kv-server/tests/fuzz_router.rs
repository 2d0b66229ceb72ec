//! Hostile requests against the REST router, through tower's `oneshot` (no socket): arbitrary
//! methods, paths (raw and percent-encoded bytes), queries, headers and bodies.
//!
//! - Without a token: every answer is a 2xx or a 4xx (never a 5xx), and every error is the JSON
//!   envelope with `success: false`, a numeric code and a message.
//! - With a token: a request without the right `Authorization: Bearer` header is always 401
//!   with code 10000, whatever else it carries, and changes nothing in the store.
//!
//! Case counts: 256 + 256 (see `CASES`).

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use kv_core::Store;
use kv_server::error::codes;
use kv_server::{router, ServerConfig};
use proptest::prelude::*;
use serde_json::Value;
use tower::ServiceExt;

const BASE: &str = "/client/v4/accounts/acc/storage/kv/namespaces";
const TOKEN: &str = "fuzz-token-0123456789";
const CASES: u32 = 256;

fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        4 => Just(Method::GET),
        4 => Just(Method::PUT),
        3 => Just(Method::POST),
        3 => Just(Method::DELETE),
        1 => Just(Method::PATCH),
        1 => Just(Method::HEAD),
        1 => Just(Method::OPTIONS),
        1 => Just(Method::TRACE),
        1 => "[A-Z]{1,8}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

/// Characters allowed raw in a URI path by the `http` crate, plus `%` on its own.
fn raw_path_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._~!$&'()*+,;=:@%/-]{0,24}"
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{1,8}",
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(|b| percent_encode(&b)),
        any::<String>().prop_map(|s| percent_encode(s.as_bytes())),
        (500usize..530).prop_map(|n| "k".repeat(n)),
        (250usize..260).prop_map(|n| percent_encode("é".repeat(n).as_bytes())),
        Just("%2E%2E".to_owned()),
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just("a/../b".to_owned()),
        Just("%00".to_owned()),
        Just("%0A%0D".to_owned()),
        Just("100%".to_owned()),
        Just("%%41".to_owned()),
        raw_path_text(),
    ]
}

/// A method and a path: mostly a method the endpoint serves, sometimes any method.
fn target(ns: String) -> impl Strategy<Value = (Method, String)> {
    let ns_segment = prop_oneof![
        6 => Just(ns),
        1 => "[0-9a-f]{32}",
        1 => "[a-zA-Z%0-9.]{0,6}",
        1 => proptest::collection::vec(any::<u8>(), 1..8).prop_map(|b| percent_encode(&b)),
    ];
    let methods = |list: &'static [Method]| proptest::sample::select(list);
    let endpoint = prop_oneof![
        6 => (methods(&[Method::GET, Method::PUT, Method::DELETE]), key())
            .prop_map(|(m, k)| (m, format!("values/{k}"))),
        2 => (methods(&[Method::GET]), key()).prop_map(|(m, k)| (m, format!("metadata/{k}"))),
        1 => (methods(&[Method::GET, Method::PUT, Method::DELETE]), Just("values/".to_owned())),
        1 => (methods(&[Method::GET]), Just("keys".to_owned())),
        2 => (methods(&[Method::PUT, Method::DELETE]), Just("bulk".to_owned())),
        2 => (methods(&[Method::POST]), Just("bulk/get".to_owned())),
        2 => (methods(&[Method::POST]), Just("bulk/delete".to_owned())),
        1 => (methods(&[Method::GET, Method::PUT, Method::DELETE]), Just(String::new())),
        1 => (method(), raw_path_text()),
    ];
    let in_namespace = (ns_segment, endpoint).prop_map(|(ns, (m, r))| {
        let path = if r.is_empty() {
            format!("{BASE}/{ns}")
        } else {
            format!("{BASE}/{ns}/{r}")
        };
        (m, path)
    });
    let any_path = prop_oneof![
        Just(BASE.to_owned()),
        Just(format!("{BASE}/")),
        Just("/metrics".to_owned()),
        raw_path_text().prop_map(|s| format!("/{s}")),
        raw_path_text().prop_map(|s| format!("/client/v4/accounts/{s}/storage/kv/namespaces")),
    ];
    prop_oneof![
        8 => in_namespace,
        2 => (method(), in_namespace_path_any_method()),
        2 => (method(), any_path),
    ]
}

/// A namespace path with any method (405s, and methods the router has never heard of).
fn in_namespace_path_any_method() -> impl Strategy<Value = String> {
    prop_oneof![
        key().prop_map(|k| format!("{BASE}/x/values/{k}")),
        key().prop_map(|k| format!("{BASE}/x/metadata/{k}")),
        Just(format!("{BASE}/x/bulk/get")),
        Just(format!("{BASE}/x/keys")),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("expiration".to_owned()),
        Just("expiration_ttl".to_owned()),
        Just("limit".to_owned()),
        Just("cursor".to_owned()),
        Just("prefix".to_owned()),
        "[a-z_%]{0,6}",
    ];
    let value = prop_oneof![
        "[0-9]{0,12}",
        "-?[0-9a-zA-Z%+]{0,10}",
        Just("18446744073709551616".to_owned()),
        Just("99999999999999999999999".to_owned()),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(|b| percent_encode(&b)),
    ];
    proptest::collection::vec((name, value), 0..4).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// A header value's bytes: anything `HeaderValue::from_bytes` may accept or refuse.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        "[ -~]{0,40}".prop_map(String::into_bytes),
        (1usize..9000).prop_map(|n| vec![b'a'; n]),
    ]
}

fn header() -> impl Strategy<Value = (String, Vec<u8>)> {
    let name = prop_oneof![
        Just("content-type".to_owned()),
        Just("content-length".to_owned()),
        Just("transfer-encoding".to_owned()),
        Just("if-match".to_owned()),
        Just("if-none-match".to_owned()),
        Just("authorization".to_owned()),
        Just("expect".to_owned()),
        Just("cookie".to_owned()),
        Just("host".to_owned()),
        Just("range".to_owned()),
        Just("accept".to_owned()),
        Just("x-forwarded-for".to_owned()),
        "[a-z0-9-]{1,16}",
    ];
    let value = prop_oneof![
        3 => header_bytes(),
        1 => Just(b"application/json".to_vec()),
        1 => Just(b"multipart/form-data; boundary=b".to_vec()),
        1 => Just(b"multipart/form-data; boundary=".to_vec()),
        1 => Just(b"*".to_vec()),
        1 => Just(b"\"0000000000000001\"".to_vec()),
        1 => Just(b"Bearer nope".to_vec()),
        1 => Just(b"100-continue".to_vec()),
        1 => Just(b"chunked".to_vec()),
        1 => Just(b"99999999999999999999".to_vec()),
    ];
    (name, value)
}

/// A multipart body (boundary `b`) whose first field is `name`, followed by `rest`.
fn multipart(name: &str, rest: &str) -> Vec<u8> {
    format!("--b\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{rest}").into_bytes()
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..96),
        1 => any::<String>().prop_map(String::into_bytes),
        1 => Just(br#"{"title":"x"}"#.to_vec()),
        1 => Just(br#"{"title":""}"#.to_vec()),
        1 => Just(br#"[{"key":"a","value":"b"}]"#.to_vec()),
        1 => Just(br#"[{"key":"","value":"b"}]"#.to_vec()),
        1 => Just(br#"[{"key":"a","value":"!","base64":true}]"#.to_vec()),
        1 => Just(br#"[{"key":"a","value":"b","expiration":1,"expiration_ttl":60}]"#.to_vec()),
        1 => Just(br#"{"keys":["a"],"type":"json","withMetadata":true}"#.to_vec()),
        1 => Just(br#"{"keys":[],"type":"yaml"}"#.to_vec()),
        1 => Just(br#"["a","b",".."]"#.to_vec()),
        1 => Just(multipart("value", "v\r\n--b--\r\n")),
        1 => Just(multipart("metadata", "{nope\r\n--b--\r\n")),
        1 => Just(multipart("value", "unterminated")),
    ]
}

#[derive(Debug)]
struct Case {
    method: Method,
    uri: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn case(ns: String) -> impl Strategy<Value = Case> {
    (
        target(ns),
        query(),
        proptest::collection::vec(header(), 0..5),
        body(),
    )
        .prop_map(|((method, path), query, headers, body)| Case {
            method,
            uri: if query.is_empty() {
                path
            } else {
                format!("{path}?{query}")
            },
            headers,
            body,
        })
}

/// The request, or `None` when no HTTP client could send it (an invalid URI); headers that no
/// client could send (control characters) are left out.
fn build(case: &Case, authorization: Option<&str>) -> Option<Request<Body>> {
    let mut request = Request::builder()
        .method(case.method.clone())
        .uri(&case.uri)
        .body(Body::from(case.body.clone()))
        .ok()?;
    for (name, value) in &case.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) else {
            continue;
        };
        if authorization.is_some() && name == "authorization" {
            continue;
        }
        request.headers_mut().append(name, value);
    }
    if let Some(value) = authorization {
        request
            .headers_mut()
            .insert("authorization", HeaderValue::from_str(value).unwrap());
    }
    Some(request)
}

struct Answer {
    status: StatusCode,
    is_json: bool,
    body: Vec<u8>,
}

async fn send(app: &axum::Router, request: Request<Body>) -> Answer {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let is_json = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        is_json,
        body: body.to_vec(),
    }
}

/// Checks the envelope of a JSON answer and returns its first error code, if any.
fn envelope(answer: &Answer) -> Result<Option<u64>, TestCaseError> {
    let body: Value = serde_json::from_slice(&answer.body)
        .map_err(|e| TestCaseError::fail(format!("JSON answers parse: {e}")))?;
    prop_assert_eq!(body["success"].as_bool(), Some(answer.status.is_success()));
    prop_assert!(body["errors"].is_array() && body["messages"].is_array());
    prop_assert!(body.get("result").is_some());
    if answer.status.is_success() {
        prop_assert_eq!(body["errors"].as_array().map(Vec::len), Some(0));
        return Ok(None);
    }
    prop_assert!(body["result"].is_null());
    let code = body["errors"][0]["code"].as_u64();
    prop_assert!(code.is_some(), "an error carries a numeric code: {}", body);
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    prop_assert!(!message.is_empty(), "an error carries a message: {}", body);
    Ok(code)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A store with one namespace holding `a` = `{}`; returns the namespace id.
async fn seeded_store() -> (Store, String) {
    let store = Store::new(kv_backends::memory::MemoryBackend::new());
    let info = store.create_namespace("FUZZ").await.unwrap();
    let ns = store.namespace_by_id(&info.id).await.unwrap();
    ns.put_text("a", "{}").await.unwrap();
    (store, info.id)
}

#[test]
fn hostile_requests_get_envelopes_and_never_5xx() {
    let runtime = runtime();
    let (app, ns) = runtime.block_on(async {
        let (store, ns) = seeded_store().await;
        (router(store, ServerConfig::default()), ns)
    });
    let config = ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let statuses = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
    proptest!(config, |(case in case(ns.clone()))| {
        let Some(request) = build(&case, None) else {
            return Ok(());
        };
        let answer = runtime.block_on(send(&app, request));
        *statuses.borrow_mut().entry(answer.status.as_u16()).or_default() += 1;
        prop_assert!(
            answer.status.is_success() || answer.status.is_client_error(),
            "{} {} gave {}", case.method, case.uri, answer.status
        );
        if case.method == Method::HEAD {
            prop_assert!(answer.body.is_empty(), "HEAD answers have no body");
            return Ok(());
        }
        if answer.status.is_client_error() {
            prop_assert!(answer.is_json, "errors are JSON envelopes: {} {}", case.method, case.uri);
        }
        if answer.is_json {
            let code = envelope(&answer)?;
            match answer.status {
                StatusCode::URI_TOO_LONG => {
                    prop_assert_eq!(code, Some(u64::from(codes::KEY_TOO_LONG)))
                }
                StatusCode::METHOD_NOT_ALLOWED => {
                    prop_assert_eq!(code, Some(u64::from(codes::METHOD_NOT_ALLOWED)))
                }
                StatusCode::PAYLOAD_TOO_LARGE => {
                    prop_assert_eq!(code, Some(u64::from(codes::PAYLOAD_TOO_LARGE)))
                }
                StatusCode::PRECONDITION_FAILED => {
                    prop_assert_eq!(code, Some(u64::from(codes::PRECONDITION_FAILED)))
                }
                _ => {}
            }
        }
    });
    // The inputs reached the handlers, not only the URI parser: most cases were sent, and they
    // drew successes and a spread of errors.
    let statuses = statuses.into_inner();
    let sent: u32 = statuses.values().sum();
    assert!(
        sent >= CASES * 9 / 10,
        "only {sent} of {CASES} cases were sendable"
    );
    assert!(
        statuses.keys().any(|s| (200..300).contains(s)),
        "{statuses:?}"
    );
    for status in [400, 404] {
        assert!(statuses.contains_key(&status), "{statuses:?}");
    }
    eprintln!("statuses of {sent} hostile requests: {statuses:?}");
}

#[test]
fn without_the_token_every_request_is_401_and_changes_nothing() {
    let runtime = runtime();
    let (app, store, ns) = runtime.block_on(async {
        let (store, ns) = seeded_store().await;
        let app = router(store.clone(), ServerConfig::default().with_token(TOKEN));
        (app, store, ns)
    });
    let wrong_token = prop_oneof![
        Just(None),
        Just(Some(String::new())),
        Just(Some("Bearer".to_owned())),
        Just(Some("Bearer ".to_owned())),
        Just(Some(format!("Basic {TOKEN}"))),
        Just(Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]))),
        Just(Some(format!("Bearer {TOKEN}x"))),
        Just(Some(format!("Bearer {}", TOKEN.to_uppercase()))),
        Just(Some(format!("Bearer  x{TOKEN}"))),
        "[ -~]{0,40}".prop_map(|s| Some(format!("Bearer {s}"))),
    ];
    let config = ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(case in case(ns.clone()), authorization in wrong_token)| {
        let Some(request) = build(&case, None) else {
            return Ok(());
        };
        let mut request = request;
        request.headers_mut().remove("authorization");
        if let Some(value) = &authorization {
            let Ok(value) = HeaderValue::from_str(value) else {
                return Ok(());
            };
            request.headers_mut().insert("authorization", value);
        }
        let answer = runtime.block_on(send(&app, request));
        prop_assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{} {}", case.method, case.uri);
        if case.method != Method::HEAD {
            prop_assert!(answer.is_json);
            prop_assert_eq!(envelope(&answer)?, Some(u64::from(codes::AUTHENTICATION)));
        }
    });
    // Nothing was written, deleted or created.
    runtime.block_on(async {
        let namespaces = store.list_namespaces().await.unwrap();
        assert_eq!(namespaces.len(), 1, "{namespaces:?}");
        let ns = store.namespace_by_id(&ns).await.unwrap();
        let keys = ns.list(&kv_core::ListOptions::new()).await.unwrap().keys;
        let names: Vec<_> = keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["a"]);
        assert_eq!(ns.get_text("a").await.unwrap().as_deref(), Some("{}"));
    });
    // The right token still works.
    let request = build(
        &Case {
            method: Method::GET,
            uri: format!("{BASE}/{ns}/values/a"),
            headers: vec![],
            body: vec![],
        },
        Some(&format!("Bearer {TOKEN}")),
    )
    .unwrap();
    let answer = runtime.block_on(send(&app, request));
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, b"{}");
}
