//! A slot migrated key by key under compare-and-swap traffic, on a real Redis Cluster: one
//! slot is moved by hand (`CLUSTER SETSLOT ... IMPORTING / MIGRATING`, one `MIGRATE` per key
//! with pauses, `CLUSTER SETSLOT ... NODE`), its bucket index first and the hot record last, so
//! for seconds the records and their index sit on different masters, while many tasks increment
//! counters of that bucket with conditional puts through the backend (and read the bucket in
//! bulk). Every acknowledged increment must be in the final values exactly once, and no
//! operation may fail.
#![cfg(feature = "redis")]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kv_backends::redis::RedisBackend;
use kv_core::{Namespace, PutOptions, PutOutcome, Store, WriteMode};
use support::redis_cluster::RedisCluster;

/// Tasks racing increments.
const TASKS: usize = 12;
/// Names written to find some that share the hot counter's bucket.
const CANDIDATES: usize = 400;
/// How long each key of the slot waits before it moves: long enough that a command refused
/// while the slot's keys are split would exhaust the client's retries.
const PAUSE: Duration = Duration::from_millis(600);

fn cli_ok(port: u16, args: &[&str]) {
    let answer = RedisCluster::cli_text(port, args);
    assert_eq!(answer, "OK", "redis-cli -p {port} {args:?}");
}

/// The Redis keys of the test's prefix on every master, with the master's port.
fn stored_keys(cluster: &RedisCluster) -> Vec<(String, u16)> {
    let mut keys = Vec::new();
    for master in cluster.masters() {
        for key in RedisCluster::cli_text(master.port, &["--scan", "--pattern", "{mig:*"]).lines() {
            keys.push((key.to_owned(), master.port));
        }
    }
    keys
}

/// The hash tag of a Redis key (`{...}`).
fn tag(key: &str) -> &str {
    &key[..=key.find('}').unwrap()]
}

/// What the racing tasks saw.
#[derive(Default)]
struct Tally {
    /// Increments acknowledged per record name.
    acknowledged: BTreeMap<String, u64>,
    /// Lost races (the task read again and retried).
    conflicts: u64,
    /// Store errors by kind (an errored write may or may not have landed).
    errors: BTreeMap<String, u64>,
}

fn error_kind(error: &kv_core::KvError) -> String {
    let text = error.to_string();
    for kind in [
        "TRYAGAIN",
        "try again",
        "ASK",
        "MOVED",
        "CLUSTERDOWN",
        "timed out",
        "timeout",
    ] {
        if text.contains(kind) {
            return kind.to_owned();
        }
    }
    text
}

async fn increment_forever(
    ns: Namespace,
    names: Arc<Vec<String>>,
    task: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
) {
    let mut i = task;
    while !stop.load(Ordering::Relaxed) {
        // Half the increments go to the first name (the hot counter), the rest round-robin.
        let name = if i % 2 == 0 {
            &names[0]
        } else {
            &names[i / 2 % names.len()]
        };
        i += 1;
        // Now and then a bulk get of the whole bucket: its keys may sit on two nodes.
        if i % 8 == 0 {
            match ns.get_many(&names[..]).await {
                Ok(entries) => assert!(entries.iter().all(Option::is_some)),
                Err(error) => {
                    *tally
                        .lock()
                        .unwrap()
                        .errors
                        .entry(format!("get_many: {}", error_kind(&error)))
                        .or_default() += 1;
                }
            }
        }
        let entry = match ns.get_entry(name).await {
            Ok(entry) => entry.expect("the counters exist"),
            Err(error) => {
                *tally
                    .lock()
                    .unwrap()
                    .errors
                    .entry(format!("get: {}", error_kind(&error)))
                    .or_default() += 1;
                continue;
            }
        };
        let n: u64 = std::str::from_utf8(&entry.value).unwrap().parse().unwrap();
        let options = PutOptions::new().mode(WriteMode::OnlyIfVersion(entry.version));
        match ns.put_with(name, (n + 1).to_string(), options).await {
            Ok(PutOutcome::Written(_)) => {
                *tally
                    .lock()
                    .unwrap()
                    .acknowledged
                    .entry(name.clone())
                    .or_default() += 1;
            }
            Ok(PutOutcome::ConditionFailed) => tally.lock().unwrap().conflicts += 1,
            Err(error) => {
                *tally
                    .lock()
                    .unwrap()
                    .errors
                    .entry(format!("put: {}", error_kind(&error)))
                    .or_default() += 1;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_puts_stay_exact_while_their_slot_migrates_key_by_key() {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(RedisCluster::start)
            .await
            .unwrap(),
    );
    let backend = RedisBackend::builder(cluster.url())
        .prefix("mig")
        .response_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let ns = Store::new(backend).namespace("COUNTERS").await.unwrap();
    ns.put_text("hot", "0").await.unwrap();
    for i in 0..CANDIDATES {
        ns.put_text(&format!("n{i}"), "0").await.unwrap();
    }

    // The hot counter's bucket: its record, the records that share its tag, and the index.
    let keys = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || stored_keys(&cluster))
            .await
            .unwrap()
    };
    let (hot_key, source_port) = keys
        .iter()
        .find(|(key, _)| key.ends_with(":k:hot"))
        .cloned()
        .unwrap();
    let hot_tag = tag(&hot_key).to_owned();
    let bucket: Vec<&String> = keys
        .iter()
        .filter(|(key, _)| tag(key) == hot_tag)
        .map(|(key, _)| key)
        .collect();
    let index_key = format!("{hot_tag}:i");
    assert!(bucket.contains(&&index_key), "{bucket:?}");
    let mut names = vec!["hot".to_owned()];
    for key in &bucket {
        if let Some(name) = key.strip_prefix(&format!("{hot_tag}:k:")) {
            if name != "hot" {
                names.push(name.to_owned());
            }
        }
    }
    assert!(names.len() >= 3, "few bucket mates: {names:?}");
    // Migration order: the index, then the other records, then the hot record.
    let mut order = vec![index_key.clone()];
    order.extend(
        bucket
            .iter()
            .filter(|key| **key != &index_key && **key != &hot_key)
            .map(|key| key.to_string()),
    );
    order.push(hot_key.clone());

    let slot: u16 = RedisCluster::cli_text(source_port, &["CLUSTER", "KEYSLOT", &hot_key])
        .parse()
        .unwrap();
    let masters = cluster.masters();
    let source = masters
        .iter()
        .find(|m| m.port == source_port)
        .unwrap()
        .clone();
    let target = masters
        .iter()
        .find(|m| m.port != source_port)
        .unwrap()
        .clone();

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let names = Arc::new(names);
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            tokio::spawn(increment_forever(
                ns.clone(),
                names.clone(),
                task,
                stop.clone(),
                tally.clone(),
            ))
        })
        .collect();

    let migration = {
        let cluster = cluster.clone();
        let slot = slot.to_string();
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(500));
            cli_ok(
                target.port,
                &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &source.id],
            );
            cli_ok(
                source.port,
                &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &target.id],
            );
            for key in &order {
                std::thread::sleep(PAUSE);
                RedisCluster::migrate(source.port, target.port, [key.as_str()]);
            }
            // Anything else in the slot (another test's keys never share it; be thorough).
            loop {
                let left =
                    RedisCluster::cli_text(source.port, &["CLUSTER", "GETKEYSINSLOT", &slot, "10"]);
                let Some(key) = left.lines().next() else {
                    break;
                };
                RedisCluster::migrate(source.port, target.port, [key]);
            }
            std::thread::sleep(PAUSE);
            for master in cluster.masters() {
                let _ = RedisCluster::cli_text(
                    master.port,
                    &["CLUSTER", "SETSLOT", &slot, "NODE", &target.id],
                );
            }
            // The client finds the new owner through MOVED while traffic goes on.
            std::thread::sleep(Duration::from_millis(1000));
        })
    };
    migration.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }

    let left = RedisCluster::cli_text(
        source_port,
        &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()],
    );
    assert_eq!(left, "0", "every key of the slot left the source");

    let tally = std::mem::take(&mut *tally.lock().unwrap());
    let mut report = Vec::new();
    let mut mismatched = Vec::new();
    for name in names.iter() {
        // Read through the same backend: its client must not be left stuck by the move.
        let stored: u64 = ns.get_text(name).await.unwrap().unwrap().parse().unwrap();
        let acknowledged = tally.acknowledged.get(name).copied().unwrap_or(0);
        report.push(format!(
            "{name}: {acknowledged} acknowledged, {stored} stored"
        ));
        if stored != acknowledged {
            mismatched.push(name.clone());
        }
    }
    eprintln!(
        "slot {slot} ({} keys) moved; {}; {} conflicts; errors by kind: {:?}",
        names.len() + 1,
        report.join(", "),
        tally.conflicts,
        tally.errors
    );
    assert!(
        tally.acknowledged.get("hot").copied().unwrap_or(0) > 0,
        "the hot counter moved on"
    );
    assert!(
        tally.errors.is_empty(),
        "store errors during the migration: {:?}",
        tally.errors
    );
    assert!(
        mismatched.is_empty(),
        "increments lost or doubled: {mismatched:?}; {report:?}"
    );
}
