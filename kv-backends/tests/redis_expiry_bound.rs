//! Redis refuses an expiration it cannot apply before it changes anything.
//!
//! A compare-and-swap put with `expiration_ttl=9223372036854775` (whose milliseconds overflow an
//! `i64`) once answered an internal error after its Lua script had already replaced the value and
//! version, and a bulk of three items whose third was bad stored the first and half the second.
//! These tests send exactly those writes through limits relaxed past Redis's own ceiling, and
//! through the raw store with no shared checks at all: each is refused with a typed limit error,
//! and the entry, its version, its Redis TTL, the index and the listing are unchanged.
#![cfg(feature = "redis")]

mod support;

use std::time::Duration;

use futures::TryStreamExt;
use kv_backends::redis::{RedisBackend, MAX_EXPIRATION_SECS};
use kv_core::conformance::HUGE_TTL_SECS;
use kv_core::{
    BulkPut, Bytes, KvError, LimitError, Limits, ManualClock, Namespace, NewEntry, PutOptions,
    PutOutcome, Store, Version, WriteMode,
};
use serde_json::json;
use support::redis_server::RedisServer;

const START: u64 = 1_700_000_000;

/// Limits that let any expiration through the shared checks, so only the backend can refuse.
fn relaxed() -> Limits {
    Limits {
        max_expiration_secs: u64::MAX,
        ..Limits::default()
    }
}

struct Setup {
    // Kept alive for the test; dropped (killed) at its end.
    _server: RedisServer,
    conn: redis::aio::MultiplexedConnection,
    ns: Namespace,
}

async fn setup() -> Setup {
    let server = RedisServer::start();
    let clock = ManualClock::at_unix_secs(START);
    let backend = RedisBackend::builder(server.url())
        .clock(clock.shared())
        .connect()
        .await
        .unwrap();
    let ns = Store::new(backend)
        .with_limits(relaxed())
        .namespace("ATTACK")
        .await
        .unwrap();
    let conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    Setup {
        _server: server,
        conn,
        ns,
    }
}

fn ttl(secs: u64) -> PutOptions {
    PutOptions::new().ttl(Duration::from_secs(secs))
}

fn too_late(result: kv_core::Result<impl std::fmt::Debug>) -> u64 {
    match result {
        Err(KvError::Limit(LimitError::ExpirationTooLate { expiration, max })) => {
            assert_eq!(
                max, MAX_EXPIRATION_SECS,
                "the limit named is Redis's ceiling"
            );
            expiration
        }
        other => panic!("expected ExpirationTooLate, got {other:?}"),
    }
}

/// What Redis holds for one key and the namespace: the record, whether it has a Redis TTL,
/// and every name in the bucket indexes.
#[derive(Debug, PartialEq)]
struct RawState {
    record: Option<Vec<u8>>,
    /// The remaining lifetime itself keeps falling in real time: only whether there is one.
    has_ttl: bool,
    index: Vec<String>,
}

impl Setup {
    async fn raw_state(&mut self, key: &str) -> RawState {
        let id = self.ns.id().to_owned();
        let records: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{{kv:{id}:??}}:k:{key}"))
            .query_async(&mut self.conn)
            .await
            .unwrap();
        let (record, pttl_ms) = match records.first() {
            Some(record_key) => {
                let record: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(record_key)
                    .query_async(&mut self.conn)
                    .await
                    .unwrap();
                let pttl_ms: i64 = redis::cmd("PTTL")
                    .arg(record_key)
                    .query_async(&mut self.conn)
                    .await
                    .unwrap();
                (record, pttl_ms)
            }
            None => (None, -2),
        };
        let indexes: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{{kv:{id}:??}}:i"))
            .query_async(&mut self.conn)
            .await
            .unwrap();
        let mut index = Vec::new();
        for bucket in indexes {
            let names: Vec<String> = redis::cmd("ZRANGE")
                .arg(bucket)
                .arg(0)
                .arg(-1)
                .query_async(&mut self.conn)
                .await
                .unwrap();
            index.extend(names);
        }
        index.sort();
        RawState {
            record,
            has_ttl: pttl_ms > 0,
            index,
        }
    }

    async fn names(&self) -> Vec<String> {
        self.ns
            .list_all("")
            .map_ok(|k| k.name)
            .try_collect()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn compare_and_swap_with_a_huge_ttl_changes_nothing() {
    let mut s = setup().await;
    let options = ttl(3600).metadata(json!({"n": 1}));
    let before = s.ns.put_with("k", "before", options).await.unwrap();
    let version = before.version().unwrap();
    let entry_before = s.ns.get_entry("k").await.unwrap();
    let raw_before = s.raw_state("k").await;
    assert!(raw_before.has_ttl, "the record carries a Redis TTL");

    let attack = ttl(HUGE_TTL_SECS).only_if_version(version);
    let refused = s.ns.put_with("k", "after", attack).await;
    assert_eq!(too_late(refused), START + HUGE_TTL_SECS);

    assert_eq!(s.ns.get_entry("k").await.unwrap(), entry_before);
    assert_eq!(s.raw_state("k").await, raw_before, "Redis holds the same");
    assert_eq!(s.names().await, ["k"], "still listed");
    // A retry with the same If-Match still matches (it answered 412 when the write half-applied).
    let retried =
        s.ns.put_with("k", "retried", ttl(60).only_if_version(version))
            .await
            .unwrap();
    assert!(matches!(retried, PutOutcome::Written(_)));
    assert_eq!(
        s.ns.get_text("k").await.unwrap().as_deref(),
        Some("retried")
    );
}

#[tokio::test]
async fn bulk_of_three_with_a_bad_third_stores_none() {
    let mut s = setup().await;
    let _ = s.ns.put_text("b", "old").await.unwrap();
    let raw_before = s.raw_state("b").await;
    let items = vec![
        BulkPut::new("a", "1"),
        BulkPut::new("b", "2").with_options(ttl(120).metadata(json!(["m"]))),
        BulkPut::new("c", "3").with_options(ttl(HUGE_TTL_SECS)),
    ];
    assert_eq!(too_late(s.ns.put_many(items).await), START + HUGE_TTL_SECS);
    assert_eq!(s.ns.get("a").await.unwrap(), None);
    assert_eq!(s.ns.get_text("b").await.unwrap().as_deref(), Some("old"));
    assert_eq!(s.ns.get("c").await.unwrap(), None);
    assert_eq!(s.raw_state("b").await, raw_before);
    assert_eq!(s.names().await, ["b"]);
}

#[tokio::test]
async fn the_backend_refuses_without_the_shared_checks() {
    let mut s = setup().await;
    let version = s.ns.put_text("k", "before").await.unwrap();
    let raw_before = s.raw_state("k").await;
    let store = s.ns.raw().clone();
    let entry = |expiration| NewEntry {
        value: Bytes::from_static(b"after"),
        metadata: Some(json!({"x": 1})),
        expiration: Some(expiration),
    };
    for expiration in [u64::MAX, START + HUGE_TTL_SECS, MAX_EXPIRATION_SECS + 1] {
        for mode in [
            WriteMode::Overwrite,
            WriteMode::OnlyIfVersion(version),
            WriteMode::OnlyIfAbsent,
        ] {
            let refused = store.put("k", entry(expiration), mode).await;
            assert_eq!(too_late(refused), expiration);
        }
        let items = vec![
            ("new".to_owned(), entry(START + 600)),
            ("k".to_owned(), entry(START + 600)),
            ("bad".to_owned(), entry(expiration)),
        ];
        assert_eq!(too_late(store.put_many(items).await), expiration);
    }
    assert_eq!(s.raw_state("k").await, raw_before);
    assert_eq!(s.names().await, ["k"]);
    assert_eq!(s.ns.get_entry("k").await.unwrap().unwrap().version, version);

    // Redis's ceiling itself is a valid expiration, applied as a Redis TTL too.
    let written = store
        .put("edge", entry(MAX_EXPIRATION_SECS), WriteMode::Overwrite)
        .await
        .unwrap();
    assert!(matches!(written, PutOutcome::Written(v) if v != Version::from_raw(0)));
    let stored = s.ns.get_entry("edge").await.unwrap().unwrap();
    assert_eq!(stored.expiration, Some(MAX_EXPIRATION_SECS));
    assert!(s.raw_state("edge").await.has_ttl);
}
