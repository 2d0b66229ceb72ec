//! The `kv` tool where wrangler has set expectations, run as the real binary: `kv bulk get`
//! (JSON out), a quiet `kv key delete` of a missing key unless `--strict`, confirmation (or
//! `--force`) before deleting many things, one namespace lookup per command (requests counted
//! by a proxy in front of a kv-server), and errors said once.

mod support;

#[path = "../../kv-backends/tests/support/closed_port.rs"]
mod closed_port;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use kv_server::ServerConfig;
use serde_json::{json, Value};
use support::TestServer;

/// No `kv` call in these tests takes more than a few seconds; this bounds a hang.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `kv --store STORE ARGS` with `stdin` (or none) under [`CALL_TIMEOUT`].
fn kv_in(store: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kv"));
    command
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("KV_STORE")
        .env_remove("KV_TOKEN");
    support::run_to_end(
        command,
        stdin,
        &format!("kv {}", args.join(" ")),
        CALL_TIMEOUT,
    )
}

fn kv(store: &str, args: &[&str]) -> Output {
    kv_in(store, args, None)
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn exit_code(output: &Output) -> i32 {
    output.status.code().expect("exited normally")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json_out(output: Output) -> Value {
    let text = ok(output);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn file_store(dir: &Path) -> String {
    format!("file:{}", dir.join("kv").display())
}

fn write_json(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(value).unwrap()).unwrap();
    path.display().to_string()
}

/// Asserts an error is one line and says each of its parts once.
fn said_once(output: &Output) {
    let text = stderr(output);
    assert_eq!(text.lines().count(), 1, "one line: {text:?}");
    let parts: Vec<&str> = text.trim().split(": ").collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(
            !parts[i + 1..].contains(part),
            "{part:?} said twice in {text:?}"
        );
    }
}

/// Writes 250 keys (`k000`..`k249`, value `v{i}`) with one bulk put.
fn put_250(store: &str, dir: &Path, namespace: &str) {
    let items: Vec<Value> = (0..250)
        .map(|i| json!({"key": format!("k{i:03}"), "value": format!("v{i}")}))
        .collect();
    let file = write_json(dir, "items.json", &Value::Array(items));
    assert_eq!(
        ok(kv(store, &["-n", namespace, "bulk", "put", &file])).trim(),
        "wrote 250 keys, 0 failed"
    );
}

#[test]
fn bulk_get_prints_json_from_a_file_and_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    let s = store.as_str();
    put_250(s, dir.path(), "default");

    // More keys than one bulk read takes (100): strings and `{name}` objects, as wrangler
    // accepts, plus missing keys, a repeated key and keys from arguments.
    let mut keys: Vec<Value> = (0..250)
        .map(|i| {
            let key = format!("k{i:03}");
            if i % 2 == 0 {
                json!(key)
            } else {
                json!({ "name": key })
            }
        })
        .collect();
    keys.push(json!("missing-1"));
    keys.push(json!("k007"));
    let file = write_json(dir.path(), "keys.json", &Value::Array(keys));
    let got = json_out(kv(
        s,
        &["bulk", "get", &file, "--key", "missing-2", "-k", "k001"],
    ));
    let object = got.as_object().expect("an object");
    assert_eq!(object.len(), 252, "250 present, 2 missing: {got}");
    for i in 0..250 {
        assert_eq!(got[format!("k{i:03}")], json!(format!("v{i}")));
    }
    assert_eq!(got["missing-1"], Value::Null);
    assert_eq!(got["missing-2"], Value::Null);
    assert!(
        object.contains_key("missing-2"),
        "a missing key is null, not absent"
    );

    // Keys from arguments alone, and a file from standard input.
    let got = json_out(kv(s, &["bulk", "get", "-k", "k010", "-k", "nope"]));
    assert_eq!(got, json!({"k010": "v10", "nope": null}));
    let got = json_out(kv_in(s, &["bulk", "get", "-"], Some(br#"["k011"]"#)));
    assert_eq!(got, json!({"k011": "v11"}));

    // With metadata: Cloudflare's `{value, metadata, expiration?}` for each present key.
    ok(kv(
        s,
        &[
            "key",
            "put",
            "meta",
            "m",
            "--metadata",
            r#"{"a":1}"#,
            "--ttl",
            "3600",
        ],
    ));
    let got = json_out(kv(
        s,
        &[
            "bulk",
            "get",
            "-k",
            "meta",
            "-k",
            "k000",
            "-k",
            "gone",
            "--metadata",
        ],
    ));
    assert_eq!(got["meta"]["value"], "m");
    assert_eq!(got["meta"]["metadata"], json!({"a": 1}));
    assert!(got["meta"]["expiration"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(got["k000"], json!({"value": "v0", "metadata": null}));
    assert_eq!(got["gone"], Value::Null);

    // A value that is not text is refused rather than mangled, unless asked for in base64.
    let binary = dir.path().join("binary");
    std::fs::write(&binary, [0xffu8, 0, 1]).unwrap();
    ok(kv(
        s,
        &["key", "put", "bin", "--path", &binary.display().to_string()],
    ));
    let refused = kv(s, &["bulk", "get", "-k", "bin", "-k", "k000"]);
    assert_eq!(exit_code(&refused), 3);
    assert!(refused.stdout.is_empty(), "nothing half-printed");
    assert!(
        stderr(&refused).contains("--base64"),
        "{}",
        stderr(&refused)
    );
    said_once(&refused);
    let got = json_out(kv(s, &["bulk", "get", "-k", "bin", "--base64"]));
    assert_eq!(got, json!({"bin": "/wAB"}));

    // Bad input: no keys at all is a usage error; items that are not keys are named.
    assert_eq!(exit_code(&kv(s, &["bulk", "get"])), 2);
    let bad = write_json(dir.path(), "bad.json", &json!(["ok", 5, {"key": "x"}]));
    let refused = kv(s, &["bulk", "get", &bad]);
    assert_eq!(exit_code(&refused), 3);
    assert!(
        stderr(&refused).contains("items 1, 2"),
        "{}",
        stderr(&refused)
    );
    said_once(&refused);
    let refused = kv(s, &["-n", "ghost", "bulk", "get", "-k", "k000"]);
    assert_eq!(exit_code(&refused), 1, "{}", stderr(&refused));
}

#[test]
fn key_delete_of_a_missing_key_is_quiet_unless_strict() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    let s = store.as_str();
    ok(kv(s, &["key", "put", "here", "v"]));

    let quiet = kv(s, &["key", "delete", "never-there"]);
    assert_eq!(exit_code(&quiet), 0);
    assert!(quiet.stdout.is_empty() && quiet.stderr.is_empty());

    let strict = kv(s, &["key", "delete", "never-there", "--strict"]);
    assert_eq!(exit_code(&strict), 1);
    assert!(stderr(&strict).contains("not found"));
    said_once(&strict);

    // --strict on a key that exists deletes it; the next --strict finds it gone.
    ok(kv(s, &["key", "delete", "here", "--strict"]));
    assert_eq!(exit_code(&kv(s, &["key", "get", "here"])), 1);
    assert_eq!(exit_code(&kv(s, &["key", "delete", "here", "--strict"])), 1);

    // A namespace that does not exist is still an error.
    assert_eq!(exit_code(&kv(s, &["-n", "ghost", "key", "delete", "k"])), 1);
}

#[test]
fn deleting_many_needs_force_without_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    let s = store.as_str();
    for title in ["A", "B", "C", "D", "E"] {
        ok(kv(s, &["-n", title, "key", "put", "k", "v"]));
    }
    let keys = write_json(dir.path(), "keys.json", &json!(["k"]));

    // Standard input is not a terminal (null, or a pipe that says yes): refused, exit 2.
    for stdin in [None, Some(&b"y\n"[..])] {
        let refused = kv_in(s, &["namespace", "delete", "A"], stdin);
        assert_eq!(exit_code(&refused), 2, "{}", stderr(&refused));
        assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
        said_once(&refused);
        let refused = kv_in(s, &["-n", "A", "bulk", "delete", &keys], stdin);
        assert_eq!(exit_code(&refused), 2, "{}", stderr(&refused));
        assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    }
    assert_eq!(
        ok(kv(s, &["-n", "A", "key", "get", "k"])),
        "v",
        "nothing gone"
    );
    assert_eq!(ok(kv(s, &["namespace", "list"])).lines().count(), 5);

    // Every spelling wrangler uses is accepted on both commands.
    ok(kv(s, &["namespace", "delete", "A", "--force"]));
    ok(kv(s, &["namespace", "delete", "B", "-y"]));
    ok(kv(s, &["namespace", "delete", "C", "--skip-confirmation"]));
    ok(kv(s, &["-n", "D", "bulk", "delete", &keys, "-f"]));
    ok(kv(
        s,
        &["-n", "E", "bulk", "delete", &keys, "--skip-confirmation"],
    ));
    let listed = ok(kv(s, &["namespace", "list"]));
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert_eq!(exit_code(&kv(s, &["-n", "D", "key", "get", "k"])), 1);
    assert_eq!(exit_code(&kv(s, &["-n", "E", "key", "get", "k"])), 1);

    // --force does not make a missing namespace a success.
    let missing = kv(s, &["namespace", "delete", "A", "--force"]);
    assert_eq!(exit_code(&missing), 1);
    said_once(&missing);
}

/// `script` (util-linux) runs the command on a pseudo-terminal and feeds it our input.
#[test]
fn a_terminal_is_asked_before_deleting() {
    let script_found = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        script_found,
        "`script` (util-linux) is needed for the terminal test; .ci/run installs it"
    );
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    ok(kv(&store, &["-n", "T", "key", "put", "k", "v"]));
    let keys = write_json(dir.path(), "keys.json", &json!(["k"]));
    let on_terminal = |args: &str, answer: &[u8]| {
        let line = format!("{} --store {} {args}", env!("CARGO_BIN_EXE_kv"), store);
        let mut command = Command::new("script");
        command
            .args(["-qec", &line, "/dev/null"])
            .env_remove("KV_STORE");
        let output = support::run_to_end(
            command,
            Some(answer),
            &format!("script -c '{args}'"),
            CALL_TIMEOUT,
        );
        (
            exit_code(&output),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };

    // No: nothing is deleted, and declining is not a failure.
    let (code, screen) = on_terminal(&format!("-n T bulk delete {keys}"), b"n\n");
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("Delete the 1 keys"), "{screen}");
    assert!(screen.contains("nothing deleted"), "{screen}");
    assert_eq!(ok(kv(&store, &["-n", "T", "key", "get", "k"])), "v");
    let (code, screen) = on_terminal("namespace delete T", b"\n");
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("Delete namespace \"T\""), "{screen}");
    assert!(ok(kv(&store, &["namespace", "list"])).contains("\tT"));

    // Yes: deleted.
    let (code, screen) = on_terminal(&format!("-n T bulk delete {keys}"), b"y\n");
    assert_eq!(code, 0, "{screen}");
    assert_eq!(exit_code(&kv(&store, &["-n", "T", "key", "get", "k"])), 1);
    let (code, screen) = on_terminal("namespace delete T", b"yes\n");
    assert_eq!(code, 0, "{screen}");
    assert!(!ok(kv(&store, &["namespace", "list"])).contains("\tT"));
}

/// A kv-server behind a proxy that records every request line (`METHOD path?query`).
struct CountedServer {
    runtime: tokio::runtime::Runtime,
    server: Option<TestServer>,
    proxy: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct Proxy {
    upstream: SocketAddr,
    client: reqwest::Client,
    log: Arc<Mutex<Vec<String>>>,
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    proxy
        .log
        .lock()
        .unwrap()
        .push(format!("{} {target}", parts.method));
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut upstream = proxy
        .client
        .request(parts.method, format!("http://{}{target}", proxy.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != http::header::HOST {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await.unwrap();
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != http::header::TRANSFER_ENCODING && name != http::header::CONTENT_LENGTH {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from(answer.bytes().await.unwrap()))
        .unwrap()
}

impl CountedServer {
    fn start() -> CountedServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (server, proxy) = runtime.block_on(async {
            let server = TestServer::start(ServerConfig::default()).await;
            let state = Proxy {
                upstream: server.addr,
                client: reqwest::Client::new(),
                log: log.clone(),
            };
            let app = axum::Router::new().fallback(forward).with_state(state);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let proxy = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            (server, proxy)
        });
        CountedServer {
            runtime,
            server: Some(server),
            proxy,
            log,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.proxy)
    }

    /// Runs `kv ARGS` against the server and returns its output with the requests it made.
    fn kv(&self, args: &[&str]) -> (Output, Vec<String>) {
        self.log.lock().unwrap().clear();
        let output = kv(&self.url(), args);
        (output, std::mem::take(&mut *self.log.lock().unwrap()))
    }

    fn create_namespace(&self, title: &str) -> String {
        let server = self.server.as_ref().unwrap();
        self.runtime
            .block_on(server.create_namespace(&reqwest::Client::new(), title))
    }
}

impl Drop for CountedServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), server.stop()).await
            });
        }
    }
}

/// Namespace listings (`GET …/namespaces[?…]`) among `requests`.
fn listings(requests: &[String]) -> usize {
    requests
        .iter()
        .filter(|r| {
            let path = r.split('?').next().unwrap();
            path.starts_with("GET ") && path.ends_with("/namespaces")
        })
        .count()
}

/// Requests that open the namespace `id` itself (`GET …/namespaces/{id}`).
fn opens(requests: &[String], id: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.starts_with("GET ") && r.ends_with(&format!("/namespaces/{id}")))
        .count()
}

#[test]
fn one_namespace_lookup_per_command_against_a_server() {
    let server = CountedServer::start();
    let id = server.create_namespace("habits");
    let dir = tempfile::tempdir().unwrap();

    // Opening the store costs one listing (the HTTP backend learns the server's capabilities
    // from it). A namespace named by its id needs nothing more than opening it: no listing.
    let (output, requests) = server.kv(&["-n", &id, "key", "put", "k", "v"]);
    ok(output);
    assert!(
        listings(&requests) <= 1,
        "by id, no lookup listing: {requests:#?}"
    );
    assert_eq!(opens(&requests, &id), 1, "{requests:#?}");
    let (output, requests) = server.kv(&["-n", &id, "key", "get", "k"]);
    assert_eq!(ok(output), "v");
    assert!(listings(&requests) <= 1, "{requests:#?}");
    assert_eq!(opens(&requests, &id), 1, "{requests:#?}");
    assert_eq!(requests.len(), 3, "probe, open, read: {requests:#?}");

    // By title: one listing to find it, besides the store's own.
    let (output, requests) = server.kv(&["-n", "habits", "key", "get", "k"]);
    assert_eq!(ok(output), "v");
    assert!(listings(&requests) <= 2, "{requests:#?}");
    assert_eq!(opens(&requests, &id), 1, "{requests:#?}");

    // A bulk get of 250 keys resolves the namespace once, not once per 100 keys.
    let items: Vec<Value> = (0..250)
        .map(|i| json!({"key": format!("k{i:03}"), "value": format!("v{i}")}))
        .collect();
    let items = write_json(dir.path(), "items.json", &Value::Array(items));
    ok(server.kv(&["-n", &id, "bulk", "put", &items]).0);
    let keys: Vec<String> = (0..250).map(|i| format!("k{i:03}")).collect();
    let keys = write_json(dir.path(), "keys.json", &json!(keys));
    let (output, requests) = server.kv(&["-n", &id, "bulk", "get", &keys, "-k", "absent"]);
    let got = json_out(output);
    assert_eq!(got.as_object().unwrap().len(), 251);
    assert_eq!(got["k249"], "v249");
    assert_eq!(got["absent"], Value::Null);
    assert!(listings(&requests) <= 1, "{requests:#?}");
    assert_eq!(opens(&requests, &id), 1);

    // Deleting a missing key is quiet against a server too; --strict says so.
    let (output, _) = server.kv(&["-n", &id, "key", "delete", "absent"]);
    assert_eq!(exit_code(&output), 0, "{}", stderr(&output));
    assert!(output.stderr.is_empty());
    let (output, _) = server.kv(&["-n", &id, "key", "delete", "absent", "--strict"]);
    assert_eq!(exit_code(&output), 1);
    said_once(&output);

    // Bulk delete: refused without --force before any request is made.
    let (output, requests) = server.kv(&["-n", &id, "bulk", "delete", &keys]);
    assert_eq!(exit_code(&output), 2);
    assert!(requests.is_empty(), "{requests:#?}");
    let (output, requests) = server.kv(&["-n", &id, "bulk", "delete", &keys, "--force"]);
    assert_eq!(ok(output).trim(), "deleted 250 keys, 0 failed");
    assert!(listings(&requests) <= 1, "{requests:#?}");
    assert_eq!(opens(&requests, &id), 1);
    let (output, _) = server.kv(&["-n", &id, "key", "list"]);
    assert_eq!(ok(output), "k\n");

    // Namespace delete: refused without --force before any request; then one listing to
    // resolve the argument and one delete.
    let (output, requests) = server.kv(&["namespace", "delete", &id]);
    assert_eq!(exit_code(&output), 2);
    assert!(requests.is_empty(), "{requests:#?}");
    let (output, requests) = server.kv(&["namespace", "delete", "habits", "-y"]);
    ok(output);
    assert!(listings(&requests) <= 2, "{requests:#?}");
    let deletes = requests.iter().filter(|r| r.starts_with("DELETE ")).count();
    assert_eq!(deletes, 1, "{requests:#?}");
    let (output, _) = server.kv(&["-n", &id, "key", "get", "k"]);
    assert_eq!(exit_code(&output), 1);
    said_once(&output);
}

#[test]
fn errors_are_said_once() {
    // Nothing listens on a port held bound (and not listening) for the test.
    let closed = closed_port::ClosedPort::new();
    let output = kv(&closed.http_url(), &["key", "get", "k"]);
    assert_eq!(exit_code(&output), 3);
    said_once(&output);
    assert!(stderr(&output).contains("refused"), "{}", stderr(&output));

    // A file store that cannot be created: the OS error once, not repeated by its wrapper.
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let output = kv(
        &format!("file:{}", blocker.join("kv").display()),
        &["key", "get", "k"],
    );
    assert_eq!(exit_code(&output), 3);
    said_once(&output);
    let text = stderr(&output);
    assert_eq!(text.matches("os error").count(), 1, "{text}");
}
