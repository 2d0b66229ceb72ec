//! `TowerSessionsStore` under tower-sessions' own `SessionManagerLayer` and `Session`, on the
//! memory and file backends: handlers written for tower-sessions run unchanged; creates never
//! collide, even racing on one ID; expiry (including one shorter than the store's minimum TTL)
//! follows the store's manual clock; store failures become 500s and lose nothing acknowledged.
#![cfg(all(feature = "tower-sessions", feature = "axum"))]

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use kv_backends::file::FileBackend;
use kv_backends::memory::MemoryBackend;
use kv_core::testing::{Fault, Faults, FaultyStore, Ops};
use kv_core::{Capabilities, Clock, ManualClock, Namespace, Store};
use kv_middleware::session::TowerSessionsStore;
use tower::ServiceExt;
use tower_sessions::session::{Id, Record};
use tower_sessions::{Expiry, Session, SessionManagerLayer, SessionStore};

/// One backend's namespace on a manual clock that starts at the real time (tower-sessions
/// dates its records with the system clock), seen through a fault injector.
struct Fixture {
    ns: Namespace,
    faults: Faults,
    clock: ManualClock,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    async fn memory() -> Self {
        let clock = ManualClock::at_unix_secs(now_secs());
        let backend = MemoryBackend::builder().clock(clock.shared()).build();
        Self::over(Store::new(backend), clock, None).await
    }

    async fn file() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at_unix_secs(now_secs());
        let backend = FileBackend::builder(dir.path())
            .clock(clock.shared())
            .open()
            .unwrap();
        Self::over(Store::new(backend), clock, Some(dir)).await
    }

    async fn over(store: Store, clock: ManualClock, dir: Option<tempfile::TempDir>) -> Self {
        let real = store.namespace("SESSIONS").await.unwrap();
        let (ns, faults) = FaultyStore::wrap(&real);
        Fixture {
            ns,
            faults,
            clock,
            _dir: dir,
        }
    }

    async fn both() -> [(&'static str, Fixture); 2] {
        [
            ("memory", Self::memory().await),
            ("file", Self::file().await),
        ]
    }

    fn store(&self) -> TowerSessionsStore {
        TowerSessionsStore::new(self.ns.clone())
    }

    /// Keys in the namespace (what the store physically holds, unexpired).
    async fn keys(&self) -> Vec<String> {
        self.ns
            .list_all("")
            .map(|info| info.unwrap().name)
            .collect()
            .await
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The handlers a tower-sessions user already has: nothing here names our crate.
fn app(store: TowerSessionsStore, expiry: Expiry) -> Router {
    fn fail(error: tower_sessions::session::Error) -> StatusCode {
        eprintln!("session error: {error}");
        StatusCode::INTERNAL_SERVER_ERROR
    }
    Router::new()
        .route(
            "/incr",
            post(|session: Session| async move {
                let n: u64 = session.get("n").await.map_err(fail)?.unwrap_or(0) + 1;
                session.insert("n", n).await.map_err(fail)?;
                Ok::<_, StatusCode>(n.to_string())
            }),
        )
        .route(
            "/read",
            get(|session: Session| async move {
                let n: Option<u64> = session.get("n").await.map_err(fail)?;
                Ok::<_, StatusCode>(n.map_or("none".to_owned(), |n| n.to_string()))
            }),
        )
        .route(
            "/flush",
            post(|session: Session| async move {
                session.flush().await.map_err(fail)?;
                Ok::<_, StatusCode>("flushed")
            }),
        )
        .layer(
            SessionManagerLayer::new(store)
                .with_secure(false)
                .with_expiry(expiry),
        )
}

fn five_minutes() -> Expiry {
    Expiry::OnInactivity(time::Duration::minutes(5))
}

async fn send(app: &Router, method: &str, path: &str, cookie: Option<&str>) -> Reply {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        set_cookie,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

struct Reply {
    status: StatusCode,
    set_cookie: Option<String>,
    body: String,
}

impl Reply {
    /// The `name=value` pair of the `Set-Cookie` header.
    fn cookie(&self) -> String {
        let header = self.set_cookie.as_deref().expect("a Set-Cookie header");
        header.split(';').next().unwrap().to_owned()
    }

    fn ok(&self) -> &str {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.body);
        &self.body
    }
}

fn record(id: Id, n: u64, lifetime: time::Duration) -> Record {
    Record {
        id,
        data: [("n".to_owned(), serde_json::json!(n))]
            .into_iter()
            .collect(),
        expiry_date: time::OffsetDateTime::now_utc() + lifetime,
    }
}

#[tokio::test]
async fn the_session_manager_layer_inserts_reads_and_flushes_over_our_store() {
    for (backend, fixture) in Fixture::both().await {
        let app = app(fixture.store(), five_minutes());
        let first = send(&app, "POST", "/incr", None).await;
        assert_eq!(first.ok(), "1", "{backend}");
        let cookie = first.cookie();
        assert_eq!(
            send(&app, "POST", "/incr", Some(&cookie)).await.ok(),
            "2",
            "{backend}"
        );
        assert_eq!(
            send(&app, "GET", "/read", Some(&cookie)).await.ok(),
            "2",
            "{backend}"
        );

        // One record, stored under a hash: the cookie's ID is not in the store.
        let keys = fixture.keys().await;
        assert_eq!(keys.len(), 1, "{backend}: {keys:?}");
        let id = cookie.split_once('=').unwrap().1;
        assert!(keys[0].starts_with("tower-sessions:"), "{backend}");
        assert!(!keys[0].contains(id), "{backend}: the ID is stored hashed");

        // Stored with an expiration at the session's end (5 minutes of inactivity).
        let entry = fixture.ns.get_entry(&keys[0]).await.unwrap().unwrap();
        let expiration = entry.expiration.expect("an expiration");
        let ahead = expiration - fixture.clock.unix_secs();
        assert!((299..=301).contains(&ahead), "{backend}: {ahead}");

        let flushed = send(&app, "POST", "/flush", Some(&cookie)).await;
        assert_eq!(flushed.ok(), "flushed", "{backend}");
        assert!(
            fixture.keys().await.is_empty(),
            "{backend}: flush deleted it"
        );
        assert_eq!(
            send(&app, "GET", "/read", Some(&cookie)).await.ok(),
            "none",
            "{backend}: the flushed session is gone"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_on_one_id_never_collide() {
    for (backend, fixture) in Fixture::both().await {
        // Every call suspends once, so the racers interleave as over a network.
        fixture.faults.always(Ops::All, Fault::Yield);
        let store = fixture.store();
        let shared = Id::default();
        let racers: Vec<_> = (0..16u64)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut record = record(shared, n, time::Duration::minutes(5));
                    store.create(&mut record).await.unwrap();
                    (n, record.id)
                })
            })
            .collect();
        let mut ids = HashSet::new();
        let mut collided = 0;
        for racer in racers {
            let (n, id) = racer.await.unwrap();
            assert!(ids.insert(id), "{backend}: two creates got one ID");
            collided += usize::from(id != shared);
            let loaded = store.load(&id).await.unwrap().expect("the created record");
            assert_eq!(loaded.data["n"], serde_json::json!(n), "{backend}");
        }
        assert_eq!(
            collided, 15,
            "{backend}: all but one racer met the taken ID"
        );
        assert_eq!(fixture.keys().await.len(), 16, "{backend}");
    }
}

#[tokio::test]
async fn create_keeps_the_existing_record_without_compare_and_swap_too() {
    for cas in [true, false] {
        let fixture = Fixture::memory().await;
        if !cas {
            fixture.faults.report_capabilities(Capabilities::plain());
        }
        let store = fixture.store();
        let id = Id::default();
        let mut first = record(id, 1, time::Duration::minutes(5));
        store.create(&mut first).await.unwrap();
        let mut second = record(id, 2, time::Duration::minutes(5));
        store.create(&mut second).await.unwrap();
        assert_eq!(first.id, id, "cas {cas}");
        assert_ne!(second.id, id, "cas {cas}: the second create drew a new ID");
        let kept = store.load(&id).await.unwrap().unwrap();
        assert_eq!(kept.data["n"], serde_json::json!(1), "cas {cas}");
        assert_eq!(kept, first, "cas {cas}: the record round-trips exactly");
    }
}

#[tokio::test]
async fn sessions_expire_on_the_store_clock() {
    for (backend, fixture) in Fixture::both().await {
        let app = app(fixture.store(), five_minutes());
        let cookie = send(&app, "POST", "/incr", None).await.cookie();
        fixture.clock.advance(Duration::from_secs(4 * 60));
        assert_eq!(
            send(&app, "GET", "/read", Some(&cookie)).await.ok(),
            "1",
            "{backend}"
        );
        fixture.clock.advance(Duration::from_secs(2 * 60));
        assert_eq!(
            send(&app, "GET", "/read", Some(&cookie)).await.ok(),
            "none",
            "{backend}: ended after five minutes"
        );
        assert!(
            fixture.keys().await.is_empty(),
            "{backend}: the store dropped it"
        );
    }
}

#[tokio::test]
async fn an_expiry_shorter_than_the_minimum_ttl_ends_on_time_and_is_dropped_at_the_minimum() {
    for (backend, fixture) in Fixture::both().await {
        let app = app(
            fixture.store(),
            Expiry::OnInactivity(time::Duration::seconds(20)),
        );
        let cookie = send(&app, "POST", "/incr", None).await.cookie();
        let key = fixture.keys().await.remove(0);
        let entry = fixture.ns.get_entry(&key).await.unwrap().unwrap();
        assert_eq!(
            entry.expiration,
            Some(fixture.clock.unix_secs() + 60),
            "{backend}: stored for the store's minimum TTL"
        );
        fixture.clock.advance(Duration::from_secs(21));
        assert_eq!(
            send(&app, "GET", "/read", Some(&cookie)).await.ok(),
            "none",
            "{backend}: the session ended at its own expiry"
        );
        assert_eq!(fixture.keys().await, [key], "{backend}: the entry lingers");
        fixture.clock.advance(Duration::from_secs(40));
        assert!(
            fixture.keys().await.is_empty(),
            "{backend}: gone at the minimum"
        );
    }
}

#[tokio::test]
async fn saving_an_ended_record_deletes_it() {
    let fixture = Fixture::memory().await;
    let store = fixture.store();
    let mut live = record(Id::default(), 1, time::Duration::minutes(5));
    store.create(&mut live).await.unwrap();
    let ended = Record {
        expiry_date: time::OffsetDateTime::now_utc() - time::Duration::seconds(1),
        ..live.clone()
    };
    store.save(&ended).await.unwrap();
    assert!(fixture.keys().await.is_empty());
    assert!(store.load(&live.id).await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn store_failures_answer_500_and_lose_nothing_acknowledged() {
    let fixture = Fixture::memory().await;
    let app = app(
        fixture
            .store()
            .with_store_timeout(Some(Duration::from_secs(1))),
        five_minutes(),
    );
    let cookie = send(&app, "POST", "/incr", None).await.cookie();
    let mut acknowledged = 1u64;
    for (round, fault) in [
        Fault::Error,
        Fault::Hang,
        Fault::LostReply,
        Fault::LostReplyHang,
    ]
    .into_iter()
    .enumerate()
    {
        fixture.faults.clear().next(Ops::Writes, 1, fault);
        let reply = send(&app, "POST", "/incr", Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{fault:?}");
        // What the store holds now: the failed save's value if its reply alone was lost,
        // else the last acknowledged one. Either way never less than what was acknowledged.
        let stored: u64 = send(&app, "GET", "/read", Some(&cookie))
            .await
            .ok()
            .parse()
            .unwrap();
        let landed = matches!(fault, Fault::LostReply | Fault::LostReplyHang);
        assert_eq!(
            stored,
            acknowledged + u64::from(landed),
            "round {round}: {fault:?}"
        );
        acknowledged = stored;
        let reply = send(&app, "POST", "/incr", Some(&cookie)).await;
        assert_eq!(reply.ok(), (acknowledged + 1).to_string(), "{fault:?}");
        acknowledged += 1;
    }
    assert_eq!(fixture.faults.counts().lost_replies, 2);
}
