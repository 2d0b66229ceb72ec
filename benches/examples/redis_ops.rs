//! The Redis backend against the same operations issued directly with the `redis` crate
//! (GET / SET / MGET) on the same server, with 1 and 64 concurrent tasks.
//!
//! ```text
//! cargo run --release -p kv-benches --example redis-ops [-- ROUNDS]
//! ```
//!
//! Starts its own `redis-server` on a free port (no persistence). Contenders take turns in
//! rounds of 2 000 operations, and the table reports the median time per operation over the
//! rounds, and the ratio ours / raw.

use kv_benches::median;
use kv_benches::redis_ops::{Contender, Op};

#[path = "../../kv-backends/tests/support/redis_server.rs"]
mod redis_server;

const OPS: u64 = 2000;

/// The time per operation of one round of [`OPS`] operations over `tasks` tasks, in seconds.
async fn per_op(contender: &Contender, op: Op, tasks: usize) -> f64 {
    let (elapsed, _) = contender.round(op, tasks, OPS, false).await;
    elapsed.as_secs_f64() / OPS as f64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let server = redis_server::RedisServer::start();
    let mut ours = Contender::ours(&server.url()).await;
    let mut raw = Contender::raw_single(&server.url()).await;
    ours.fill().await;
    raw.fill().await;

    println!("redis-server on loopback, 100-byte values, {rounds} rounds of {OPS} ops, medians\n");
    println!("| operation | tasks | ours per op | raw redis per op | ratio |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for op in [Op::Get, Op::Put, Op::ConditionalPut, Op::BulkGet100] {
        for tasks in [1, 64] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            // One warm-up round each, then alternate.
            per_op(&ours, op, tasks).await;
            per_op(&raw, op, tasks).await;
            for _ in 0..rounds {
                a.push(per_op(&ours, op, tasks).await);
                b.push(per_op(&raw, op, tasks).await);
            }
            let (ours, raw) = (median(&a), median(&b));
            println!(
                "| {op:?} | {tasks} | {:.1} µs | {:.1} µs | {:.2}x |",
                ours * 1e6,
                raw * 1e6,
                ours / raw
            );
        }
    }
}
