//! Test support for the cache tests: one fixture per backend (memory, file, redis) on a manual
//! clock,
//! every namespace seen through kv_core's fault injector (it counts calls, and fails or hangs
//! them on demand), and a scriptable origin.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use kv_backends::file::FileBackend;
use kv_backends::memory::MemoryBackend;
use kv_core::testing::{Faults, FaultyStore};
use kv_core::{ListOptions, ManualClock, Namespace, Store};
use tokio::sync::Semaphore;

#[path = "../../../kv-backends/tests/support/redis_server.rs"]
mod redis_server;

/// The manual clock's start: 2023-11-14T22:13:20Z.
pub const START: u64 = 1_700_000_000;

/// Runs each listed test body against the memory and the file backend.
///
/// A body is `async fn name(fx: Fixture)`.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::cache_support::Fixture::memory().await).await;
                }
            )*
        }
        mod file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::cache_support::Fixture::file().await).await;
                }
            )*
        }
    };
}

/// A namespace over a real backend, seen through a [`FaultyStore`], on a manual clock.
pub struct Fixture {
    pub clock: ManualClock,
    pub ns: Namespace,
    pub faults: Faults,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
    _server: Option<redis_server::RedisServer>,
    _store: Store,
}

impl Fixture {
    pub async fn memory() -> Fixture {
        let clock = ManualClock::at_unix_secs(START);
        let store = Store::new(MemoryBackend::builder().clock(clock.shared()).build());
        Self::over(store, clock, None, "memory").await
    }

    pub async fn file() -> Fixture {
        let clock = ManualClock::at_unix_secs(START);
        let dir = tempfile::tempdir().expect("temp dir");
        let backend = FileBackend::builder(dir.path().join("kv"))
            .clock(clock.shared())
            .open()
            .expect("file store");
        Self::over(Store::new(backend), clock, Some(dir), "file").await
    }

    /// A private redis-server (started for this test, stopped with the fixture).
    pub async fn redis() -> Fixture {
        let server = redis_server::RedisServer::start();
        let clock = ManualClock::at_unix_secs(START);
        let backend = kv_backends::redis::RedisBackend::builder(server.url())
            .clock(clock.shared())
            .connect()
            .await
            .expect("connecting to the test redis-server");
        let mut fixture = Self::over(Store::new(backend), clock, None, "redis").await;
        fixture._server = Some(server);
        fixture
    }

    async fn over(
        store: Store,
        clock: ManualClock,
        dir: Option<tempfile::TempDir>,
        backend: &'static str,
    ) -> Fixture {
        let real = store.namespace("CACHE").await.expect("namespace");
        let (ns, faults) = FaultyStore::wrap(&real);
        Fixture {
            clock,
            ns,
            faults,
            backend,
            _dir: dir,
            _server: None,
            _store: store,
        }
    }

    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// Every key in the namespace.
    pub async fn keys(&self) -> Vec<String> {
        let page = self.ns.list(&ListOptions::new()).await.expect("list");
        page.keys.into_iter().map(|k| k.name).collect()
    }
}

/// What the origin answers next.
#[derive(Debug, Clone)]
pub struct Script {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    /// The body; `{n}` becomes the call number and `{lang}` the request's Accept-Language.
    pub body: String,
    /// Answer `304` (with `headers`) when the request's If-None-Match holds this tag.
    pub etag: Option<String>,
    /// Fail with an error instead of answering (tower services only).
    pub fail: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: "v{n}".to_owned(),
            etag: None,
            fail: false,
        }
    }
}

/// A scriptable origin that counts its calls, records what it received, and can be held
/// closed (every call waits until it opens).
#[derive(Clone, Default)]
pub struct Origin {
    inner: Arc<OriginState>,
}

#[derive(Default)]
struct OriginState {
    calls: AtomicUsize,
    script: Mutex<Script>,
    received: Mutex<VecDeque<(http::Method, HeaderMap)>>,
    gate: Mutex<Option<Arc<Semaphore>>>,
}

impl Origin {
    pub fn new(script: Script) -> Self {
        let origin = Origin::default();
        origin.set(script);
        origin
    }

    pub fn set(&self, script: Script) {
        *self.inner.script.lock().unwrap() = script;
    }

    pub fn update(&self, change: impl FnOnce(&mut Script)) {
        change(&mut self.inner.script.lock().unwrap());
    }

    pub fn calls(&self) -> usize {
        self.inner.calls.load(Ordering::SeqCst)
    }

    /// The method and headers of the last request received.
    pub fn last_request(&self) -> Option<(http::Method, HeaderMap)> {
        self.inner.received.lock().unwrap().back().cloned()
    }

    /// Calls wait from now on until [`Origin::open`].
    pub fn close(&self) {
        *self.inner.gate.lock().unwrap() = Some(Arc::new(Semaphore::new(0)));
    }

    pub fn open(&self) {
        if let Some(gate) = self.inner.gate.lock().unwrap().take() {
            gate.add_permits(Semaphore::MAX_PERMITS / 2);
        }
    }

    /// Answers one request: `Err` when the script says fail.
    pub async fn answer<B>(
        &self,
        request: Request<B>,
    ) -> std::result::Result<Response<String>, std::io::Error> {
        let n = self.inner.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner
            .received
            .lock()
            .unwrap()
            .push_back((request.method().clone(), request.headers().clone()));
        let gate = self.inner.gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            let _permit = gate.acquire().await;
        }
        let script = self.inner.script.lock().unwrap().clone();
        if script.fail {
            return Err(std::io::Error::other("origin failure"));
        }
        let lang = request
            .headers()
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        let mut status = script.status;
        let mut body = script
            .body
            .replace("{n}", &n.to_string())
            .replace("{lang}", &lang);
        if let Some(etag) = &script.etag {
            let matches = request
                .headers()
                .get(http::header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
            if matches {
                status = StatusCode::NOT_MODIFIED;
                body.clear();
            }
        }
        let mut response = Response::new(body);
        *response.status_mut() = status;
        for (name, value) in &script.headers {
            response.headers_mut().append(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        if let Some(etag) = &script.etag {
            response.headers_mut().insert(
                http::header::ETAG,
                HeaderValue::from_str(etag).expect("etag"),
            );
        }
        Ok(response)
    }
}

/// Shorthand for a script with a `Cache-Control` header.
pub fn cache_control(value: &str) -> Script {
    Script {
        headers: vec![("cache-control", value.to_owned())],
        ..Script::default()
    }
}

/// Polls `condition` every few milliseconds for up to 5 seconds.
pub async fn eventually(mut condition: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not met within 5 s");
}

/// The layer most tests use: the store of `fx`, with `X-Cache`.
pub fn layer(fx: &Fixture) -> kv_middleware::cache::CacheLayer {
    kv_middleware::cache::CacheLayer::new(fx.ns.clone()).with_x_cache(true)
}

/// An axum app whose every route is the origin, behind the cache.
pub fn app(origin: &Origin, layer: kv_middleware::cache::CacheLayer) -> axum::Router {
    use axum::response::IntoResponse;
    let origin = origin.clone();
    let handler = move |request: Request<axum::body::Body>| {
        let origin = origin.clone();
        async move {
            match origin.answer(request).await {
                Ok(response) => response.into_response(),
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
    };
    axum::Router::new()
        .route("/{*path}", axum::routing::any(handler))
        .route_layer(layer)
}

/// A whole response: status, headers and the body as text.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// The header's value, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
    pub fn x_cache(&self) -> &str {
        self.header("x-cache")
    }
    pub fn cache_status(&self) -> &str {
        self.header("cache-status")
    }
    pub fn age(&self) -> &str {
        self.header("age")
    }
}

/// Sends `request` through `app` (any tower service) and reads the whole answer.
pub async fn send<S, Q, B>(app: &S, request: Request<Q>) -> Reply
where
    S: tower::Service<Request<Q>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}
