//! The time our rate-limit layer adds to a request, against tower_governor's, on one axum app.
//!
//! - The app is one route, `GET /` answering `ok`. Six variants of it: `bare` (no layer),
//!   `ours` (`RateLimitLayer` on the memory backend, draft `RateLimit` headers, the default),
//!   `ours-no-headers` (`HeaderStyle::None`), `ours-hashmap` (`ours` over a minimal store
//!   written here, one mutex around a `HashMap` with versions, to separate the layer's cost from
//!   the memory backend's), `governor` (tower_governor 0.8's `GovernorLayer`, no headers, its
//!   default) and `governor-headers` (its `use_headers()`, `x-ratelimit-*`).
//!   Every layer is a `route_layer` keyed by peer IP, read from axum's `ConnectInfo`, which
//!   each request carries (as `into_make_service_with_connect_info` would set it).
//! - Quotas are large enough that every request is admitted (ours: `4000000000/s`; governor:
//!   one cell per nanosecond, burst `u32::MAX`): this measures the cost of admitting.
//! - Keys: one client (`single`), or 100 000 client addresses walked in a fixed pseudo-random
//!   order (`100000`), so every variant sees the same sequence.
//! - Requests are driven through the `Router` as a tower service (`ready` then `call`) in a
//!   loop on a current-thread tokio runtime; the request is built per iteration (the same for
//!   every variant, bare included) and the response dropped.
//!
//! After the criterion groups, a **paired** run alternates the variants in batches of 10 000
//! requests (rotating which goes first) for each key count and reports, per round, each
//! variant's time minus the bare app's (its *added* time), then the medians over rounds and
//! the median of the per-round ratios ours / governor. It writes
//! `target/tmp/kv-benches-rate-limit-paired.json` (`KV_BENCH_PAIRED_ROUNDS` sets the rounds,
//! default 30; 0 skips it).
//!
//! `cargo bench -p kv-benches --bench rate_limit`
//!
//! For instruction counts, which a busy machine does not disturb, the executable also runs one
//! variant alone: `KV_RATE_LIMIT_PROFILE=VARIANT,KEYS,REQUESTS` sends `REQUESTS` requests after
//! one unmeasured pass over the keys and exits, e.g. under
//! `valgrind --tool=callgrind target/release/deps/rate_limit-* ` with `ours,1,1000` and
//! `ours,1,11000`: the difference of the two totals / 10 000 is the instructions per request.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, BenchmarkId, Criterion};
use http::Request;
use kv_backends::memory::MemoryBackend;
use kv_benches::{
    bench_mode, current_thread_runtime, full_or_smoke, median, paired_rounds, pattern,
    write_paired, HashStore, Timing,
};
use kv_core::Store;
use kv_middleware::rate_limit::{HeaderStyle, RateLimitLayer, RateLimiter};
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::GovernorLayer;

const KEY_COUNTS: [usize; 2] = [1, 100_000];
const VARIANTS: [&str; 6] = [
    "bare",
    "ours",
    "ours-no-headers",
    "ours-hashmap",
    "governor",
    "governor-headers",
];

fn handler_app() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

/// The app as `axum::serve` runs it: with its state provided, so routes are not re-made per
/// request.
fn finished(router: Router) -> Router {
    router.with_state(())
}

/// The variant's app; `ours` on a fresh memory store.
fn app(rt: &Runtime, variant: &str) -> Router {
    finished(match variant {
        "bare" => handler_app(),
        "ours" | "ours-no-headers" | "ours-hashmap" => {
            let ns = if variant == "ours-hashmap" {
                HashStore::namespace("RATE_LIMITS")
            } else {
                rt.block_on(async {
                    let store = Store::new(MemoryBackend::new());
                    store.namespace("RATE_LIMITS").await.expect("namespace")
                })
            };
            let quota = "4000000000/s".parse().expect("quota");
            let limiter = RateLimiter::new(ns, "api", quota).expect("limiter");
            let style = if variant == "ours-no-headers" {
                HeaderStyle::None
            } else {
                HeaderStyle::Draft
            };
            handler_app().route_layer(RateLimitLayer::new(limiter).with_headers(style))
        }
        "governor" => {
            let config = GovernorConfigBuilder::default()
                .per_nanosecond(1)
                .burst_size(u32::MAX)
                .finish()
                .expect("governor config");
            handler_app().route_layer(GovernorLayer::new(Arc::new(config)))
        }
        "governor-headers" => {
            let config = GovernorConfigBuilder::default()
                .per_nanosecond(1)
                .burst_size(u32::MAX)
                .use_headers()
                .finish()
                .expect("governor config");
            handler_app().route_layer(GovernorLayer::new(Arc::new(config)))
        }
        other => unreachable!("unknown variant {other}"),
    })
}

/// The client addresses of `n` keys, in the order requests use them.
fn addresses(n: usize) -> Vec<SocketAddr> {
    pattern(n, 0x5eed_ba5e)
        .into_iter()
        .map(|i| {
            let ip = Ipv4Addr::from(0x0a00_0000u32 + i);
            SocketAddr::new(IpAddr::V4(ip), 40_000)
        })
        .collect()
}

/// One variant's app with its position in the address sequence.
struct Driver {
    router: Router,
    addrs: Arc<Vec<SocketAddr>>,
    next: usize,
}

impl Driver {
    /// Sends `count` requests; returns how long they took.
    fn run(&mut self, rt: &Runtime, count: usize) -> Duration {
        let addrs = self.addrs.clone();
        let router = &mut self.router;
        let start_at = self.next;
        self.next = self.next.wrapping_add(count);
        rt.block_on(async move {
            let mask = addrs.len() - 1;
            let start = Instant::now();
            for i in 0..count {
                let addr = addrs[(start_at + i) & mask];
                let mut request = Request::new(Body::empty());
                *request.uri_mut() = http::Uri::from_static("/");
                request.extensions_mut().insert(ConnectInfo(addr));
                let ready = ServiceExt::<Request<Body>>::ready(router)
                    .await
                    .expect("infallible");
                let response = ready.call(request).await.expect("infallible");
                debug_assert_eq!(response.status(), 200);
                black_box(response);
            }
            start.elapsed()
        })
    }
}

fn benches(criterion: &mut Criterion) {
    let rt = current_thread_runtime();
    let timing = Timing::from_env(1.0, 3.0, 30);
    let sets: Vec<(usize, Arc<Vec<SocketAddr>>)> = full_or_smoke(KEY_COUNTS, [1, 1_000])
        .iter()
        .map(|&n| (n, Arc::new(addresses(n))))
        .collect();

    let mut group = criterion.benchmark_group("rate-limit");
    group
        .warm_up_time(timing.warm_up)
        .measurement_time(timing.measurement)
        .sample_size(timing.samples);
    for (n, addrs) in &sets {
        let param = if *n == 1 {
            "single".to_owned()
        } else {
            n.to_string()
        };
        for variant in VARIANTS {
            let mut driver = Driver {
                router: app(&rt, variant),
                addrs: addrs.clone(),
                next: 0,
            };
            group.bench_function(BenchmarkId::new(variant, &param), |b| {
                b.iter_custom(|iters| driver.run(&rt, iters as usize));
            });
        }
    }
    group.finish();

    let rounds = paired_rounds(30);
    if rounds == 0 {
        return;
    }
    let batch = if bench_mode() { 10_000 } else { 10 };
    let mut results = serde_json::Map::new();
    for (n, addrs) in &sets {
        let label = if *n == 1 {
            "single".to_owned()
        } else {
            n.to_string()
        };
        let mut drivers: Vec<Driver> = VARIANTS
            .iter()
            .map(|variant| Driver {
                router: app(&rt, variant),
                addrs: addrs.clone(),
                next: 0,
            })
            .collect();
        // One unmeasured pass, so every key exists in every limiter before timing.
        for driver in &mut drivers {
            driver.run(&rt, full_or_smoke(addrs.len().min(200_000), 1_000));
        }
        let mut per_op = vec![Vec::with_capacity(rounds); VARIANTS.len()];
        for round in 0..rounds {
            for turn in 0..VARIANTS.len() {
                let v = (round + turn) % VARIANTS.len();
                let elapsed = drivers[v].run(&rt, batch);
                per_op[v].push(elapsed.as_nanos() as f64 / batch as f64);
            }
        }
        let added =
            |v: usize| -> Vec<f64> { (0..rounds).map(|r| per_op[v][r] - per_op[0][r]).collect() };
        let index = |name: &str| VARIANTS.iter().position(|v| *v == name).expect("variant");
        let ratio = |ours: &str, peer: &str| -> f64 {
            let (a, b) = (added(index(ours)), added(index(peer)));
            median(&(0..rounds).map(|r| a[r] / b[r]).collect::<Vec<_>>())
        };
        println!("paired rate-limit/{label}: {rounds} rounds x {batch} requests per variant");
        let mut medians = serde_json::Map::new();
        let mut added_medians = serde_json::Map::new();
        for (v, name) in VARIANTS.iter().enumerate() {
            let m = median(&per_op[v]);
            medians.insert((*name).to_owned(), m.into());
            if v == 0 {
                println!("  {name:<17} median {m:>9.1} ns/request");
            } else {
                let a = median(&added(v));
                added_medians.insert((*name).to_owned(), a.into());
                println!("  {name:<17} median {m:>9.1} ns/request, added {a:>8.1} ns");
            }
        }
        let with_headers = ratio("ours", "governor-headers");
        let without_headers = ratio("ours-no-headers", "governor");
        let hashmap = ratio("ours-hashmap", "governor-headers");
        println!("  added time ours / governor-headers: median {with_headers:.2}x");
        println!("  added time ours-no-headers / governor: median {without_headers:.2}x");
        println!("  added time ours-hashmap / governor-headers: median {hashmap:.2}x");
        results.insert(
            label,
            serde_json::json!({
                "rounds": rounds,
                "batch": batch,
                "median_ns_per_request": medians,
                "median_added_ns": added_medians,
                "median_ratio_ours_to_governor_headers": with_headers,
                "median_ratio_ours_no_headers_to_governor": without_headers,
                "median_ratio_ours_hashmap_to_governor_headers": hashmap,
            }),
        );
    }
    write_paired(env!("CARGO_TARGET_TMPDIR"), "rate-limit", &results.into());
}

/// `KV_RATE_LIMIT_PROFILE=VARIANT,KEYS,REQUESTS`: one variant alone (see the module docs).
fn profile(spec: &str) {
    let parts: Vec<&str> = spec.split(',').map(str::trim).collect();
    let [variant, keys, requests] = parts[..] else {
        panic!("KV_RATE_LIMIT_PROFILE is VARIANT,KEYS,REQUESTS, not {spec:?}");
    };
    assert!(VARIANTS.contains(&variant), "variants: {VARIANTS:?}");
    let keys: usize = keys.parse().expect("KEYS is a number");
    let requests: usize = requests.parse().expect("REQUESTS is a number");
    let rt = current_thread_runtime();
    let addrs = Arc::new(addresses(keys));
    let mut driver = Driver {
        router: app(&rt, variant),
        addrs: addrs.clone(),
        next: 0,
    };
    driver.run(&rt, addrs.len().min(200_000));
    let elapsed = driver.run(&rt, requests);
    println!(
        "{variant} over {keys} keys: {requests} requests, {:?} per request",
        elapsed / requests.max(1) as u32
    );
}

criterion_group!(rate_limit, benches);

fn main() {
    if let Ok(spec) = std::env::var("KV_RATE_LIMIT_PROFILE") {
        profile(&spec);
        return;
    }
    rate_limit();
    Criterion::default().configure_from_args().final_summary();
}
