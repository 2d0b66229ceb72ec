//! OFREP in kv-server: the protocol's shapes and status codes over HTTP, the bulk ETag, the
//! bearer token, and the real OFREP client (the Python `openfeature-provider-ofrep` with
//! `openfeature-sdk`, from PyPI, installed by `.ci/run`) against `kv serve --flags-namespace`.

mod clients;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use clients::{require, run, scratch, succeeded, write_json};
use kv_middleware::flags::{FlagDefinition, FlagStore};
use kv_server::ServerConfig;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const TOKEN: &str = "ofrep-secret";

/// The flags every test serves: one per OpenFeature type, a targeted one, a disabled one.
fn document() -> Value {
    json!({
        "flags": {
            "new-ui": {"state": "ENABLED", "variants": {"on": true, "off": false},
                       "defaultVariant": "on", "metadata": {"owner": "growth", "ticket": 42,
                       "nested": {"dropped": true}}},
            "color": {"state": "ENABLED", "variants": {"red": "#c00", "blue": "#00c"},
                      "defaultVariant": "red", "targets": {"blue": ["user-7"]}},
            "limit": {"state": "ENABLED", "variants": {"low": 10, "high": 1000},
                      "defaultVariant": "low"},
            "ratio": {"state": "ENABLED", "variants": {"a": 0.25, "b": 0.75},
                      "defaultVariant": "b"},
            "theme": {"state": "ENABLED", "variants": {"dark": {"bg": "#000"}, "light": {"bg": "#fff"}},
                      "defaultVariant": "light"},
            "old-flow": {"state": "DISABLED", "variants": {"on": true, "off": false},
                         "defaultVariant": "on"}
        }
    })
}

async fn flag_store() -> FlagStore {
    let store = kv_backends::open("memory:").await.unwrap();
    let flags = FlagStore::builder(store.namespace("FLAGS").await.unwrap())
        .with_manual_refresh()
        .build();
    for (key, definition) in document()["flags"].as_object().unwrap() {
        let definition: FlagDefinition = serde_json::from_value(definition.clone()).unwrap();
        flags.set_flag(key, &definition).await.unwrap();
    }
    flags
}

/// A server on a free port with `config`; ends with the test's runtime.
async fn start(config: ServerConfig) -> String {
    let store = kv_backends::open("memory:").await.unwrap();
    let app = kv_server::router(store, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(kv_server::serve(listener, app, std::future::pending()));
    format!("http://{address}/ofrep/v1/evaluate/flags")
}

async fn post(client: &Client, url: &str, body: &str) -> (StatusCode, Value) {
    let response = client
        .post(url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn single_evaluations_have_ofreps_shapes_and_status_codes() {
    let base = start(
        ServerConfig::default()
            .with_token(TOKEN)
            .with_flags(flag_store().await),
    )
    .await;
    let client = Client::new();
    let url = |key: &str| format!("{base}/{key}");

    let (status, body) = post(&client, &url("new-ui"), "{}").await;
    assert_eq!(status, 200);
    // Only scalar metadata, as the protocol's schema allows.
    assert_eq!(
        body,
        json!({"key": "new-ui", "value": true, "variant": "on", "reason": "STATIC",
               "metadata": {"owner": "growth", "ticket": 42}})
    );

    let (status, body) = post(
        &client,
        &url("color"),
        r#"{"context":{"targetingKey":"user-7"}}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["value"], "#00c");
    assert_eq!(body["reason"], "TARGETING_MATCH");
    let (_, body) = post(
        &client,
        &url("color"),
        r#"{"context":{"targetingKey":"user-8"}}"#,
    )
    .await;
    assert_eq!(
        (body["value"].clone(), body["reason"].clone()),
        (json!("#c00"), json!("DEFAULT"))
    );

    // A body is optional: no context at all.
    let (status, body) = post(&client, &url("limit"), "").await;
    assert_eq!((status, body["value"].clone()), (StatusCode::OK, json!(10)));

    // Disabled: the code-default form, no value and no variant.
    let (status, body) = post(&client, &url("old-flow"), "{}").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"key": "old-flow", "reason": "DISABLED", "metadata": {}})
    );

    let (status, body) = post(&client, &url("nope"), "{}").await;
    assert_eq!(status, 404);
    assert_eq!(body["key"], "nope");
    assert_eq!(body["errorCode"], "FLAG_NOT_FOUND");
    assert!(body["errorDetails"].as_str().unwrap().contains("nope"));

    for bad in [
        "{",
        "[1]",
        r#"{"context":"x"}"#,
        r#"{"context":{"targetingKey":1}}"#,
    ] {
        let (status, body) = post(&client, &url("new-ui"), bad).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["errorCode"], "INVALID_CONTEXT", "{bad}");
        assert_eq!(body["key"], "new-ui");
        assert!(body["errorDetails"].is_string());
    }

    // Behind the server's token.
    let response = client.post(url("new-ui")).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = client
        .post(url("new-ui"))
        .bearer_auth("wrong")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // Too large a body: 413, with OFREP's general error shape or the server's envelope.
    let big = format!(
        r#"{{"context":{{"pad":"{}"}}}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let response = client
        .post(url("new-ui"))
        .bearer_auth(TOKEN)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn bulk_evaluation_carries_an_etag_that_follows_flags_and_context() {
    let flags = flag_store().await;
    let base = start(
        ServerConfig::default()
            .with_token(TOKEN)
            .with_flags(flags.clone()),
    )
    .await;
    let client = Client::new();
    let bulk = |body: &'static str, etag: Option<String>| {
        let mut request = client.post(&base).bearer_auth(TOKEN).body(body);
        if let Some(etag) = etag {
            request = request.header("if-none-match", etag);
        }
        request.send()
    };

    let response = bulk(r#"{"context":{"targetingKey":"user-7"}}"#, None)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let body: Value = response.json().await.unwrap();
    let flags_out = body["flags"].as_array().unwrap();
    let keys: Vec<&str> = flags_out
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["color", "limit", "new-ui", "old-flow", "ratio", "theme"]
    );
    assert_eq!(flags_out[0]["value"], "#00c");
    assert_eq!(
        flags_out[3],
        json!({"key": "old-flow", "reason": "DISABLED", "metadata": {}})
    );
    assert_eq!(flags_out[5]["value"], json!({"bg": "#fff"}));

    // Same flags, same context: 304 without a body, the same tag.
    let response = bulk(
        r#"{"context":{"targetingKey":"user-7"}}"#,
        Some(etag.clone()),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 304);
    assert_eq!(response.headers()["etag"], etag.as_str());
    assert!(response.bytes().await.unwrap().is_empty());

    // Another context evaluates differently: a full answer, though the flags did not change.
    let response = bulk(
        r#"{"context":{"targetingKey":"user-8"}}"#,
        Some(etag.clone()),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_ne!(response.headers()["etag"], etag.as_str());

    // A flag changes: the old tag no longer matches.
    flags
        .set_flag(
            "limit",
            &serde_json::from_value(json!({"state": "ENABLED",
            "variants": {"low": 10, "high": 1000}, "defaultVariant": "high"}))
            .unwrap(),
        )
        .await
        .unwrap();
    let response = bulk(
        r#"{"context":{"targetingKey":"user-7"}}"#,
        Some(etag.clone()),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["flags"][1]["value"], 1000);

    let response = bulk(r#"{"context":7}"#, None).await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorCode"], "INVALID_CONTEXT");
}

#[tokio::test]
async fn without_flags_there_are_no_ofrep_routes() {
    let base = start(ServerConfig::default()).await;
    let response = Client::new()
        .post(format!("{base}/x"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn before_the_first_load_evaluations_answer_500() {
    let store = kv_backends::open("memory:").await.unwrap();
    let flags = FlagStore::builder(store.namespace("FLAGS").await.unwrap())
        .with_manual_refresh()
        .build();
    let base = start(ServerConfig::default().with_flags(flags)).await;
    let client = Client::new();
    let (status, body) = post(&client, &format!("{base}/x"), "{}").await;
    assert_eq!(status, 500);
    assert!(body["errorDetails"].is_string());
    let (status, _) = post(&client, &base, "{}").await;
    assert_eq!(status, 500);
}

// ---- the real client ----

struct Served {
    child: Child,
    address: SocketAddr,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kv(store: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kv"));
    command
        .args(["--store", store])
        .env_remove("KV_STORE")
        .env_remove("KV_TOKEN")
        .stdin(Stdio::null());
    command
}

fn serve(store: &str) -> Served {
    let mut child = kv(store)
        .args(["--namespace", "FLAGS", "serve", "--listen", "127.0.0.1:0"])
        .args(["--token", TOKEN, "--flags-namespace", "FLAGS"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kv serve starts");
    let stdout = child.stdout.take().unwrap();
    let (sender, first) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = sender.send(line);
        }
        for _ in lines {}
    });
    let Ok(line) = first.recv_timeout(Duration::from_secs(30)) else {
        let _ = child.kill();
        panic!("kv serve did not start within 30 s");
    };
    assert!(line.contains("OFREP"), "{line}");
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    Served { child, address }
}

const PYTHON_CLIENT: &str = r#"
import json, sys
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.contrib.provider.ofrep import OFREPProvider

base, token = sys.argv[1], sys.argv[2]
api.set_provider(OFREPProvider(base, headers_factory=lambda: {"Authorization": "Bearer " + token}))
client = api.get_client()

def seen(d):
    return {"value": d.value, "variant": d.variant, "reason": str(d.reason) if d.reason else None,
            "error_code": str(d.error_code) if d.error_code else None,
            "metadata": dict(d.flag_metadata or {})}

user7 = EvaluationContext("user-7", {"plan": "pro"})
out = {
    "bool": seen(client.get_boolean_details("new-ui", False)),
    "string_targeted": seen(client.get_string_details("color", "none", user7)),
    "string_default": seen(client.get_string_details("color", "none", EvaluationContext("user-8"))),
    "int": seen(client.get_integer_details("limit", -1)),
    "float": seen(client.get_float_details("ratio", -1.0)),
    "object": seen(client.get_object_details("theme", {})),
    "disabled": seen(client.get_boolean_details("old-flow", False)),
    "missing": seen(client.get_boolean_details("nope", True)),
    "mismatch": seen(client.get_integer_details("color", 5)),
}
api.set_provider(OFREPProvider(base, headers_factory=lambda: {"Authorization": "Bearer wrong"}))
out["bad_token"] = seen(api.get_client().get_boolean_details("new-ui", False))
print(json.dumps(out))
"#;

#[test]
fn the_python_ofrep_provider_reads_kv_serve() {
    require(
        "the Python OFREP provider",
        Command::new("python3").args([
            "-c",
            "import importlib.metadata as m; import openfeature.contrib.provider.ofrep; print(m.version('openfeature-provider-ofrep'))",
        ]),
        "0.3.0",
        "pip install openfeature-provider-ofrep==0.3.0 openfeature-sdk==0.10.0",
    );
    let dir = scratch();
    let store = format!("file:{}", dir.path().join("kv-data").display());
    let file = write_json(dir.path(), "flags.json", &document());
    let out = run(
        kv(&store).args(["--namespace", "FLAGS", "flags", "import", &file]),
        "kv flags import",
        Duration::from_secs(60),
    );
    succeeded(out, "kv flags import");

    let server = serve(&store);
    let output = run(
        Command::new("python3")
            .args(["-c", PYTHON_CLIENT])
            .args([format!("http://{}", server.address), TOKEN.to_owned()]),
        "the Python OFREP client",
        Duration::from_secs(60),
    );
    let out = succeeded(output, "the Python OFREP client");
    let seen: Value = serde_json::from_str(out.trim()).expect("the script prints JSON");

    assert_eq!(
        seen["bool"],
        json!({"value": true, "variant": "on", "reason": "STATIC", "error_code": null,
               "metadata": {"owner": "growth", "ticket": 42}})
    );
    assert_eq!(seen["string_targeted"]["value"], "#00c");
    assert_eq!(seen["string_targeted"]["variant"], "blue");
    assert_eq!(seen["string_targeted"]["reason"], "TARGETING_MATCH");
    assert_eq!(seen["string_default"]["value"], "#c00");
    assert_eq!(seen["string_default"]["reason"], "DEFAULT");
    assert_eq!(seen["int"]["value"], 10);
    assert_eq!(seen["float"]["value"], 0.75);
    assert_eq!(seen["object"]["value"], json!({"bg": "#fff"}));
    // A disabled flag gives the caller's default.
    assert_eq!(seen["disabled"]["value"], false);
    assert_eq!(seen["missing"]["value"], true);
    assert_eq!(seen["missing"]["error_code"], "FLAG_NOT_FOUND");
    assert_eq!(seen["missing"]["reason"], "ERROR");
    assert_eq!(seen["mismatch"]["value"], 5);
    assert_eq!(seen["mismatch"]["error_code"], "TYPE_MISMATCH");
    assert_eq!(seen["bad_token"]["value"], false);
    assert_eq!(seen["bad_token"]["error_code"], "GENERAL");
}
