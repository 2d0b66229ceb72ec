//! The Redis backend on a real Redis Cluster (three masters, three replicas, started by the
//! test): a namespace spreads over every master, and a master killed under load is replaced by
//! its replica while the same backend keeps working.
#![cfg(feature = "redis")]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use kv_backends::redis::RedisBackend;
use kv_core::{BulkPut, KvError, Store};
use support::redis_cluster::RedisCluster;

async fn cluster() -> RedisCluster {
    tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_of_10_000_keys_spreads_over_all_three_masters() {
    let cluster = cluster().await;
    let store = kv_backends::open(&cluster.url()).await.unwrap();
    assert_eq!(store.kind(), "redis");
    let ns = store.namespace("SESSIONS").await.unwrap();
    for chunk in (0..10_000).collect::<Vec<u32>>().chunks(1000) {
        let items: Vec<BulkPut> = chunk
            .iter()
            .map(|i| BulkPut::new(format!("session:{i:05}"), format!("{i}")))
            .collect();
        ns.put_many(items).await.unwrap();
    }

    let masters = cluster.masters();
    assert_eq!(masters.len(), 3, "{masters:?}");
    let counts: Vec<u64> = masters
        .iter()
        .map(|m| RedisCluster::dbsize(m.port))
        .collect();
    // Each master holds records and bucket indexes; the catalog is one key on one of them.
    let total: u64 = counts.iter().sum();
    assert!(total >= 10_000, "{counts:?}");
    for (master, count) in masters.iter().zip(&counts) {
        assert!(
            *count > 10_000 / 6,
            "master {} holds only {count} of {total} keys: {counts:?}",
            master.port
        );
    }
    eprintln!("keys per master: {counts:?}");

    // Everything reads back: one key, a bulk get across slots, and the merged listing in order.
    assert_eq!(
        ns.get_text("session:04242").await.unwrap().as_deref(),
        Some("4242")
    );
    let keys: Vec<String> = (0..100).map(|i| format!("session:{:05}", i * 97)).collect();
    let got = ns.get_many(&keys).await.unwrap();
    for (i, entry) in got.iter().enumerate() {
        let expected = (i * 97).to_string();
        assert_eq!(
            entry.as_ref().map(|e| &e.value[..]),
            Some(expected.as_bytes())
        );
    }
    let names: Vec<String> = ns
        .list_all("session:")
        .map_ok(|k| k.name)
        .try_collect()
        .await
        .unwrap();
    let expected: Vec<String> = (0..10_000).map(|i| format!("session:{i:05}")).collect();
    assert_eq!(names, expected);
}

/// One write of the load: which key, and whether and when it was acknowledged.
struct Write {
    attempted_at: Instant,
    key: String,
    value: String,
    acknowledged_at: Option<Instant>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_load_is_replaced_and_acknowledged_writes_read_back() {
    const WRITERS: usize = 8;
    let mut cluster = cluster().await;
    let backend = RedisBackend::builder(cluster.url())
        .response_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let ns = Store::new(backend).namespace("LOAD").await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let read_failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|task| {
            let (ns, stop, read_failures) = (ns.clone(), stop.clone(), read_failures.clone());
            tokio::spawn(async move {
                let mut writes = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("w{task}:{i:06}");
                    let value = format!("{task}-{i}");
                    let attempted_at = Instant::now();
                    let acknowledged_at = match ns.put_text(&key, &value).await {
                        Ok(_) => Some(Instant::now()),
                        Err(error) => {
                            assert!(
                                matches!(
                                    error,
                                    KvError::Unavailable { .. } | KvError::Backend { .. }
                                ),
                                "{error:?}"
                            );
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            None
                        }
                    };
                    // Reads run alongside: a read of the previous write.
                    if i > 0 {
                        let previous = format!("w{task}:{:06}", i - 1);
                        if ns.get(&previous).await.is_err() {
                            read_failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    writes.push(Write {
                        attempted_at,
                        key,
                        value,
                        acknowledged_at,
                    });
                    i += 1;
                }
                writes
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let victim = cluster.masters()[0].clone();
    let killed_at = Instant::now();
    cluster.kill(victim.port);
    // Wait for the replica's promotion: the surviving nodes agree that every slot is served.
    let cluster = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let masters = cluster.masters();
            if masters.len() == 3
                && masters.iter().all(|m| m.port != victim.port)
                && cluster.is_ok()
            {
                return cluster;
            }
            assert!(
                Instant::now() < deadline,
                "no replica took over: {masters:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let promoted_at = Instant::now();
    // The same backend, not restarted, keeps writing for a while after the promotion.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut writes = Vec::new();
    for writer in writers {
        writes.extend(writer.await.unwrap());
    }

    let failed: Vec<&Write> = writes
        .iter()
        .filter(|w| w.acknowledged_at.is_none())
        .collect();
    // Allow the client one response timeout after the promotion to learn the new slot map.
    let settled = promoted_at + Duration::from_secs(2);
    let failed_after_settling = failed.iter().filter(|w| w.attempted_at > settled).count();
    let after: Vec<&Write> = writes
        .iter()
        .filter(|w| w.acknowledged_at.is_some_and(|at| at > promoted_at))
        .collect();
    let mut lost_before_kill = 0;
    let mut unreadable_after = Vec::new();
    for write in &writes {
        let Some(at) = write.acknowledged_at else {
            continue;
        };
        let stored = ns.get_text(&write.key).await.unwrap();
        if stored.as_deref() != Some(write.value.as_str()) {
            if at > promoted_at {
                unreadable_after.push(write.key.clone());
            } else {
                lost_before_kill += 1;
            }
        }
    }
    eprintln!(
        "failover: {} writes, {} failed (promotion {:?} after the kill), {} acknowledged after \
         it, {} acknowledged before it and lost, {} failed reads",
        writes.len(),
        failed.len(),
        promoted_at - killed_at,
        after.len(),
        lost_before_kill,
        read_failures.load(Ordering::Relaxed),
    );
    assert!(
        !after.is_empty(),
        "the clients recovered and wrote after the promotion"
    );
    assert!(
        unreadable_after.is_empty(),
        "acknowledged after recovery but not readable: {unreadable_after:?}"
    );
    // Once the client has learnt the new slot map, every write succeeds: the clients recovered
    // without a restart.
    assert_eq!(
        failed_after_settling, 0,
        "writes still failing after the promotion settled"
    );
    drop(cluster);
}
