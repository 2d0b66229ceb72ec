//! Test support for the rate-limit tests: namespaces on a manual clock (memory, file, and a
//! memory store without compare-and-swap), a store wrapper that fails or hangs on demand, and
//! request helpers.
#![allow(dead_code)]

use std::future::pending;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use http::Request;
use kv_backends::file::FileBackend;
use kv_backends::memory::MemoryBackend;
use kv_core::{
    async_trait, Capabilities, DeleteOutcome, Entry, KvError, KvStore, Limits, ListOptions,
    ListPage, ManualClock, Message, Namespace, NewEntry, PutOutcome, Result, Store, WriteMode,
};

/// The manual clock's start: 2023-11-14T22:13:20Z.
pub const START: u64 = 1_700_000_000;

/// A namespace with its manual clock (and the temporary directory of a file store).
pub struct Fixture {
    pub namespace: Namespace,
    pub clock: ManualClock,
    pub store: Option<Arc<FaultyStore>>,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    /// The memory backend.
    pub async fn memory() -> Self {
        let clock = ManualClock::at_unix_secs(START);
        let store = Store::new(MemoryBackend::builder().clock(clock.shared()).build());
        let namespace = store.namespace("RATE_LIMITS").await.unwrap();
        Fixture {
            namespace,
            clock,
            store: None,
            _dir: None,
        }
    }

    /// The durable file backend in a temporary directory.
    pub async fn file() -> Self {
        let clock = ManualClock::at_unix_secs(START);
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::builder(dir.path().join("kv"))
            .clock(clock.shared())
            .open()
            .unwrap();
        let namespace = Store::new(backend).namespace("RATE_LIMITS").await.unwrap();
        Fixture {
            namespace,
            clock,
            store: None,
            _dir: Some(dir),
        }
    }

    /// The memory backend behind a [`FaultyStore`] (with or without compare-and-swap).
    pub async fn faulty(cas: bool) -> Self {
        let memory = Self::memory().await;
        let store = Arc::new(FaultyStore::new(memory.namespace.raw().clone(), cas));
        let namespace = Namespace::new(
            "RATE_LIMITS",
            store.clone(),
            Limits::default(),
            memory.clock.shared(),
        );
        Fixture {
            namespace,
            clock: memory.clock,
            store: Some(store),
            _dir: None,
        }
    }

    /// The faulty store (of a [`Fixture::faulty`] fixture).
    pub fn faults(&self) -> &FaultyStore {
        self.store.as_deref().expect("a faulty fixture")
    }
}

/// Wraps a store: counts calls, fails every call or hangs every call on demand, and may
/// claim no compare-and-swap.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn KvStore>,
    cas: bool,
    pub fail: AtomicBool,
    pub hang: AtomicBool,
    pub yielding: AtomicBool,
    pub gets: AtomicUsize,
    pub puts: AtomicUsize,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn KvStore>, cas: bool) -> Self {
        FaultyStore {
            inner,
            cas,
            fail: AtomicBool::new(false),
            hang: AtomicBool::new(false),
            yielding: AtomicBool::new(false),
            gets: AtomicUsize::new(0),
            puts: AtomicUsize::new(0),
        }
    }

    pub fn set_failing(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }

    /// Makes every call yield to the runtime once (as a remote store's would) before it runs.
    pub fn set_yielding(&self, yielding: bool) {
        self.yielding.store(yielding, Ordering::SeqCst);
    }

    pub fn set_hanging(&self, hang: bool) {
        self.hang.store(hang, Ordering::SeqCst);
    }

    /// (gets, puts) so far.
    pub fn calls(&self) -> (usize, usize) {
        (
            self.gets.load(Ordering::SeqCst),
            self.puts.load(Ordering::SeqCst),
        )
    }

    async fn fault(&self) -> Result<()> {
        if self.yielding.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        if self.hang.load(Ordering::SeqCst) {
            pending::<()>().await;
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(KvError::Unavailable {
                backend: "faulty",
                source: Box::new(Message("connection refused".to_owned())),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl KvStore for FaultyStore {
    fn kind(&self) -> &'static str {
        "faulty"
    }

    fn capabilities(&self) -> Capabilities {
        if self.cas {
            Capabilities::atomic()
        } else {
            Capabilities::plain()
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.fault().await?;
        self.inner.get(key).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.fault().await?;
        self.inner.get_many(keys).await
    }

    async fn put(&self, key: &str, entry: NewEntry, mode: WriteMode) -> Result<PutOutcome> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.fault().await?;
        self.inner.put(key, entry, mode).await
    }

    async fn delete(&self, key: &str, mode: WriteMode) -> Result<DeleteOutcome> {
        self.fault().await?;
        self.inner.delete(key, mode).await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        self.fault().await?;
        self.inner.list(options).await
    }
}

/// A request from `peer`, the way a hyper server (or axum's `ConnectInfo`) presents it.
pub fn request_from<B>(mut request: Request<B>, peer: &str) -> Request<B> {
    let addr: SocketAddr = peer.parse().expect("a socket address");
    request.extensions_mut().insert(addr);
    request
}

/// A GET of `path` from `peer`.
pub fn get_from(path: &str, peer: &str) -> Request<axum::body::Body> {
    request_from(
        Request::get(path).body(axum::body::Body::empty()).unwrap(),
        peer,
    )
}

/// The response's body as text.
pub async fn body_text(response: http::Response<axum::body::Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The header's value as text ("" when absent).
pub fn header(response: &http::Response<axum::body::Body>, name: &str) -> String {
    response
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join(" | ")
}
