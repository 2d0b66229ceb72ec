//! The session layer (kv-middleware, on the memory backend) against tower-sessions 0.15 (its
//! `MemoryStore`), both as axum layers around the same handlers, and the bare handlers without
//! any layer: the figure that matters is the time each layer adds per request.
//!
//! Scenarios (one request each, through `Router::oneshot` on a current-thread runtime):
//!
//! - `untouched`: a route behind the layer whose handler never touches the session (the request
//!   carries a valid session cookie);
//! - `read`: read one value of an existing session;
//! - `read_write`: read a counter of an existing session and write it back incremented;
//! - `create`: a request without a cookie whose handler writes one value (a new session each
//!   time; every criterion sample starts from an empty store).
//!
//! Our layer runs twice: on the memory backend (the real comparison) and on a minimal `HashMap`
//! store like tower-sessions' `MemoryStore` (to separate the layer's cost from the store's).
//! Both layers run with their defaults except `Secure`, which does not matter here (no browser);
//! ours uses rolling expiry (24 h), tower-sessions its default (`OnSessionEnd`). After the timings
//! the bench counts store writes for 1 000 read-only requests: ours with rolling expiry, one
//! request every 100 s of a manual clock (about 28 hours), against tower-sessions with
//! `with_always_save(true)` (its way to keep a rolling expiry alive).
//!
//! `cargo bench -p kv-benches --bench session` prints the medians and the ratios at the end
//! (from criterion's estimates of this run).
//!
//! For instruction counts, which a busy machine does not disturb, the executable also runs one
//! contender alone: `KV_SESSION_PROFILE=CONTENDER,SCENARIO,REQUESTS` sends `REQUESTS` requests
//! (after one unmeasured request) and exits, e.g. under
//! `valgrind --tool=callgrind target/release/deps/session-*` with `ours,read,1000` and
//! `ours,read,11000`: the difference of the two totals / 10 000 is the instructions per request.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, Criterion};
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, Request};
use kv_backends::memory::MemoryBackend;
use kv_benches::{current_thread_runtime, HashStore, Timing};
use kv_core::{ManualClock, Store};
use kv_middleware::session::{Session as OurSession, SessionLayer};
use tower::ServiceExt;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::{MemoryStore, Session as TheirSession, SessionManagerLayer};

const SCENARIOS: [&str; 4] = ["untouched", "read", "read_write", "create"];
const CONTENDERS: [&str; 4] = ["bare", "ours", "ours-hashmap", "tower-sessions"];

// ---- handlers: the same work for every contender ----

async fn untouched() -> &'static str {
    "ok"
}

async fn bare_read() -> String {
    black_box("ada").to_owned()
}

async fn bare_write() -> String {
    (black_box(41u64) + 1).to_string()
}

async fn ours_read(session: OurSession) -> String {
    session
        .get::<String>("user")
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

async fn ours_write(session: OurSession) -> String {
    let n = session.get::<u64>("n").await.ok().flatten().unwrap_or(0) + 1;
    let _ = session.insert("n", n).await;
    n.to_string()
}

async fn ours_create(session: OurSession) -> &'static str {
    let _ = session.insert("user", "ada").await;
    "ok"
}

async fn theirs_read(session: TheirSession) -> String {
    session
        .get::<String>("user")
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

async fn theirs_write(session: TheirSession) -> String {
    let n = session.get::<u64>("n").await.ok().flatten().unwrap_or(0) + 1;
    let _ = session.insert("n", n).await;
    n.to_string()
}

async fn theirs_create(session: TheirSession) -> &'static str {
    let _ = session.insert("user", "ada").await;
    "ok"
}

fn bare_app() -> Router {
    Router::new()
        .route("/untouched", get(untouched))
        .route("/read", get(bare_read))
        .route("/read_write", get(bare_write))
        .route("/create", get(untouched))
}

fn our_routes() -> Router {
    Router::new()
        .route("/untouched", get(untouched))
        .route("/read", get(ours_read))
        .route("/read_write", get(ours_write))
        .route("/create", get(ours_create))
        .route("/seed", get(ours_seed))
}

async fn ours_seed(session: OurSession) -> &'static str {
    let _ = session.insert("user", "ada").await;
    let _ = session.insert("n", 0u64).await;
    "seeded"
}

fn their_routes() -> Router {
    Router::new()
        .route("/untouched", get(untouched))
        .route("/read", get(theirs_read))
        .route("/read_write", get(theirs_write))
        .route("/create", get(theirs_create))
        .route("/seed", get(theirs_seed))
}

async fn theirs_seed(session: TheirSession) -> &'static str {
    let _ = session.insert("user", "ada").await;
    let _ = session.insert("n", 0u64).await;
    "seeded"
}

/// Creates a session through `app` and returns the `name=value` cookie for it.
async fn seed(app: &Router) -> HeaderValue {
    let response = app
        .clone()
        .oneshot(Request::get("/seed").body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let set_cookie = response
        .headers()
        .get(SET_COOKIE)
        .expect("the seed request sets a cookie")
        .to_str()
        .expect("ASCII");
    let pair = set_cookie.split(';').next().expect("name=value");
    HeaderValue::from_str(pair).expect("cookie pair")
}

fn request(path: &str, cookie: Option<&HeaderValue>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie.clone());
    }
    request.body(Body::empty()).expect("request")
}

struct Contender {
    name: &'static str,
    app: Router,
    cookie: HeaderValue,
}

fn contenders(rt: &tokio::runtime::Runtime) -> Vec<Contender> {
    rt.block_on(async {
        let store = Store::new(MemoryBackend::new());
        let ours = our_routes().layer(
            SessionLayer::new(store.namespace("SESSIONS").await.expect("namespace"))
                .with_secure(false),
        );
        let ours_hashmap = our_routes()
            .layer(SessionLayer::new(HashStore::namespace("SESSIONS")).with_secure(false));
        let theirs = their_routes()
            .layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false));
        let our_cookie = seed(&ours).await;
        let our_hashmap_cookie = seed(&ours_hashmap).await;
        let their_cookie = seed(&theirs).await;
        vec![
            Contender {
                name: "bare",
                app: bare_app(),
                // The bare handlers ignore it; sent so that every contender parses the same
                // request.
                cookie: our_cookie.clone(),
            },
            Contender {
                name: "ours",
                app: ours,
                cookie: our_cookie,
            },
            Contender {
                name: "ours-hashmap",
                app: ours_hashmap,
                cookie: our_hashmap_cookie,
            },
            Contender {
                name: "tower-sessions",
                app: theirs,
                cookie: their_cookie,
            },
        ]
    })
}

/// A contender's app over a new, empty store (for `create`).
async fn fresh_app(name: &str) -> Router {
    match name {
        "bare" => bare_app(),
        "ours" => {
            let store = Store::new(MemoryBackend::new());
            our_routes().layer(
                SessionLayer::new(store.namespace("SESSIONS").await.expect("namespace"))
                    .with_secure(false),
            )
        }
        "ours-hashmap" => our_routes()
            .layer(SessionLayer::new(HashStore::namespace("SESSIONS")).with_secure(false)),
        _ => their_routes()
            .layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false)),
    }
}

fn bench_sessions(c: &mut Criterion) {
    let rt = current_thread_runtime();
    let contenders = contenders(&rt);
    for scenario in SCENARIOS {
        let mut group = c.benchmark_group(format!("session/{scenario}"));
        let path = format!("/{scenario}");
        for contender in &contenders {
            if scenario == "create" {
                // Each sample starts from an empty store, so both stores hold as many sessions
                // as the sample made (criterion's sample sizes, not the contender's speed,
                // decide how large they grow).
                group.bench_function(contender.name, |b| {
                    b.to_async(&rt).iter_custom(|iters| {
                        let path = path.clone();
                        async move {
                            let app = fresh_app(contender.name).await;
                            let start = Instant::now();
                            for _ in 0..iters {
                                let request = request(&path, None);
                                black_box(app.clone().oneshot(request).await.expect("infallible"));
                            }
                            start.elapsed()
                        }
                    })
                });
                continue;
            }
            group.bench_function(contender.name, |b| {
                b.to_async(&rt).iter(|| {
                    let app = contender.app.clone();
                    let request = request(&path, Some(&contender.cookie));
                    async move { black_box(app.oneshot(request).await.expect("infallible")) }
                })
            });
        }
        group.finish();
    }
}

// ---- store writes for 1 000 read-only requests ----

/// tower-sessions' `MemoryStore`, counting the writes that reach it.
#[derive(Debug, Clone, Default)]
struct CountingStore {
    inner: MemoryStore,
    writes: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl SessionStore for CountingStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.create(record).await
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.save(record).await
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.inner.load(id).await
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(id).await
    }
}

const READS: usize = 1_000;
const SPACING_SECS: u64 = 100;

/// Writes made by `READS` read-only requests: (ours, ours within one second, tower-sessions).
fn count_writes(rt: &tokio::runtime::Runtime) -> (u64, u64, usize) {
    rt.block_on(async {
        let clock = ManualClock::new(std::time::SystemTime::now());
        let store = Store::new(MemoryBackend::builder().clock(clock.shared()).build());
        let layer = SessionLayer::new(store.namespace("SESSIONS").await.expect("namespace"))
            .with_secure(false);
        let ours = our_routes().layer(layer.clone());
        let cookie = seed(&ours).await;
        let before = layer.stats().writes;
        for _ in 0..READS {
            clock.advance(Duration::from_secs(SPACING_SECS));
            let _ = ours.clone().oneshot(request("/read", Some(&cookie))).await;
        }
        let spaced = layer.stats().writes - before;
        let before = layer.stats().writes;
        for _ in 0..READS {
            let _ = ours.clone().oneshot(request("/read", Some(&cookie))).await;
        }
        let burst = layer.stats().writes - before;

        let counting = CountingStore::default();
        let theirs = their_routes().layer(
            SessionManagerLayer::new(counting.clone())
                .with_secure(false)
                .with_always_save(true)
                .with_expiry(tower_sessions::Expiry::OnInactivity(
                    tower_sessions::cookie::time::Duration::hours(24),
                )),
        );
        let cookie = seed(&theirs).await;
        let before = counting.writes.load(Ordering::SeqCst);
        for _ in 0..READS {
            let _ = theirs
                .clone()
                .oneshot(request("/read", Some(&cookie)))
                .await;
        }
        (
            spaced,
            burst,
            counting.writes.load(Ordering::SeqCst) - before,
        )
    })
}

// ---- interleaved rounds ----

/// Requests per contender per round of the interleaved measurement.
const AB_REQUESTS: usize = 20_000;
/// Rounds of the interleaved measurement.
const AB_ROUNDS: usize = 15;

/// Mean time per request of `n` sequential requests, in nanoseconds.
async fn time_requests(app: &Router, path: &str, cookie: Option<&HeaderValue>, n: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        black_box(
            app.clone()
                .oneshot(request(path, cookie))
                .await
                .expect("infallible"),
        );
    }
    start.elapsed().as_secs_f64() * 1e9 / n as f64
}

/// The median over `AB_ROUNDS` rounds of each contender's time per request, the contenders
/// taking turns within each round (so that a change in the machine's load hits all alike).
/// Every round starts from new stores.
fn interleaved(rt: &tokio::runtime::Runtime, scenario: &str) -> [f64; 4] {
    let path = format!("/{scenario}");
    let mut times: [Vec<f64>; 4] = Default::default();
    rt.block_on(async {
        for _ in 0..AB_ROUNDS {
            for (i, name) in CONTENDERS.iter().enumerate() {
                let app = fresh_app(name).await;
                let cookie = if scenario == "create" {
                    None
                } else if *name == "bare" {
                    Some(seed(&fresh_app("ours").await).await)
                } else {
                    Some(seed(&app).await)
                };
                times[i].push(time_requests(&app, &path, cookie.as_ref(), AB_REQUESTS).await);
            }
        }
    });
    times.map(|mut t| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    })
}

// ---- the summary ----

fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/criterion")
}

/// The median of `session/<scenario>/<contender>` in nanoseconds, from criterion's estimates.
fn median(scenario: &str, contender: &str) -> Option<f64> {
    let path = criterion_dir()
        .join(format!("session_{scenario}"))
        .join(contender)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn micros(ns: Option<f64>) -> String {
    ns.map_or("n/a".into(), |ns| format!("{:.2} µs", ns / 1e3))
}

fn summary(rt: &tokio::runtime::Runtime) {
    println!();
    println!("== session: added time per request over the bare handler (medians)");
    println!();
    println!(
        "| scenario | bare | ours | ours, HashMap store | tower-sessions | added: ours | added: ours, HashMap store | added: tower-sessions | ours / tower-sessions | ours (HashMap store) / tower-sessions |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for scenario in SCENARIOS {
        let [bare, ours, ours_hashmap, theirs] = CONTENDERS.map(|c| median(scenario, c));
        let added = |t: Option<f64>| Some(t? - bare?);
        let ratio = |ours: Option<f64>, theirs: Option<f64>| match (ours, theirs) {
            (Some(o), Some(t)) if t > 0.0 => format!("{:.2}x", o / t),
            _ => "n/a".into(),
        };
        let (a_ours, a_hash, a_theirs) = (added(ours), added(ours_hashmap), added(theirs));
        println!(
            "| {scenario} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            micros(bare),
            micros(ours),
            micros(ours_hashmap),
            micros(theirs),
            micros(a_ours),
            micros(a_hash),
            micros(a_theirs),
            ratio(a_ours, a_theirs),
            ratio(a_hash, a_theirs),
        );
    }
    println!();
    println!(
        "== session: interleaved, median of {AB_ROUNDS} rounds of {AB_REQUESTS} requests per contender"
    );
    println!();
    println!(
        "| scenario | bare | added: ours | added: ours, HashMap store | added: tower-sessions | ours / tower-sessions | ours (HashMap store) / tower-sessions |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for scenario in SCENARIOS {
        let [bare, ours, ours_hashmap, theirs] = interleaved(rt, scenario);
        let (a_ours, a_hash, a_theirs) = (ours - bare, ours_hashmap - bare, theirs - bare);
        println!(
            "| {scenario} | {} | {} | {} | {} | {:.2}x | {:.2}x |",
            micros(Some(bare)),
            micros(Some(a_ours)),
            micros(Some(a_hash)),
            micros(Some(a_theirs)),
            a_ours / a_theirs,
            a_hash / a_theirs,
        );
    }

    let (spaced, burst, theirs) = count_writes(rt);
    println!();
    println!("== session: store writes for {READS} read-only requests");
    println!();
    println!("| contender | writes |");
    println!("| --- | --- |");
    println!(
        "| ours, rolling 24 h, refresh at half, one request every {SPACING_SECS} s (~{} h) | {spaced} |",
        READS as u64 * SPACING_SECS / 3600
    );
    println!("| ours, the same {READS} requests within one second | {burst} |");
    println!("| tower-sessions 0.15, `with_always_save(true)` | {theirs} |");
}

criterion_group! {
    name = benches;
    config = {
        let timing = Timing::from_env(1.0, 3.0, 30);
        Criterion::default()
            .warm_up_time(timing.warm_up)
            .measurement_time(timing.measurement)
            .sample_size(timing.samples)
    };
    targets = bench_sessions
}

/// `KV_SESSION_PROFILE=CONTENDER,SCENARIO,REQUESTS`: one contender's requests alone.
fn profile(spec: &str) {
    let usage = "KV_SESSION_PROFILE=CONTENDER,SCENARIO,REQUESTS";
    let mut parts = spec.split(',');
    let (Some(name), Some(scenario), Some(requests), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("{usage}");
    };
    let name = CONTENDERS
        .into_iter()
        .find(|c| *c == name)
        .unwrap_or_else(|| panic!("contender: one of {CONTENDERS:?}"));
    assert!(
        SCENARIOS.contains(&scenario),
        "scenario: one of {SCENARIOS:?}"
    );
    let requests: usize = requests.parse().expect(usage);
    let rt = current_thread_runtime();
    let per_request = rt.block_on(async {
        let app = fresh_app(name).await;
        let cookie = match (scenario, name) {
            ("create", _) => None,
            (_, "bare") => Some(seed(&fresh_app("ours").await).await),
            _ => Some(seed(&app).await),
        };
        let path = format!("/{scenario}");
        time_requests(&app, &path, cookie.as_ref(), 1).await;
        time_requests(&app, &path, cookie.as_ref(), requests).await
    });
    println!("{name} {scenario}: {requests} requests, {per_request:.0} ns per request");
}

fn main() {
    if let Ok(spec) = std::env::var("KV_SESSION_PROFILE") {
        profile(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    // The write counts BENCHMARKS.md and the README state, checked on every run (the smoke run
    // in CI included): on a manual clock they are exact.
    let (spaced, burst, theirs) = count_writes(&current_thread_runtime());
    assert_eq!(
        (spaced, burst),
        (2, 0),
        "ours: writes for {READS} read-only requests spread over ~27 h, and within one second"
    );
    assert_eq!(
        theirs, READS,
        "tower-sessions with always-save writes on every request"
    );
    // `cargo bench` passes `--bench`; `cargo test --benches` runs each bench once and needs no
    // summary.
    if std::env::args().any(|arg| arg == "--bench") {
        summary(&current_thread_runtime());
    }
}
