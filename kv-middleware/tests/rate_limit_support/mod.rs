//! Test support for the rate-limit tests: namespaces on a manual clock (memory, file, and a
//! memory store seen through kv_core's fault injector, with or without compare-and-swap), and
//! request helpers.
#![allow(dead_code)]

use std::net::SocketAddr;

use http::Request;
use kv_backends::file::FileBackend;
use kv_backends::memory::MemoryBackend;
use kv_core::testing::{Faults, FaultyStore};
use kv_core::{Capabilities, ManualClock, Namespace, Store};

/// The manual clock's start: 2023-11-14T22:13:20Z.
pub const START: u64 = 1_700_000_000;

/// A namespace with its manual clock (and the temporary directory of a file store).
pub struct Fixture {
    pub namespace: Namespace,
    pub clock: ManualClock,
    pub faults: Option<Faults>,
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
            faults: None,
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
            faults: None,
            _dir: Some(dir),
        }
    }

    /// The memory backend seen through kv_core's fault injector (with or without
    /// compare-and-swap).
    pub async fn faulty(cas: bool) -> Self {
        let memory = Self::memory().await;
        let (namespace, faults) = FaultyStore::wrap(&memory.namespace);
        if !cas {
            faults.report_capabilities(Capabilities::plain());
        }
        Fixture {
            namespace,
            clock: memory.clock,
            faults: Some(faults),
            _dir: None,
        }
    }

    /// The fault injector (of a [`Fixture::faulty`] fixture).
    pub fn faults(&self) -> &Faults {
        self.faults.as_ref().expect("a faulty fixture")
    }

    /// (reads of values, writes of values) so far: `get` and `get_many` calls, `put` calls.
    pub fn calls(&self) -> (u64, u64) {
        let counts = self.faults().counts();
        (counts.gets + counts.get_manys, counts.puts)
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
