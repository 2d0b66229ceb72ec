//! Keys with NUL bytes, newlines, `..`, `/`, percent signs and long UTF-8 (under, at and over
//! the 512-byte limit) through the REST API and through the `kv` tool.
//!
//! Valid keys make the whole round trip (PUT, GET, metadata, list, bulk get, DELETE) and come
//! back byte for byte; invalid ones get the status and error code the server defines (400 with
//! 10030 for an empty key, `.` or `..`; 414 with 10031 for a key over 512 bytes) and store
//! nothing. Through the tool: a round trip, or exit 3 with one line on stderr, never a panic.

mod support;

use std::process::{Command, Output, Stdio};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use kv_core::{ManualClock, Store};
use kv_server::error::codes;
use kv_server::{router, ServerConfig};
use serde_json::{json, Value};
use support::TestServer;
use tower::ServiceExt;

const BASE: &str = "/client/v4/accounts/acc/storage/kv/namespaces";

/// Keys the contract accepts: each must round-trip unchanged.
fn valid_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "\0",
        "a\0b",
        "\0\0\0",
        "line\nbreak",
        "\r\n",
        "tab\tkey",
        "...",
        ".a",
        "a.",
        "a/..",
        "../etc/passwd",
        "a/../b",
        "./x",
        "a/b/c",
        "/leading",
        "trailing/",
        "//",
        "%",
        "%%",
        "100%",
        "%41",
        "%2F",
        "%00",
        "%2e%2e",
        "?query#fragment",
        "space key",
        "\u{7f}",
        "\u{feff}bom",
        "\u{202e}rtl",
        "ünïcödé/..",
        "😀",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    keys.push("k".repeat(512));
    keys.push("é".repeat(256)); // 512 bytes in 256 characters
    keys.push("😀".repeat(128)); // 512 bytes in 128 characters
    keys.push(format!("{}a", "é".repeat(255))); // 511 bytes
    keys
}

/// Keys the contract refuses, with the status and code the server answers.
fn invalid_keys() -> Vec<(String, StatusCode, u32)> {
    let bad = |key: String| (key, StatusCode::BAD_REQUEST, codes::INVALID_KEY);
    let long = |key: String| (key, StatusCode::URI_TOO_LONG, codes::KEY_TOO_LONG);
    vec![
        bad(String::new()),
        bad(".".to_owned()),
        bad("..".to_owned()),
        long("k".repeat(513)),
        long(format!("{}a", "é".repeat(256))), // 513 bytes
        long("é".repeat(257)),                 // 514 bytes
        long("😀".repeat(129)),                // 516 bytes
        long("\0".repeat(513)),
        long("/".repeat(4096)),
    ]
}

/// Every byte as `%XX`.
fn encode_all(key: &str) -> String {
    key.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// Only what a URI path cannot hold raw is encoded: `/`, `.` and `%` stay as they are
/// (a literal `%` as `%25`), so `a/../b` goes out as `a/../b`.
fn encode_minimal(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Checks the error envelope and returns its code.
    fn error_code(&self) -> u32 {
        let body = self.json();
        assert_eq!(body["success"], false, "{body}");
        assert!(body["result"].is_null(), "{body}");
        assert!(body["messages"].is_array(), "{body}");
        assert!(
            !body["errors"][0]["message"].as_str().unwrap().is_empty(),
            "{body}"
        );
        body["errors"][0]["code"].as_u64().unwrap() as u32
    }
}

async fn call(app: &axum::Router, method: Method, uri: &str, body: Vec<u8>) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body))
        .unwrap_or_else(|e| panic!("{uri:?} is a valid URI: {e}"));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        body: body.to_vec(),
    }
}

async fn app() -> (axum::Router, Store, String) {
    let store = Store::new(kv_backends::memory::MemoryBackend::new());
    let ns = store.create_namespace("HOSTILE").await.unwrap().id;
    (router(store.clone(), ServerConfig::default()), store, ns)
}

#[tokio::test]
async fn valid_hostile_keys_round_trip_through_rest() {
    let (app, store, ns) = app().await;
    for key in valid_keys() {
        for (form, path) in [("all", encode_all(&key)), ("minimal", encode_minimal(&key))] {
            let what = format!("{key:?} ({form} encoding)");
            let url = format!("{BASE}/{ns}/values/{path}");
            let value = format!("value of {key}").into_bytes();

            let put = call(&app, Method::PUT, &url, value.clone()).await;
            assert_eq!(put.status, StatusCode::OK, "PUT {what}");
            assert_eq!(put.json()["success"], true, "PUT {what}");

            let got = call(&app, Method::GET, &url, vec![]).await;
            assert_eq!(got.status, StatusCode::OK, "GET {what}");
            assert_eq!(got.body, value, "GET {what}");

            // Stored under exactly this key, not a decoded or normalized one.
            let handle = store.namespace_by_id(&ns).await.unwrap();
            assert_eq!(handle.get(&key).await.unwrap().as_deref(), Some(&value[..]));

            let metadata = format!("{BASE}/{ns}/metadata/{path}");
            let meta = call(&app, Method::GET, &metadata, vec![]).await;
            assert_eq!(meta.status, StatusCode::OK, "metadata {what}");
            assert_eq!(meta.json()["result"], Value::Null);

            let prefix = encode_all(&key);
            let list_url = format!("{BASE}/{ns}/keys?prefix={prefix}");
            let listed = call(&app, Method::GET, &list_url, vec![]).await.json();
            let names: Vec<&str> = listed["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["name"].as_str().unwrap())
                .collect();
            assert!(names.contains(&key.as_str()), "list {what}: {names:?}");

            let bulk = json!({ "keys": [key] }).to_string().into_bytes();
            let got = call(&app, Method::POST, &format!("{BASE}/{ns}/bulk/get"), bulk).await;
            assert_eq!(got.status, StatusCode::OK, "bulk get {what}");
            assert_eq!(
                got.json()["result"]["values"][&key],
                json!(String::from_utf8(value.clone()).unwrap())
            );

            let deleted = call(&app, Method::DELETE, &url, vec![]).await;
            assert_eq!(deleted.status, StatusCode::OK, "DELETE {what}");
            assert_eq!(deleted.json()["result"], json!({ "existed": true }));
            let gone = call(&app, Method::GET, &url, vec![]).await;
            assert_eq!(
                gone.status,
                StatusCode::NOT_FOUND,
                "GET after DELETE {what}"
            );
            assert_eq!(gone.error_code(), codes::KEY_NOT_FOUND);
        }
    }
    let handle = store.namespace_by_id(&ns).await.unwrap();
    let left = handle.list(&kv_core::ListOptions::new()).await.unwrap();
    assert!(left.keys.is_empty(), "{:?}", left.keys);
}

#[tokio::test]
async fn valid_hostile_keys_round_trip_through_bulk_endpoints() {
    let (app, store, ns) = app().await;
    let keys = valid_keys();
    let items: Vec<Value> = keys
        .iter()
        .map(|k| json!({ "key": k, "value": format!("v:{k}") }))
        .collect();
    let put = call(
        &app,
        Method::PUT,
        &format!("{BASE}/{ns}/bulk"),
        serde_json::to_vec(&items).unwrap(),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(put.json()["result"]["successful_key_count"], keys.len());

    let handle = store.namespace_by_id(&ns).await.unwrap();
    for key in &keys {
        let value = handle.get_text(key).await.unwrap();
        assert_eq!(value, Some(format!("v:{key}")), "{key:?}");
    }
    let listed = call(&app, Method::GET, &format!("{BASE}/{ns}/keys"), vec![]).await;
    let mut names: Vec<String> = listed.json()["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect();
    let mut expected = keys.clone();
    expected.sort();
    names.sort();
    assert_eq!(names, expected, "every key listed once, unchanged");

    let delete = call(
        &app,
        Method::POST,
        &format!("{BASE}/{ns}/bulk/delete"),
        serde_json::to_vec(&keys).unwrap(),
    )
    .await;
    assert_eq!(delete.status, StatusCode::OK);
    let left = handle.list(&kv_core::ListOptions::new()).await.unwrap();
    assert!(left.keys.is_empty(), "{:?}", left.keys);
}

#[tokio::test]
async fn invalid_keys_get_their_status_and_code_and_store_nothing() {
    let (app, store, ns) = app().await;
    for (key, status, code) in invalid_keys() {
        for path in [encode_all(&key), encode_minimal(&key)] {
            for (method, resource) in [
                (Method::PUT, "values"),
                (Method::GET, "values"),
                (Method::DELETE, "values"),
                (Method::GET, "metadata"),
            ] {
                let url = format!("{BASE}/{ns}/{resource}/{path}");
                let answer = call(&app, method.clone(), &url, b"v".to_vec()).await;
                let what = format!("{method} {resource} {key:?}");
                assert_eq!(answer.status, status, "{what}");
                assert_eq!(answer.error_code(), code, "{what}");
            }
        }
        // In bulk: the whole request is refused with the same status and code.
        let items = json!([{ "key": "fine", "value": "x" }, { "key": key, "value": "x" }]);
        let put = call(
            &app,
            Method::PUT,
            &format!("{BASE}/{ns}/bulk"),
            items.to_string().into_bytes(),
        )
        .await;
        assert_eq!(put.status, status, "bulk put {key:?}");
        assert_eq!(put.error_code(), code, "bulk put {key:?}");
        let get = json!({ "keys": ["fine", key] }).to_string().into_bytes();
        let got = call(&app, Method::POST, &format!("{BASE}/{ns}/bulk/get"), get).await;
        assert_eq!(got.status, status, "bulk get {key:?}");
        assert_eq!(got.error_code(), code, "bulk get {key:?}");
        let delete = json!(["fine", key]).to_string().into_bytes();
        let url = format!("{BASE}/{ns}/bulk/delete");
        let deleted = call(&app, Method::POST, &url, delete).await;
        assert_eq!(deleted.status, status, "bulk delete {key:?}");
        assert_eq!(deleted.error_code(), code, "bulk delete {key:?}");
    }
    let handle = store.namespace_by_id(&ns).await.unwrap();
    let left = handle.list(&kv_core::ListOptions::new()).await.unwrap();
    assert!(left.keys.is_empty(), "nothing stored: {:?}", left.keys);
}

#[tokio::test]
async fn percent_sequences_that_do_not_decode_to_utf8_are_400() {
    let (app, _store, ns) = app().await;
    for path in ["%FF", "a%C3", "%C3%28", "%ED%A0%80", "%F8%88%80%80%80"] {
        let url = format!("{BASE}/{ns}/values/{path}");
        for method in [Method::PUT, Method::GET, Method::DELETE] {
            let answer = call(&app, method.clone(), &url, b"v".to_vec()).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{method} {path}");
            assert_eq!(answer.error_code(), codes::BAD_REQUEST, "{method} {path}");
        }
    }
}

// ---- the `kv` tool ----

fn kv(store: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kv"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("KV_STORE")
        .env_remove("KV_TOKEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("kv runs")
}

fn assert_ok(output: &Output, what: &str) -> Vec<u8> {
    assert!(
        output.status.success(),
        "{what}: exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout.clone()
}

/// A clean failure: the given exit code and one line on stderr naming the problem.
fn assert_clean_failure(output: &Output, code: i32, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(code), "{what}: {stderr}");
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{what}: one line: {stderr:?}");
    assert!(stderr.starts_with("kv: "), "{what}: {stderr:?}");
    stderr
}

/// Keys a command line can carry (no NUL: no OS passes one in an argument).
fn cli_keys() -> Vec<String> {
    valid_keys()
        .into_iter()
        .filter(|k| !k.contains('\0'))
        .collect()
}

fn listed_names(output: &Output) -> Vec<String> {
    let listed: Value = serde_json::from_slice(&assert_ok(output, "list --json")).unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Round trips every command-line key through `kv key put/get/list/delete` against `store`.
fn cli_round_trips(store: &str) {
    for key in cli_keys() {
        let value = format!("value of {key}");
        // `--` so that a key starting with `-` is not read as an option.
        assert_ok(&kv(store, &["key", "put", "--", &key, &value]), &key);
        let got = assert_ok(&kv(store, &["key", "get", "--", &key]), &key);
        assert_eq!(got, value.as_bytes(), "get {key:?}");
        let names = listed_names(&kv(store, &["key", "list", "--json"]));
        assert_eq!(names, std::slice::from_ref(&key), "list {key:?}");
        assert_ok(&kv(store, &["key", "delete", "--", &key]), &key);
        let gone = kv(store, &["key", "get", "--", &key]);
        let stderr = assert_clean_failure(&gone, 1, &format!("get deleted {key:?}"));
        assert!(stderr.contains("not found"), "{stderr}");
    }
}

/// Invalid keys make every key command exit 3 with one line naming the limit, and store
/// nothing.
fn cli_refuses_invalid_keys(store: &str) {
    for (key, status, _) in invalid_keys() {
        // A key of 4096 slashes is refused like any other long key; skip it to keep the
        // command lines short. NUL cannot be in an argument.
        if key.len() > 1024 || key.contains('\0') {
            continue;
        }
        for command in ["put", "get", "delete"] {
            let mut args = vec!["key", command, "--", &key];
            if command == "put" {
                args.push("v");
            }
            let output = kv(store, &args);
            let what = format!("{command} {key:?}");
            let stderr = assert_clean_failure(&output, 3, &what);
            let expected = if status == StatusCode::URI_TOO_LONG {
                "more than the limit of 512 bytes"
            } else if key.is_empty() {
                "key must not be empty"
            } else {
                "key must not be"
            };
            assert!(stderr.contains(expected), "{what}: {stderr}");
        }
    }
    assert!(listed_names(&kv(store, &["key", "list", "--json"])).is_empty());
}

#[test]
fn hostile_keys_through_the_kv_tool_on_the_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file:{}", dir.path().join("kv").display());
    assert_ok(&kv(&store, &["namespace", "create", "default"]), "create");
    cli_round_trips(&store);
    cli_refuses_invalid_keys(&store);
}

#[test]
fn nul_bytes_in_keys_through_kv_bulk_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file:{}", dir.path().join("kv").display());
    let keys: Vec<String> = valid_keys();
    let items: Vec<Value> = keys
        .iter()
        .map(|k| json!({ "key": k, "value": format!("v:{k}") }))
        .collect();
    let file = dir.path().join("items.json");
    std::fs::write(&file, serde_json::to_vec(&items).unwrap()).unwrap();
    let file = file.display().to_string();
    let summary = assert_ok(&kv(&store, &["bulk", "put", &file]), "bulk put");
    assert_eq!(
        String::from_utf8_lossy(&summary).trim(),
        format!("wrote {} keys, 0 failed", keys.len())
    );
    let mut names = listed_names(&kv(&store, &["key", "list", "--json"]));
    let mut expected = keys.clone();
    names.sort();
    expected.sort();
    assert_eq!(names, expected);

    // Invalid keys in a bulk file fail one by one; the valid ones are still written.
    let mut mixed: Vec<Value> = invalid_keys()
        .into_iter()
        .map(|(k, _, _)| json!({ "key": k, "value": "x" }))
        .collect();
    mixed.push(json!({ "key": "\0fine\n", "value": "ok" }));
    let mixed_file = dir.path().join("mixed.json");
    std::fs::write(&mixed_file, serde_json::to_vec(&mixed).unwrap()).unwrap();
    let output = kv(&store, &["bulk", "put", &mixed_file.display().to_string()]);
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("wrote 1 keys, {} failed", mixed.len() - 1)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");

    let mut all = keys.clone();
    all.push("\0fine\n".to_owned());
    let delete = dir.path().join("delete.json");
    std::fs::write(&delete, serde_json::to_vec(&all).unwrap()).unwrap();
    let delete = delete.display().to_string();
    assert_ok(
        &kv(&store, &["bulk", "delete", "--force", &delete]),
        "bulk delete",
    );
    assert!(listed_names(&kv(&store, &["key", "list", "--json"])).is_empty());
}

/// The whole chain: the tool's http backend, the server, the store.
#[test]
fn hostile_keys_through_the_kv_tool_against_a_running_server() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(async {
        let clock = ManualClock::at_unix_secs(1_700_000_000);
        let store = Store::new(kv_backends::memory::MemoryBackend::new());
        store.create_namespace("default").await.unwrap();
        TestServer::over(store, clock, ServerConfig::default()).await
    });
    let url = format!("http://{}", server.addr);
    cli_round_trips(&url);
    cli_refuses_invalid_keys(&url);
    runtime.block_on(server.stop());
}
