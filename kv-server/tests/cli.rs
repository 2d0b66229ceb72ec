//! The `kv` binary run as a process: round trips, bulk files and exit codes.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

fn kv(store: &str, args: &[&str]) -> Output {
    kv_with_stdin(store, args, None)
}

fn kv_with_stdin(store: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kv"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("KV_STORE")
        .env_remove("KV_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kv runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
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

fn file_store(dir: &Path) -> String {
    format!("file:{}", dir.join("kv").display())
}

#[test]
fn put_get_list_delete_round_trip_on_the_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    let s = store.as_str();

    ok(kv(s, &["key", "put", "greeting", "hello world"]));
    assert_eq!(ok(kv(s, &["key", "get", "greeting"])), "hello world");

    // From a file, with metadata and a TTL.
    let path = dir.path().join("value.bin");
    std::fs::write(&path, [0u8, 1, 2, 255]).unwrap();
    let path = path.display().to_string();
    ok(kv(
        s,
        &[
            "key",
            "put",
            "bin",
            "--path",
            &path,
            "--ttl",
            "3600",
            "--metadata",
            r#"{"kind":"raw"}"#,
        ],
    ));
    let raw = kv(s, &["key", "get", "bin"]);
    assert!(raw.status.success());
    assert_eq!(raw.stdout, vec![0u8, 1, 2, 255]);

    // From standard input.
    ok(kv_with_stdin(
        s,
        &["key", "put", "piped"],
        Some(b"from stdin"),
    ));
    assert_eq!(ok(kv(s, &["key", "get", "piped"])), "from stdin");

    assert_eq!(ok(kv(s, &["key", "list"])), "bin\ngreeting\npiped\n");
    assert_eq!(ok(kv(s, &["key", "list", "--prefix", "p"])), "piped\n");
    let listed: Value = serde_json::from_str(&ok(kv(s, &["key", "list", "--json"]))).unwrap();
    assert_eq!(listed[0]["name"], "bin");
    assert_eq!(listed[0]["metadata"], json!({"kind": "raw"}));
    assert!(listed[0]["expiration"].as_u64().unwrap() > 1_700_000_000);
    assert!(listed[1].get("metadata").is_none());

    ok(kv(s, &["key", "delete", "greeting"]));
    assert_eq!(exit_code(&kv(s, &["key", "get", "greeting"])), 1);
    assert_eq!(ok(kv(s, &["key", "list"])), "bin\npiped\n");

    // Namespaces by title, listed with their ids.
    let id = ok(kv(s, &["namespace", "create", "OTHER"]))
        .trim()
        .to_owned();
    assert_eq!(id.len(), 32);
    ok(kv(s, &["--namespace", &id, "key", "put", "k", "in other"]));
    assert_eq!(ok(kv(s, &["-n", "OTHER", "key", "get", "k"])), "in other");
    let namespaces = ok(kv(s, &["namespace", "list"]));
    assert!(namespaces.contains(&format!("{id}\tOTHER")), "{namespaces}");
    ok(kv(s, &["namespace", "rename", "OTHER", "RENAMED"]));
    ok(kv(s, &["namespace", "delete", "RENAMED", "--force"]));
    assert_eq!(
        exit_code(&kv(s, &["namespace", "delete", "RENAMED", "--force"])),
        1
    );
}

#[test]
fn exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    let s = store.as_str();
    ok(kv(s, &["key", "put", "k", "v"]));

    let missing = kv(s, &["key", "get", "nope"]);
    assert_eq!(exit_code(&missing), 1);
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("not found"));
    assert_eq!(exit_code(&kv(s, &["-n", "ghost", "key", "get", "k"])), 1);
    // As on Workers KV, deleting a missing key succeeds; --strict makes it "not found".
    assert_eq!(exit_code(&kv(s, &["key", "delete", "nope"])), 0);
    assert_eq!(exit_code(&kv(s, &["key", "delete", "nope", "--strict"])), 1);

    assert_eq!(exit_code(&kv(s, &["key", "frobnicate"])), 2);
    assert_eq!(exit_code(&kv(s, &["key", "put"])), 2);
    assert_eq!(
        exit_code(&kv(s, &["key", "put", "k", "v", "--path", "x"])),
        2
    );
    assert_eq!(exit_code(&kv("gopher://nowhere", &["key", "list"])), 2);
    assert_eq!(
        exit_code(&kv(s, &["key", "put", "k", "v", "--metadata", "{bad"])),
        2
    );

    let short_ttl = kv(s, &["key", "put", "k", "v", "--ttl", "30"]);
    assert_eq!(exit_code(&short_ttl), 3);
    let stderr = String::from_utf8_lossy(&short_ttl.stderr);
    assert_eq!(stderr.lines().count(), 1);
    assert!(stderr.contains("60"), "names the limit: {stderr}");
    assert_eq!(
        ok(kv(s, &["key", "get", "k"])),
        "v",
        "nothing was overwritten"
    );
}

#[test]
fn bulk_put_and_delete_of_5000_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    let s = store.as_str();
    let items: Vec<Value> = (0..5000)
        .map(|i| {
            if i % 2 == 0 {
                json!({"key": format!("bulk:{i:05}"), "value": format!("v{i}")})
            } else {
                json!({"key": format!("bulk:{i:05}"), "value": "AAE=", "base64": true,
                       "expiration_ttl": 3600, "metadata": {"i": i}})
            }
        })
        .collect();
    let file = dir.path().join("items.json");
    std::fs::write(&file, serde_json::to_vec(&items).unwrap()).unwrap();
    let summary = ok(kv(s, &["bulk", "put", &file.display().to_string()]));
    assert_eq!(summary.trim(), "wrote 5000 keys, 0 failed");
    assert_eq!(ok(kv(s, &["key", "list"])).lines().count(), 5000);
    assert_eq!(ok(kv(s, &["key", "get", "bulk:00042"])), "v42");
    let raw = kv(s, &["key", "get", "bulk:00043"]);
    assert_eq!(raw.stdout, vec![0u8, 1]);

    // One bad item fails alone; the others are written.
    let mixed = json!([{"key": "good", "value": "g"}, {"key": "", "value": "x"},
                       {"key": "bad64", "value": "%%", "base64": true}]);
    let file = dir.path().join("mixed.json");
    std::fs::write(&file, serde_json::to_vec(&mixed).unwrap()).unwrap();
    let output = kv(s, &["bulk", "put", &file.display().to_string()]);
    assert_eq!(exit_code(&output), 3);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "wrote 1 keys, 2 failed"
    );
    assert_eq!(ok(kv(s, &["key", "get", "good"])), "g");

    let keys: Vec<String> = (0..5000).map(|i| format!("bulk:{i:05}")).collect();
    let file = dir.path().join("keys.json");
    std::fs::write(&file, serde_json::to_vec(&keys).unwrap()).unwrap();
    let summary = ok(kv(
        s,
        &["bulk", "delete", &file.display().to_string(), "--force"],
    ));
    assert_eq!(summary.trim(), "deleted 5000 keys, 0 failed");
    assert_eq!(ok(kv(s, &["key", "list"])), "good\n");

    let not_json = dir.path().join("broken.json");
    std::fs::write(&not_json, "[{").unwrap();
    assert_eq!(
        exit_code(&kv(s, &["bulk", "put", &not_json.display().to_string()])),
        3
    );
}

/// A `kv serve` child process; killed if the test fails before stopping it.
struct ServeProcess {
    child: std::process::Child,
    url: String,
}

impl ServeProcess {
    fn start(store: &str, token: Option<&str>) -> ServeProcess {
        use std::io::BufRead;
        let mut command = Command::new(env!("CARGO_BIN_EXE_kv"));
        command
            .args(["--store", store, "serve", "--listen", "127.0.0.1:0"])
            .env_remove("KV_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        let mut child = command.spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        ServeProcess {
            child,
            url: address,
        }
    }

    /// Sends SIGTERM and returns the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn kv_token(store: &str, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kv"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env("KV_TOKEN", token)
        .output()
        .unwrap()
}

#[test]
fn round_trip_against_a_running_server_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(&file_store(dir.path()), Some("s3cret"));
    let remote = server.url.clone();
    let run = |args: &[&str]| kv_token(&remote, "s3cret", args);

    ok(run(&["key", "put", "remote key/1", "über"]));
    assert_eq!(ok(run(&["key", "get", "remote key/1"])), "über");
    ok(run(&[
        "key",
        "put",
        "other",
        "x",
        "--ttl",
        "600",
        "--metadata",
        r#"{"m":1}"#,
    ]));
    assert_eq!(ok(run(&["key", "list"])), "other\nremote key/1\n");
    let listed: Value = serde_json::from_str(&ok(run(&["key", "list", "--json"]))).unwrap();
    assert_eq!(listed[0]["metadata"], json!({"m": 1}));
    ok(run(&["key", "delete", "other"]));
    assert_eq!(exit_code(&run(&["key", "get", "other"])), 1);
    assert!(ok(run(&["namespace", "list"])).contains("\tdefault"));

    // Without the token the server refuses, and the tool says so on one line.
    let refused = kv_token(&remote, "wrong", &["key", "get", "remote key/1"]);
    assert_eq!(exit_code(&refused), 3);
    assert_eq!(String::from_utf8_lossy(&refused.stderr).lines().count(), 1);

    // SIGTERM shuts the server down cleanly, and what it stored is in the file store.
    assert!(server.terminate().success());
    assert_eq!(
        ok(kv(&file_store(dir.path()), &["key", "get", "remote key/1"])),
        "über"
    );
}
