//! The console over other backends than memory: the durable file store, and the http backend
//! in front of another kv-server (so `kv serve --store http://...`). The same calls, the same
//! answers: namespaces, a key written and found by prefix, a conflicting edit refused.

mod support;

use kv_core::{ManualClock, Store};
use kv_server::console::ConsoleConfig;
use kv_server::ServerConfig;
use serde_json::{json, Value};
use support::TestServer;

/// Signs in to an open console and returns a request helper's pieces: client, cookie, CSRF.
async fn sign_in(server: &TestServer) -> (reqwest::Client, String, String) {
    let client = reqwest::Client::new();
    let session = client
        .get(format!("http://{}/console/api/session", server.addr))
        .send()
        .await
        .unwrap();
    let cookie = session.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let body: Value = session.json().await.unwrap();
    let csrf = body["result"]["csrf"].as_str().unwrap().to_owned();
    (client, cookie, csrf)
}

async fn exercise(store: Store) {
    let server = TestServer::over(
        store,
        ManualClock::at_unix_secs(0),
        ServerConfig::default().with_console(ConsoleConfig::default()),
    )
    .await;
    let (client, cookie, csrf) = sign_in(&server).await;
    let api = format!("http://{}/console/api", server.addr);
    let send = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = client
            .request(method, format!("{api}{path}"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    let (status, created) = send(
        reqwest::Method::POST,
        "/namespaces",
        Some(json!({"title": "APP"})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["result"]["id"].as_str().unwrap().to_owned();
    let entry = format!("/namespaces/{id}/entry");
    let (status, written) = send(
        reqwest::Method::PUT,
        &entry,
        Some(json!({"key": "user:1", "value": "ada", "metadata": {"n": 1}, "ttl": 3600})),
    )
    .await;
    assert_eq!(status, 200, "{written}");
    let version = written["result"]["version"].as_str().unwrap().to_owned();
    let (_, page) = send(
        reqwest::Method::GET,
        &format!("/namespaces/{id}/keys?prefix=user:"),
        None,
    )
    .await;
    assert_eq!(page["result"]["keys"][0]["name"], "user:1");
    assert_eq!(page["result"]["keys"][0]["metadata"], json!({"n": 1}));

    // Another writer, then the stale edit: refused.
    server
        .store
        .namespace("APP")
        .await
        .unwrap()
        .put_text("user:1", "theirs")
        .await
        .unwrap();
    let (status, refused) = send(
        reqwest::Method::PUT,
        &entry,
        Some(json!({"key": "user:1", "value": "mine", "version": version})),
    )
    .await;
    assert_eq!(status, 412, "{refused}");
    let (_, view) = send(reqwest::Method::GET, &format!("{entry}?key=user:1"), None).await;
    assert_eq!(view["result"]["value"]["text"], "theirs");

    let (status, _) = send(
        reqwest::Method::DELETE,
        &format!("/namespaces/{id}"),
        Some(json!({"confirm": "APP"})),
    )
    .await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_over_the_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = kv_backends::open(&format!("file:{}", dir.path().join("kv").display()))
        .await
        .unwrap();
    exercise(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_over_a_remote_kv_server() {
    let inner = TestServer::start(ServerConfig::default()).await;
    let store = kv_backends::open(&format!("http://{}", inner.addr))
        .await
        .unwrap();
    exercise(store).await;
    inner.stop().await;
}
