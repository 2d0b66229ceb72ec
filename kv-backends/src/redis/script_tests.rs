//! The write scripts against a real redis-server, with arguments the Rust side never sends: a
//! script validates every argument before its first write and orders its commands so that the
//! ones that can fail come first, so a refused or failed call leaves the record, its TTL and the
//! index exactly as they were.

#[path = "../../tests/support/redis_server.rs"]
mod redis_server;

use ::redis::aio::MultiplexedConnection;
use ::redis::{cmd, RedisResult};

use super::layout::RecordArg;
use super::scripts::Scripts;
use redis_server::RedisServer;

const RECORD: &str = "{t}:k:key";
const INDEX: &str = "{t}:i";
const NOW: &str = "1700000000";

/// TTLs a script must refuse: the attack's (milliseconds beyond an `i64`), past what a double
/// holds exactly, and not whole positive decimal numbers.
const BAD_PTTL: [&str; 7] = [
    "9223372038554775000",
    "18446744073709551615000",
    "9007199254740993",
    "1e3",
    "-5",
    "0",
    " 1",
];

struct Redis {
    _server: RedisServer,
    conn: MultiplexedConnection,
    scripts: Scripts,
}

async fn redis() -> Redis {
    let server = RedisServer::start();
    let conn = ::redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    Redis {
        _server: server,
        conn,
        scripts: Scripts::new(),
    }
}

fn record(version: u64, value: &str) -> Vec<u8> {
    RecordArg::new(
        version,
        Some(1_700_003_600),
        Some("{\"n\":1}"),
        value.as_bytes(),
    )
    .to_vec()
}

/// Everything the scripts may touch, for before/after comparisons.
#[derive(Debug, PartialEq)]
struct Snapshot {
    record: Option<Vec<u8>>,
    index: Option<Vec<String>>,
}

impl Redis {
    async fn put(
        &mut self,
        mode: &str,
        expected: &str,
        record: &[u8],
        pttl: &str,
    ) -> RedisResult<i64> {
        self.scripts
            .put
            .key(RECORD)
            .key(INDEX)
            .arg("key")
            .arg(mode)
            .arg(expected)
            .arg(NOW)
            .arg(record)
            .arg(pttl)
            .invoke_async(&mut self.conn)
            .await
    }

    async fn delete(&mut self, mode: &str, expected: &str) -> RedisResult<i64> {
        self.scripts
            .delete
            .key(RECORD)
            .key(INDEX)
            .arg("key")
            .arg(mode)
            .arg(expected)
            .arg(NOW)
            .invoke_async(&mut self.conn)
            .await
    }

    /// The record's remaining lifetime in ms (-1 without one), which real time keeps lowering.
    async fn ttl_ms(&mut self) -> i64 {
        cmd("PTTL")
            .arg(RECORD)
            .query_async(&mut self.conn)
            .await
            .unwrap()
    }

    /// Asserts the record still has its Redis TTL (a rewrite without `PX` would drop it).
    async fn assert_ttl_kept(&mut self, context: &str) {
        let ttl_ms = self.ttl_ms().await;
        assert!(
            ttl_ms > 3_500_000 && ttl_ms <= 3_600_000,
            "{context}: TTL {ttl_ms} ms"
        );
    }

    async fn snapshot(&mut self) -> Snapshot {
        let record: Option<Vec<u8>> = cmd("GET")
            .arg(RECORD)
            .query_async(&mut self.conn)
            .await
            .unwrap_or(None);
        let kind: String = cmd("TYPE")
            .arg(INDEX)
            .query_async(&mut self.conn)
            .await
            .unwrap();
        let index = match kind.as_str() {
            "zset" => Some(
                cmd("ZRANGE")
                    .arg(INDEX)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut self.conn)
                    .await
                    .unwrap(),
            ),
            _ => None,
        };
        Snapshot { record, index }
    }
}

#[tokio::test]
async fn put_refuses_a_bad_ttl_before_writing() {
    let mut r = redis().await;
    assert_eq!(
        r.put("overwrite", "", &record(7, "before"), "3600000")
            .await
            .unwrap(),
        1
    );
    let before = r.snapshot().await;
    r.assert_ttl_kept("written").await;
    for pttl in BAD_PTTL {
        // Refused whatever the condition (the bad argument is found before the condition).
        for (mode, expected) in [("overwrite", ""), ("version", "7"), ("absent", "")] {
            let context = format!("{mode} {pttl:?}");
            let outcome = r.put(mode, expected, &record(8, "after"), pttl).await;
            assert_eq!(outcome, Ok(-3), "{context}");
            assert_eq!(r.snapshot().await, before, "{context}");
            r.assert_ttl_kept(&context).await;
        }
    }
    // The version still matches: the refused writes changed nothing.
    assert_eq!(
        r.put("version", "7", &record(9, "after"), "3600000")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        r.put("version", "7", &record(10, "stale"), "")
            .await
            .unwrap(),
        -1
    );
    assert_eq!(
        r.put("absent", "", &record(11, "taken"), "").await.unwrap(),
        -1
    );
    assert_eq!(r.snapshot().await.record, Some(record(9, "after")));
}

#[tokio::test]
async fn a_failing_command_comes_before_the_record_is_touched() {
    let mut r = redis().await;
    assert_eq!(
        r.put("overwrite", "", &record(1, "before"), "3600000")
            .await
            .unwrap(),
        1
    );
    // An index of the wrong type (not a tombstone string) makes ZADD fail: that must happen
    // before the record changes.
    let () = cmd("DEL")
        .arg(INDEX)
        .query_async(&mut r.conn)
        .await
        .unwrap();
    let () = cmd("HSET")
        .arg(INDEX)
        .arg("not")
        .arg("a sorted set")
        .query_async(&mut r.conn)
        .await
        .map(|_: i64| ())
        .unwrap();
    let before = r.snapshot().await;
    for (mode, expected) in [("overwrite", ""), ("version", "1")] {
        assert!(r
            .put(mode, expected, &record(2, "after"), "")
            .await
            .is_err());
    }
    assert_eq!(r.snapshot().await, before, "the record is untouched");
    r.assert_ttl_kept("failed write").await;
}

#[tokio::test]
async fn a_tombstoned_index_refuses_writes_and_a_foreign_value_is_an_error() {
    let mut r = redis().await;
    let () = cmd("SET")
        .arg(INDEX)
        .arg("deleted")
        .query_async(&mut r.conn)
        .await
        .unwrap();
    for (mode, expected) in [("overwrite", ""), ("absent", ""), ("version", "1")] {
        assert_eq!(
            r.put(mode, expected, &record(1, "v"), "").await,
            Ok(-2),
            "{mode}"
        );
    }
    assert_eq!(r.snapshot().await.record, None, "nothing written");
    assert_eq!(r.delete("overwrite", "").await, Ok(0));

    let () = cmd("DEL")
        .arg(INDEX)
        .query_async(&mut r.conn)
        .await
        .unwrap();
    let () = cmd("SET")
        .arg(RECORD)
        .arg("not a record")
        .query_async(&mut r.conn)
        .await
        .unwrap();
    assert!(r.put("version", "1", &record(1, "v"), "").await.is_err());
    assert!(r.delete("version", "1").await.is_err());
    assert_eq!(
        r.snapshot().await.record.as_deref(),
        Some(&b"not a record"[..])
    );
}

#[tokio::test]
async fn conditional_delete_checks_the_header() {
    let mut r = redis().await;
    assert_eq!(
        r.put("overwrite", "", &record(5, "v"), "").await.unwrap(),
        1
    );
    assert_eq!(r.delete("version", "4").await, Ok(-1));
    assert_eq!(r.delete("absent", "").await, Ok(-1));
    assert_eq!(r.delete("version", "5").await, Ok(1));
    assert_eq!(
        r.snapshot().await,
        Snapshot {
            record: None,
            index: None
        }
    );
    assert_eq!(r.delete("overwrite", "").await, Ok(0));
}
