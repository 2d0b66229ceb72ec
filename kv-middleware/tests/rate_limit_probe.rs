#![cfg(feature = "rate_limit")]
use kv_backends::memory::MemoryBackend;
use kv_core::Store;
use kv_middleware::rate_limit::RateLimiter;
use std::time::Instant;

#[tokio::test]
async fn probe() {
    let store = Store::new(MemoryBackend::new());
    let ns = store.namespace("RL").await.unwrap();
    let limiter = RateLimiter::builder(ns.clone())
        .quota("api", "4000000000/s".parse().unwrap())
        .build()
        .unwrap();
    let n: usize = std::env::var("PROBE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(limiter.check("ip:203.0.113.7", 1).await.unwrap());
    }
    println!("check single: {:?}/op", t.elapsed() / n as u32);
}
