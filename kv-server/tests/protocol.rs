//! The REST protocol against a running server, with a plain HTTP client.

mod support;

use std::time::Duration;

use kv_server::error::codes;
use kv_server::ServerConfig;
use reqwest::Client;
use serde_json::{json, Value};
use support::{assert_envelope, error_code, TestServer};

async fn setup() -> (TestServer, Client, String) {
    let server = TestServer::start(ServerConfig::default()).await;
    let client = Client::new();
    let id = server.create_namespace(&client, "TEST").await;
    let ns = format!("{}/{id}", server.base());
    (server, client, ns)
}

async fn json_of(response: reqwest::Response) -> Value {
    let body: Value = response.json().await.unwrap();
    assert_envelope(&body);
    body
}

#[tokio::test]
async fn namespaces_lifecycle() {
    let server = TestServer::start(ServerConfig::default()).await;
    let client = Client::new();
    let base = server.base();
    let id = server.create_namespace(&client, "FIRST").await;
    assert_eq!(id.len(), 32);

    let body = json_of(client.get(&base).send().await.unwrap()).await;
    assert_eq!(body["success"], true);
    assert_eq!(body["result"][0]["id"], id);
    assert_eq!(body["result"][0]["title"], "FIRST");
    assert_eq!(body["result_info"]["count"], 1);

    // The trailing-slash form of the collection works too.
    let body = json_of(client.get(format!("{base}/")).send().await.unwrap()).await;
    assert_eq!(body["result"].as_array().unwrap().len(), 1);

    let body = json_of(client.get(format!("{base}/{id}")).send().await.unwrap()).await;
    assert_eq!(body["result"]["title"], "FIRST");

    let duplicate = client.post(&base).json(&json!({"title": "FIRST"})).send();
    assert_eq!(
        error_code(duplicate.await.unwrap(), 400).await,
        codes::NAMESPACE_EXISTS
    );
    let untitled = client.post(&base).json(&json!({})).send();
    assert_eq!(
        error_code(untitled.await.unwrap(), 400).await,
        codes::MISSING_TITLE
    );
    let not_json = client.post(&base).body("{title").send();
    assert_eq!(
        error_code(not_json.await.unwrap(), 400).await,
        codes::INVALID_BODY
    );

    let renamed = client
        .put(format!("{base}/{id}"))
        .json(&json!({"title": "SECOND"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(renamed).await["result"]["title"], "SECOND");
    let body = json_of(client.get(&base).send().await.unwrap()).await;
    assert_eq!(body["result"][0]["title"], "SECOND");
    assert_eq!(body["result"][0]["id"], id, "renaming keeps the id");

    let deleted = client.delete(format!("{base}/{id}")).send().await.unwrap();
    assert_eq!(json_of(deleted).await["success"], true);
    let gone = client.get(format!("{base}/{id}/values/k")).send();
    assert_eq!(
        error_code(gone.await.unwrap(), 404).await,
        codes::NAMESPACE_NOT_FOUND
    );
    let gone = client.delete(format!("{base}/{id}")).send();
    assert_eq!(
        error_code(gone.await.unwrap(), 404).await,
        codes::NAMESPACE_NOT_FOUND
    );
}

#[tokio::test]
async fn raw_values_round_trip_with_headers() {
    let (server, client, ns) = setup().await;
    let bytes: Vec<u8> = vec![0, 1, 2, 127, 128, 254, 255];
    let put = client
        .put(format!("{ns}/values/bin?expiration_ttl=120"))
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let written_etag = put.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(json_of(put).await["success"], true);

    let get = client.get(format!("{ns}/values/bin")).send().await.unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.headers()["etag"].to_str().unwrap(), written_etag);
    assert_eq!(get.headers()["expiration"], "1700000120");
    assert!(get.headers().get("x-kv-metadata").is_none());
    assert_eq!(get.bytes().await.unwrap().to_vec(), bytes);

    // Absolute expiration, and the entry disappears at that second.
    let at = server.clock.unix_secs_now() + 3600;
    let put = client
        .put(format!("{ns}/values/abs?expiration={at}"))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    server.clock.advance(Duration::from_secs(3600));
    let missing = client.get(format!("{ns}/values/abs")).send();
    assert_eq!(
        error_code(missing.await.unwrap(), 404).await,
        codes::KEY_NOT_FOUND
    );

    // Deleting, and deleting what is not there, both succeed.
    for _ in 0..2 {
        let deleted = client
            .delete(format!("{ns}/values/bin"))
            .send()
            .await
            .unwrap();
        assert_eq!(json_of(deleted).await["success"], true);
    }
    let missing = client.get(format!("{ns}/values/bin")).send();
    assert_eq!(
        error_code(missing.await.unwrap(), 404).await,
        codes::KEY_NOT_FOUND
    );
}

trait ClockExt {
    fn unix_secs_now(&self) -> u64;
}

impl ClockExt for kv_core::ManualClock {
    fn unix_secs_now(&self) -> u64 {
        kv_core::Clock::unix_secs(self)
    }
}

#[tokio::test]
async fn multipart_puts_carry_metadata() {
    let (_server, client, ns) = setup().await;
    let form = reqwest::multipart::Form::new()
        .text("value", "from a form")
        .text("metadata", r#"{"owner":"ops","n":0}"#);
    let put = client
        .put(format!("{ns}/values/form"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let get = client
        .get(format!("{ns}/values/form"))
        .send()
        .await
        .unwrap();
    let header = get.headers()["x-kv-metadata"].to_str().unwrap().to_owned();
    assert_eq!(get.text().await.unwrap(), "from a form");
    use base64::Engine;
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let metadata: Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(metadata, json!({"owner": "ops", "n": 0}));
    let body = json_of(
        client
            .get(format!("{ns}/metadata/form"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["result"], json!({"owner": "ops", "n": 0}));

    let bad = reqwest::multipart::Form::new()
        .text("value", "v")
        .text("metadata", "{not json");
    let put = client.put(format!("{ns}/values/k")).multipart(bad).send();
    assert_eq!(
        error_code(put.await.unwrap(), 400).await,
        codes::INVALID_BODY
    );
    let no_value = reqwest::multipart::Form::new().text("metadata", "{}");
    let put = client
        .put(format!("{ns}/values/k"))
        .multipart(no_value)
        .send();
    assert_eq!(
        error_code(put.await.unwrap(), 400).await,
        codes::BAD_REQUEST
    );
    let missing = client.get(format!("{ns}/metadata/none")).send();
    assert_eq!(
        error_code(missing.await.unwrap(), 404).await,
        codes::KEY_NOT_FOUND
    );
}

#[tokio::test]
async fn every_limit_has_its_status_and_message() {
    let (server, client, ns) = setup().await;
    let long_key = "k".repeat(513);
    let response = client
        .put(format!("{ns}/values/{long_key}"))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response, 414).await, codes::KEY_TOO_LONG);
    let response = client.get(format!("{ns}/values/{long_key}")).send();
    assert_eq!(
        error_code(response.await.unwrap(), 414).await,
        codes::KEY_TOO_LONG
    );

    // HTTP clients normalize `.` segments away, so these go out raw.
    let path = ns
        .split_once(&server.addr.to_string())
        .unwrap()
        .1
        .to_owned();
    for key in ["%2E", "%2E%2E", ""] {
        let request =
            format!("PUT {path}/values/{key} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv");
        let (status, body) = raw_request(server.addr, &request).await;
        assert_eq!(status, 400, "{key:?}");
        assert_eq!(body["errors"][0]["code"], codes::INVALID_KEY, "{key:?}");
    }

    let too_big = vec![b'x'; 25 * 1024 * 1024 + 1];
    let response = client
        .put(format!("{ns}/values/big"))
        .body(too_big)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response, 413).await, codes::PAYLOAD_TOO_LARGE);
    // Far beyond the body limit: refused before being read whole.
    let huge = vec![b'x'; 40 * 1024 * 1024];
    let response = client.put(format!("{ns}/values/big")).body(huge).send();
    assert_eq!(
        error_code(response.await.unwrap(), 413).await,
        codes::PAYLOAD_TOO_LARGE
    );

    let metadata = json!("m".repeat(1100)).to_string();
    let form = reqwest::multipart::Form::new()
        .text("value", "v")
        .text("metadata", metadata);
    let response = client
        .put(format!("{ns}/values/meta"))
        .multipart(form)
        .send();
    let status = response.await.unwrap();
    assert_eq!(error_code(status, 413).await, codes::PAYLOAD_TOO_LARGE);

    for query in [
        "expiration_ttl=59",
        "expiration_ttl=soon",
        "expiration=1",
        "expiration=5&expiration_ttl=60",
    ] {
        let response = client
            .put(format!("{ns}/values/t?{query}"))
            .body("v")
            .send();
        assert_eq!(
            error_code(response.await.unwrap(), 400).await,
            codes::INVALID_EXPIRATION,
            "{query}"
        );
    }
    for limit in ["0", "1001", "ten"] {
        let response = client.get(format!("{ns}/keys?limit={limit}")).send();
        assert_eq!(
            error_code(response.await.unwrap(), 400).await,
            codes::INVALID_LIMIT
        );
    }
    let response = client.get(format!("{ns}/keys?cursor=not-ours")).send();
    assert_eq!(
        error_code(response.await.unwrap(), 400).await,
        codes::INVALID_CURSOR
    );

    // None of it was stored.
    let body = json_of(client.get(format!("{ns}/keys")).send().await.unwrap()).await;
    assert_eq!(body["result"], json!([]));
}

#[tokio::test]
async fn listing_pages_with_cursors_and_decodes_keys() {
    let (_server, client, ns) = setup().await;
    let keys = ["a b", "a/b", "ключ", "a%2Fb", "x?y#z", "plain"];
    for key in keys {
        let encoded: String = key
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let put = client
            .put(format!("{ns}/values/{encoded}"))
            .body(key)
            .send();
        assert_eq!(put.await.unwrap().status(), 200, "{key}");
        let get = client
            .get(format!("{ns}/values/{encoded}"))
            .send()
            .await
            .unwrap();
        assert_eq!(get.text().await.unwrap(), key);
    }
    let mut names = Vec::new();
    let mut cursor = String::new();
    loop {
        let url = format!("{ns}/keys?limit=2&cursor={cursor}");
        let body = json_of(client.get(url).send().await.unwrap()).await;
        let page = body["result"].as_array().unwrap();
        assert!(page.len() <= 2);
        assert_eq!(body["result_info"]["count"], page.len());
        names.extend(page.iter().map(|k| k["name"].as_str().unwrap().to_owned()));
        cursor = body["result_info"]["cursor"].as_str().unwrap().to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected);
    let body = json_of(
        client
            .get(format!("{ns}/keys?prefix=a"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["result"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn conditional_writes_answer_412() {
    let (_server, client, ns) = setup().await;
    let url = format!("{ns}/values/cas");
    let created = client
        .put(&url)
        .header("If-None-Match", "*")
        .body("1")
        .send();
    let created = created.await.unwrap();
    assert_eq!(created.status(), 200);
    let etag = created.headers()["etag"].to_str().unwrap().to_owned();
    let again = client
        .put(&url)
        .header("If-None-Match", "*")
        .body("2")
        .send();
    assert_eq!(
        error_code(again.await.unwrap(), 412).await,
        codes::PRECONDITION_FAILED
    );

    let updated = client.put(&url).header("If-Match", &etag).body("2").send();
    let updated = updated.await.unwrap();
    assert_eq!(updated.status(), 200);
    let new_etag = updated.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);
    let stale = client.put(&url).header("If-Match", &etag).body("3").send();
    assert_eq!(
        error_code(stale.await.unwrap(), 412).await,
        codes::PRECONDITION_FAILED
    );
    let garbage = client
        .put(&url)
        .header("If-Match", "\"zz\"")
        .body("3")
        .send();
    assert_eq!(
        error_code(garbage.await.unwrap(), 412).await,
        codes::PRECONDITION_FAILED
    );
    let both = client
        .put(&url)
        .header("If-Match", &new_etag)
        .header("If-None-Match", "*")
        .body("3")
        .send();
    assert_eq!(
        error_code(both.await.unwrap(), 400).await,
        codes::BAD_REQUEST
    );
    assert_eq!(
        client.get(&url).send().await.unwrap().text().await.unwrap(),
        "2"
    );

    let stale_delete = client.delete(&url).header("If-Match", &etag).send();
    assert_eq!(
        error_code(stale_delete.await.unwrap(), 412).await,
        codes::PRECONDITION_FAILED
    );
    let delete = client.delete(&url).header("If-Match", &new_etag).send();
    assert_eq!(delete.await.unwrap().status(), 200);
    let missing = client.get(&url).send();
    assert_eq!(
        error_code(missing.await.unwrap(), 404).await,
        codes::KEY_NOT_FOUND
    );
}

#[tokio::test]
async fn bulk_endpoints() {
    let (server, client, ns) = setup().await;
    let items = json!([
        {"key": "b:1", "value": "one"},
        {"key": "b:2", "value": "AAEC/w==", "base64": true, "metadata": {"bin": true}},
        {"key": "b:3", "value": "{\"n\":3}", "expiration_ttl": 600},
    ]);
    let put = client
        .put(format!("{ns}/bulk"))
        .json(&items)
        .send()
        .await
        .unwrap();
    let body = json_of(put).await;
    assert_eq!(body["result"]["successful_key_count"], 3);
    let raw = client.get(format!("{ns}/values/b:2")).send().await.unwrap();
    assert_eq!(raw.bytes().await.unwrap().to_vec(), vec![0, 1, 2, 255]);

    let get = client
        .post(format!("{ns}/bulk/get"))
        .json(&json!({"keys": ["b:1", "b:3", "nope"]}))
        .send()
        .await
        .unwrap();
    let body = json_of(get).await;
    assert_eq!(
        body["result"]["values"],
        json!({"b:1": "one", "b:3": "{\"n\":3}", "nope": null})
    );
    let get = client
        .post(format!("{ns}/bulk/get"))
        .json(&json!({"keys": ["b:3"], "type": "json", "withMetadata": true}))
        .send()
        .await
        .unwrap();
    let body = json_of(get).await;
    let expected_expiration = kv_core::Clock::unix_secs(&server.clock) + 600;
    assert_eq!(
        body["result"]["values"]["b:3"],
        json!({"value": {"n": 3}, "metadata": null, "expiration": expected_expiration})
    );
    let not_json = client
        .post(format!("{ns}/bulk/get"))
        .json(&json!({"keys": ["b:1"], "type": "json"}))
        .send();
    assert_eq!(
        error_code(not_json.await.unwrap(), 400).await,
        codes::INVALID_BODY
    );
    let too_many: Vec<String> = (0..101).map(|i| format!("k{i}")).collect();
    let response = client
        .post(format!("{ns}/bulk/get"))
        .json(&json!({ "keys": too_many }))
        .send();
    assert_eq!(
        error_code(response.await.unwrap(), 400).await,
        codes::BULK_SIZE
    );

    let bad_base64 = json!([{"key": "x", "value": "!!", "base64": true}]);
    let response = client.put(format!("{ns}/bulk")).json(&bad_base64).send();
    assert_eq!(
        error_code(response.await.unwrap(), 400).await,
        codes::INVALID_BASE64
    );
    let over: Vec<Value> = (0..10_001)
        .map(|i| json!({"key": format!("o{i}"), "value": ""}))
        .collect();
    let response = client.put(format!("{ns}/bulk")).json(&over).send();
    assert_eq!(
        error_code(response.await.unwrap(), 400).await,
        codes::BULK_SIZE
    );
    let bad_item = json!([{"key": "ok", "value": "v"}, {"key": "", "value": "v"}]);
    let response = client.put(format!("{ns}/bulk")).json(&bad_item).send();
    assert_eq!(
        error_code(response.await.unwrap(), 400).await,
        codes::INVALID_KEY
    );
    let missing = client.get(format!("{ns}/values/ok")).send();
    assert_eq!(
        error_code(missing.await.unwrap(), 404).await,
        codes::KEY_NOT_FOUND,
        "a rejected batch writes nothing"
    );

    let delete = client
        .post(format!("{ns}/bulk/delete"))
        .json(&json!(["b:1", "b:2", "never"]))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(delete).await["result"]["successful_key_count"], 3);
    let legacy = client
        .delete(format!("{ns}/bulk"))
        .json(&json!(["b:3"]))
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 200);
    let body = json_of(client.get(format!("{ns}/keys")).send().await.unwrap()).await;
    assert_eq!(body["result"], json!([]));
}

#[tokio::test]
async fn unknown_endpoints_and_methods() {
    let (server, client, ns) = setup().await;
    let response = client.get(format!("http://{}/nope", server.addr)).send();
    assert_eq!(
        error_code(response.await.unwrap(), 404).await,
        codes::ENDPOINT_NOT_FOUND
    );
    let response = client.post(format!("{ns}/values/k")).send();
    assert_eq!(
        error_code(response.await.unwrap(), 405).await,
        codes::METHOD_NOT_ALLOWED
    );
    let response = client.patch(format!("{ns}/keys")).send();
    assert_eq!(
        error_code(response.await.unwrap(), 405).await,
        codes::METHOD_NOT_ALLOWED
    );
    let unknown_ns = format!("{}/00000000000000000000000000000000/keys", server.base());
    let response = client.get(unknown_ns).send();
    assert_eq!(
        error_code(response.await.unwrap(), 404).await,
        codes::NAMESPACE_NOT_FOUND
    );
}

#[tokio::test]
async fn the_server_advertises_compare_and_swap() {
    let (server, client, _ns) = setup().await;
    let response = client.get(server.base()).send().await.unwrap();
    assert_eq!(
        response.headers()["x-kv-capabilities"],
        "metadata-header, compare-and-swap"
    );
}

#[tokio::test]
async fn bearer_token_auth() {
    let server = TestServer::start(ServerConfig::default().with_token("s3cret")).await;
    let client = Client::new();
    let base = server.base();
    let response = client.get(&base).send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(error_code(response, 401).await, codes::AUTHENTICATION);
    let response = client.get(&base).bearer_auth("wrong").send();
    assert_eq!(
        error_code(response.await.unwrap(), 401).await,
        codes::AUTHENTICATION
    );
    let response = client
        .get(&base)
        .header("Authorization", "Basic czNjcmV0")
        .send();
    assert_eq!(
        error_code(response.await.unwrap(), 401).await,
        codes::AUTHENTICATION
    );
    let metrics = client.get(format!("http://{}/metrics", server.addr)).send();
    assert_eq!(
        error_code(metrics.await.unwrap(), 401).await,
        codes::AUTHENTICATION
    );
    let response = client
        .get(&base)
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(response).await["success"], true);
}

#[tokio::test]
async fn metrics_count_operations_and_errors() {
    let (server, client, ns) = setup().await;
    client
        .put(format!("{ns}/values/a"))
        .body("1")
        .send()
        .await
        .unwrap();
    client.get(format!("{ns}/values/a")).send().await.unwrap();
    client
        .get(format!("{ns}/values/missing"))
        .send()
        .await
        .unwrap();
    client.get(format!("{ns}/keys")).send().await.unwrap();
    let text = client
        .get(format!("http://{}/metrics", server.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let id = ns.rsplit('/').next().unwrap();
    for line in [
        format!("kv_operations_total{{namespace=\"{id}\",operation=\"write\"}} 1"),
        format!("kv_operations_total{{namespace=\"{id}\",operation=\"read\"}} 2"),
        format!("kv_operations_total{{namespace=\"{id}\",operation=\"list\"}} 1"),
        "kv_http_errors_total{status=\"404\"} 1".to_owned(),
    ] {
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
    assert!(text.contains("kv_http_request_duration_seconds_bucket"));
}

/// Sends one raw HTTP/1.1 request and returns the status and the JSON body.
async fn raw_request(addr: std::net::SocketAddr, request: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).await.unwrap();
        response.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                let status = head[9..12].parse().unwrap();
                return (status, serde_json::from_str(&body[..length]).unwrap());
            }
        }
        assert!(n > 0, "connection closed early");
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let backend = support::GatedBackend::new();
    let store = kv_core::Store::new(backend.clone());
    let clock = kv_core::ManualClock::at_unix_secs(1_700_000_000);
    let server = TestServer::over(store.clone(), clock, ServerConfig::default()).await;
    let client = Client::new();
    let id = server.create_namespace(&client, "NS").await;
    let url = format!("{}/{id}/values/slow", server.base());

    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.put(url).body("done").send().await }
    });
    backend.entered.notified().await; // the PUT is inside the handler
    let addr = server.addr;
    let mut stopping = tokio::spawn(server.stop());
    let waited = tokio::time::timeout(Duration::from_millis(200), &mut stopping).await;
    assert!(
        waited.is_err(),
        "the server waits for the in-flight request"
    );
    backend.gate.notify_one();
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(response.status(), 200);
    stopping.await.unwrap();
    let ns = store.namespace_by_id(&id).await.unwrap();
    assert_eq!(ns.get_text("slow").await.unwrap().as_deref(), Some("done"));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the server is gone"
    );
}
