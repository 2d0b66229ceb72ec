//! Listing a whole namespace of 100 000 keys in pages of 1000 (the full walk, following the
//! cursors: 100 pages), on the memory and the file backend, through `Namespace::list`.
//!
//! `redb` is a reference point for the file backend: the same walk straight on redb (one read
//! transaction and one range per page of 1000, collecting the key names).
//!
//! `cargo bench -p kv-benches --bench list`

use std::ops::Bound;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use kv_backends::file::FileBackend;
use kv_backends::memory::MemoryBackend;
use kv_benches::{multi_thread_runtime, value, KeySet, Timing};
use kv_core::{BulkPut, ListOptions, Namespace, Store};
use redb::{Database, ReadableDatabase, TableDefinition};

const KEYS: usize = 100_000;
const PAGE: usize = 1000;
const VALUE_LEN: usize = 32;
const TABLE: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("bench");

fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("KV_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).expect("bench dir");
    tempfile::Builder::new()
        .prefix("kv-bench-list-")
        .tempdir_in(base)
        .expect("temp dir")
}

async fn fill(ns: &Namespace, keys: &KeySet) {
    let max = ns.limits().max_bulk_write;
    let items: Vec<BulkPut> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| BulkPut::new(k, value(VALUE_LEN, i)))
        .collect();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        ns.put_many(items.by_ref().take(max).collect())
            .await
            .expect("prefill");
    }
}

/// Walks every page; returns the number of keys seen.
async fn walk(ns: &Namespace) -> usize {
    let mut options = ListOptions::new().limit(PAGE);
    let mut seen = 0;
    loop {
        let page = ns.list(&options).await.expect("list");
        seen += page.keys.len();
        match page.cursor {
            Some(cursor) if !page.list_complete => options.cursor = Some(cursor),
            _ => break,
        }
    }
    assert_eq!(seen, KEYS);
    seen
}

/// The same walk straight on redb.
fn raw_walk(db: &Database) -> usize {
    let mut last: Option<String> = None;
    let mut seen = 0;
    loop {
        let txn = db.begin_read().expect("begin_read");
        let table = txn.open_table(TABLE).expect("open_table");
        let start = match &last {
            Some(key) => Bound::Excluded(key.as_str()),
            None => Bound::Unbounded,
        };
        let page: Vec<String> = table
            .range::<&str>((start, Bound::Unbounded))
            .expect("range")
            .take(PAGE)
            .map(|item| item.expect("item").0.value().to_owned())
            .collect();
        seen += page.len();
        if page.len() < PAGE {
            break;
        }
        last = page.last().cloned();
    }
    assert_eq!(seen, KEYS);
    seen
}

fn benches(criterion: &mut Criterion) {
    let rt = multi_thread_runtime(2);
    let keys = KeySet::new(KEYS);

    let memory = rt.block_on(async {
        let ns = Store::new(MemoryBackend::new())
            .namespace("BENCH")
            .await
            .expect("namespace");
        fill(&ns, &keys).await;
        ns
    });

    let file_dir = bench_dir();
    let file = rt.block_on(async {
        let backend = FileBackend::open(file_dir.path().join("store")).expect("open");
        let ns = Store::new(backend)
            .namespace("BENCH")
            .await
            .expect("namespace");
        fill(&ns, &keys).await;
        ns
    });

    let raw_dir = bench_dir();
    let raw = Database::create(raw_dir.path().join("raw.redb")).expect("redb");
    {
        let txn = raw.begin_write().expect("begin_write");
        {
            let mut table = txn.open_table(TABLE).expect("open_table");
            for (i, k) in keys.iter().enumerate() {
                table
                    .insert(k, value(VALUE_LEN, i).as_ref())
                    .expect("insert");
            }
        }
        txn.commit().expect("commit");
    }

    let timing = Timing::from_env(1.0, 5.0, 10);
    let mut group = criterion.benchmark_group("list-100k-pages-1000");
    group
        .warm_up_time(timing.warm_up)
        .measurement_time(timing.measurement)
        .sample_size(timing.samples);
    group.bench_function(BenchmarkId::new("memory", KEYS), |b| {
        b.to_async(&rt).iter(|| walk(&memory));
    });
    group.bench_function(BenchmarkId::new("file", KEYS), |b| {
        b.to_async(&rt).iter(|| walk(&file));
    });
    group.bench_function(BenchmarkId::new("redb", KEYS), |b| {
        b.iter(|| raw_walk(&raw));
    });
    group.finish();

    drop((memory, file, rt));
    drop((file_dir, raw_dir));
}

criterion_group!(list, benches);
criterion_main!(list);
