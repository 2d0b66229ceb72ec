//! Test support for the session tests: one fixture per backend (seen through kv_core's fault
//! injector, which counts calls and fails them on demand), an axum app exercising every handle
//! method, and a small client.
#![allow(dead_code)]

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use http::{header, Request, StatusCode};
use kv_backends::file::FileBackend;
use kv_backends::memory::MemoryBackend;
use kv_core::testing::{Fault, Faults, FaultyStore, Ops};
use kv_core::{Capabilities, Entry, ManualClock, Namespace, Store};
use kv_middleware::session::{Session, SessionError, SessionId, SessionLayer};
use serde_json::Value;
use tower::ServiceExt;

/// The manual clock's start: 2023-11-14T22:13:20Z.
pub const START: u64 = 1_700_000_000;

/// Runs each listed test body against every backend: `memory`, `file`, and the memory
/// backend without compare-and-swap (`plain`) for the bodies that hold there too.
///
/// A body is `async fn name(fx: Fixture)`.
#[path = "../../../kv-backends/tests/support/redis_server.rs"]
mod redis_server;

macro_rules! backend_tests {
    (all: [$($name:ident),* $(,)?], cas: [$($cas_name:ident),* $(,)?] $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::session_support::Fixture::memory().await).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $cas_name() {
                    super::$cas_name(super::session_support::Fixture::memory().await).await;
                }
            )*
        }
        mod file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::session_support::Fixture::file().await).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $cas_name() {
                    super::$cas_name(super::session_support::Fixture::file().await).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::session_support::Fixture::redis().await).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $cas_name() {
                    super::$cas_name(super::session_support::Fixture::redis().await).await;
                }
            )*
        }
        mod plain {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::session_support::Fixture::plain().await).await;
                }
            )*
        }
    };
}

/// Calls that reached the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub gets: usize,
    pub puts: usize,
    pub deletes: usize,
}

/// A namespace on one backend, seen through kv_core's fault injector (which counts the calls
/// and fails reads or writes on demand), on a manual clock.
pub struct Fixture {
    pub backend: &'static str,
    pub clock: ManualClock,
    pub ns: Namespace,
    pub faults: Faults,
    failing_reads: AtomicBool,
    failing_writes: AtomicBool,
    _guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl fmt::Debug for Fixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixture")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Fixture {
    async fn over(
        backend: &'static str,
        store: Store,
        clock: ManualClock,
        cas: bool,
        guard: Option<Box<dyn std::any::Any + Send + Sync>>,
    ) -> Self {
        let ns = store.namespace("SESSIONS").await.expect("namespace");
        let (ns, faults) = FaultyStore::wrap(&ns);
        if !cas {
            // The namespace then refuses conditional writes, as over a store without them.
            faults.report_capabilities(Capabilities::plain());
        }
        Fixture {
            backend,
            clock,
            ns,
            faults,
            failing_reads: AtomicBool::new(false),
            failing_writes: AtomicBool::new(false),
            _guard: guard,
        }
    }

    pub async fn memory() -> Self {
        let clock = ManualClock::at_unix_secs(START);
        let backend = MemoryBackend::builder().clock(clock.shared()).build();
        Self::over("memory", Store::new(backend), clock, true, None).await
    }

    /// The memory backend, claiming no compare-and-swap.
    pub async fn plain() -> Self {
        let clock = ManualClock::at_unix_secs(START);
        let backend = MemoryBackend::builder().clock(clock.shared()).build();
        Self::over("plain", Store::new(backend), clock, false, None).await
    }

    pub async fn file() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let clock = ManualClock::at_unix_secs(START);
        let backend = FileBackend::builder(dir.path())
            .clock(clock.shared())
            .open()
            .expect("opening the file store");
        Self::over(
            "file",
            Store::new(backend),
            clock,
            true,
            Some(Box::new(dir)),
        )
        .await
    }

    /// A private redis-server (started for this test, stopped with the fixture).
    pub async fn redis() -> Self {
        let server = redis_server::RedisServer::start();
        let clock = ManualClock::at_unix_secs(START);
        let backend = kv_backends::redis::RedisBackend::builder(server.url())
            .clock(clock.shared())
            .connect()
            .await
            .expect("connecting to the test redis-server");
        Self::over(
            "redis",
            Store::new(backend),
            clock,
            true,
            Some(Box::new(server)),
        )
        .await
    }

    pub fn has_cas(&self) -> bool {
        self.ns.capabilities().atomic_conditional_writes
    }

    /// A session layer over this fixture's namespace.
    pub fn layer(&self) -> SessionLayer {
        SessionLayer::new(self.ns.clone())
    }

    /// The test app behind `layer`.
    pub fn app(&self, layer: SessionLayer) -> Router {
        app().layer(layer)
    }

    pub fn counts(&self) -> Counts {
        let counts = self.faults.counts();
        Counts {
            gets: counts.gets as usize,
            puts: counts.puts as usize,
            deletes: counts.deletes as usize,
        }
    }

    /// Store writes (puts and deletes) so far.
    pub fn writes(&self) -> usize {
        let counts = self.counts();
        counts.puts + counts.deletes
    }

    pub fn fail_reads(&self, fail: bool) {
        self.failing_reads.store(fail, Ordering::SeqCst);
        self.apply_failures();
    }

    pub fn fail_writes(&self, fail: bool) {
        self.failing_writes.store(fail, Ordering::SeqCst);
        self.apply_failures();
    }

    fn apply_failures(&self) {
        self.faults.clear();
        if self.failing_reads.load(Ordering::SeqCst) {
            self.faults.always(Ops::Reads, Fault::Error);
        }
        if self.failing_writes.load(Ordering::SeqCst) {
            self.faults.always(Ops::Writes, Fault::Error);
        }
    }

    pub fn now(&self) -> u64 {
        use kv_core::Clock;
        self.clock.unix_secs()
    }

    pub fn advance(&self, secs: u64) {
        self.clock.advance(std::time::Duration::from_secs(secs));
    }

    /// The stored record and entry of the session whose cookie value is `id`, read around the
    /// fault injector.
    pub async fn record(&self, id: &str) -> Option<(Value, Entry)> {
        let id: SessionId = id.parse().expect("a session id");
        let entry = self
            .ns
            .raw()
            .get(&id.store_key())
            .await
            .expect("store read")?;
        let record = serde_json::from_slice(&entry.value).expect("a JSON record");
        Some((record, entry))
    }
}

/// A handler's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Reply {
    /// The single `Set-Cookie` header, if there is exactly one.
    pub fn set_cookie(&self) -> Option<&str> {
        match self.set_cookies.as_slice() {
            [] => None,
            [one] => Some(one),
            many => panic!("expected at most one Set-Cookie, got {many:?}"),
        }
    }

    /// The `name=value` pair of the single `Set-Cookie`.
    pub fn cookie_pair(&self) -> Option<String> {
        self.set_cookie()
            .map(|c| c.split(';').next().unwrap_or_default().to_owned())
    }

    /// The value of the single `Set-Cookie`.
    pub fn cookie_value(&self) -> Option<String> {
        self.cookie_pair()
            .map(|pair| pair.split_once('=').expect("name=value").1.to_owned())
    }

    /// The `Max-Age` of the single `Set-Cookie`.
    pub fn max_age(&self) -> Option<u64> {
        let cookie = self.set_cookie()?;
        cookie
            .split("; ")
            .find_map(|attr| attr.strip_prefix("Max-Age="))
            .map(|n| n.parse().expect("a number"))
    }

    pub fn is_removal(&self) -> bool {
        self.set_cookie()
            .is_some_and(|c| c.contains("Max-Age=0") && c.split(';').next().unwrap().ends_with('='))
    }
}

/// Sends `GET path` (with a `Cookie` header when given) to `app`.
pub async fn send(app: &Router, path: &str, cookie: Option<&str>) -> Reply {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let set_cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ASCII cookie").to_owned())
        .collect();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    Reply {
        status,
        set_cookies,
        body: String::from_utf8(body.to_vec()).expect("UTF-8 body"),
    }
}

/// A browser: keeps the cookies the app sets (one per name) and sends them back.
#[derive(Debug, Clone)]
pub struct Browser {
    pub app: Router,
    pub cookies: Vec<(String, String)>,
}

impl Browser {
    pub fn new(app: Router) -> Self {
        Browser {
            app,
            cookies: Vec::new(),
        }
    }

    pub fn cookie_header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// The value of the cookie called `name`.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        let reply = send(&self.app, path, self.cookie_header().as_deref()).await;
        for set_cookie in &reply.set_cookies {
            let pair = set_cookie.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').expect("name=value");
            self.cookies.retain(|(n, _)| n != name);
            if !set_cookie.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        reply
    }
}

/// Routes exercising every handle method. Values in paths are JSON when they parse as JSON,
/// else strings.
pub fn app() -> Router {
    Router::new()
        .route("/untouched", get(|| async { "untouched" }))
        .route("/get/{key}", get(get_key))
        .route("/insert/{key}/{value}", get(insert))
        .route("/insert-then-remove/{key}", get(insert_then_remove))
        .route("/insert-then-fail/{key}", get(insert_then_fail))
        .route("/save-then-fail/{key}", get(save_then_fail))
        .route("/remove/{key}", get(remove))
        .route("/clear", get(clear))
        .route("/id", get(id))
        .route("/cycle", get(cycle))
        .route("/destroy", get(destroy))
        .route("/destroy-then-insert/{key}", get(destroy_then_insert))
        .route("/reload", get(reload))
        .route("/expiry/{kind}/{secs}", get(set_expiry))
        .route("/expiry", get(expiry))
        .route("/modified/{key}/{value}", get(modified))
}

fn parse_value(value: &str) -> Value {
    serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()))
}

async fn get_key(session: Session, Path(key): Path<String>) -> Result<String, SessionError> {
    Ok(match session.get_value(&key).await? {
        Some(value) => value.to_string(),
        None => "none".to_owned(),
    })
}

async fn insert(
    session: Session,
    Path((key, value)): Path<(String, String)>,
) -> Result<String, SessionError> {
    let previous = session.insert_value(&key, parse_value(&value)).await?;
    Ok(previous.map_or("none".to_owned(), |v| v.to_string()))
}

async fn insert_then_remove(
    session: Session,
    Path(key): Path<String>,
) -> Result<&'static str, SessionError> {
    session.insert(&key, "temporary").await?;
    session.remove_value(&key).await?;
    Ok("ok")
}

async fn insert_then_fail(session: Session, Path(key): Path<String>) -> StatusCode {
    match session.insert(&key, true).await {
        Ok(()) => StatusCode::INTERNAL_SERVER_ERROR,
        Err(_) => StatusCode::BAD_GATEWAY,
    }
}

async fn save_then_fail(session: Session, Path(key): Path<String>) -> StatusCode {
    let saved = async {
        session.insert(&key, "saved").await?;
        session.save().await
    };
    match saved.await {
        Ok(()) => StatusCode::SERVICE_UNAVAILABLE,
        Err(_) => StatusCode::BAD_GATEWAY,
    }
}

async fn remove(session: Session, Path(key): Path<String>) -> Result<String, SessionError> {
    Ok(match session.remove_value(&key).await? {
        Some(value) => value.to_string(),
        None => "none".to_owned(),
    })
}

async fn clear(session: Session) -> Result<&'static str, SessionError> {
    session.clear().await?;
    Ok("cleared")
}

async fn id(session: Session) -> Result<String, SessionError> {
    Ok(session.id().await?.to_string())
}

async fn cycle(session: Session) -> Result<String, SessionError> {
    Ok(session.cycle_id().await?.to_string())
}

async fn destroy(session: Session) -> Result<&'static str, SessionError> {
    session.destroy().await?;
    Ok("destroyed")
}

async fn destroy_then_insert(
    session: Session,
    Path(key): Path<String>,
) -> Result<&'static str, SessionError> {
    session.destroy().await?;
    session.insert(&key, "fresh").await?;
    Ok("ok")
}

async fn reload(session: Session) -> Result<String, SessionError> {
    session.insert("scratch", "unsaved").await?;
    session.reload().await?;
    Ok(session
        .get_value("scratch")
        .await?
        .map_or("none".to_owned(), |v| v.to_string()))
}

async fn set_expiry(
    session: Session,
    Path((kind, secs)): Path<(String, u64)>,
) -> Result<&'static str, SessionError> {
    use kv_middleware::session::Expiry;
    use std::time::{Duration, UNIX_EPOCH};
    let expiry = match kind.as_str() {
        "inactivity" => Expiry::OnInactivity(Duration::from_secs(secs)),
        "at" => Expiry::AtDateTime(UNIX_EPOCH + Duration::from_secs(secs)),
        "end" => Expiry::OnSessionEnd(Duration::from_secs(secs)),
        _ => return Ok("unknown kind"),
    };
    session.set_expiry(expiry).await?;
    Ok("set")
}

async fn expiry(session: Session) -> Result<String, SessionError> {
    Ok(format!("{:?}", session.expiry().await?))
}

async fn modified(
    session: Session,
    Path((key, value)): Path<(String, String)>,
) -> Result<String, SessionError> {
    let before = session.is_modified().await;
    session.insert_value(&key, parse_value(&value)).await?;
    let after = session.is_modified().await;
    Ok(format!("{before} {after}"))
}

/// An app whose `/race/{key}` handler loads the session, waits until `parties` requests have
/// loaded it, then sets `key`: every request saves against the same loaded version.
pub fn race_app(layer: SessionLayer, parties: usize) -> Router {
    let barrier = Arc::new(tokio::sync::Barrier::new(parties));
    Router::new()
        .route("/race/{key}", get(race))
        .with_state(barrier)
        .layer(layer)
}

async fn race(
    State(barrier): State<Arc<tokio::sync::Barrier>>,
    session: Session,
    Path(key): Path<String>,
) -> Result<&'static str, SessionError> {
    session.get_value("anything").await?;
    barrier.wait().await;
    session.insert(&key, true).await?;
    Ok("ok")
}
