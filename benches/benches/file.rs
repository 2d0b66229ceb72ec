//! The file backend (through the `Namespace` handle) against the same operations done directly
//! on redb, to show our overhead over the raw engine.
//!
//! - put: one durable write per operation. Ours: `Namespace::put` (one redb write transaction
//!   with `Durability::Immediate`, run in `spawn_blocking`, plus the version counter and the
//!   record header). Raw: `begin_write` + `open_table` + `insert` + default (durable) `commit`,
//!   inline. `redb-blocking` is the raw put sent through `spawn_blocking` as ours is, to split
//!   the thread hop from the rest of our overhead (a reference point, not a goal).
//! - get: ours `Namespace::get` (inline read transaction, decode, copy of the value into
//!   `Bytes`); raw: `begin_read` + `open_table` + `get` + copy of the value (`to_vec`).
//! - 10 000 pre-filled keys (`key:0000042`), 100-byte values, the same pseudo-random key
//!   pattern for both; puts overwrite existing keys.
//!
//! Durable puts wait for an fsync, whose latency swings with whatever else the disk is doing, so
//! two criterion benchmarks run one after the other can differ by more than our overhead. After
//! the criterion groups, a **paired** run therefore alternates the contenders in short batches
//! (rotating which goes first) and reports the median per-operation time of each and the median
//! of the per-round ratios; that ratio is the figure the overhead goal is judged on. It prints a
//! table and writes `target/tmp/kv-benches-file-paired.json` for `bench-summary`
//! (`KV_BENCH_PAIRED_ROUNDS` sets the rounds, 0 skips it).
//!
//! The stores live under cargo's target tmp dir (a real disk, not a tmpfs), or under
//! `KV_BENCH_DIR` when set. `cargo bench -p kv-benches --bench file`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use kv_backends::file::FileBackend;
use kv_benches::{
    bench_mode, multi_thread_runtime, paired, paired_rounds, pattern, value, write_paired,
    KeyCursor, KeySet, Timing,
};
use kv_core::{BulkPut, Namespace, Store};
use redb::{Database, ReadableDatabase, TableDefinition};

const KEYS: usize = 10_000;
const VALUE_LEN: usize = 100;
const TABLE: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("bench");

fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("KV_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).expect("bench dir");
    tempfile::Builder::new()
        .prefix("kv-bench-file-")
        .tempdir_in(base)
        .expect("temp dir")
}

fn raw_put(db: &Database, key: &str, value: &[u8]) {
    let txn = db.begin_write().expect("begin_write");
    {
        let mut table = txn.open_table(TABLE).expect("open_table");
        table.insert(key, value).expect("insert");
    }
    txn.commit().expect("commit");
}

fn raw_get(db: &Database, key: &str) -> Vec<u8> {
    let txn = db.begin_read().expect("begin_read");
    let table = txn.open_table(TABLE).expect("open_table");
    let guard = table.get(key).expect("get").expect("present");
    guard.value().to_vec()
}

fn benches(criterion: &mut Criterion) {
    let rt = multi_thread_runtime(2);
    let keys = KeySet::new(KEYS);
    let pattern = pattern(KEYS, 1);
    let values: Vec<Bytes> = (0..KEYS).map(|i| value(VALUE_LEN, i)).collect();
    let new_value = value(VALUE_LEN, usize::MAX);

    // Ours.
    let ours_dir = bench_dir();
    let ours: Namespace = rt.block_on(async {
        let backend = FileBackend::open(ours_dir.path().join("store")).expect("open file backend");
        let store = Store::new(backend);
        let ns = store.namespace("BENCH").await.expect("namespace");
        let items = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| BulkPut::new(k, v.clone()))
            .collect();
        ns.put_many(items).await.expect("prefill");
        ns
    });

    // Raw redb.
    let raw_dir = bench_dir();
    let raw = Arc::new(Database::create(raw_dir.path().join("raw.redb")).expect("redb"));
    {
        let txn = raw.begin_write().expect("begin_write");
        {
            let mut table = txn.open_table(TABLE).expect("open_table");
            for (k, v) in keys.iter().zip(&values) {
                table.insert(k, v.as_ref()).expect("insert");
            }
        }
        txn.commit().expect("commit");
    }

    let timing = Timing::from_env(1.0, 3.0, 20);
    let mut group = criterion.benchmark_group("file-get");
    group
        .warm_up_time(timing.warm_up)
        .measurement_time(timing.measurement)
        .sample_size(timing.samples);
    group.bench_function(BenchmarkId::new("ours", KEYS), |b| {
        let mut cursor = KeyCursor::new(&keys, &pattern);
        let ns = &ours;
        b.to_async(&rt).iter(|| {
            let key = cursor.next();
            async move { ns.get(key).await.expect("get").expect("present") }
        });
    });
    group.bench_function(BenchmarkId::new("redb", KEYS), |b| {
        let mut cursor = KeyCursor::new(&keys, &pattern);
        b.iter(|| raw_get(&raw, cursor.next()));
    });
    group.finish();

    // Every put is an fsync: few, long samples.
    let timing = Timing::from_env(1.0, 5.0, 10);
    let mut group = criterion.benchmark_group("file-put");
    group
        .warm_up_time(timing.warm_up)
        .measurement_time(timing.measurement)
        .sample_size(timing.samples);
    group.bench_function(BenchmarkId::new("ours", KEYS), |b| {
        let mut cursor = KeyCursor::new(&keys, &pattern);
        let ns = &ours;
        let value = &new_value;
        b.to_async(&rt).iter(|| {
            let key = cursor.next();
            async move { ns.put(key, value.clone()).await.expect("put") }
        });
    });
    group.bench_function(BenchmarkId::new("redb", KEYS), |b| {
        let mut cursor = KeyCursor::new(&keys, &pattern);
        b.iter(|| raw_put(&raw, cursor.next(), &new_value));
    });
    group.bench_function(BenchmarkId::new("redb-blocking", KEYS), |b| {
        let mut cursor = KeyCursor::new(&keys, &pattern);
        b.to_async(&rt).iter(|| {
            let key = cursor.next().to_owned();
            let db = raw.clone();
            let value = new_value.clone();
            async move {
                tokio::task::spawn_blocking(move || raw_put(&db, &key, &value))
                    .await
                    .expect("join")
            }
        });
    });
    group.finish();

    let rounds = paired_rounds(40);
    if rounds > 0 {
        let (get_batch, put_batch) = if bench_mode() { (20_000, 25) } else { (10, 2) };
        let cursor = std::cell::RefCell::new(KeyCursor::new(&keys, &pattern));
        let next = || cursor.borrow_mut().next();
        let get = paired(
            "get",
            rounds,
            get_batch,
            vec![
                (
                    "ours",
                    Box::new(|batch| {
                        rt.block_on(async {
                            let start = Instant::now();
                            for _ in 0..batch {
                                std::hint::black_box(ours.get(next()).await.expect("get"));
                            }
                            start.elapsed()
                        })
                    }),
                ),
                (
                    "redb",
                    Box::new(|batch| {
                        let start = Instant::now();
                        for _ in 0..batch {
                            std::hint::black_box(raw_get(&raw, next()));
                        }
                        start.elapsed()
                    }),
                ),
            ],
        );
        let put = paired(
            "put",
            rounds,
            put_batch,
            vec![
                (
                    "ours",
                    Box::new(|batch| {
                        rt.block_on(async {
                            let start = Instant::now();
                            for _ in 0..batch {
                                ours.put(next(), new_value.clone()).await.expect("put");
                            }
                            start.elapsed()
                        })
                    }),
                ),
                (
                    "redb",
                    Box::new(|batch| {
                        let start = Instant::now();
                        for _ in 0..batch {
                            raw_put(&raw, next(), &new_value);
                        }
                        start.elapsed()
                    }),
                ),
                (
                    "redb-blocking",
                    Box::new(|batch| {
                        rt.block_on(async {
                            let start = Instant::now();
                            for _ in 0..batch {
                                let (db, key, value) =
                                    (raw.clone(), next().to_owned(), new_value.clone());
                                tokio::task::spawn_blocking(move || raw_put(&db, &key, &value))
                                    .await
                                    .expect("join");
                            }
                            start.elapsed()
                        })
                    }),
                ),
            ],
        );
        let results = serde_json::json!({ "get": get, "put": put });
        write_paired(env!("CARGO_TARGET_TMPDIR"), "file", &results);
    }

    drop(ours);
    drop(rt);
    drop((ours_dir, raw_dir));
}

criterion_group!(file, benches);
criterion_main!(file);
