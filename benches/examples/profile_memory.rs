//! Runs one memory benchmark in a loop, alone, for a profiler:
//! `perf record -g target/release/examples/profile-memory ours get 1000000 10`.
//!
//! Arguments: contender (`ours`, `moka`, `dashmap`), operation (`get`, `put`), pre-filled keys,
//! seconds. The set-up is the same as `benches/memory.rs` (one thread).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use kv_backends::memory::MemoryBackend;
use kv_benches::{current_thread_runtime, pattern, value, KeyCursor, KeySet};
use kv_core::Store;
use moka::future::Cache;

const VALUE_LEN: usize = 32;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let contender = args.first().map_or("ours", String::as_str);
    let op = args.get(1).map_or("get", String::as_str);
    let n: usize = args.get(2).map_or(1_000_000, |a| a.parse().expect("keys"));
    let secs: f64 = args.get(3).map_or(10.0, |a| a.parse().expect("seconds"));
    let rt = current_thread_runtime();
    let keys = KeySet::new(n);
    let pattern = pattern(n, 1);
    let new_value = value(VALUE_LEN, usize::MAX);
    let deadline = Duration::from_secs_f64(secs);

    rt.block_on(async {
        let mut cursor = KeyCursor::new(&keys, &pattern);
        let mut ops = 0u64;
        let start;
        match contender {
            "ours" => {
                let ns = Store::new(MemoryBackend::new())
                    .namespace("BENCH")
                    .await
                    .expect("namespace");
                for (i, k) in keys.iter().enumerate() {
                    ns.put(k, value(VALUE_LEN, i)).await.expect("put");
                }
                eprintln!("filled; running");
                start = Instant::now();
                while start.elapsed() < deadline {
                    for _ in 0..1024 {
                        if op == "get" {
                            black_box(ns.get(cursor.next()).await.expect("get"));
                        } else {
                            black_box(ns.put(cursor.next(), new_value.clone()).await.expect("put"));
                        }
                    }
                    ops += 1024;
                }
            }
            "moka" => {
                let cache: Cache<String, Bytes> =
                    Cache::builder().max_capacity(2 * n as u64).build();
                for (i, k) in keys.iter().enumerate() {
                    cache.insert(k.to_owned(), value(VALUE_LEN, i)).await;
                }
                cache.run_pending_tasks().await;
                eprintln!("filled; running");
                start = Instant::now();
                while start.elapsed() < deadline {
                    for _ in 0..1024 {
                        if op == "get" {
                            black_box(cache.get(cursor.next()).await);
                        } else {
                            cache
                                .insert(cursor.next().to_owned(), new_value.clone())
                                .await;
                        }
                    }
                    ops += 1024;
                }
            }
            _ => {
                let map: DashMap<String, Bytes> = DashMap::new();
                for (i, k) in keys.iter().enumerate() {
                    map.insert(k.to_owned(), value(VALUE_LEN, i));
                }
                eprintln!("filled; running");
                start = Instant::now();
                while start.elapsed() < deadline {
                    for _ in 0..1024 {
                        if op == "get" {
                            black_box(map.get(cursor.next()).map(|r| r.value().clone()));
                        } else {
                            black_box(map.insert(cursor.next().to_owned(), new_value.clone()));
                        }
                    }
                    ops += 1024;
                }
            }
        }
        let per_op = start.elapsed().as_nanos() as f64 / ops as f64;
        eprintln!("{contender} {op} {n}: {ops} ops, {per_op:.1} ns/op");
        // Skip the (slow, uninteresting) teardown of a million entries.
        std::process::exit(0)
    })
}
