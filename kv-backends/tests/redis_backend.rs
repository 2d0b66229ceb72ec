//! Redis-specific behaviour: racing clients, restarts, expiry pruning, prefixes, hash tags.
#![cfg(feature = "redis")]

mod support;

use std::time::Duration;

use futures::TryStreamExt;
use kv_backends::redis::RedisBackend;
use kv_core::{KvError, ManualClock, PutOptions, PutOutcome, Store, WriteMode};
use support::redis_server::RedisServer;

async fn backend(server: &RedisServer, clock: &ManualClock) -> RedisBackend {
    RedisBackend::builder(server.url())
        .clock(clock.shared())
        .connect()
        .await
        .unwrap()
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The Redis key of record `name` (whichever bucket it hashed to).
async fn record_key(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    id: &str,
    name: &str,
) -> String {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{prefix}:{id}:??}}:k:{name}"))
        .query_async(conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "one record key for {name}: {keys:?}");
    keys.into_iter().next().unwrap()
}

/// How many names the namespace's bucket indexes hold in all.
async fn indexed_names(conn: &mut redis::aio::MultiplexedConnection, id: &str) -> i64 {
    let indexes: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{kv:{id}:??}}:i"))
        .query_async(conn)
        .await
        .unwrap();
    let mut total = 0;
    for index in indexes {
        let n: i64 = redis::cmd("ZCARD")
            .arg(&index)
            .query_async(conn)
            .await
            .unwrap();
        total += n;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_independent_clients_lose_no_increment() {
    const TASKS_PER_CLIENT: u64 = 8;
    const INCREMENTS: u64 = 25;
    let server = RedisServer::start();
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    // Two backends, two connections: as two processes would be.
    let a = Store::new(backend(&server, &clock).await);
    let b = Store::new(backend(&server, &clock).await);
    let ns_a = a.namespace("COUNTERS").await.unwrap();
    let ns_b = b.namespace("COUNTERS").await.unwrap();
    assert_eq!(ns_a.id(), ns_b.id(), "both see one namespace");
    let mut tasks = Vec::new();
    for ns in [ns_a.clone(), ns_b] {
        for _ in 0..TASKS_PER_CLIENT {
            let ns = ns.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..INCREMENTS {
                    loop {
                        let (count, mode) = match ns.get_json_entry::<u64>("n").await.unwrap() {
                            Some((n, entry)) => (n, WriteMode::OnlyIfVersion(entry.version)),
                            None => (0, WriteMode::OnlyIfAbsent),
                        };
                        let options = PutOptions::new().mode(mode);
                        if let PutOutcome::Written(_) =
                            ns.put_json_with("n", &(count + 1), options).await.unwrap()
                        {
                            break;
                        }
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        ns_a.get_json::<u64>("n").await.unwrap(),
        Some(2 * TASKS_PER_CLIENT * INCREMENTS)
    );
}

#[tokio::test]
async fn restart_gives_typed_errors_then_recovers() {
    let mut server = RedisServer::start();
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let store = Store::new(backend(&server, &clock).await);
    let ns = store.namespace("N").await.unwrap();
    ns.put_text("before", "1").await.unwrap();

    server.kill();
    let started = std::time::Instant::now();
    let error = ns.get("before").await.unwrap_err();
    assert!(
        matches!(
            error,
            KvError::Unavailable {
                backend: "redis",
                ..
            }
        ),
        "while down: {error:?}"
    );
    assert!(error.is_transient());
    let error = ns.put_text("during", "x").await.unwrap_err();
    assert!(matches!(error, KvError::Unavailable { .. }), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "fails fast, not after a hang"
    );

    server.restart(); // empty: this server persists nothing
                      // The same handles work again once the connection is re-established.
    let mut recovered = false;
    for _ in 0..50 {
        match store.namespace("N").await {
            Ok(_) => {
                recovered = true;
                break;
            }
            Err(KvError::Unavailable { .. }) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(recovered, "the backend reconnects by itself");
    let ns = store.namespace("N").await.unwrap();
    ns.put_text("after", "2").await.unwrap();
    assert_eq!(ns.get_text("after").await.unwrap().as_deref(), Some("2"));
}

#[tokio::test]
async fn listing_after_many_expirations_prunes_the_index() {
    let server = RedisServer::start();
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let store = Store::new(backend(&server, &clock).await);
    let ns = store.namespace("E").await.unwrap();
    for i in 0..600 {
        let options = if i % 3 == 0 {
            PutOptions::new()
        } else {
            PutOptions::new().ttl(Duration::from_secs(60))
        };
        let _ = ns
            .put_with(&format!("k{i:04}"), "v", options)
            .await
            .unwrap();
    }
    // Time passes on the store's clock, and Redis expires the records itself.
    clock.advance(Duration::from_secs(60));
    let mut conn = raw(&server).await;
    for i in (0..600).filter(|i| i % 3 != 0) {
        let record = record_key(&mut conn, "kv", ns.id(), &format!("k{i:04}")).await;
        let _: i64 = redis::cmd("PEXPIRE")
            .arg(&record)
            .arg(1)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let before = indexed_names(&mut conn, ns.id()).await;
    assert_eq!(before, 600, "the index still names them");

    let names: Vec<String> = ns
        .list_all("")
        .map_ok(|k| k.name)
        .try_collect()
        .await
        .unwrap();
    let expected: Vec<String> = (0..600)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("k{i:04}"))
        .collect();
    assert_eq!(names, expected);
    let after = indexed_names(&mut conn, ns.id()).await;
    assert_eq!(after, 200, "expired names were pruned from the index");
    // Paging still works over the pruned index.
    let page = ns
        .list(&kv_core::ListOptions::new().limit(7))
        .await
        .unwrap();
    assert_eq!(page.keys.len(), 7);
    assert!(!page.list_complete);
}

#[tokio::test]
async fn prefixes_isolate_apps_and_keys_share_one_hash_tag() {
    let server = RedisServer::start();
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let app1 = Store::new(
        RedisBackend::builder(format!("{}?prefix=app1", server.url()))
            .clock(clock.shared())
            .connect()
            .await
            .unwrap(),
    );
    let app2 = Store::new(
        RedisBackend::builder(server.url())
            .prefix("app2")
            .clock(clock.shared())
            .connect()
            .await
            .unwrap(),
    );
    let a = app1.namespace("SHARED").await.unwrap();
    let b = app2.namespace("SHARED").await.unwrap();
    a.put_text("k", "one").await.unwrap();
    b.put_text("k", "two").await.unwrap();
    assert_eq!(a.get_text("k").await.unwrap().as_deref(), Some("one"));
    assert_eq!(b.get_text("k").await.unwrap().as_deref(), Some("two"));
    assert_eq!(app1.list_namespaces().await.unwrap().len(), 1);

    let mut conn = raw(&server).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let tag = format!("{{app1:{}:", a.id());
    let app1_keys: Vec<&String> = keys.iter().filter(|k| k.starts_with("{app1:")).collect();
    assert!(!app1_keys.is_empty());
    assert!(
        app1_keys.iter().all(|k| k.starts_with(&tag)),
        "every key of the namespace carries one of its bucket tags: {app1_keys:?}"
    );
    // A record and its bucket's index share one tag (one cluster slot).
    let record = record_key(&mut conn, "app1", a.id(), "k").await;
    let bucket_tag = &record[..record.find('}').unwrap() + 1];
    assert!(keys.contains(&format!("{bucket_tag}:i")), "{keys:?}");
    assert!(keys.contains(&"app1:catalog".to_owned()));
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    let closed = support::closed_port::ClosedPort::new();
    let result = RedisBackend::connect(&format!("redis://{}/0", closed.addr())).await;
    assert!(
        matches!(result, Err(KvError::Unavailable { .. })),
        "{result:?}"
    );
    assert!(matches!(
        RedisBackend::builder("redis://127.0.0.1:1/0")
            .prefix("bad{tag}")
            .connect()
            .await,
        Err(KvError::InvalidStoreUrl { .. })
    ));
}

#[tokio::test]
async fn opens_from_a_store_url() {
    let server = RedisServer::start();
    let store = kv_backends::open(&server.url()).await.unwrap();
    assert_eq!(store.kind(), "redis");
    let ns = store.namespace("U").await.unwrap();
    ns.put_text("k", "v").await.unwrap();
    assert_eq!(ns.get_text("k").await.unwrap().as_deref(), Some("v"));
}
