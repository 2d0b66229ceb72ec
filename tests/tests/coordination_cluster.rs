//! The distributed lock and the event log on a real Redis Cluster (three masters, three
//! replicas, started by the test), unchanged: mutual exclusion with increasing fencing tokens
//! among tasks on two backends (as two processes would be), and concurrent appends that replay
//! once each, in order, though the log's keys spread over the masters.

#[path = "../../kv-backends/tests/support/redis_cluster.rs"]
mod redis_cluster;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kv_backends::redis::RedisBackend;
use kv_core::event_log::{EventId, EventLog};
use kv_core::lock::DistributedLock;
use kv_core::Store;
use redis_cluster::RedisCluster;

async fn two_stores(cluster: &RedisCluster) -> [Store; 2] {
    let a = RedisBackend::connect(&cluster.url()).await.unwrap();
    let b = RedisBackend::connect(&cluster.url()).await.unwrap();
    assert!(a.is_cluster());
    [Store::new(a), Store::new(b)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_and_event_log_work_on_a_cluster() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap();
    let stores = two_stores(&cluster).await;

    // The lock: 2 backends x 5 tasks x 5 rounds of a non-atomic read-yield-write.
    let counter = Arc::new(AtomicU64::new(0));
    let inside = Arc::new(AtomicBool::new(false));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for store in &stores {
        let locks = DistributedLock::new(store.namespace("LOCKS").await.unwrap())
            .unwrap()
            .acquire_timeout(Duration::from_secs(60))
            .retry_backoff(Duration::from_millis(1), Duration::from_millis(20));
        for _ in 0..5 {
            let (locks, counter, inside, tokens) = (
                locks.clone(),
                counter.clone(),
                inside.clone(),
                tokens.clone(),
            );
            tasks.push(tokio::spawn(async move {
                for _ in 0..5 {
                    let guard = locks.acquire("resource").await.unwrap();
                    assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                    let read = counter.load(Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    counter.store(read + 1, Ordering::SeqCst);
                    tokens.lock().unwrap().push(guard.token().get());
                    inside.store(false, Ordering::SeqCst);
                    guard.release().await.unwrap();
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(counter.load(Ordering::SeqCst), 50);
    let tokens = tokens.lock().unwrap().clone();
    assert!(
        tokens.windows(2).all(|pair| pair[0] < pair[1]),
        "fencing tokens increase in acquisition order: {tokens:?}"
    );

    // The event log: 2 backends x 4 tasks x 50 appends, replayed once each and in order.
    let mut handles = Vec::new();
    for (b, store) in stores.iter().enumerate() {
        let log = EventLog::new(store.namespace("EVENTS").await.unwrap());
        for t in 0..4 {
            let log = log.clone();
            handles.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 0..50usize {
                    ids.push(log.append("stream", &(b * 4 + t, n)).await.unwrap());
                }
                ids
            }));
        }
    }
    let mut appended: HashSet<EventId> = HashSet::new();
    for handle in handles {
        appended.extend(handle.await.unwrap());
    }
    assert_eq!(appended.len(), 400, "ids are unique");
    let log = EventLog::new(stores[0].namespace("EVENTS").await.unwrap());
    let replayed: Vec<(EventId, (usize, usize))> = log.replay("stream", None).await.unwrap();
    let ids: Vec<EventId> = replayed.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.iter().copied().collect::<HashSet<_>>(), appended);
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "replay in id order"
    );
    let mut next = [0usize; 8];
    for (_, (task, n)) in replayed {
        assert_eq!(n, next[task], "task {task} in append order");
        next[task] += 1;
    }
}
