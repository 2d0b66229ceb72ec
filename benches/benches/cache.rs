//! The HTTP cache layer against a bare handler and against axum-response-cache, the peer with the
//! same shape (an axum layer that caches whole responses).
//!
//! - `cache-hit`: one request through an axum `Router` (`oneshot`, no network), body collected,
//!   for 1 000 paths cycled in a fixed pseudo-random order, every one already cached. The
//!   handler returns a 1 KiB body with `Content-Type` and `Cache-Control: max-age=3600`.
//!   Contenders: `bare` (the handler alone: what a hit must beat), `ours-memory` and
//!   `ours-file` (our layer on the memory and the file backend), `axum-response-cache` (its
//!   TTL cache, response headers kept). The added time of a cache is its time minus `bare`'s.
//! - `cache-throughput`: cached hits through a real HTTP/1.1 server (axum on hyper, one tokio
//!   worker thread) on 127.0.0.1, loaded by a closed-loop hyper client (32 keep-alive
//!   connections on one current-thread runtime, so server and client have a core each). The
//!   time is wall time / requests, so requests per second = 1 / time. Contenders: `bare-hello`
//!   (a hello-world handler), `ours-hit` and `axum-response-cache-hit` (the same handler
//!   behind each cache, always hit).
//! - `cache-herd`: 1 000 concurrent requests for one cold URL (a new one per herd) against an
//!   origin that takes 20 ms, on a two-worker runtime. The time is per herd; the origin calls
//!   per herd are printed after the run (ours: 1, by coalescing).
//!
//! Each of the first two also runs paired (the contenders in turn, 15 rounds, rotating who goes
//! first), which keeps the ratios honest on a machine whose speed drifts.
//!
//! `cargo bench -p kv-benches --bench cache` prints, after criterion's output, a summary with
//! the medians and ratios (from criterion's `estimates.json` files). `KV_CACHE_BENCH=hit`
//! (or `throughput`, `herd`, comma-separated) runs only those sections.
//!
//! For instruction counts, which a busy machine does not disturb, the executable also runs one
//! hit-path contender alone: `KV_CACHE_PROFILE=CONTENDER,REQUESTS` (`bare`, `ours-memory`,
//! `axum-response-cache`) sends `REQUESTS` hits after one unmeasured pass over the paths and
//! exits, e.g. under `valgrind --tool=callgrind target/release/deps/cache-*` with `1000` and
//! `11000`: the difference of the two totals / 10 000 is the instructions per request.

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion};
use http::{header, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use kv_backends::file::FileBackend;
use kv_backends::memory::MemoryBackend;
use kv_benches::{
    current_thread_runtime, full_or_smoke, multi_thread_runtime, paired, paired_rounds, Batch,
    Timing,
};
use kv_core::Store;
use kv_middleware::cache::CacheLayer;
use tower::ServiceExt;

const PATHS: usize = 1_000;
const BODY_LEN: usize = 1024;
const CONNECTIONS: usize = 32;
const HERD: usize = 1_000;
const HERD_ORIGIN_DELAY: Duration = Duration::from_millis(20);

/// The paths, in a fixed pseudo-random order (a stride coprime with their count).
fn paths() -> Vec<String> {
    (0..PATHS)
        .map(|i| format!("/item/{:07}", (i * 617 + 13) % PATHS))
        .collect()
}

fn body() -> Bytes {
    Bytes::from(
        (0..BODY_LEN)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// The origin of the hit-path benchmark: 1 KiB, cacheable for an hour.
fn item_app() -> Router {
    let body = body();
    Router::new().route(
        "/item/{id}",
        get(move || {
            let body = body.clone();
            async move {
                (
                    [
                        (header::CONTENT_TYPE, "application/octet-stream"),
                        (header::CACHE_CONTROL, "max-age=3600"),
                    ],
                    body,
                )
            }
        }),
    )
}

/// A hello world, cacheable for an hour.
fn hello_app() -> Router {
    Router::new().route(
        "/",
        get(|| async { ([(header::CACHE_CONTROL, "max-age=3600")], "Hello, World!") }),
    )
}

/// axum-response-cache's layer: a TTL cache of an hour, response headers kept. (A macro: its
/// type names the `cached` crate's store, which is not re-exported.)
macro_rules! peer_layer {
    () => {
        axum_response_cache::CacheLayer::with_lifespan(Duration::from_secs(3600))
            .add_response_headers()
    };
}

fn get_request(path: &str) -> Request<Body> {
    Request::get(path)
        .header(header::HOST, "bench.local")
        .body(Body::empty())
        .expect("request")
}

async fn send(app: &Router, path: &str) -> Bytes {
    let response = app
        .clone()
        .oneshot(get_request(path))
        .await
        .expect("infallible");
    assert!(response.status().is_success(), "{}", response.status());
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

async fn memory_layer() -> CacheLayer {
    let store = Store::new(MemoryBackend::new());
    CacheLayer::new(store.namespace("HTTP_CACHE").await.expect("namespace"))
}

fn file_layer(dir: &std::path::Path) -> (Store, impl std::future::Future<Output = CacheLayer>) {
    let store = Store::new(FileBackend::open(dir).expect("file store"));
    let for_layer = store.clone();
    (store, async move {
        CacheLayer::new(for_layer.namespace("HTTP_CACHE").await.expect("namespace"))
    })
}

fn hit_path(criterion: &mut Criterion, timing: Timing) {
    let rt = current_thread_runtime();
    let paths = paths();
    let dir = tempfile::tempdir().expect("temp dir");
    let (_file_store, file_layer) = file_layer(dir.path());
    let apps: Vec<(&str, Router)> = rt.block_on(async {
        let ours_memory = item_app().route_layer(memory_layer().await);
        let ours_file = item_app().route_layer(file_layer.await);
        let peer = item_app().route_layer(peer_layer!());
        let apps = vec![
            ("bare", item_app()),
            ("ours-memory", ours_memory),
            ("ours-file", ours_file),
            ("axum-response-cache", peer),
        ];
        for (_, app) in &apps {
            for path in &paths {
                assert_eq!(send(app, path).await.len(), BODY_LEN);
            }
        }
        apps
    });

    // Paired: the contenders in turn, so a machine whose speed drifts affects them alike.
    let rounds = paired_rounds(15);
    let contenders: Vec<(&str, Batch<'_>)> = ["ours-memory", "bare", "axum-response-cache"]
        .into_iter()
        .map(|name| {
            let app = &apps.iter().find(|(n, _)| *n == name).expect("contender").1;
            let (rt, paths) = (&rt, &paths);
            let batch: Batch<'_> = Box::new(move |n| {
                rt.block_on(async {
                    let start = Instant::now();
                    for i in 0..n {
                        black_box(send(app, &paths[i % PATHS]).await);
                    }
                    start.elapsed()
                })
            });
            (name, batch)
        })
        .collect();
    let batch = full_or_smoke(50_000, 100);
    paired("cache-hit (time per request)", rounds, batch, contenders);

    let mut group = criterion.benchmark_group("cache-hit");
    group
        .warm_up_time(timing.warm_up)
        .measurement_time(timing.measurement)
        .sample_size(timing.samples);
    for (name, app) in &apps {
        group.bench_function(BenchmarkId::new(*name, "1KiB"), |b| {
            let mut next = 0usize;
            b.to_async(&rt).iter(|| {
                let path = &paths[next % PATHS];
                next = next.wrapping_add(1);
                async move { black_box(send(app, path).await) }
            });
        });
    }
    group.finish();
}

/// Serves `app` on 127.0.0.1 from a runtime with one worker thread; the runtime lives as
/// long as the returned guard.
fn serve(app: Router) -> (SocketAddr, tokio::runtime::Runtime) {
    let rt = multi_thread_runtime(1);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    rt.spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (addr, rt)
}

/// `total` GET requests for `path` over `connections` keep-alive connections, as fast as the
/// server answers; the wall time of the requests (connecting is not timed).
async fn load(addr: SocketAddr, path: &'static str, total: u64, connections: usize) -> Duration {
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        senders.push(sender);
    }
    let start = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, mut sender)| {
            let n = total / connections as u64 + u64::from((i as u64) < total % connections as u64);
            tokio::spawn(async move {
                for _ in 0..n {
                    sender.ready().await.expect("ready");
                    let request = Request::get(path)
                        .header(header::HOST, "bench.local")
                        .body(Empty::<Bytes>::new())
                        .expect("request");
                    let response = sender.send_request(request).await.expect("response");
                    assert!(response.status().is_success());
                    black_box(response.into_body().collect().await.expect("body"));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("load task");
    }
    start.elapsed()
}

fn throughput(criterion: &mut Criterion, timing: Timing) {
    let client = current_thread_runtime();
    let peer = hello_app().route_layer(peer_layer!());
    let ours = client.block_on(async { hello_app().route_layer(memory_layer().await) });
    let servers = [
        ("bare-hello", serve(hello_app())),
        ("ours-hit", serve(ours)),
        ("axum-response-cache-hit", serve(peer)),
    ];
    let rounds = paired_rounds(15);
    let contenders: Vec<(&str, Batch<'_>)> = ["ours-hit", "bare-hello", "axum-response-cache-hit"]
        .into_iter()
        .map(|name| {
            let addr = servers
                .iter()
                .find(|(n, _)| *n == name)
                .expect("contender")
                .1
                 .0;
            let client = &client;
            let batch: Batch<'_> =
                Box::new(move |n| client.block_on(load(addr, "/", n as u64, CONNECTIONS)));
            (name, batch)
        })
        .collect();
    paired(
        "cache-throughput (time per request; throughput ratio = 1 / time ratio)",
        rounds,
        full_or_smoke(20_000, 100),
        contenders,
    );

    let mut group = criterion.benchmark_group("cache-throughput");
    group
        .warm_up_time(timing.warm_up)
        .measurement_time(timing.measurement)
        .sample_size(timing.samples);
    for (name, (addr, _server)) in &servers {
        // Fill the caches.
        client.block_on(load(*addr, "/", 1, 1));
        group.bench_function(BenchmarkId::new(*name, CONNECTIONS), |b| {
            b.iter_custom(|iters| client.block_on(load(*addr, "/", iters, CONNECTIONS)));
        });
    }
    group.finish();
}

/// An origin that takes [`HERD_ORIGIN_DELAY`] and counts its calls.
fn slow_app(calls: Arc<AtomicUsize>) -> Router {
    Router::new().route(
        "/herd/{n}",
        get(move || {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(HERD_ORIGIN_DELAY).await;
                ([(header::CACHE_CONTROL, "max-age=3600")], "herd")
            }
        }),
    )
}

/// One herd per iteration, each on a new URL; returns the total time.
async fn herds(app: &Router, iters: u64, next: &AtomicUsize) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let path = format!("/herd/{}", next.fetch_add(1, Ordering::SeqCst));
        let requests: Vec<_> = (0..HERD)
            .map(|_| {
                let app = app.clone();
                let path = path.clone();
                tokio::spawn(async move { send(&app, &path).await })
            })
            .collect();
        for request in requests {
            black_box(request.await.expect("request"));
        }
    }
    start.elapsed()
}

struct HerdCount {
    name: &'static str,
    calls: Arc<AtomicUsize>,
    herds: Arc<AtomicUsize>,
}

fn herd(criterion: &mut Criterion, timing: Timing) -> Vec<HerdCount> {
    let rt = multi_thread_runtime(2);
    let ours_calls = Arc::new(AtomicUsize::new(0));
    let peer_calls = Arc::new(AtomicUsize::new(0));
    let ours =
        rt.block_on(async { slow_app(ours_calls.clone()).route_layer(memory_layer().await) });
    let peer = slow_app(peer_calls.clone()).route_layer(peer_layer!());
    let counts = vec![
        HerdCount {
            name: "ours",
            calls: ours_calls,
            herds: Arc::new(AtomicUsize::new(0)),
        },
        HerdCount {
            name: "axum-response-cache",
            calls: peer_calls,
            herds: Arc::new(AtomicUsize::new(0)),
        },
    ];
    let mut group = criterion.benchmark_group("cache-herd");
    group
        .warm_up_time(timing.warm_up)
        .measurement_time(timing.measurement)
        .sample_size(10);
    for (app, count) in [ours, peer].iter().zip(&counts) {
        group.bench_function(BenchmarkId::new(count.name, HERD), |b| {
            b.iter_custom(|iters| rt.block_on(herds(app, iters, &count.herds)));
        });
    }
    group.finish();
    counts
}

fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("target/criterion")
}

/// The median in nanoseconds of `group/function/param` from this run.
fn median(group: &str, function: &str, param: &str) -> Option<f64> {
    let path = criterion_dir()
        .join(group)
        .join(function)
        .join(param)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn fmt_time(ns: Option<f64>) -> String {
    match ns {
        None => "n/a".into(),
        Some(ns) if ns < 1e3 => format!("{ns:.0} ns"),
        Some(ns) if ns < 1e6 => format!("{:.2} µs", ns / 1e3),
        Some(ns) => format!("{:.2} ms", ns / 1e6),
    }
}

fn summary(herd_counts: &[HerdCount]) {
    println!("\n== cache summary (medians)\n");
    println!("| hit path (oneshot, 1 KiB) | median | added over bare |");
    println!("| --- | --- | --- |");
    let bare = median("cache-hit", "bare", "1KiB");
    let mut added = Vec::new();
    for name in ["bare", "ours-memory", "ours-file", "axum-response-cache"] {
        let m = median("cache-hit", name, "1KiB");
        let extra = m.zip(bare).map(|(m, b)| m - b);
        added.push((name, extra));
        let extra = if name == "bare" {
            "-".to_owned()
        } else {
            fmt_time(extra)
        };
        println!("| {name} | {} | {extra} |", fmt_time(m));
    }
    let find = |n: &str| {
        added
            .iter()
            .find(|(name, _)| *name == n)
            .and_then(|(_, a)| *a)
    };
    if let (Some(ours), Some(peer)) = (find("ours-memory"), find("axum-response-cache")) {
        println!(
            "\nadded time, ours-memory / axum-response-cache: {:.2}x",
            ours / peer
        );
    }
    if let (Some(ours), Some(peer)) = (
        median("cache-hit", "ours-memory", "1KiB"),
        median("cache-hit", "axum-response-cache", "1KiB"),
    ) {
        println!(
            "whole request, ours-memory / axum-response-cache: {:.2}x",
            ours / peer
        );
    }

    println!(
        "\n| throughput ({CONNECTIONS} connections) | time per request | requests/s | vs bare |"
    );
    println!("| --- | --- | --- | --- |");
    let c = CONNECTIONS.to_string();
    let bare = median("cache-throughput", "bare-hello", &c);
    for name in ["bare-hello", "ours-hit", "axum-response-cache-hit"] {
        let m = median("cache-throughput", name, &c);
        let rps = m.map_or("n/a".into(), |m| format!("{:.0}", 1e9 / m));
        let ratio = m
            .zip(bare)
            .map_or("n/a".into(), |(m, b)| format!("{:.2}x", b / m));
        println!("| {name} | {} | {rps} | {ratio} |", fmt_time(m));
    }

    println!("\n| herd ({HERD} concurrent cold requests, origin {} ms) | time per herd | origin calls per herd |", HERD_ORIGIN_DELAY.as_millis());
    println!("| --- | --- | --- |");
    for count in herd_counts {
        let herds = count.herds.load(Ordering::SeqCst).max(1);
        let calls = count.calls.load(Ordering::SeqCst);
        let m = median("cache-herd", count.name, &HERD.to_string());
        println!(
            "| {} | {} | {:.1} ({calls} calls over {herds} herds) |",
            count.name,
            fmt_time(m),
            calls as f64 / herds as f64
        );
    }
}

/// Whether a section runs: all of them unless `KV_CACHE_BENCH` lists some (`hit`,
/// `throughput`, `herd`, comma-separated).
fn section(name: &str) -> bool {
    std::env::var("KV_CACHE_BENCH").map_or(true, |list| list.split(',').any(|s| s.trim() == name))
}

/// `KV_CACHE_PROFILE=CONTENDER,REQUESTS`: one hit-path contender alone (see the module docs).
fn profile(spec: &str) {
    let Some((contender, requests)) = spec.split_once(',') else {
        panic!("KV_CACHE_PROFILE is CONTENDER,REQUESTS, not {spec:?}");
    };
    let requests: usize = requests.trim().parse().expect("REQUESTS is a number");
    let rt = current_thread_runtime();
    let paths = paths();
    let app = rt.block_on(async {
        match contender.trim() {
            "bare" => item_app(),
            "ours-memory" => item_app().route_layer(memory_layer().await),
            "axum-response-cache" => item_app().route_layer(peer_layer!()),
            other => panic!("contenders: bare, ours-memory, axum-response-cache; not {other:?}"),
        }
    });
    let elapsed = rt.block_on(async {
        for path in &paths {
            assert_eq!(send(&app, path).await.len(), BODY_LEN);
        }
        let start = Instant::now();
        for i in 0..requests {
            black_box(send(&app, &paths[i % PATHS]).await);
        }
        start.elapsed()
    });
    println!(
        "{contender}: {requests} hits, {:?} per request",
        elapsed / requests.max(1) as u32
    );
}

fn main() {
    if let Ok(spec) = std::env::var("KV_CACHE_PROFILE") {
        profile(&spec);
        return;
    }
    let timing = Timing::from_env(1.0, 3.0, 20);
    let mut criterion = Criterion::default().configure_from_args();
    if section("hit") {
        hit_path(&mut criterion, timing);
    }
    if section("throughput") {
        throughput(&mut criterion, timing);
    }
    let counts = if section("herd") {
        herd(&mut criterion, timing)
    } else {
        Vec::new()
    };
    criterion.final_summary();
    summary(&counts);
    // The claim of BENCHMARKS.md, checked on every run (the smoke run in CI included), not only
    // printed: however many herds ran, the cache called the origin once for each.
    for count in counts.iter().filter(|count| count.name == "ours") {
        let herds = count.herds.load(Ordering::SeqCst);
        let calls = count.calls.load(Ordering::SeqCst);
        assert!(herds > 0, "no herd ran");
        assert_eq!(
            calls, herds,
            "one origin call per herd of {HERD} cold requests"
        );
    }
}
