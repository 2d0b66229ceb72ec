//! A private Miniflare (from npm, installed globally) with its local explorer API, for one
//! test: loopback, a port the system picks, stopped when dropped. A missing `node` or
//! `miniflare` fails the test loudly (never skipped): `.ci/run` installs them.
//!
//! Started by `tests/data/miniflare_start.mjs` (Miniflare has no command line), which binds
//! the namespaces `kv1-id` (title `KV1`) and `kv2-id` (title `KV2`) and shuts Miniflare down
//! when its stdin closes, so even a test that panics leaves no workerd behind.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// What installs the clients these tests need.
const INSTALL_HINT: &str = "`npm install -g miniflare@4.20260426.0` (.ci/run installs it)";

/// The namespace ids Miniflare serves (its KV bindings).
pub const KV1: &str = "kv1-id";
/// The second namespace.
pub const KV2: &str = "kv2-id";

pub struct Miniflare {
    child: Option<Child>,
    /// Held open: Miniflare stops when it closes.
    stdin: Option<ChildStdin>,
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub origin: String,
}

impl Miniflare {
    /// Starts Miniflare and waits (at most 60 s) until it serves.
    pub fn start() -> Miniflare {
        let package = miniflare_package();
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../kv-backends/tests/data/miniflare_start.mjs");
        let mut child = Command::new("node")
            .arg(&script)
            .arg(&package)
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run node ({e}): install Node.js and {INSTALL_HINT}")
            });
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("ready ") {
                    let _ = sender.send(url.trim().trim_end_matches('/').to_owned());
                }
            }
        });
        let mut miniflare = Miniflare {
            child: Some(child),
            stdin,
            origin: String::new(),
        };
        match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(origin) => miniflare.origin = origin,
            Err(_) => panic!("Miniflare did not start within 60 s (see its output above)"),
        }
        miniflare
    }

    /// The explorer API's base: `GET` lists the namespaces.
    pub fn api_base(&self) -> String {
        format!("{}/cdn-cgi/explorer/api/storage/kv/namespaces", self.origin)
    }

    /// Writes `key` in KV1 through the worker's binding, with a 600 s TTL and metadata
    /// `{"via":"binding"}` (the explorer's REST PUT cannot keep a TTL).
    pub fn put_with_ttl_through_binding(&self, key: &str) {
        let url = format!("{}/put-ttl?k={key}", self.origin);
        let output = Command::new("node")
            .arg("-e")
            .arg("fetch(process.argv[1]).then(async r => { if (!r.ok) process.exit(1); console.log(await r.text()); })")
            .arg(&url)
            .output()
            .expect("node runs");
        assert!(output.status.success(), "the worker's /put-ttl failed");
    }

    /// Stops Miniflare: SIGTERM-like (closing its stdin) first, then a kill after 10 s.
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            for _ in 0..200 {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Miniflare {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The globally installed miniflare package (`$(npm root -g)/miniflare`).
fn miniflare_package() -> PathBuf {
    let output = Command::new("npm")
        .args(["root", "-g"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run npm ({e}): install Node.js and {INSTALL_HINT}"));
    assert!(
        output.status.success(),
        "`npm root -g` failed; install Node.js and {INSTALL_HINT}"
    );
    let root = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let package = Path::new(&root).join("miniflare");
    assert!(
        package.join("dist/src/index.js").is_file(),
        "miniflare is not installed globally (looked in {}): {INSTALL_HINT}",
        package.display()
    );
    package
}
