//! A kv-server on a free loopback port for the duration of a test.
#![allow(dead_code)]

use kv_core::{ManualClock, Store};
use kv_server::{router, serve_with_config, ServerConfig};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server; dropping it (or calling [`TestServer::stop`]) shuts it down.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub clock: ManualClock,
    pub store: Store,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// A server over a fresh memory store on a manual clock.
    pub async fn start(config: ServerConfig) -> TestServer {
        let clock = ManualClock::at_unix_secs(1_700_000_000);
        let backend = kv_backends::memory::MemoryBackend::builder()
            .clock(clock.shared())
            .build();
        Self::over(Store::new(backend), clock, config).await
    }

    /// A server over `store`, with the connection settings of `config` too.
    pub async fn over(store: Store, clock: ManualClock, config: ServerConfig) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(store.clone(), config.clone());
        let task = tokio::spawn(async move {
            serve_with_config(listener, app, &config, async {
                let _ = stopped.await;
            })
            .await
        });
        TestServer {
            addr,
            clock,
            store,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The API base URL for account `acc`.
    pub fn base(&self) -> String {
        format!(
            "http://{}/client/v4/accounts/acc/storage/kv/namespaces",
            self.addr
        )
    }

    /// Creates a namespace through the API and returns its id.
    pub async fn create_namespace(&self, client: &reqwest::Client, title: &str) -> String {
        let response = client
            .post(self.base())
            .json(&serde_json::json!({ "title": title }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["result"]["id"].as_str().unwrap().to_owned()
    }

    /// Signals shutdown and waits for the server to finish in-flight requests.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Checks an error envelope and returns its first error code.
pub async fn error_code(response: reqwest::Response, status: u16) -> u32 {
    assert_eq!(response.status().as_u16(), status, "status");
    let body: Value = response.json().await.expect("an error answer is JSON");
    assert_envelope(&body);
    assert_eq!(body["success"], false);
    assert!(body["result"].is_null());
    let error = &body["errors"][0];
    assert!(
        !error["message"].as_str().unwrap().is_empty(),
        "errors carry a message"
    );
    error["code"].as_u64().unwrap() as u32
}

/// Checks the envelope's shape.
pub fn assert_envelope(body: &Value) {
    assert!(body["success"].is_boolean(), "success: {body}");
    assert!(body["errors"].is_array(), "errors: {body}");
    assert!(body["messages"].is_array(), "messages: {body}");
    assert!(body.get("result").is_some(), "result: {body}");
    for error in body["errors"].as_array().unwrap() {
        assert!(error["code"].is_u64() && error["message"].is_string());
    }
}

/// A backend whose puts wait at a gate: lets a test hold a request inside the handler.
#[derive(Debug, Clone)]
pub struct GatedBackend {
    inner: kv_backends::memory::MemoryBackend,
    /// Notified when a put has reached the store.
    pub entered: std::sync::Arc<tokio::sync::Notify>,
    /// Released by the test to let the put finish.
    pub gate: std::sync::Arc<tokio::sync::Notify>,
}

impl GatedBackend {
    pub fn new() -> Self {
        GatedBackend {
            inner: kv_backends::memory::MemoryBackend::new(),
            entered: Default::default(),
            gate: Default::default(),
        }
    }
}

#[kv_core::async_trait]
impl kv_core::Backend for GatedBackend {
    fn kind(&self) -> &'static str {
        "gated"
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
    async fn open_namespace(
        &self,
        id: &str,
    ) -> kv_core::Result<std::sync::Arc<dyn kv_core::NamespaceStore>> {
        Ok(std::sync::Arc::new(GatedStore {
            inner: self.inner.open_namespace(id).await?,
            entered: self.entered.clone(),
            gate: self.gate.clone(),
        }))
    }
}

#[derive(Debug)]
struct GatedStore {
    inner: std::sync::Arc<dyn kv_core::NamespaceStore>,
    entered: std::sync::Arc<tokio::sync::Notify>,
    gate: std::sync::Arc<tokio::sync::Notify>,
}

#[kv_core::async_trait]
impl kv_core::NamespaceStore for GatedStore {
    fn kind(&self) -> &'static str {
        "gated"
    }
    fn capabilities(&self) -> kv_core::Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> kv_core::Result<Option<kv_core::Entry>> {
        self.inner.get(key).await
    }
    async fn put(
        &self,
        key: &str,
        entry: kv_core::NewEntry,
        mode: kv_core::WriteMode,
    ) -> kv_core::Result<kv_core::PutOutcome> {
        self.entered.notify_one();
        self.gate.notified().await;
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

/// Runs `command` to its end with `stdin` (or none), reading both pipes while it runs so a
/// chatty child cannot block on a full pipe; kills it and fails the test after `timeout`.
pub fn run_to_end(
    mut command: std::process::Command,
    stdin: Option<&[u8]>,
    what: &str,
    timeout: std::time::Duration,
) -> std::process::Output {
    use std::io::Read as _;
    use std::process::{Output, Stdio};
    use std::time::{Duration, Instant};
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
    if let Some(bytes) = stdin {
        let mut input = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = input.write_all(&bytes);
        });
    }
    // Read both pipes while waiting, so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = out.read_to_end(&mut buffer);
        buffer
    });
    let stderr = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = err.read_to_end(&mut buffer);
        buffer
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}
