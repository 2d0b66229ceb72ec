//! The write scripts against a real redis-server, with arguments the Rust side never sends: a
//! script validates every argument before its first write and orders its commands so that the
//! ones that can fail come first, so a refused or failed call leaves the record, its TTL and the
//! index exactly as they were.

#[path = "../../tests/support/redis_server.rs"]
mod redis_server;

use ::redis::aio::MultiplexedConnection;
use ::redis::{cmd, RedisResult};

use super::scripts::Scripts;
use redis_server::RedisServer;

const RECORD: &str = "{t}:k:key";
const INDEX: &str = "{t}:i";
const VERSIONS: &str = "{t}:v";
const LIVE: &str = "{t}:live";
const NOW: &str = "1700000000";

/// Valid arguments of one record after the name: value, has metadata, metadata, expiration, TTL.
const GOOD: [&str; 5] = ["before", "1", "{\"n\":1}", "1700003600", "3600000"];

/// Expirations and TTLs a script must refuse: the attack's (milliseconds beyond an `i64`), past
/// what a double holds exactly, not whole decimal numbers, and empty halves.
const BAD_EXPIRY: [(&str, &str); 10] = [
    ("9223372038554775", "9223372038554775000"),
    ("18446744073709551615", "18446744073709551615000"),
    ("9007199254741", "1000"),
    ("1700003600", "9007199254740993"),
    ("1700003600", "1e3"),
    ("1700003600", "-5"),
    ("1700003600", "0"),
    ("1700003600", ""),
    ("", "1000"),
    ("17e8", "1000"),
];

struct Redis {
    _server: RedisServer,
    conn: MultiplexedConnection,
    scripts: Scripts,
}

async fn redis() -> Redis {
    let server = RedisServer::start();
    let mut conn = ::redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = cmd("SET")
        .arg(LIVE)
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    Redis {
        _server: server,
        conn,
        scripts: Scripts::new(),
    }
}

/// Everything the scripts may touch, for before/after comparisons.
#[derive(Debug, PartialEq)]
struct Snapshot {
    record: Vec<(String, String)>,
    index: Option<Vec<String>>,
    counter: Option<String>,
}

impl Redis {
    async fn put(&mut self, mode: &str, expected: &str, record: [&str; 5]) -> RedisResult<i64> {
        self.scripts
            .put
            .key(RECORD)
            .key(INDEX)
            .key(VERSIONS)
            .key(LIVE)
            .arg("key")
            .arg(mode)
            .arg(expected)
            .arg(NOW)
            .arg(&record[..])
            .invoke_async(&mut self.conn)
            .await
    }

    async fn put_many(&mut self, items: &[(&str, [&str; 5])]) -> RedisResult<i64> {
        let mut invocation = self.scripts.put_many.prepare_invoke();
        invocation.key(INDEX).key(VERSIONS).key(LIVE);
        for (name, record) in items {
            invocation
                .key(format!("{{t}}:k:{name}"))
                .arg(name)
                .arg(&record[..]);
        }
        invocation.invoke_async(&mut self.conn).await
    }

    /// The record's remaining lifetime in ms (-1 without one), which real time keeps lowering.
    async fn ttl_ms(&mut self) -> i64 {
        cmd("PTTL")
            .arg(RECORD)
            .query_async(&mut self.conn)
            .await
            .unwrap()
    }

    /// Asserts the record still has its Redis TTL (a rewrite without `PEXPIRE` would drop it).
    async fn assert_ttl_kept(&mut self, context: &str) {
        let ttl_ms = self.ttl_ms().await;
        assert!(
            ttl_ms > 3_500_000 && ttl_ms <= 3_600_000,
            "{context}: TTL {ttl_ms} ms"
        );
    }

    async fn snapshot(&mut self) -> Snapshot {
        let mut record: Vec<(String, String)> = cmd("HGETALL")
            .arg(RECORD)
            .query_async(&mut self.conn)
            .await
            .unwrap();
        record.sort();
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
        let counter: Option<String> = cmd("GET")
            .arg(VERSIONS)
            .query_async(&mut self.conn)
            .await
            .unwrap();
        Snapshot {
            record,
            index,
            counter,
        }
    }
}

#[tokio::test]
async fn put_refuses_bad_expiry_arguments_before_writing() {
    let mut r = redis().await;
    assert_eq!(r.put("overwrite", "", GOOD).await.unwrap(), 1);
    let before = r.snapshot().await;
    r.assert_ttl_kept("written").await;
    for (expiration, pttl) in BAD_EXPIRY {
        let record = ["after", "0", "", expiration, pttl];
        // Refused whatever the condition (the bad argument is found before the condition).
        for (mode, expected) in [("overwrite", ""), ("version", "1"), ("absent", "")] {
            let context = format!("{mode} {expiration:?}/{pttl:?}");
            assert_eq!(r.put(mode, expected, record).await, Ok(-3), "{context}");
            assert_eq!(r.snapshot().await, before, "{context}");
            r.assert_ttl_kept(&context).await;
        }
    }
    // A metadata flag other than 0 or 1 is refused too.
    let outcome = r.put("overwrite", "", ["after", "yes", "", "", ""]).await;
    assert_eq!(outcome, Ok(-3));
    assert_eq!(r.snapshot().await, before);
    // The version still matches: the refused writes changed nothing.
    assert_eq!(r.put("version", "1", GOOD).await.unwrap(), 2);
}

#[tokio::test]
async fn put_many_with_a_bad_third_item_writes_none() {
    let mut r = redis().await;
    assert_eq!(r.put("overwrite", "", GOOD).await.unwrap(), 1);
    let before = r.snapshot().await;
    for (expiration, pttl) in BAD_EXPIRY {
        let items = [
            ("a", ["1", "0", "", "", ""]),
            ("key", ["2", "1", "[]", "1700000120", "120000"]),
            ("c", ["3", "0", "", expiration, pttl]),
        ];
        assert_eq!(r.put_many(&items).await, Ok(-3), "{expiration:?}/{pttl:?}");
        assert_eq!(r.snapshot().await, before);
        r.assert_ttl_kept("bulk").await;
        for name in ["a", "c"] {
            let exists: i64 = cmd("EXISTS")
                .arg(format!("{{t}}:k:{name}"))
                .query_async(&mut r.conn)
                .await
                .unwrap();
            assert_eq!(exists, 0, "{name} was not written");
        }
    }
}

#[tokio::test]
async fn a_failing_command_comes_before_the_record_is_touched() {
    let mut r = redis().await;
    assert_eq!(r.put("overwrite", "", GOOD).await.unwrap(), 1);
    // An index of the wrong type makes ZADD fail: that must happen before the record changes.
    let () = cmd("DEL")
        .arg(INDEX)
        .query_async(&mut r.conn)
        .await
        .unwrap();
    let () = cmd("SET")
        .arg(INDEX)
        .arg("not a sorted set")
        .query_async(&mut r.conn)
        .await
        .unwrap();
    let before = r.snapshot().await;
    let record = ["after", "0", "", "", ""];
    assert!(r.put("overwrite", "", record).await.is_err());
    let items = [("key", record), ("other", record)];
    assert!(r.put_many(&items).await.is_err());
    let after = r.snapshot().await;
    assert_eq!(after.record, before.record, "the record is untouched");
    r.assert_ttl_kept("failed write").await;
    // Only the version counter may have advanced: versions need to be unique, not dense.
}
