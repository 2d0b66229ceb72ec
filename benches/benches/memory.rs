//! The memory backend (through the `Namespace` handle users call) against `moka::future::Cache`
//! and `dashmap::DashMap`: get and put, with 1 000 and 1 000 000 pre-filled keys, on one thread
//! and on two threads.
//!
//! - Keys are `key:0000042` (11 bytes), values 32 bytes; every contender holds `String -> Bytes`
//!   and walks the same precomputed pseudo-random pattern over its key set (as long as the key
//!   set, so the 1 000 000-key runs really touch a million keys).
//! - get returns an owned value (`Bytes`, a reference-count increment) for every contender; put
//!   overwrites an existing key, so the size stays constant. Peers take an owned `String` key
//!   (allocated per put), as our backend allocates its own copy of the key.
//! - One thread: `iters` operations awaited in a loop inside one `block_on` of a current-thread
//!   tokio runtime for the async APIs (ours, moka; what criterion's `to_async` does), a plain
//!   loop for dashmap.
//! - Two threads: two OS threads each do `iters` operations on the same map (each with its own
//!   pattern); the reported time is wall time / `iters`, i.e. the time one operation takes on
//!   each thread while the other thread works on the same map (throughput = 2 / that).
//!
//! After the criterion groups, a **paired** run alternates the three contenders in batches of
//! 10 000 operations (rotating which goes first) for every configuration and reports the median
//! of the per-round ratios ours/moka: on a shared machine whose speed drifts, this ratio is more
//! trustworthy than two medians taken minutes apart. It writes
//! `target/tmp/kv-benches-memory-paired.json` for `bench-summary`
//! (`KV_BENCH_PAIRED_ROUNDS` sets the rounds, default 20; 0 skips it).
//!
//! `cargo bench -p kv-benches --bench memory`

use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dashmap::DashMap;
use kv_backends::memory::MemoryBackend;
use kv_benches::{
    bench_mode, current_thread_runtime, full_or_smoke, paired, paired_rounds, pattern, value,
    write_paired, Batch, KeyCursor, KeySet, Timing,
};
use kv_core::{Namespace, Store};
use moka::future::Cache;
use tokio::runtime::Runtime;

const SIZES: [usize; 2] = [1_000, 1_000_000];
const VALUE_LEN: usize = 32;

/// One key set, pre-filled into every contender.
struct Contenders {
    n: usize,
    keys: KeySet,
    patterns: [Vec<u32>; 2],
    /// Where the next two-thread run starts in the patterns, so successive runs keep walking
    /// the whole key set instead of replaying the start of the pattern.
    offset: AtomicUsize,
    value: Bytes,
    ours: Namespace,
    moka: Cache<String, Bytes>,
    dashmap: DashMap<String, Bytes>,
}

impl Contenders {
    fn new(rt: &Runtime, n: usize) -> Self {
        let keys = KeySet::new(n);
        let ours = rt.block_on(async {
            // Built inside the runtime as an application would; the sweeper sleeps for 60 s.
            let store = Store::new(MemoryBackend::new());
            let ns = store.namespace("BENCH").await.expect("namespace");
            for (i, key) in keys.iter().enumerate() {
                ns.put(key, value(VALUE_LEN, i)).await.expect("put");
            }
            ns
        });
        let moka = rt.block_on(async {
            let cache = Cache::builder().max_capacity(2 * n as u64).build();
            for (i, key) in keys.iter().enumerate() {
                cache.insert(key.to_owned(), value(VALUE_LEN, i)).await;
            }
            cache.run_pending_tasks().await;
            assert_eq!(cache.entry_count(), n as u64);
            cache
        });
        let dashmap = DashMap::new();
        for (i, key) in keys.iter().enumerate() {
            dashmap.insert(key.to_owned(), value(VALUE_LEN, i));
        }
        Contenders {
            n,
            patterns: [pattern(n, 1), pattern(n, 2)],
            keys,
            offset: AtomicUsize::new(0),
            value: value(VALUE_LEN, usize::MAX),
            ours,
            moka,
            dashmap,
        }
    }

    fn cursor(&self, thread: usize) -> KeyCursor<'_> {
        KeyCursor::new(&self.keys, &self.patterns[thread])
    }

    /// Cursors for a two-thread run of `iters` operations per thread.
    fn thread_cursors(&self, iters: u64) -> [KeyCursor<'_>; 2] {
        let start = self.offset.fetch_add(iters as usize, Ordering::Relaxed);
        [0, 1].map(|t| KeyCursor::at(&self.keys, &self.patterns[t], start))
    }
}

/// Runs `iters` async operations on each of two OS threads at once; returns the wall time.
fn two_threads_async<'a, F, Fut>(iters: u64, c: &'a Contenders, op: F) -> Duration
where
    F: Fn(&'a str) -> Fut + Sync,
    Fut: Future<Output = ()>,
{
    let cursors = c.thread_cursors(iters);
    let start = Instant::now();
    std::thread::scope(|s| {
        for mut cursor in cursors {
            let op = &op;
            s.spawn(move || {
                futures::executor::block_on(async move {
                    for _ in 0..iters {
                        op(cursor.next()).await;
                    }
                });
            });
        }
    });
    start.elapsed()
}

/// Runs `iters` operations on each of two OS threads at once; returns the wall time.
fn two_threads_sync<'a, F>(iters: u64, c: &'a Contenders, op: F) -> Duration
where
    F: Fn(&'a str) + Sync,
{
    let cursors = c.thread_cursors(iters);
    let start = Instant::now();
    std::thread::scope(|s| {
        for mut cursor in cursors {
            let op = &op;
            s.spawn(move || {
                for _ in 0..iters {
                    op(cursor.next());
                }
            });
        }
    });
    start.elapsed()
}

// ---- the operations, one function per contender, op and thread count ----

async fn ours_get(ns: &Namespace, key: &str) {
    black_box(ns.get(key).await.expect("get").expect("present"));
}

async fn ours_put(ns: &Namespace, key: &str, value: &Bytes) {
    black_box(ns.put(key, value.clone()).await.expect("put"));
}

async fn moka_get(cache: &Cache<String, Bytes>, key: &str) {
    black_box(cache.get(key).await.expect("present"));
}

async fn moka_put(cache: &Cache<String, Bytes>, key: &str, value: &Bytes) {
    cache.insert(key.to_owned(), value.clone()).await;
}

fn dashmap_get(map: &DashMap<String, Bytes>, key: &str) {
    black_box(map.get(key).map(|r| r.value().clone()).expect("present"));
}

fn dashmap_put(map: &DashMap<String, Bytes>, key: &str, value: &Bytes) {
    black_box(map.insert(key.to_owned(), value.clone()));
}

/// The three contenders of one configuration as batch runners: `cursor` is each one's own
/// (one-thread runs keep walking the pattern from batch to batch).
fn batches<'a>(
    rt: &'a Runtime,
    c: &'a Contenders,
    op: &'static str,
    threads: usize,
) -> Vec<(&'static str, Batch<'a>)> {
    let v = &c.value;
    match (op, threads) {
        ("get", 1) => {
            let (mut a, mut b, mut d) = (c.cursor(0), c.cursor(0), c.cursor(0));
            vec![
                (
                    "ours",
                    Box::new(move |n| {
                        rt.block_on(async {
                            let t = Instant::now();
                            for _ in 0..n {
                                ours_get(&c.ours, a.next()).await;
                            }
                            t.elapsed()
                        })
                    }),
                ),
                (
                    "moka",
                    Box::new(move |n| {
                        rt.block_on(async {
                            let t = Instant::now();
                            for _ in 0..n {
                                moka_get(&c.moka, b.next()).await;
                            }
                            t.elapsed()
                        })
                    }),
                ),
                (
                    "dashmap",
                    Box::new(move |n| {
                        let t = Instant::now();
                        for _ in 0..n {
                            dashmap_get(&c.dashmap, d.next());
                        }
                        t.elapsed()
                    }),
                ),
            ]
        }
        ("put", 1) => {
            let (mut a, mut b, mut d) = (c.cursor(0), c.cursor(0), c.cursor(0));
            vec![
                (
                    "ours",
                    Box::new(move |n| {
                        rt.block_on(async {
                            let t = Instant::now();
                            for _ in 0..n {
                                ours_put(&c.ours, a.next(), v).await;
                            }
                            t.elapsed()
                        })
                    }),
                ),
                (
                    "moka",
                    Box::new(move |n| {
                        rt.block_on(async {
                            let t = Instant::now();
                            for _ in 0..n {
                                moka_put(&c.moka, b.next(), v).await;
                            }
                            t.elapsed()
                        })
                    }),
                ),
                (
                    "dashmap",
                    Box::new(move |n| {
                        let t = Instant::now();
                        for _ in 0..n {
                            dashmap_put(&c.dashmap, d.next(), v);
                        }
                        t.elapsed()
                    }),
                ),
            ]
        }
        ("get", _) => vec![
            (
                "ours",
                Box::new(move |n| two_threads_async(n as u64, c, |k| ours_get(&c.ours, k))),
            ),
            (
                "moka",
                Box::new(move |n| two_threads_async(n as u64, c, |k| moka_get(&c.moka, k))),
            ),
            (
                "dashmap",
                Box::new(move |n| two_threads_sync(n as u64, c, |k| dashmap_get(&c.dashmap, k))),
            ),
        ],
        _ => vec![
            (
                "ours",
                Box::new(move |n| two_threads_async(n as u64, c, |k| ours_put(&c.ours, k, v))),
            ),
            (
                "moka",
                Box::new(move |n| two_threads_async(n as u64, c, |k| moka_put(&c.moka, k, v))),
            ),
            (
                "dashmap",
                Box::new(move |n| two_threads_sync(n as u64, c, |k| dashmap_put(&c.dashmap, k, v))),
            ),
        ],
    }
}

fn benches(criterion: &mut Criterion) {
    let timing = Timing::from_env(1.0, 3.0, 20);
    let rt = current_thread_runtime();
    let sizes = full_or_smoke(SIZES, [1_000, 10_000]);
    let sets: Vec<Contenders> = sizes.iter().map(|&n| Contenders::new(&rt, n)).collect();

    for op in ["get", "put"] {
        for threads in [1, 2] {
            let mut group = criterion.benchmark_group(format!("memory-{op}-{threads}t"));
            group
                .warm_up_time(timing.warm_up)
                .measurement_time(timing.measurement)
                .sample_size(timing.samples);
            for c in &sets {
                for (name, mut run) in batches(&rt, c, op, threads) {
                    group.bench_function(BenchmarkId::new(name, c.n), |b| {
                        b.iter_custom(|iters| run(iters as usize));
                    });
                }
            }
            group.finish();
        }
    }

    handle_overhead(criterion, &timing, &rt, &sets[0]);

    let rounds = paired_rounds(20);
    if rounds > 0 {
        let batch = if bench_mode() { 10_000 } else { 10 };
        let mut results = serde_json::Map::new();
        for op in ["get", "put"] {
            for threads in [1, 2] {
                for c in &sets {
                    let name = format!("memory-{op}-{threads}t/{}", c.n);
                    let result = paired(&name, rounds, batch, batches(&rt, c, op, threads));
                    results.insert(name, result);
                }
            }
        }
        write_paired(env!("CARGO_TARGET_TMPDIR"), "memory", &results.into());
    }
}

/// What the `Namespace` handle adds to one store call (1 000 keys, one thread): the key check
/// and the `kv.store` span (no subscriber, so the span is disabled), against the store's
/// synchronous fast path called directly and against its boxed async method (the only way a
/// store call went before the fast path).
fn handle_overhead(criterion: &mut Criterion, timing: &Timing, rt: &Runtime, c: &Contenders) {
    let mut group = criterion.benchmark_group("memory-handle");
    group
        .warm_up_time(timing.warm_up)
        .measurement_time(timing.measurement)
        .sample_size(timing.samples);
    let raw = c.ours.raw().clone();
    group.bench_function("namespace-get", |b| {
        let mut keys = c.cursor(0);
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    ours_get(&c.ours, keys.next()).await;
                }
                started.elapsed()
            })
        });
    });
    group.bench_function("store-get-now", |b| {
        let mut keys = c.cursor(0);
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                let found = raw.get_now(keys.next()).expect("answers at once");
                black_box(found.expect("get").expect("present"));
            }
            started.elapsed()
        });
    });
    group.bench_function("store-get-boxed", |b| {
        let mut keys = c.cursor(0);
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    black_box(raw.get(keys.next()).await.expect("get").expect("present"));
                }
                started.elapsed()
            })
        });
    });
    group.finish();
}

criterion_group!(memory, benches);
criterion_main!(memory);
