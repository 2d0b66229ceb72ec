//! What the tests of real Cloudflare clients share: the `kv` binary serving a store on a free
//! port, client processes run under a timeout, and REST calls that set the stage quickly.
//!
//! The clients (wrangler from npm, the `cloudflare` package from PyPI) are installed by
//! `.ci/run`; a test that finds one missing fails and says so, it never skips.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};

/// The account id every test uses in its paths (kv-server accepts any).
pub const ACCOUNT: &str = "acc";

/// How long one client call may take. A wrangler call takes 3 to 4 s here (node loading its
/// bundle); the bound is generous for a busy CI machine, and a client that loops forever (as
/// wrangler did against an unpaged listing) fails the test instead of hanging it.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(90);

/// `kv serve` run as the real binary over a memory store, on a free loopback port; dropping it
/// kills that process.
pub struct KvServe {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl KvServe {
    /// Starts `kv --store memory: serve --listen 127.0.0.1:0` and reads the address it picked
    /// from its first line of output.
    pub fn start() -> KvServe {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kv"))
            .args(["--store", "memory:", "serve", "--listen", "127.0.0.1:0"])
            .env_remove("KV_STORE")
            .env_remove("KV_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the kv binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (first_line, line) = mpsc::channel();
        // Keeps reading after the first line so the server never blocks on a full pipe.
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = first_line.send(line);
            }
            for _ in lines {}
        });
        let line = match line.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("kv serve did not say where it listens within 30 s");
            }
        };
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no listening address in kv serve's {line:?}"));
        KvServe { child, addr }
    }

    /// The base URL Cloudflare's clients take, `/client/v4` included.
    pub fn api_base(&self) -> String {
        format!("http://{}/client/v4", self.addr)
    }

    /// The namespace collection's URL.
    pub fn namespaces_url(&self) -> String {
        format!(
            "{}/accounts/{ACCOUNT}/storage/kv/namespaces",
            self.api_base()
        )
    }
}

impl Drop for KvServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` with stdin closed and its output collected, killing it if it runs longer
/// than `timeout` (and then failing the test with what it printed).
pub fn run(command: &mut Command, what: &str, timeout: Duration) -> Output {
    try_run(command, what, timeout).unwrap_or_else(|error| panic!("{what} does not start: {error}"))
}

/// [`run`], with a program that does not start as an error rather than a failed test.
///
/// The program runs in a process group of its own, and a timeout kills the whole group:
/// wrangler's launcher runs the real CLI as a child process, which would otherwise outlive it
/// (and keep the output pipes open).
pub fn try_run(command: &mut Command, what: &str, timeout: Duration) -> std::io::Result<Output> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let stdout = read_all(child.stdout.take().expect("stdout is piped"));
    let stderr = read_all(child.stderr.take().expect("stderr is piped"));
    let started = Instant::now();
    let status = loop {
        match child.try_wait().expect("waiting on a child process") {
            Some(status) => break status,
            None if started.elapsed() > timeout => {
                // The group's id is the child's pid (process_group(0)).
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                let out = collected(&stdout);
                let err = collected(&stderr);
                panic!(
                    "{what} did not finish within {timeout:?}\nstdout: {}\nstderr: {}",
                    tail(&out),
                    tail(&err)
                );
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    };
    Ok(Output {
        status,
        stdout: collected(&stdout),
        stderr: collected(&stderr),
    })
}

/// Reads a pipe to its end on a thread of its own.
fn read_all(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (send, receive) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = send.send(bytes);
    });
    receive
}

/// What a pipe carried, waiting a little for its end: a process that left a descendant
/// holding the pipe open must not hang the test.
fn collected(pipe: &mpsc::Receiver<Vec<u8>>) -> Vec<u8> {
    pipe.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| b"(output still open after the process ended)".to_vec())
}

/// The last few kilobytes of some output, as text.
pub fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let start = text.len().saturating_sub(4000);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    text[start..].to_owned()
}

/// The output of a call that must succeed, as text.
pub fn succeeded(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({:?})\nstdout: {}\nstderr: {}",
        output.status.code(),
        tail(&output.stdout),
        tail(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A runtime for the REST calls that prepare and check what the clients did.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A REST client whose every call is bounded.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// Creates namespaces with these titles through the REST API, 16 at a time; their ids in
/// the same order.
pub async fn create_namespaces(server: &KvServe, titles: &[String]) -> Vec<String> {
    let client = http();
    let url = server.namespaces_url();
    stream::iter(titles)
        .map(|title| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let response = client
                    .post(&url)
                    .json(&json!({ "title": title }))
                    .send()
                    .await?;
                assert_eq!(response.status(), 200, "creating namespace {title}");
                let body: Value = response.json().await?;
                Ok::<_, reqwest::Error>(body["result"]["id"].as_str().unwrap().to_owned())
            }
        })
        .buffered(16)
        .try_collect()
        .await
        .expect("namespaces are created")
}

/// Deletes namespaces by id through the REST API, 16 at a time.
pub async fn delete_namespaces(server: &KvServe, ids: &[String]) {
    let client = http();
    let base = server.namespaces_url();
    stream::iter(ids)
        .map(|id| {
            let (client, url) = (client.clone(), format!("{base}/{id}"));
            async move {
                let response = client.delete(&url).send().await?;
                assert_eq!(response.status(), 200, "deleting namespace {id}");
                Ok::<_, reqwest::Error>(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .expect("namespaces are deleted");
}

/// Every namespace as `(id, title)`, read page by page (1000 a page) until an empty page.
pub async fn all_namespaces(server: &KvServe) -> Vec<(String, String)> {
    let client = http();
    let mut all = Vec::new();
    for page in 1.. {
        let url = format!("{}?per_page=1000&page={page}", server.namespaces_url());
        let body: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        let items = body["result"].as_array().expect("a listing").clone();
        if items.is_empty() {
            break;
        }
        assert!(page < 100, "the listing never ends");
        all.extend(items.iter().map(|ns| {
            (
                ns["id"].as_str().unwrap().to_owned(),
                ns["title"].as_str().unwrap().to_owned(),
            )
        }));
    }
    all
}

/// Every key name in a namespace, read with the REST cursor.
pub async fn all_keys(server: &KvServe, ns: &str) -> Vec<Value> {
    let client = http();
    let mut keys = Vec::new();
    let mut cursor = String::new();
    for _ in 0..100 {
        let url = format!("{}/{ns}/keys", server.namespaces_url());
        let url = reqwest::Url::parse_with_params(&url, [("cursor", cursor.as_str())]).unwrap();
        let body: Value = client.get(url).send().await.unwrap().json().await.unwrap();
        keys.extend(body["result"].as_array().expect("a key listing").clone());
        cursor = body["result_info"]["cursor"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if cursor.is_empty() {
            return keys;
        }
    }
    panic!("the key listing never ends");
}

/// Fails unless `probe` (a `--version`-style call, run under [`CALL_TIMEOUT`]) prints
/// `version`, naming `.ci/run` as what installs `program`.
pub fn require(program: &str, probe: &mut Command, version: &str, install: &str) {
    let output = try_run(probe, program, CALL_TIMEOUT);
    let found = match output {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        }
        Ok(output) => format!(
            "an error: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(error) => format!("nothing ({error})"),
    };
    assert!(
        found.contains(version),
        "this test needs {program} {version}, found {found}; `.ci/run` installs it ({install})"
    );
}

/// A fresh directory for a client's home, config and working directory.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// Writes `value` as JSON to `name` in `dir`; the path as text.
pub fn write_json(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(value).unwrap()).unwrap();
    path.display().to_string()
}
