//! The `kv` tool and `kv serve` in front of Miniflare's local explorer API (Miniflare from npm,
//! started by kv-backends' `tests/support/miniflare.rs`): every operation Miniflare serves
//! works through both, and what it cannot do is a typed refusal: a TTL is refused (501, code
//! 10039), namespace administration is 502 with code 10042 through `kv serve`, never 404 "key
//! not found" and never 500; `kv serve` advertises only the capabilities Miniflare has.

mod support;

#[path = "../../kv-backends/tests/support/miniflare.rs"]
mod miniflare;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use miniflare::{Miniflare, KV1};
use serde_json::{json, Value};

/// Every `kv` call and every request must finish; this bounds a hang.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `kv --store STORE ARGS` to its end, killing it (and failing) after [`CALL_TIMEOUT`].
fn kv(store: &str, args: &[&str]) -> Output {
    let what = format!("kv {}", args.join(" "));
    let mut command = Command::new(env!("CARGO_BIN_EXE_kv"));
    command
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("KV_STORE")
        .env_remove("KV_TOKEN");
    support::run_to_end(command, None, &what, CALL_TIMEOUT)
}

/// The standard output of a call that must succeed.
fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "kv failed ({:?}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The standard error of a call that must fail with exit code 3, said on one line.
fn fails(output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "said once: {stderr}");
    stderr
}

fn write_json(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(value).unwrap()).unwrap();
    path.display().to_string()
}

/// A `kv serve --store <Miniflare>` child process on a free port; killed when dropped.
struct ServeProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`
    url: String,
}

impl ServeProcess {
    fn start(store: &str) -> ServeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kv"))
            .args(["--store", store, "serve", "--listen", "127.0.0.1:0"])
            .env_remove("KV_TOKEN")
            .env_remove("KV_STORE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line
                    .split_whitespace()
                    .find(|word| word.starts_with("http://"))
                {
                    let _ = sender.send(url.to_owned());
                }
            }
        });
        let mut process = ServeProcess {
            child,
            url: String::new(),
        };
        process.url = receiver
            .recv_timeout(CALL_TIMEOUT)
            .expect("kv serve prints its address");
        process
    }

    fn base(&self) -> String {
        format!("{}/client/v4/accounts/acc/storage/kv/namespaces", self.url)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first error code of an envelope.
fn code(body: &Value) -> u64 {
    body["errors"][0]["code"].as_u64().unwrap_or(0)
}

#[test]
fn the_kv_tool_against_miniflare() {
    let mf = Miniflare::start();
    let dir = tempfile::tempdir().unwrap();
    let store = mf.api_base();
    let s = store.as_str();

    let listed = ok(kv(s, &["namespace", "list"]));
    assert!(listed.contains("KV1") && listed.contains("KV2"), "{listed}");

    // Put with metadata, get, list with metadata, delete.
    let kv1 = |args: &[&str]| -> Output {
        let mut all = vec!["-n", "KV1"];
        all.extend_from_slice(args);
        kv(s, &all)
    };
    ok(kv1(&[
        "key",
        "put",
        "a/b c",
        "hello",
        "--metadata",
        r#"{"owner":"ada"}"#,
    ]));
    assert_eq!(ok(kv1(&["key", "get", "a/b c"])), "hello");
    let keys: Value = serde_json::from_str(&ok(kv1(&["key", "list", "--json"]))).unwrap();
    assert_eq!(
        keys,
        json!([{"name": "a/b c", "metadata": {"owner": "ada"}}])
    );
    ok(kv1(&["key", "delete", "a/b c"]));
    let missing = kv1(&["key", "get", "a/b c"]);
    assert_eq!(missing.status.code(), Some(1), "a missing key is not found");

    // A TTL is refused, and nothing is written.
    let refused = fails(kv1(&["key", "put", "t", "v", "--ttl", "600"]));
    assert!(refused.contains("expirations"), "{refused}");
    assert_eq!(kv1(&["key", "get", "t"]).status.code(), Some(1));

    // Namespace administration is not served by Miniflare: a clear error, once.
    let create = fails(kv(s, &["namespace", "create", "NEW"]));
    assert!(
        create.contains("does not serve namespace creation"),
        "{create}"
    );

    // Bulk put of 1 100 keys (item by item underneath), listed through the cursor (pages of
    // 1 000), read back in bulk, then deleted in bulk.
    let items: Vec<Value> = (0..1100)
        .map(|i| json!({"key": format!("bulk/{i:04}"), "value": format!("v{i}"), "metadata": {"i": i}}))
        .collect();
    let file = write_json(dir.path(), "items.json", &Value::Array(items));
    ok(kv1(&["bulk", "put", &file]));
    let listed = ok(kv1(&["key", "list", "--prefix", "bulk/"]));
    assert_eq!(listed.lines().count(), 1100);
    assert_eq!(listed.lines().last(), Some("bulk/1099"));
    let got: Value = serde_json::from_str(&ok(kv1(&[
        "bulk",
        "get",
        "--key",
        "bulk/0007",
        "--key",
        "nope",
        "--metadata",
    ])))
    .unwrap();
    assert_eq!(got["bulk/0007"]["value"], "v7");
    assert_eq!(got["bulk/0007"]["metadata"], json!({"i": 7}));
    assert_eq!(got["nope"], Value::Null);
    let keys: Vec<String> = (0..1100).map(|i| format!("bulk/{i:04}")).collect();
    let file = write_json(dir.path(), "keys.json", &json!(keys));
    ok(kv1(&["bulk", "delete", &file, "--force"]));
    assert_eq!(ok(kv1(&["key", "list", "--prefix", "bulk/"])), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_serve_in_front_of_miniflare() {
    let mf = Miniflare::start();
    let server = ServeProcess::start(&mf.api_base());
    let base = server.base();
    let client = reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .build()
        .unwrap();

    // The namespaces are Miniflare's; the capabilities are what the store behind can do:
    // metadata (read through listings), no compare-and-swap.
    let response = client.get(&base).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-kv-capabilities"], "metadata-header");
    let body: Value = response.json().await.unwrap();
    let ids: Vec<&str> = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ns| ns["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&KV1), "{body}");
    let ns = format!("{base}/{KV1}");

    // Put with metadata (multipart), then get: value, metadata header, metadata endpoint.
    let form = reqwest::multipart::Form::new()
        .text("value", "hello")
        .text("metadata", r#"{"owner":"ada"}"#);
    let response = client
        .put(format!("{ns}/values/a%2Fb"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let response = client
        .get(format!("{ns}/values/a%2Fb"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let metadata = response.headers()["x-kv-metadata"].as_bytes().to_vec();
    assert_eq!(
        serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(metadata).unwrap()).unwrap(),
        json!({"owner": "ada"})
    );
    assert_eq!(response.text().await.unwrap(), "hello");
    let body: Value = client
        .get(format!("{ns}/metadata/a%2Fb"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["result"], json!({"owner": "ada"}));

    // A missing key is 404 with 10009, on both routes.
    for path in ["values", "metadata"] {
        let response = client
            .get(format!("{ns}/{path}/missing"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(code(&body), 10009, "{path}: {body}");
    }

    // A TTL Miniflare would drop is refused: 501, code 10039; nothing written.
    for query in ["expiration_ttl=600", "expiration=4102444800"] {
        let response = client
            .put(format!("{ns}/values/ttl?{query}"))
            .body("v")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 501, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(code(&body), 10039, "{body}");
    }
    let response = client.get(format!("{ns}/values/ttl")).send().await.unwrap();
    assert_eq!(response.status(), 404);

    // Namespace administration: Miniflare has no route; 502 with code 10042, not 404 / 500.
    let requests = [
        client.post(&base).json(&json!({"title": "NEW"})),
        client.put(&ns).json(&json!({"title": "RENAMED"})),
        client.delete(&ns),
    ];
    for request in requests {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 502);
        let body: Value = response.json().await.unwrap();
        assert_eq!(code(&body), 10042, "{body}");
        assert_eq!(body["success"], false);
    }
    // A request Miniflare rejects (its key listing's minimum limit is 10): 502, code 10043.
    let response = client
        .get(format!("{ns}/keys?limit=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), 10043, "{body}");

    // Bulk put of 1 100 items (item by item behind the server), bulk get, list with a
    // cursor, bulk delete both ways.
    let items: Vec<Value> = (0..1100)
        .map(|i| json!({"key": format!("bulk/{i:04}"), "value": format!("v{i}"), "metadata": {"i": i}}))
        .collect();
    let response = client
        .put(format!("{ns}/bulk"))
        .json(&items)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let body: Value = client
        .post(format!("{ns}/bulk/get"))
        .json(&json!({"keys": ["bulk/0003", "nope"], "withMetadata": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["result"]["values"]["bulk/0003"]["value"], "v3");
    assert_eq!(
        body["result"]["values"]["bulk/0003"]["metadata"],
        json!({"i": 3})
    );
    assert_eq!(body["result"]["values"]["nope"], Value::Null);
    let mut cursor = String::new();
    let mut names = Vec::new();
    for _ in 0..20 {
        let body: Value = client
            .get(format!(
                "{ns}/keys?prefix=bulk%2F&limit=500&cursor={cursor}"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        names.extend(
            body["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|key| key["name"].as_str().unwrap().to_owned()),
        );
        cursor = body["result_info"]["cursor"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(names.len(), 1100);
    let first: Vec<String> = (0..600).map(|i| format!("bulk/{i:04}")).collect();
    let rest: Vec<String> = (600..1100).map(|i| format!("bulk/{i:04}")).collect();
    let response = client
        .post(format!("{ns}/bulk/delete"))
        .json(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client
        .delete(format!("{ns}/bulk"))
        .json(&rest)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = client
        .get(format!("{ns}/keys?prefix=bulk%2F"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["result"], json!([]));

    // Single delete says whether the key existed.
    let body: Value = client
        .delete(format!("{ns}/values/a%2Fb"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["result"]["existed"], true);

    // The `kv` tool through `kv serve`: the 502 is the same typed error, said once.
    let create = fails(kv(&server.url, &["namespace", "create", "NEW"]));
    assert!(
        create.contains("does not serve namespace creation"),
        "{create}"
    );
    ok(kv(&server.url, &["-n", KV1, "key", "put", "k", "v"]));
    assert_eq!(ok(kv(&server.url, &["-n", KV1, "key", "get", "k"])), "v");
    let refused = fails(kv(
        &server.url,
        &["-n", KV1, "key", "put", "t", "v", "--ttl", "600"],
    ));
    assert!(refused.contains("expiration"), "{refused}");
}

/// The capabilities header follows the store behind the server: a backend told not to read
/// metadata from listings loses `metadata-header` once it learns Miniflare has no metadata
/// route, and the server stops promising it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_follow_the_store_behind() {
    let mf = Miniflare::start();
    let backend = tokio::time::timeout(
        CALL_TIMEOUT,
        kv_backends::http::HttpBackend::builder(mf.api_base())
            .metadata_from_listing(false)
            .connect(),
    )
    .await
    .unwrap()
    .unwrap();
    let store = kv_core::Store::new(backend);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = kv_server::router(store, kv_server::ServerConfig::default());
    let server =
        tokio::spawn(
            async move { kv_server::serve(listener, app, std::future::pending::<()>()).await },
        );
    let base = format!("http://{addr}/client/v4/accounts/acc/storage/kv/namespaces");
    let client = reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .build()
        .unwrap();

    let response = client.get(&base).send().await.unwrap();
    assert_eq!(response.headers()["x-kv-capabilities"], "metadata-header");
    let ns = format!("{base}/{KV1}");
    let form = reqwest::multipart::Form::new()
        .text("value", "v")
        .text("metadata", r#"{"a":1}"#);
    let response = client
        .put(format!("{ns}/values/k"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client.get(format!("{ns}/values/k")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-kv-metadata").is_none());
    assert_eq!(
        response.headers()["x-kv-capabilities"],
        "",
        "no metadata-header once the store is known to read no metadata"
    );
    server.abort();
}
