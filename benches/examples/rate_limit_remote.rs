//! The rate limiter over remote stores (Redis, and a kv-server through the HTTP backend): store
//! round trips per check, and the latency a check adds, against one plain `get` on the same
//! store (one round trip).
//!
//! ```text
//! cargo run --release -p kv-benches --example rate-limit-remote [-- ROUNDS]
//! ```
//!
//! Starts its own `redis-server` (no persistence) and a kv-server over a memory store on its own
//! one-thread runtime. Round trips are counted by wrapping the namespace in
//! `kv_core::testing::FaultyStore` with no faults (it counts reads and writes). Latency: rounds
//! of 500 sequential operations, the median of the per-round means.

use std::time::{Duration, Instant};

use kv_benches::median;
use kv_core::testing::FaultyStore;
use kv_core::Namespace;
use kv_middleware::rate_limit::RateLimiter;

#[path = "../../kv-backends/tests/support/redis_server.rs"]
mod redis_server;

const OPS: usize = 500;

/// Store calls per check: (reads, writes) averaged over `n` checks made by `check`.
async fn round_trips(
    namespace: &Namespace,
    quota: &str,
    n: usize,
    key: impl Fn(usize) -> String,
) -> (f64, f64, usize) {
    let (counted, faults) = FaultyStore::wrap(namespace);
    let limiter = RateLimiter::new(counted, "api", quota.parse().unwrap()).unwrap();
    let mut allowed = 0;
    // Warm the per-process memory of the keys first where the scenario repeats keys.
    let before = faults.counts();
    for i in 0..n {
        if limiter.check(&key(i), 1).await.unwrap().is_allowed() {
            allowed += 1;
        }
    }
    let after = faults.counts();
    (
        (after.reads - before.reads) as f64 / n as f64,
        (after.writes - before.writes) as f64 / n as f64,
        allowed,
    )
}

async fn mean_time<F, Fut>(rounds: usize, mut op: F) -> Duration
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut per_round = Vec::new();
    for round in 0..rounds {
        let start = Instant::now();
        for i in 0..OPS {
            op(round * OPS + i).await;
        }
        per_round.push(start.elapsed().as_secs_f64() / OPS as f64);
    }
    Duration::from_secs_f64(median(&per_round))
}

async fn measure(name: &str, namespace: Namespace, rounds: usize) {
    // Round trips: an admitted check on a key this process checked before; on a key new to the
    // process; a denied check.
    let (r_seen, w_seen, _) =
        round_trips(&namespace, "1000000/s", 1000, |_| format!("{name}-one")).await;
    let (r_new, w_new, _) =
        round_trips(&namespace, "1000000/s", 1000, |i| format!("{name}-new-{i}")).await;
    let (r_denied, w_denied, allowed) =
        round_trips(&namespace, "1/h", 1001, |_| format!("{name}-denied")).await;
    assert_eq!(allowed, 1, "exactly the quota admitted");

    namespace.put_text("probe", "x").await.unwrap();
    let limiter = RateLimiter::new(namespace.clone(), "api", "1000000/s".parse().unwrap()).unwrap();
    let get = mean_time(rounds, |_| {
        let ns = namespace.clone();
        async move {
            ns.get("probe").await.unwrap().unwrap();
        }
    })
    .await;
    let admitted = mean_time(rounds, |_| {
        let limiter = limiter.clone();
        async move {
            assert!(limiter.check("latency-one", 1).await.unwrap().is_allowed());
        }
    })
    .await;
    println!(
        "| {name} | {:.2} + {:.2} | {:.2} + {:.2} | {:.2} + {:.2} | {:.0} µs | {:.0} µs | {:.2}x |",
        r_seen,
        w_seen,
        r_new,
        w_new,
        r_denied,
        w_denied,
        get.as_secs_f64() * 1e6,
        admitted.as_secs_f64() * 1e6,
        admitted.as_secs_f64() / get.as_secs_f64(),
    );
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(20, |r| r.parse().expect("ROUNDS"));
    let redis = redis_server::RedisServer::start();

    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let kv_url = server_runtime.block_on(async {
        let store = kv_backends::open("memory:").await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = kv_server::router(store, kv_server::ServerConfig::default());
        tokio::spawn(kv_server::serve(listener, router, std::future::pending()));
        url
    });

    let client = kv_benches::current_thread_runtime();
    client.block_on(async {
        println!(
            "| store | reads + writes per admitted check (key seen before) | (new key) | (denied) | one get | one admitted check | check / get |"
        );
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        let redis_store = kv_backends::open(&redis.url()).await.unwrap();
        measure("redis", redis_store.namespace("RATE_LIMITS").await.unwrap(), rounds).await;
        let kv_store = kv_backends::open(&kv_url).await.unwrap();
        measure("kv-server", kv_store.namespace("RATE_LIMITS").await.unwrap(), rounds).await;
    });
}
