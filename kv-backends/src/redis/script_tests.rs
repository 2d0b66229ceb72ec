//! The write scripts against a real redis-server, with arguments the Rust side never sends: a
//! script validates every argument before its first write, so a refused call leaves the record
//! and its TTL exactly as they were; and a write sent again after it landed is not applied
//! twice.

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

/// A record of `version` and its encoding.
fn record(version: u64, value: &str) -> (u64, Vec<u8>) {
    let bytes = RecordArg::new(
        version,
        Some(1_700_003_600),
        Some("{\"n\":1}"),
        value.as_bytes(),
    )
    .to_vec();
    (version, bytes)
}

/// Everything the scripts may touch, for before/after comparisons.
#[derive(Debug, PartialEq)]
struct Snapshot {
    record: Option<Vec<u8>>,
    index: Option<Vec<String>>,
}

impl Redis {
    /// The `put` script writing `record`, whose version is `version`.
    async fn put(
        &mut self,
        mode: &str,
        expected: &str,
        (version, record): (u64, Vec<u8>),
        pttl: &str,
    ) -> RedisResult<i64> {
        self.scripts
            .put
            .key(RECORD)
            .arg(mode)
            .arg(expected)
            .arg(NOW)
            .arg(record)
            .arg(pttl)
            .arg(version)
            .invoke_async(&mut self.conn)
            .await
    }

    async fn delete(&mut self, mode: &str, expected: &str) -> RedisResult<i64> {
        self.scripts
            .delete
            .key(RECORD)
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
        r.put("overwrite", "", record(7, "before"), "3600000")
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
            let outcome = r.put(mode, expected, record(8, "after"), pttl).await;
            assert_eq!(outcome, Ok(-3), "{context}");
            assert_eq!(r.snapshot().await, before, "{context}");
            r.assert_ttl_kept(&context).await;
        }
    }
    // The version still matches: the refused writes changed nothing.
    assert_eq!(
        r.put("version", "7", record(9, "after"), "3600000")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        r.put("version", "7", record(10, "stale"), "")
            .await
            .unwrap(),
        -1
    );
    assert_eq!(
        r.put("absent", "", record(11, "taken"), "").await.unwrap(),
        -1
    );
    assert_eq!(r.snapshot().await.record, Some(record(9, "after").1));
}

#[tokio::test]
async fn a_write_sent_again_after_it_landed_is_reported_written_once() {
    let mut r = redis().await;
    assert_eq!(
        r.put("absent", "", record(1, "first"), "3600000").await,
        Ok(1)
    );
    // The same call again (its reply was lost): written, not a failed condition.
    assert_eq!(
        r.put("absent", "", record(1, "first"), "3600000").await,
        Ok(1)
    );
    assert_eq!(
        r.put("version", "1", record(2, "second"), "3600000").await,
        Ok(1)
    );
    let after = r.snapshot().await;
    assert_eq!(
        r.put("version", "1", record(2, "second"), "3600000").await,
        Ok(1)
    );
    assert_eq!(r.snapshot().await, after, "nothing written twice");
    r.assert_ttl_kept("retried write").await;
    // Another write with the same expectation lost the race.
    assert_eq!(r.put("version", "1", record(3, "third"), "").await, Ok(-1));
    assert_eq!(r.put("absent", "", record(4, "fourth"), "").await, Ok(-1));
    assert_eq!(r.snapshot().await, after);
}

#[tokio::test]
async fn a_foreign_value_is_an_error_and_stays() {
    let mut r = redis().await;
    let () = cmd("SET")
        .arg(RECORD)
        .arg("not a record")
        .query_async(&mut r.conn)
        .await
        .unwrap();
    assert!(r.put("version", "1", record(1, "v"), "").await.is_err());
    assert!(r.put("absent", "", record(1, "v"), "").await.is_err());
    assert!(r.delete("version", "1").await.is_err());
    assert_eq!(
        r.snapshot().await.record.as_deref(),
        Some(&b"not a record"[..])
    );
}

#[tokio::test]
async fn conditional_delete_checks_the_header() {
    let mut r = redis().await;
    assert_eq!(r.put("overwrite", "", record(5, "v"), "").await.unwrap(), 1);
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
