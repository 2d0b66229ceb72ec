//! Running the real `kv-demo` binary on a free port, and talking to it as a browser would
//! (cookies kept by hand, so every attribute can be checked).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use http::header::{COOKIE, SET_COOKIE};
use http::HeaderMap;

/// A `kv-demo` process; killed when dropped.
pub struct DemoProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The first line the demo printed.
    pub banner: String,
}

impl DemoProcess {
    /// Starts `kv-demo --listen 127.0.0.1:0 --store STORE ARGS...` in `dir` and waits for the
    /// line that says where it listens. Its log (warnings and errors) goes to `dir/kv-demo.log`,
    /// not into the test output.
    pub fn start(dir: &Path, store: &str, args: &[&str]) -> DemoProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("kv-demo.log"))
            .expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_kv-demo"))
            .current_dir(dir)
            .args(["--listen", "127.0.0.1:0", "--store", store])
            .args(args)
            .env_remove("KV_STORE")
            .env_remove("KV_ADMIN_TOKEN")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start kv-demo");
        let stdout = child.stdout.take().expect("stdout");
        let (lines, first) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let banner = match first.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("kv-demo printed nothing within 60 s");
            }
        };
        let url = banner
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {banner:?}"))
            .to_owned();
        DemoProcess { child, url, banner }
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `URL` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Kills the process with SIGKILL, as a crash or an OOM kill would.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("kv-demo did not stop within 5 s of SIGTERM");
    }
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that does not follow redirects and keeps no cookies of its own.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The `session` cookie a response sets, as its whole `Set-Cookie` line.
pub fn session_set_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("session="))
        .map(str::to_owned)
}

/// `name=value` of a `Set-Cookie` line, for a `Cookie` header.
pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .expect("cookie pair")
        .trim()
        .to_owned()
}

/// A request builder with the cookie attached.
pub fn with_cookie(request: reqwest::RequestBuilder, cookie: &str) -> reqwest::RequestBuilder {
    request.header(COOKIE, cookie)
}

/// Signs in as `user`; returns the cookie pair of the new session.
pub async fn login(client: &reqwest::Client, demo: &DemoProcess, user: &str) -> String {
    let response = client
        .post(demo.at("/login"))
        .form(&[("user", user)])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 303, "login answered {response:?}");
    cookie_pair(&session_set_cookie(response.headers()).expect("login sets the session cookie"))
}

/// GET `path` and decode its JSON body; panics unless the status is `expected`.
pub async fn get_json(
    client: &reqwest::Client,
    url: &str,
    cookie: Option<&str>,
    expected: u16,
) -> serde_json::Value {
    let mut request = client.get(url);
    if let Some(cookie) = cookie {
        request = with_cookie(request, cookie);
    }
    let response = request.send().await.expect("request");
    assert_eq!(response.status(), expected, "GET {url}");
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "GET {url}"
    );
    response.json().await.expect("json body")
}

/// A kv-server over `store` on its own runtime, as its own process would be: killing it closes
/// every socket at once, as a crash would, while the store (a memory store here) outlives it, as
/// a file store outlives a process. Usable from async tests: its runtimes start on their own
/// threads.
pub struct KvServerProcess {
    addr: SocketAddr,
    store: kv_core::Store,
    runtime: Option<tokio::runtime::Runtime>,
}

impl KvServerProcess {
    /// A kv-server over `store` on a free loopback port.
    pub fn start(store: kv_core::Store) -> KvServerProcess {
        Self::start_on(store, "127.0.0.1:0".parse().expect("address"))
    }

    fn start_on(store: kv_core::Store, addr: SocketAddr) -> KvServerProcess {
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let listener = runtime.block_on(async {
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    match tokio::net::TcpListener::bind(addr).await {
                        Ok(listener) => break listener,
                        Err(error) => {
                            assert!(Instant::now() < deadline, "rebinding {addr}: {error}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            });
            let addr = listener.local_addr().expect("local address");
            let router = kv_server::router(store.clone(), kv_server::ServerConfig::default());
            runtime.spawn(kv_server::serve(listener, router, std::future::pending()));
            KvServerProcess {
                addr,
                store,
                runtime: Some(runtime),
            }
        })
        .join()
        .expect("kv-server start")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops the server's runtime: every connection is cut.
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// Starts it again on the same port, over the same store.
    pub fn restart(&mut self) {
        self.kill();
        *self = KvServerProcess::start_on(self.store.clone(), self.addr);
    }
}

impl Drop for KvServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
