//! Two `kv-demo` processes share a per-IP API limit on a Redis Cluster while
//! `redis-cli --cluster reshard` moves the limit's slot to another master: the limit stays
//! exact (every admission is a compare-and-swap that a migration neither loses nor repeats)
//! and no check meets a store error.
//!
//! The demo's API limit fails open: a request whose check met a store error would pass without
//! `RateLimit` headers and without being counted, so such passes are counted apart, and must
//! not happen.
//!
//! `redis-cli --cluster reshard` moves a source's slots from its lowest up. So that the reshard
//! under traffic is short, the source's slots below the limit's are first handed to the target
//! without traffic (by hand, in a few batched `redis-cli` sessions): the reshard then moves the
//! limit's slot first, while both processes spend the quota.

mod support;

#[path = "../../kv-backends/tests/support/redis_cluster.rs"]
mod redis_cluster;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis_cluster::RedisCluster;
use support::{client, DemoProcess};

/// The quota: a day's worth, so nothing refills while the test runs (one request per 288 s;
/// the test takes well under a minute).
const QUOTA: usize = 300;

/// Keys added to the limit's slot so that moving it takes a few seconds.
const PADDING: usize = 60_000;

/// Runs `commands` (one a line) in one `redis-cli` session on `port`; returns the answers.
fn cli_batch(port: u16, commands: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli runs");
    // Written from another thread: the answers fill the output pipe while commands go in.
    let mut stdin = child.stdin.take().unwrap();
    let commands = commands.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(commands.as_bytes()).unwrap());
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Hands `slots` from `source` to `target` the way a reshard does (importing, migrating, the
/// keys moved, then the owner set on every master), each step batched for all slots at once.
fn move_slots(
    cluster: &RedisCluster,
    slots: std::ops::Range<u16>,
    source: &redis_cluster::NodeInfo,
    target: &redis_cluster::NodeInfo,
) {
    if slots.is_empty() {
        return;
    }
    let each = |command: &dyn Fn(u16) -> String| -> String {
        slots.clone().map(|slot| command(slot) + "\n").collect()
    };
    let check = |answers: String, what: &str| {
        assert!(
            answers.lines().all(|line| line.trim() == "OK"),
            "{what}: {answers}"
        );
    };
    check(
        cli_batch(
            target.port,
            &each(&|slot| format!("CLUSTER SETSLOT {slot} IMPORTING {}", source.id)),
        ),
        "importing",
    );
    check(
        cli_batch(
            source.port,
            &each(&|slot| format!("CLUSTER SETSLOT {slot} MIGRATING {}", target.id)),
        ),
        "migrating",
    );
    // The few slots that hold keys (the demo's other namespaces): move their keys.
    let counts = cli_batch(
        source.port,
        &each(&|slot| format!("CLUSTER COUNTKEYSINSLOT {slot}")),
    );
    for (slot, count) in slots.clone().zip(counts.lines()) {
        if count.trim() == "0" {
            continue;
        }
        loop {
            let keys = RedisCluster::cli_text(
                source.port,
                &["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "100"],
            );
            if keys.is_empty() {
                break;
            }
            RedisCluster::migrate(source.port, target.port, keys.lines());
        }
    }
    let owner = each(&|slot| format!("CLUSTER SETSLOT {slot} NODE {}", target.id));
    check(cli_batch(target.port, &owner), "owner on the target");
    check(cli_batch(source.port, &owner), "owner on the source");
    for master in cluster.masters() {
        if master.id != source.id && master.id != target.id {
            check(cli_batch(master.port, &owner), "owner on another master");
        }
    }
    cluster.wait_until_ok(Duration::from_secs(30));
}

/// The limit's record key for this client, the master that holds it, and its slot.
fn find_limit_key(cluster: &RedisCluster) -> (String, redis_cluster::NodeInfo, u16) {
    for master in cluster.masters() {
        let keys = RedisCluster::cli_text(master.port, &["--scan", "--pattern", "*:k:api:*"]);
        if let Some(key) = keys.lines().next() {
            let slot = RedisCluster::cli_text(master.port, &["CLUSTER", "KEYSLOT", key])
                .parse()
                .unwrap();
            return (key.to_owned(), master, slot);
        }
    }
    panic!("no API limit key on any master");
}

/// The lowest slot a master serves (`redis-cli --cluster reshard` moves a source's slots from
/// its lowest up).
fn first_slot(master: &redis_cluster::NodeInfo) -> u16 {
    master
        .slots
        .iter()
        .filter_map(|range| range.split('-').next()?.parse().ok())
        .min()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_stays_exact_while_its_slot_moves() {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(RedisCluster::start)
            .await
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let quota = format!("{QUOTA}/d");
    let args = ["--api-quota", quota.as_str(), "--admin-token", "admin"];
    let demos = Arc::new([
        DemoProcess::start(dir.path(), &cluster.url(), &args),
        DemoProcess::start(dir.path(), &cluster.url(), &args),
    ]);
    let http = client();
    let ping = |demo: usize| {
        let (http, demos) = (http.clone(), demos.clone());
        async move {
            let response = http.get(demos[demo].at("/api/ping")).send().await.unwrap();
            let checked = response.headers().contains_key("ratelimit");
            (response.status().as_u16(), checked)
        }
    };
    // The first admission creates the limit's record: find where it lives.
    assert_eq!(ping(0).await, (200, true));
    let mut allowed = 1;
    let mut denied = 0;
    let mut unchecked = 0;
    let (key, source, slot) = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || find_limit_key(&cluster))
            .await
            .unwrap()
    };
    let target = cluster
        .masters()
        .into_iter()
        .find(|m| m.id != source.id)
        .unwrap();
    // Hand the source's slots below the limit's to the target first, without traffic; then the
    // reshard moves the limit's slot first, and only it.
    let lower = first_slot(&source)..slot;
    let premoved = lower.len();
    let (cluster, source) = {
        let (cluster, target) = (cluster.clone(), target.clone());
        tokio::task::spawn_blocking(move || {
            move_slots(&cluster, lower, &source, &target);
            let source = cluster
                .masters()
                .into_iter()
                .find(|m| m.id == source.id)
                .unwrap();
            (cluster, source)
        })
        .await
        .unwrap()
    };
    assert_eq!(
        first_slot(&source),
        slot,
        "the limit's slot is its master's first"
    );
    // Keys of no namespace under the limit's hash tag, so that moving its slot takes seconds
    // (the reshard migrates ten keys per `MIGRATE`), and the limit's record and its bucket's
    // index move at some point within, while checks run.
    let tag = &key[..=key.find('}').unwrap()];
    let padding: String = (0..PADDING)
        .map(|i| format!("SET {tag}:padding:{i} x\n"))
        .collect();
    let answers = cli_batch(source.port, &padding);
    assert_eq!(answers.lines().filter(|l| *l == "OK").count(), PADDING);
    // Half the quota before the move.
    while allowed < QUOTA / 2 {
        match ping(allowed % 2).await {
            (200, true) => allowed += 1,
            other => panic!("before the move: {other:?}"),
        }
    }
    let slots = "1".to_owned();
    let moved = Arc::new(AtomicBool::new(false));
    let reshard = {
        let (moved, source_id, target_id) = (moved.clone(), source.id.clone(), target.id.clone());
        let port = source.port;
        std::thread::spawn(move || {
            let output = std::process::Command::new("redis-cli")
                .arg("--cluster")
                .arg("reshard")
                .arg(format!("127.0.0.1:{port}"))
                .args(["--cluster-from", &source_id, "--cluster-to", &target_id])
                .args(["--cluster-slots", &slots, "--cluster-yes"])
                .stdin(std::process::Stdio::null())
                .output()
                .expect("redis-cli runs");
            moved.store(true, Ordering::SeqCst);
            output
        })
    };

    // Wait for the limit's slot to start moving (the target imports it), then spend the rest
    // across the move from both processes at once, paced so that the checks span it; then keep
    // asking until well past the quota.
    let started = Instant::now();
    let importing = || {
        RedisCluster::cli_text(target.port, &["CLUSTER", "NODES"]).contains(&format!("[{slot}-<-"))
    };
    while !importing() && !moved.load(Ordering::SeqCst) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the reshard never reached the limit's slot"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Admissions in batches that started and ended with the slot still moving.
    let mut admitted_while_moving = 0;
    loop {
        let moving_before = importing();
        let done = moved.load(Ordering::SeqCst);
        let batch: Vec<_> = (0..4).map(|i| tokio::spawn(ping(i % 2))).collect();
        let mut admitted = 0;
        for status in futures::future::join_all(batch).await {
            match status.unwrap() {
                (200, true) => admitted += 1,
                (200, false) => unchecked += 1,
                (429, _) => denied += 1,
                other => panic!("unexpected answer {other:?}"),
            }
        }
        allowed += admitted;
        if moving_before && importing() {
            admitted_while_moving += admitted;
        }
        if done && denied >= 100 {
            break;
        }
        if !done {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let took = started.elapsed();
    let output = reshard.join().unwrap();
    assert!(
        output.status.success(),
        "reshard failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The limit's slot is now served by the target master.
    let owner = cluster
        .masters()
        .into_iter()
        .find(|m| {
            m.slots.iter().any(|range| {
                let mut ends = range.split('-').filter_map(|n| n.parse::<u16>().ok());
                match (ends.next(), ends.next()) {
                    (Some(a), Some(b)) => (a..=b).contains(&slot),
                    (Some(a), None) => a == slot,
                    _ => false,
                }
            })
        })
        .unwrap();
    assert_eq!(owner.id, target.id, "the limit's slot moved");
    eprintln!(
        "{premoved} slots moved ahead without traffic; the limit's slot ({PADDING} padding \
         keys) moved under traffic in {took:?}; admitted {allowed} ({admitted_while_moving} \
         while it moved), denied {denied}, passed unchecked (fail-open) {unchecked}"
    );
    assert!(admitted_while_moving > 0, "checks ran while the slot moved");
    assert_eq!(unchecked, 0, "no check met a store error");
    assert_eq!(allowed, QUOTA, "exactly the quota passed ({denied} denied)");
}
