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

use std::time::{Duration, Instant};

use kv_backends::redis::RedisBackend;
use kv_benches::median;
use kv_core::{Namespace, PutOptions, Store, WriteMode};
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

#[path = "../../kv-backends/tests/support/redis_server.rs"]
mod redis_server;

const KEYS: usize = 1000;
const OPS: usize = 2000;

#[derive(Clone, Copy, Debug)]
enum Op {
    Get,
    Put,
    ConditionalPut,
    BulkGet100,
}

async fn ours(ns: &Namespace, op: Op, i: usize) {
    let key = format!("key:{:04}", i % KEYS);
    match op {
        Op::Get => {
            ns.get(&key).await.unwrap().unwrap();
        }
        Op::Put => {
            ns.put(&key, vec![b'v'; 100]).await.unwrap();
        }
        Op::ConditionalPut => {
            // The usual compare-and-swap step: read the version, write if it still matches.
            let entry = ns.get_entry(&key).await.unwrap().unwrap();
            let options = PutOptions::new().mode(WriteMode::OnlyIfVersion(entry.version));
            let _ = ns.put_with(&key, vec![b'c'; 100], options).await.unwrap();
        }
        Op::BulkGet100 => {
            let keys: Vec<String> = (0..100)
                .map(|j| format!("key:{:04}", (i + j) % KEYS))
                .collect();
            ns.get_many(&keys).await.unwrap();
        }
    }
}

async fn raw(conn: &mut ConnectionManager, op: Op, i: usize) {
    let key = format!("raw:{:04}", i % KEYS);
    match op {
        Op::Get => {
            let _: Vec<u8> = conn.get(&key).await.unwrap();
        }
        Op::Put => {
            let _: () = conn.set(&key, vec![b'v'; 100]).await.unwrap();
        }
        Op::ConditionalPut => {
            // The raw equivalent of a read-then-write: GET then SET.
            let _: Vec<u8> = conn.get(&key).await.unwrap();
            let _: () = conn.set(&key, vec![b'c'; 100]).await.unwrap();
        }
        Op::BulkGet100 => {
            let keys: Vec<String> = (0..100)
                .map(|j| format!("raw:{:04}", (i + j) % KEYS))
                .collect();
            let _: Vec<Vec<u8>> = conn.mget(&keys).await.unwrap();
        }
    }
}

/// Runs `OPS` operations spread over `tasks` tasks; returns the time per operation.
async fn round_ours(ns: &Namespace, op: Op, tasks: usize) -> Duration {
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let ns = ns.clone();
            tokio::spawn(async move {
                for i in 0..OPS / tasks {
                    ours(&ns, op, t * 7919 + i).await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    started.elapsed() / OPS as u32
}

async fn round_raw(conn: &ConnectionManager, op: Op, tasks: usize) -> Duration {
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let mut conn = conn.clone();
            tokio::spawn(async move {
                for i in 0..OPS / tasks {
                    raw(&mut conn, op, t * 7919 + i).await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    started.elapsed() / OPS as u32
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let server = redis_server::RedisServer::start();
    let store = Store::new(RedisBackend::connect(&server.url()).await.unwrap());
    let ns = store.namespace("BENCH").await.unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = ConnectionManager::new(client).await.unwrap();
    for i in 0..KEYS {
        ns.put(&format!("key:{i:04}"), vec![b'v'; 100])
            .await
            .unwrap();
        let _: () = conn
            .set(format!("raw:{i:04}"), vec![b'v'; 100])
            .await
            .unwrap();
    }

    println!("redis-server on loopback, 100-byte values, {rounds} rounds of {OPS} ops, medians\n");
    println!("| operation | tasks | ours per op | raw redis per op | ratio |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for op in [Op::Get, Op::Put, Op::ConditionalPut, Op::BulkGet100] {
        for tasks in [1, 64] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            // One warm-up round each, then alternate.
            round_ours(&ns, op, tasks).await;
            round_raw(&conn, op, tasks).await;
            for _ in 0..rounds {
                a.push(round_ours(&ns, op, tasks).await.as_secs_f64());
                b.push(round_raw(&conn, op, tasks).await.as_secs_f64());
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
