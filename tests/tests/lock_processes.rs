//! The distributed lock across OS processes: `kv-lock-worker` processes share a kv-server
//! (memory backend) started by the test, over the HTTP backend. Two workers taking turns must
//! lose no update and see strictly increasing fencing tokens; a worker SIGKILLed while holding
//! the lock blocks the other only until its (real, 2 s) lease ends.
#![cfg(unix)]

mod http_support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use http_support::Server;
use kv_backends::memory::MemoryBackend;
use kv_core::lock::{DistributedLock, FencingToken};
use kv_core::{Namespace, Store, SystemClock};
use kv_server::ServerConfig;

#[path = "../src/bin/lock_worker.rs"]
#[allow(dead_code)]
mod lock_worker;

use lock_worker::spec;

const WORKER_TIMEOUT: Duration = Duration::from_secs(60);

/// A kv-server over a fresh memory store with the workers' namespace created, and that
/// namespace.
async fn server() -> (Server, Namespace) {
    let store = Store::new(
        MemoryBackend::builder()
            .clock(SystemClock::shared())
            .build(),
    );
    let namespace = store.namespace(spec::NAMESPACE).await.unwrap();
    (
        Server::start(store, ServerConfig::default()).await,
        namespace,
    )
}

fn spawn_worker(url: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kv-lock-worker"))
        .arg(url)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn kv-lock-worker")
}

/// Waits (off the runtime's threads) for a worker to exit; returns its status and output.
async fn finish(mut child: Child) -> (ExitStatus, Vec<String>) {
    tokio::task::spawn_blocking(move || {
        let stdout = child.stdout.take().expect("piped stdout");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("poll the worker") {
                break status;
            }
            if started.elapsed() > WORKER_TIMEOUT {
                let _ = child.kill();
                panic!("a worker ran for more than {WORKER_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        (status, reader.join().expect("stdout reader"))
    })
    .await
    .unwrap()
}

/// Reads one line of a running worker (off the runtime's threads).
async fn read_line(stdout: ChildStdout) -> (String, BufReader<ChildStdout>) {
    tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .expect("read the worker's output");
        (line.trim().to_owned(), reader)
    })
    .await
    .unwrap()
}

/// `token {token} at {millis}` lines.
fn parse_rounds(lines: &[String]) -> Vec<(u64, u64)> {
    lines
        .iter()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                ["token", token, "at", at] => (token.parse().unwrap(), at.parse().unwrap()),
                _ => panic!("unexpected worker output {line:?}"),
            }
        })
        .collect()
}

async fn ledger(namespace: &Namespace) -> Vec<(u32, u64)> {
    namespace
        .get_json(spec::LEDGER)
        .await
        .unwrap()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_take_turns_without_losing_updates() {
    const ROUNDS: u64 = 25;
    let (server, namespace) = server().await;
    let rounds = ROUNDS.to_string();
    let first = spawn_worker(&server.url(), &["loop", &rounds, "10000"]);
    let second = spawn_worker(&server.url(), &["loop", &rounds, "10000"]);
    let pids = [first.id(), second.id()];
    namespace.put_text(spec::START, "go").await.unwrap();
    let (first, second) = tokio::join!(finish(first), finish(second));

    let mut printed = Vec::new();
    for (pid, (status, lines)) in pids.into_iter().zip([first, second]) {
        assert!(
            status.success(),
            "worker {pid} failed ({status}); exit code {} means two holders at once",
            spec::OVERLAP_EXIT
        );
        let rounds = parse_rounds(&lines);
        assert_eq!(rounds.len() as u64, ROUNDS);
        assert!(
            rounds.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "one worker's tokens increase"
        );
        printed.extend(rounds.into_iter().map(|(token, _)| (pid, token)));
    }

    let ledger = ledger(&namespace).await;
    assert_eq!(
        ledger.len() as u64,
        2 * ROUNDS,
        "no read-modify-write of the ledger was lost"
    );
    let turns = ledger
        .windows(2)
        .filter(|pair| pair[0].0 != pair[1].0)
        .count();
    eprintln!("the lock changed hands between processes {turns} times");
    assert!(
        turns >= 5,
        "the processes contended for the lock ({turns} turns)"
    );
    let tokens: Vec<u64> = ledger.iter().map(|(_, token)| *token).collect();
    assert!(
        tokens.windows(2).all(|pair| pair[0] < pair[1]),
        "tokens strictly increase in acquisition order: {tokens:?}"
    );
    assert_eq!(tokens, (1..=2 * ROUNDS).collect::<Vec<_>>());
    let mut printed: Vec<(u32, u64)> = printed;
    printed.sort_by_key(|(_, token)| *token);
    assert_eq!(
        printed, ledger,
        "each worker's acknowledged rounds are in the ledger"
    );
    for pid in pids {
        assert_eq!(
            ledger.iter().filter(|(p, _)| *p == pid).count() as u64,
            ROUNDS
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holder_blocks_the_other_process_only_until_its_lease_ends() {
    const TTL_MS: u64 = 2000;
    let (server, namespace) = server().await;
    namespace.put_text(spec::START, "go").await.unwrap();
    let ttl = TTL_MS.to_string();
    let mut holder = spawn_worker(&server.url(), &["hold", &ttl]);
    let (line, _reader) = read_line(holder.stdout.take().unwrap()).await;
    let parts: Vec<&str> = line.split(' ').collect();
    let (token, lease_end): (u64, u64) = match parts.as_slice() {
        ["acquired", token, "until", end] => (token.parse().unwrap(), end.parse().unwrap()),
        _ => panic!("unexpected holder output {line:?}"),
    };
    assert_eq!(token, 1);
    holder.kill().expect("SIGKILL the holder");
    assert!(!holder.wait().unwrap().success());

    // The lock outlives its holder until the lease ends (checked only while the lease surely
    // runs, in case this machine is very slow).
    let store = kv_backends::open(&server.url()).await.unwrap();
    let locks = DistributedLock::new(store.namespace(spec::NAMESPACE).await.unwrap()).unwrap();
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    if now_ms() + 500 < lease_end {
        assert!(locks.try_acquire(spec::RESOURCE).await.unwrap().is_none());
        let state = locks.inspect(spec::RESOURCE).await.unwrap().unwrap();
        assert!(state.held);
        assert_eq!(state.token, FencingToken::new(1));
    } else {
        eprintln!("too slow to observe the dead holder's lease; checking the takeover only");
    }

    let started = Instant::now();
    let (status, lines) = finish(spawn_worker(&server.url(), &["loop", "1", &ttl])).await;
    assert!(status.success(), "the second worker failed: {status}");
    let rounds = parse_rounds(&lines);
    let (next_token, acquired_at) = rounds[0];
    assert_eq!(next_token, 2, "the next token follows the dead holder's");
    assert!(
        acquired_at >= lease_end,
        "acquired at {acquired_at}, before the dead holder's lease ended at {lease_end}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(TTL_MS) + Duration::from_secs(20),
        "acquired soon after the lease ended ({:?})",
        started.elapsed()
    );
    let ledger = ledger(&namespace).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].1, 2);
    let tokens: BTreeSet<u64> = ledger.iter().map(|(_, token)| *token).collect();
    assert!(!tokens.contains(&1), "the killed holder never wrote");
    let state = locks.inspect(spec::RESOURCE).await.unwrap().unwrap();
    assert!(!state.held);
    assert_eq!(state.token, FencingToken::new(2));
}
