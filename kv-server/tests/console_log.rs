//! No console token (nor sign-in cookie) in the server's logs: `tracing` output captured at
//! TRACE (this workspace's crates, tower-http, axum) and at INFO while the console signs in
//! with a wrong token and the right one, works, and signs out.
//!
//! One test in its own binary: `tracing` caches per-callsite interest across threads, so
//! captures with different filters must not run in parallel.

mod support;

use kv_server::console::ConsoleConfig;
use kv_server::ServerConfig;
use serde_json::{json, Value};
use support::TestServer;

const TOKEN: &str = "tok-93ad0b7e-console-sign-in-secret";
const WRONG: &str = "tok-93ad0b7e-console-sign-in-secreX";

/// The console's whole sign-in life; returns the session cookie it was given.
async fn console_traffic() -> String {
    let config = ServerConfig::default()
        .with_token(TOKEN)
        .with_console(ConsoleConfig::default());
    let server = TestServer::start(config).await;
    let client = reqwest::Client::new();
    let api = format!("http://{}/console/api", server.addr);
    let session = client.get(format!("{api}/session")).send().await.unwrap();
    let pre = session.headers()["set-cookie"].to_str().unwrap();
    let pre = pre.split(';').next().unwrap().to_owned();
    let body: Value = session.json().await.unwrap();
    let csrf = body["result"]["csrf"].as_str().unwrap().to_owned();
    let mut cookie = String::new();
    for token in [WRONG, TOKEN] {
        let response = client
            .post(format!("{api}/login"))
            .header("cookie", &pre)
            .header("x-csrf-token", &csrf)
            .json(&json!({ "token": token }))
            .send()
            .await
            .unwrap();
        if token == TOKEN {
            assert_eq!(response.status(), 200);
            let set = response.headers()["set-cookie"].to_str().unwrap();
            cookie = set.split(';').next().unwrap().to_owned();
            let body: Value = response.json().await.unwrap();
            let csrf = body["result"]["csrf"].as_str().unwrap();
            let created = client
                .post(format!("{api}/namespaces"))
                .header("cookie", &cookie)
                .header("x-csrf-token", csrf)
                .json(&json!({ "title": "LOGGED" }))
                .send()
                .await
                .unwrap();
            assert_eq!(created.status(), 200);
            let logout = client
                .post(format!("{api}/logout"))
                .header("cookie", &cookie)
                .header("x-csrf-token", csrf)
                .send()
                .await
                .unwrap();
            assert_eq!(logout.status(), 200);
        } else {
            assert_eq!(response.status(), 401);
        }
    }
    server.stop().await;
    cookie
}

#[test]
fn console_tokens_and_cookies_are_not_logged() {
    for filter in [
        "kv_server=trace,kv_core=trace,kv_backends=trace,tower_http=trace,axum=trace",
        "info",
    ] {
        let (logs, cookie) = kv_core::testing::capture_logs(filter, console_traffic());
        assert!(
            logs.contains("console sign-in"),
            "the capture works: {logs}"
        );
        assert!(
            logs.contains("sign-in refused"),
            "the refusal is logged: {logs}"
        );
        assert!(
            !logs.contains("93ad0b7e"),
            "a token is in the logs:\n{logs}"
        );
        let mac = cookie.rsplit('.').next().unwrap();
        assert!(mac.len() == 64, "{cookie}");
        assert!(
            !logs.contains(mac),
            "the sign-in cookie is in the logs:\n{logs}"
        );
    }
}
