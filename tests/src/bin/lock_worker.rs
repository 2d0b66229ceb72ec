//! `kv-lock-worker STORE_URL MODE ARGS...`: a process taking a distributed lock
//! (`kv_core::lock`) on a shared store, for the cross-process lock tests
//! (`tests/lock_processes.rs`).
//!
//! - `loop ROUNDS TTL_MS`: waits until the [`spec::START`] key exists (so that concurrent
//!   workers start together), then ROUNDS times: acquire the lock on [`spec::RESOURCE`], check
//!   that the [`spec::MARKER`] key is absent and set it, append `[pid, token]` to the JSON list
//!   at [`spec::LEDGER`] with a read, a pause and a write (which loses updates unless the lock
//!   excludes), clear the marker, release, and pause a few milliseconds (other work) so the
//!   lock changes hands. Prints `token {token} at {millis}` per round, where `millis` is the
//!   store-clock time the acquisition was decided at. Exits with 3 when it finds the marker
//!   set (two holders at once).
//! - `hold TTL_MS`: acquire, print `acquired {token} until {millis}` (the lease's end), then
//!   sleep until killed.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use kv_core::lock::{DistributedLock, LockGuard};

/// Names shared with the tests.
pub mod spec {
    /// The namespace every worker uses.
    pub const NAMESPACE: &str = "coordination";
    /// The locked resource.
    pub const RESOURCE: &str = "shared";
    /// The list of `[pid, token]` appended under the lock.
    pub const LEDGER: &str = "ledger";
    /// Present while a worker is inside the critical section.
    pub const MARKER: &str = "inside";
    /// Looping workers start once this key exists.
    pub const START: &str = "start";
    /// The exit code of a worker that found someone else inside.
    pub const OVERLAP_EXIT: u8 = 3;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize| args.get(i).and_then(|s| s.parse::<u64>().ok());
    let outcome = match (args.get(1), args.get(2).map(String::as_str)) {
        (Some(url), Some("loop")) => match (number(3), number(4)) {
            (Some(rounds), Some(ttl)) => run_loop(url, rounds, ttl).await,
            _ => return usage(),
        },
        (Some(url), Some("hold")) => match number(3) {
            Some(ttl) => hold(url, ttl).await,
            None => return usage(),
        },
        _ => return usage(),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("kv-lock-worker: {error}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: kv-lock-worker STORE_URL (loop ROUNDS TTL_MS | hold TTL_MS)");
    ExitCode::from(2)
}

type Error = Box<dyn std::error::Error>;

async fn locks(url: &str, ttl_ms: u64) -> Result<DistributedLock, Error> {
    let store = kv_backends::open(url).await?;
    let namespace = store.namespace(spec::NAMESPACE).await?;
    Ok(DistributedLock::new(namespace)?
        .ttl(Duration::from_millis(ttl_ms))
        .acquire_timeout(Duration::from_secs(60))
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(4)))
}

/// When the acquisition was decided, by the store clock, in milliseconds since the epoch.
fn acquired_at(guard: &LockGuard, ttl_ms: u64) -> u64 {
    let end = guard.expires_at().duration_since(UNIX_EPOCH).unwrap();
    end.as_millis() as u64 - ttl_ms
}

async fn run_loop(url: &str, rounds: u64, ttl_ms: u64) -> Result<ExitCode, Error> {
    let locks = locks(url, ttl_ms).await?;
    let namespace = locks.namespace().clone();
    let pid = std::process::id();
    let started = std::time::Instant::now();
    while namespace.get(spec::START).await?.is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            return Err("the start key never appeared".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut random = u64::from(pid) | 1;
    let mut stdout = std::io::stdout().lock();
    for _ in 0..rounds {
        let guard = locks.acquire(spec::RESOURCE).await?;
        let token = guard.token().get();
        if let Some(other) = namespace.get_text(spec::MARKER).await? {
            eprintln!("kv-lock-worker {pid}: token {token} found {other} inside");
            return Ok(ExitCode::from(spec::OVERLAP_EXIT));
        }
        namespace
            .put_text(spec::MARKER, &format!("{pid}/{token}"))
            .await?;
        let mut ledger: Vec<(u32, u64)> =
            namespace.get_json(spec::LEDGER).await?.unwrap_or_default();
        ledger.push((pid, token));
        // Widen the window in which an unprotected read-modify-write would lose an update.
        tokio::time::sleep(Duration::from_millis(2)).await;
        namespace.put_json(spec::LEDGER, &ledger).await?;
        namespace.delete(spec::MARKER).await?;
        let at = acquired_at(&guard, ttl_ms);
        guard.release().await?;
        writeln!(stdout, "token {token} at {at}")?;
        stdout.flush()?;
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        tokio::time::sleep(Duration::from_millis(4 + random % 8)).await;
    }
    Ok(ExitCode::SUCCESS)
}

async fn hold(url: &str, ttl_ms: u64) -> Result<ExitCode, Error> {
    let locks = locks(url, ttl_ms).await?;
    let guard = locks.acquire(spec::RESOURCE).await?;
    let until = guard.expires_at().duration_since(UNIX_EPOCH)?.as_millis();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "acquired {} until {until}", guard.token())?;
    stdout.flush()?;
    // Never release: the test kills this process while it holds the lock.
    let _guard = guard;
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}
