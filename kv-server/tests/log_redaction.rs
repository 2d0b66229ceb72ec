//! No bearer token in the server's logs: `tracing` output captured at TRACE (this
//! workspace's crates, tower-http, axum) and at the default INFO level while a real server
//! serves authenticated requests and refuses wrong tokens.
//!
//! One test in its own binary: `tracing` caches per-callsite interest across threads, so
//! captures with different filters must not run in parallel.

mod support;

use kv_server::ServerConfig;
use support::TestServer;

const TOKEN: &str = "tok-5f1c2a9e-very-secret-bearer-value";
const WRONG: &str = "tok-5f1c2a9e-very-secret-bearer-valuX";

/// An authenticated session against a real server: namespace and key operations with the
/// token, then requests with a wrong token, a token in the wrong scheme, and none.
async fn authenticated_traffic() {
    let server = TestServer::start(ServerConfig::default().with_token(TOKEN)).await;
    let client = reqwest::Client::new();
    let bearer = format!("Bearer {TOKEN}");
    let created = client
        .post(server.base())
        .header("authorization", &bearer)
        .json(&serde_json::json!({ "title": "LOGGED" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let body: serde_json::Value = created.json().await.unwrap();
    let ns = format!(
        "{}/{}",
        server.base(),
        body["result"]["id"].as_str().unwrap()
    );
    for (method, url, expected) in [
        (reqwest::Method::PUT, format!("{ns}/values/k"), 200),
        (reqwest::Method::GET, format!("{ns}/values/k"), 200),
        (reqwest::Method::GET, format!("{ns}/keys"), 200),
        (reqwest::Method::GET, format!("{ns}/values/missing"), 404),
        (reqwest::Method::DELETE, format!("{ns}/values/k"), 200),
        (
            reqwest::Method::GET,
            format!("http://{}/metrics", server.addr),
            200,
        ),
    ] {
        let response = client
            .request(method, url)
            .header("authorization", &bearer)
            .body("value")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }
    for authorization in [
        Some(format!("Bearer {WRONG}")),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_owned()),
        None,
    ] {
        let mut request = client.get(format!("{ns}/values/k"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let text = response.text().await.unwrap();
        assert!(!text.contains(TOKEN) && !text.contains(WRONG), "{text}");
    }
    server.stop().await;
}

/// The logs of the authenticated traffic under `filter`.
fn capture(filter: &str) -> String {
    kv_core::testing::capture_logs(filter, authenticated_traffic()).0
}

#[test]
fn bearer_tokens_are_not_logged() {
    let logs =
        capture("kv_server=trace,kv_core=trace,kv_backends=trace,tower_http=trace,axum=trace");
    assert!(
        logs.contains("finished processing request"),
        "tower-http's request logs are captured: {logs}"
    );
    assert!(
        !logs.contains("5f1c2a9e"),
        "a token is in the logs:\n{logs}"
    );

    let logs = capture("info");
    assert!(
        logs.contains("namespace created"),
        "the capture works: {logs}"
    );
    assert!(!logs.contains("DEBUG"), "INFO and above only: {logs}");
    assert!(!logs.contains(TOKEN), "the token is in the logs:\n{logs}");
    assert!(
        !logs.contains(WRONG),
        "a wrong token is in the logs:\n{logs}"
    );
    assert!(
        !logs.contains("5f1c2a9e"),
        "part of a token is in the logs:\n{logs}"
    );
}
