//! `POST /{ns}/bulk/get` cannot be made to multiply memory: a key asked for many times is read
//! once and answered once, and an answer larger than
//! [`ServerConfig::max_bulk_get_response_bytes`] is refused with 413 (code
//! [`codes::BULK_GET_TOO_LARGE`]) before it is built, reading no more of the store than it must.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kv_core::{ManualClock, Store};
use kv_server::error::codes;
use kv_server::ServerConfig;
use serde_json::{json, Value};
use support::{error_code, TestServer};

const MIB: usize = 1024 * 1024;

/// What reached the store through a [`CountingBackend`].
#[derive(Debug, Default)]
struct Reads {
    /// Keys read, counting each key of a `get_many` (a repeated key counts each time).
    keys: AtomicU64,
    /// Bytes of the values returned.
    bytes: AtomicU64,
}

/// A memory backend that counts the keys its namespaces are asked to read.
#[derive(Debug, Clone)]
struct CountingBackend {
    inner: kv_backends::memory::MemoryBackend,
    reads: Arc<Reads>,
}

#[kv_core::async_trait]
impl kv_core::Backend for CountingBackend {
    fn kind(&self) -> &'static str {
        "counting"
    }
    fn clock(&self) -> kv_core::SharedClock {
        self.inner.clock()
    }
    fn capabilities(&self) -> kv_core::Capabilities {
        self.inner.capabilities()
    }
    async fn create_namespace(&self, title: &str) -> kv_core::Result<kv_core::NamespaceInfo> {
        self.inner.create_namespace(title).await
    }
    async fn list_namespaces(&self) -> kv_core::Result<Vec<kv_core::NamespaceInfo>> {
        self.inner.list_namespaces().await
    }
    async fn rename_namespace(&self, id: &str, title: &str) -> kv_core::Result<()> {
        self.inner.rename_namespace(id, title).await
    }
    async fn delete_namespace(&self, id: &str) -> kv_core::Result<bool> {
        self.inner.delete_namespace(id).await
    }
    async fn open_namespace(&self, id: &str) -> kv_core::Result<Arc<dyn kv_core::NamespaceStore>> {
        Ok(Arc::new(CountingStore {
            inner: self.inner.open_namespace(id).await?,
            reads: self.reads.clone(),
        }))
    }
}

#[derive(Debug)]
struct CountingStore {
    inner: Arc<dyn kv_core::NamespaceStore>,
    reads: Arc<Reads>,
}

impl CountingStore {
    fn count(&self, entry: &Option<kv_core::Entry>) {
        self.reads.keys.fetch_add(1, Ordering::SeqCst);
        let len = entry.as_ref().map_or(0, |e| e.value.len());
        self.reads.bytes.fetch_add(len as u64, Ordering::SeqCst);
    }
}

#[kv_core::async_trait]
impl kv_core::NamespaceStore for CountingStore {
    fn kind(&self) -> &'static str {
        "counting"
    }
    fn capabilities(&self) -> kv_core::Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> kv_core::Result<Option<kv_core::Entry>> {
        let entry = self.inner.get(key).await?;
        self.count(&entry);
        Ok(entry)
    }
    async fn get_many(&self, keys: &[String]) -> kv_core::Result<Vec<Option<kv_core::Entry>>> {
        let entries = self.inner.get_many(keys).await?;
        entries.iter().for_each(|entry| self.count(entry));
        Ok(entries)
    }
    async fn put(
        &self,
        key: &str,
        entry: kv_core::NewEntry,
        mode: kv_core::WriteMode,
    ) -> kv_core::Result<kv_core::PutOutcome> {
        self.inner.put(key, entry, mode).await
    }
    async fn delete(
        &self,
        key: &str,
        mode: kv_core::WriteMode,
    ) -> kv_core::Result<kv_core::DeleteOutcome> {
        self.inner.delete(key, mode).await
    }
    async fn list(&self, options: &kv_core::ListOptions) -> kv_core::Result<kv_core::ListPage> {
        self.inner.list(options).await
    }
}

/// A server over a counting memory store, a client, the namespace's URL and the counters.
async fn setup(config: ServerConfig) -> (TestServer, reqwest::Client, String, Arc<Reads>) {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let reads = Arc::new(Reads::default());
    let backend = CountingBackend {
        inner: kv_backends::memory::MemoryBackend::builder()
            .clock(clock.shared())
            .build(),
        reads: reads.clone(),
    };
    let server = TestServer::over(Store::new(backend), clock, config).await;
    let client = reqwest::Client::new();
    let id = server.create_namespace(&client, "BULK").await;
    let ns = format!("{}/{id}", server.base());
    (server, client, ns, reads)
}

/// Writes `value` under `key` through the API.
async fn put(client: &reqwest::Client, ns: &str, key: &str, value: Vec<u8>) {
    let response = client
        .put(format!("{ns}/values/{key}"))
        .body(value)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

fn keys_read(reads: &Reads) -> u64 {
    reads.keys.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_large_value_asked_for_100_times_is_read_once_and_answered_once() {
    let (_server, client, ns, reads) = setup(ServerConfig::default()).await;
    put(&client, &ns, "big", vec![b'x'; 25 * MIB]).await;
    let before = keys_read(&reads);

    // The attack: 1.3 KB of request naming one 25 MiB value 100 times.
    let body = json!({ "keys": vec!["big"; 100] }).to_string();
    assert!(body.len() < 1400);
    let response = client
        .post(format!("{ns}/bulk/get"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer = response.bytes().await.unwrap();
    assert!(
        answer.len() < 25 * MIB + 1024,
        "the answer holds the value once: {} bytes",
        answer.len()
    );
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    let values = answer["result"]["values"].as_object().unwrap();
    assert_eq!(values.len(), 1);
    assert_eq!(values["big"].as_str().unwrap().len(), 25 * MIB);

    assert_eq!(keys_read(&reads) - before, 1, "the value was read once");
    assert_eq!(reads.bytes.load(Ordering::SeqCst), 25 * MIB as u64);
}

#[tokio::test]
async fn an_answer_over_the_bound_is_413_and_a_larger_bound_serves_it() {
    let (_server, client, ns, _reads) = setup(ServerConfig::default()).await;
    put(&client, &ns, "a", vec![b'a'; 20 * MIB]).await;
    put(&client, &ns, "b", vec![b'b'; 20 * MIB]).await;
    let ask = json!({ "keys": ["a", "b", "a"] });
    // 40 MiB of values: over the default bound (the value limit plus 1 MiB).
    let response = client
        .post(format!("{ns}/bulk/get"))
        .json(&ask)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response, 413).await,
        codes::BULK_GET_TOO_LARGE,
        "two 20 MiB values"
    );
    // One of them fits.
    let response = client
        .post(format!("{ns}/bulk/get"))
        .json(&json!({ "keys": ["a", "a"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // A server configured for larger answers serves both.
    let config = ServerConfig::default().with_max_bulk_get_response_bytes(64 * MIB);
    let (_server, client, ns, _reads) = setup(config).await;
    put(&client, &ns, "a", vec![b'a'; 20 * MIB]).await;
    put(&client, &ns, "b", vec![b'b'; 20 * MIB]).await;
    let response = client
        .post(format!("{ns}/bulk/get"))
        .json(&ask)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["result"]["values"]["a"].as_str().unwrap().len(),
        20 * MIB
    );
    assert_eq!(
        answer["result"]["values"]["b"].as_str().unwrap().len(),
        20 * MIB
    );
}

#[test]
fn the_default_bound_is_the_value_limit_plus_one_mib() {
    let config = ServerConfig::default();
    assert_eq!(config.max_bulk_get_response_bytes, None);
    let limits = kv_core::Limits::default();
    assert_eq!(
        config.bulk_get_response_limit(&limits),
        limits.max_value_bytes + MIB
    );
    let config = config.with_max_bulk_get_response_bytes(1234);
    assert_eq!(config.bulk_get_response_limit(&limits), 1234);
}

#[tokio::test]
async fn a_bulk_get_over_the_bound_stops_reading_the_store() {
    let config = ServerConfig::default().with_max_bulk_get_response_bytes(10 * 1024);
    let (_server, client, ns, reads) = setup(config).await;
    let keys: Vec<String> = (0..100).map(|i| format!("k{i:03}")).collect();
    let items: Vec<Value> = keys
        .iter()
        .map(|key| json!({ "key": key, "value": "v".repeat(1024) }))
        .collect();
    let response = client
        .put(format!("{ns}/bulk"))
        .json(&items)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let before = keys_read(&reads);
    let response = client
        .post(format!("{ns}/bulk/get"))
        .json(&json!({ "keys": keys }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response, 413).await, codes::BULK_GET_TOO_LARGE);
    let read = keys_read(&reads) - before;
    assert!(
        read < 50,
        "100 KiB of values against a 10 KiB bound: read {read} of 100 keys"
    );
}

#[tokio::test]
async fn the_bound_counts_the_answer_as_sent_escapes_and_all() {
    // 600 quotes are 600 bytes stored and 1 200 bytes once escaped in JSON.
    let config = ServerConfig::default().with_max_bulk_get_response_bytes(1000);
    let (_server, client, ns, _reads) = setup(config).await;
    put(&client, &ns, "quotes", vec![b'"'; 600]).await;
    put(&client, &ns, "plain", vec![b'p'; 600]).await;
    let response = client
        .post(format!("{ns}/bulk/get"))
        .json(&json!({ "keys": ["quotes"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response, 413).await, codes::BULK_GET_TOO_LARGE);
    let response = client
        .post(format!("{ns}/bulk/get"))
        .json(&json!({ "keys": ["plain"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let length = response.content_length().unwrap();
    assert!(length <= 1000, "{length}");
}

#[tokio::test]
async fn repeated_keys_with_metadata_and_json_answer_as_before() {
    let (server, client, ns, reads) = setup(ServerConfig::default()).await;
    let items = json!([
        {"key": "doc", "value": " {\"n\": [1, 2.5, \"x\\u00e9\"]} \n", "metadata": {"m": 1},
         "expiration_ttl": 600},
        {"key": "text", "value": "line\n\"quoted\" \u{1F600}"},
    ]);
    let response = client
        .put(format!("{ns}/bulk"))
        .json(&items)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let expiration = kv_core::Clock::unix_secs(&server.clock) + 600;

    let before = keys_read(&reads);
    let response = client
        .post(format!("{ns}/bulk/get"))
        .json(&json!({
            "keys": ["doc", "missing", "doc", "missing", "doc"],
            "type": "json",
            "withMetadata": true
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "an envelope"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "success": true, "errors": [], "messages": [],
            "result": { "values": {
                "doc": {"value": {"n": [1, 2.5, "xé"]}, "metadata": {"m": 1},
                        "expiration": expiration},
                "missing": null
            }}
        })
    );
    assert_eq!(keys_read(&reads) - before, 2, "doc and missing, once each");

    let response = client
        .post(format!("{ns}/bulk/get"))
        .json(&json!({ "keys": ["text", "text"], "withMetadata": true }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["result"]["values"],
        json!({ "text": {"value": "line\n\"quoted\" \u{1F600}", "metadata": null} })
    );

    // Text that is not UTF-8 and JSON that is not JSON are still refused.
    put(&client, &ns, "binary", vec![0xff, 0xfe]).await;
    let response = client
        .post(format!("{ns}/bulk/get"))
        .json(&json!({ "keys": ["binary"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response, 400).await, codes::INVALID_BODY);
    for not_json in [&b"{\"a\": 1} trailing"[..], b"", b"[1,", b"\"\xff\""] {
        put(&client, &ns, "notjson", not_json.to_vec()).await;
        let response = client
            .post(format!("{ns}/bulk/get"))
            .json(&json!({ "keys": ["notjson"], "type": "json" }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(response, 400).await,
            codes::INVALID_BODY,
            "{not_json:?}"
        );
    }
}
