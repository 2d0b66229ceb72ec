//! Shared benchmark helpers: key and value generation, the pseudo-random key-selection pattern
//! every contender uses, and the criterion settings that keep a run short on a small machine.
//!
//! The benchmarks themselves live in `benches/benches/` (see `BENCHMARKS.md` at the workspace
//! root for how to run them and the latest figures).

pub mod redis_ops;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use kv_core::{
    is_expired, Capabilities, DeleteOutcome, Entry, Limits, ListOptions, ListPage, Namespace,
    NamespaceStore, NewEntry, PutOutcome, SystemClock, Version, WriteMode,
};

/// Shortest precomputed key-selection pattern (a power of two).
pub const MIN_PATTERN_LEN: usize = 1 << 16;

/// Width of every key: `key:` and 7 digits.
pub const KEY_LEN: usize = 11;

/// The key of index `i`: `key:0000042` ([`KEY_LEN`] bytes for `i < 10_000_000`).
pub fn key(i: usize) -> String {
    format!("key:{i:07}")
}

/// The keys `0..n`, preformatted (so formatting is never measured) into one contiguous buffer
/// of fixed-width keys, so fetching a random key costs the harness one cache miss, not two.
#[derive(Debug, Clone)]
pub struct KeySet {
    buf: String,
}

impl KeySet {
    /// The keys `0..n` (`n` at most 10 000 000).
    pub fn new(n: usize) -> Self {
        assert!(n <= 10_000_000, "keys are 7 digits");
        let mut buf = String::with_capacity(n * KEY_LEN);
        for i in 0..n {
            buf.push_str(&key(i));
        }
        KeySet { buf }
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.buf.len() / KEY_LEN
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The key of index `i`.
    #[inline]
    pub fn get(&self, i: usize) -> &str {
        &self.buf[i * KEY_LEN..(i + 1) * KEY_LEN]
    }

    /// Every key in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// A value of `len` bytes whose content depends on `seed` (so values are not all alike).
pub fn value(len: usize, seed: usize) -> Bytes {
    let bytes: Vec<u8> = (0..len)
        .map(|j| b'a' + ((seed.wrapping_mul(31).wrapping_add(j)) % 26) as u8)
        .collect();
    Bytes::from(bytes)
}

/// SplitMix64: a tiny, fast, deterministic generator, so every contender (and every run) sees
/// exactly the same sequence of keys.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A precomputed pseudo-random pattern of indices in `0..n`, at least as long as `n` (so a walk
/// through it touches about the whole key set) and a power of two long, at least
/// [`MIN_PATTERN_LEN`]. `seed` lets concurrent threads walk different sequences.
pub fn pattern(n: usize, seed: u64) -> Vec<u32> {
    assert!(n > 0 && n <= u32::MAX as usize);
    let len = n.next_power_of_two().max(MIN_PATTERN_LEN);
    let mut rng = SplitMix64::new(seed);
    (0..len)
        .map(|_| (rng.next_u64() % n as u64) as u32)
        .collect()
}

/// Walks a [`pattern`] over a [`KeySet`]: every call returns the next key.
#[derive(Debug, Clone)]
pub struct KeyCursor<'a> {
    keys: &'a KeySet,
    pattern: &'a [u32],
    next: usize,
}

impl<'a> KeyCursor<'a> {
    /// A cursor over `keys` following `pattern` from its start.
    pub fn new(keys: &'a KeySet, pattern: &'a [u32]) -> Self {
        Self::at(keys, pattern, 0)
    }

    /// A cursor over `keys` following `pattern` from position `start` (wrapping around).
    pub fn at(keys: &'a KeySet, pattern: &'a [u32], start: usize) -> Self {
        assert!(pattern.len().is_power_of_two());
        KeyCursor {
            keys,
            pattern,
            next: start,
        }
    }

    /// The next key of the pattern (wrapping around).
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> &'a str {
        let index = self.pattern[self.next & (self.pattern.len() - 1)];
        self.next = self.next.wrapping_add(1);
        self.keys.get(index as usize)
    }
}

/// Criterion timing settings shared by the benches, overridable from the environment so a final
/// run can measure longer: `KV_BENCH_WARMUP_SECS`, `KV_BENCH_MEASURE_SECS`, `KV_BENCH_SAMPLES`.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Warm-up time per benchmark.
    pub warm_up: Duration,
    /// Measurement time per benchmark.
    pub measurement: Duration,
    /// Samples per benchmark (at least 10).
    pub samples: usize,
}

impl Timing {
    /// `warm_up` s / `measurement` s / `samples` samples unless the environment says otherwise.
    pub fn from_env(warm_up: f64, measurement: f64, samples: usize) -> Self {
        let secs = |name: &str, default: f64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(default)
        };
        let samples = std::env::var("KV_BENCH_SAMPLES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(samples);
        Timing {
            warm_up: Duration::from_secs_f64(secs("KV_BENCH_WARMUP_SECS", warm_up)),
            measurement: Duration::from_secs_f64(secs("KV_BENCH_MEASURE_SECS", measurement)),
            samples: samples.max(10),
        }
    }
}

/// A contender of a [`paired`] run: does `batch` operations, returns how long they took.
pub type Batch<'a> = Box<dyn FnMut(usize) -> Duration + 'a>;

/// The median of `values` (the mean of the two middle ones for an even count).
pub fn median(values: &[f64]) -> f64 {
    assert!(!values.is_empty(), "median of nothing");
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 0 {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

/// A paired comparison, robust to a machine whose speed drifts (other work, disk flushes):
/// runs the contenders in turn, `batch` operations each, for `rounds` rounds, rotating which one
/// goes first; prints and returns (as JSON) the median per-operation time of each contender and
/// the median over the rounds of the ratio of the first contender's time to each other one's.
pub fn paired(
    label: &str,
    rounds: usize,
    batch: usize,
    mut contenders: Vec<(&str, Batch<'_>)>,
) -> serde_json::Value {
    let k = contenders.len();
    let mut per_op = vec![Vec::with_capacity(rounds); k];
    for round in 0..rounds {
        for turn in 0..k {
            let c = (round + turn) % k;
            let elapsed = (contenders[c].1)(batch);
            per_op[c].push(elapsed.as_nanos() as f64 / batch as f64);
        }
    }
    let mut medians = serde_json::Map::new();
    let mut ratios = serde_json::Map::new();
    println!("paired {label}: {rounds} rounds x {batch} ops per contender");
    for c in 0..k {
        let m = median(&per_op[c]);
        medians.insert(contenders[c].0.to_owned(), m.into());
        if c == 0 {
            println!("  {:<14} median {m:>12.1} ns/op", contenders[c].0);
        } else {
            let r: Vec<f64> = (0..rounds).map(|i| per_op[0][i] / per_op[c][i]).collect();
            let ratio = median(&r);
            ratios.insert(contenders[c].0.to_owned(), ratio.into());
            println!(
                "  {:<14} median {m:>12.1} ns/op; {} / {} per round, median {ratio:.3}",
                contenders[c].0, contenders[0].0, contenders[c].0
            );
        }
    }
    serde_json::json!({
        "rounds": rounds,
        "batch": batch,
        "median_ns_per_op": medians,
        "median_ratio_of_first_to": ratios,
    })
}

/// Rounds of the paired runs: `KV_BENCH_PAIRED_ROUNDS`, else `default` under `cargo bench`
/// and 1 under `cargo test` (which runs benches once, as a smoke test).
pub fn paired_rounds(default: usize) -> usize {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    std::env::var("KV_BENCH_PAIRED_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench_mode { default } else { 1 })
}

/// Whether the bench runs under `cargo bench` (rather than as a smoke test under `cargo test`).
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// `full` under `cargo bench`, `smoke` in the smoke run (`cargo test --benches`, which CI runs):
/// the sizes of setups and batches that would make the smoke run slow (a million keys in a
/// debug build), while every code path and assertion of the bench still runs.
pub fn full_or_smoke<T>(full: T, smoke: T) -> T {
    if bench_mode() {
        full
    } else {
        smoke
    }
}

/// Writes paired results where `bench-summary` looks for them:
/// `TARGET/tmp/kv-benches-NAME-paired.json` (`tmp_dir` is the bench's `CARGO_TARGET_TMPDIR`).
pub fn write_paired(tmp_dir: &str, name: &str, results: &serde_json::Value) {
    let out = Path::new(tmp_dir).join(format!("kv-benches-{name}-paired.json"));
    let text = serde_json::to_string_pretty(results).expect("json");
    std::fs::write(&out, text).expect("write paired results");
    println!("paired results written to {}", out.display());
}

/// A single-threaded tokio runtime (what one request handler sees).
pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A multi-threaded tokio runtime with `workers` worker threads.
pub fn multi_thread_runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_patterns() {
        assert_eq!(key(42), "key:0000042");
        assert_eq!(key(9_999_999).len(), KEY_LEN);
        assert_eq!(value(32, 1).len(), 32);
        let keys = KeySet::new(1000);
        assert_eq!(keys.len(), 1000);
        assert_eq!(keys.get(42), "key:0000042");
        assert_eq!(keys.iter().nth(999), Some("key:0000999"));
        let p = pattern(1000, 7);
        assert_eq!(p.len(), MIN_PATTERN_LEN);
        assert!(p.iter().all(|&i| i < 1000));
        assert_eq!(p, pattern(1000, 7));
        assert_eq!(pattern(1_000_000, 1).len(), 1 << 20);
        let mut cursor = KeyCursor::new(&keys, &p);
        assert_eq!(cursor.next(), keys.get(p[0] as usize));
        assert_eq!(cursor.next(), keys.get(p[1] as usize));
        let mut cursor = KeyCursor::at(&keys, &p, p.len() - 1);
        assert_eq!(cursor.next(), keys.get(p[p.len() - 1] as usize));
        assert_eq!(cursor.next(), keys.get(p[0] as usize));
        assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < 1e-9);
        assert!((median(&[4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-9);
    }
}

/// The simplest store with compare-and-swap: one mutex around a `HashMap`, entries with
/// versions and expiry. Benches run a layer over it beside the memory backend to separate the
/// layer's own cost from the backend's (an ordered skip list built for listing and concurrency,
/// whose point operations cost more than a hash map's); its shape is the per-key state
/// governor keeps in its map.
#[derive(Debug, Default)]
pub struct HashStore {
    map: Mutex<HashMap<String, Entry>>,
    versions: AtomicU64,
}

impl HashStore {
    /// A namespace `id` over a new, empty `HashStore`, on the system clock.
    pub fn namespace(id: &str) -> Namespace {
        Namespace::new(
            id,
            Arc::new(HashStore::default()),
            Limits::default(),
            SystemClock::shared(),
        )
    }

    fn live(map: &HashMap<String, Entry>, key: &str) -> Option<Version> {
        map.get(key)
            .filter(|entry| !is_expired(entry.expiration, SystemTime::now()))
            .map(|entry| entry.version)
    }
}

#[kv_core::async_trait]
impl NamespaceStore for HashStore {
    fn kind(&self) -> &'static str {
        "hashmap"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::atomic()
    }

    async fn get(&self, key: &str) -> kv_core::Result<Option<Entry>> {
        let map = self.map.lock().expect("not poisoned");
        Ok(map
            .get(key)
            .filter(|entry| !is_expired(entry.expiration, SystemTime::now()))
            .cloned())
    }

    async fn put(
        &self,
        key: &str,
        entry: NewEntry,
        mode: WriteMode,
    ) -> kv_core::Result<PutOutcome> {
        let mut map = self.map.lock().expect("not poisoned");
        if !mode.allows(Self::live(&map, key)) {
            return Ok(PutOutcome::ConditionFailed);
        }
        let version = Version::from_raw(self.versions.fetch_add(1, Ordering::Relaxed) + 1);
        let stored = Entry {
            value: entry.value,
            metadata: entry.metadata,
            expiration: entry.expiration,
            version,
        };
        match map.get_mut(key) {
            Some(slot) => *slot = stored,
            None => {
                map.insert(key.to_owned(), stored);
            }
        }
        Ok(PutOutcome::Written(version))
    }

    async fn delete(&self, key: &str, mode: WriteMode) -> kv_core::Result<DeleteOutcome> {
        let mut map = self.map.lock().expect("not poisoned");
        let current = Self::live(&map, key);
        if !mode.allows(current) {
            return Ok(DeleteOutcome::ConditionFailed);
        }
        map.remove(key);
        Ok(DeleteOutcome::Deleted {
            existed: current.is_some(),
        })
    }

    async fn list(&self, _: &ListOptions) -> kv_core::Result<ListPage> {
        Ok(ListPage {
            list_complete: true,
            ..ListPage::default()
        })
    }
}
