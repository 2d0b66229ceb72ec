//! The distributed lock (`kv_core::lock`) in one process: mutual exclusion among many tasks on
//! the memory and file backends, fencing tokens, leases driven by a manual clock, `with_lock`,
//! and the refusals.

mod coordination_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coordination_support as support;
use kv_core::lock::{DistributedLock, FencingToken, LockError};
use kv_core::{KvError, LimitError, ManualClock, Store};

const TASKS: usize = 20;
const ROUNDS: usize = 10;

async fn locks(store: &Store) -> DistributedLock {
    let namespace = store.namespace("LOCKS").await.unwrap();
    DistributedLock::new(namespace)
        .unwrap()
        .acquire_timeout(Duration::from_secs(120))
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(20))
}

/// 20 tasks take turns on one resource; each increments a counter with a non-atomic
/// read-yield-write inside the critical section and checks nobody else is inside; the tokens,
/// in acquisition order, must be 1, 2, 3, ...
async fn exclusion_among_tasks(store: Store) {
    let locks = locks(&store).await;
    let counter = Arc::new(AtomicU64::new(0));
    let inside = Arc::new(AtomicBool::new(false));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (locks, counter, inside, tokens) = (
            locks.clone(),
            counter.clone(),
            inside.clone(),
            tokens.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let guard = locks.acquire("counter").await.unwrap();
                assert!(
                    !inside.swap(true, Ordering::SeqCst),
                    "task {task} entered while another task was inside"
                );
                let read = counter.load(Ordering::SeqCst);
                tokio::task::yield_now().await;
                counter.store(read + 1, Ordering::SeqCst);
                tokens.lock().unwrap().push(guard.token().get());
                tokio::task::yield_now().await;
                inside.store(false, Ordering::SeqCst);
                guard.release().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = (TASKS * ROUNDS) as u64;
    assert_eq!(counter.load(Ordering::SeqCst), total, "no lost increment");
    let tokens = tokens.lock().unwrap().clone();
    assert!(
        tokens.windows(2).all(|pair| pair[0] < pair[1]),
        "tokens strictly increase in acquisition order: {tokens:?}"
    );
    // Every acquisition takes the next token: none is skipped or repeated.
    assert_eq!(tokens, (1..=total).collect::<Vec<_>>());
    let state = locks.inspect("counter").await.unwrap().unwrap();
    assert!(!state.held);
    assert_eq!(state.token, FencingToken::new(total));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_exclusion_among_20_tasks_on_memory() {
    exclusion_among_tasks(support::memory_system()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_exclusion_among_20_tasks_on_file() {
    let dir = tempfile::tempdir().unwrap();
    exclusion_among_tasks(support::file(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_lock_excludes_and_releases_on_success_and_error() {
    let store = support::memory_system();
    let locks = locks(&store).await;
    let counter = Arc::new(AtomicU64::new(0));
    let inside = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (locks, counter, inside) = (locks.clone(), counter.clone(), inside.clone());
        tasks.push(tokio::spawn(async move {
            let mut tokens = Vec::new();
            for round in 0..5 {
                let outcome = locks
                    .with_lock("with", |token| {
                        let (counter, inside) = (counter.clone(), inside.clone());
                        async move {
                            assert!(!inside.swap(true, Ordering::SeqCst), "two inside");
                            let read = counter.load(Ordering::SeqCst);
                            tokio::task::yield_now().await;
                            counter.store(read + 1, Ordering::SeqCst);
                            inside.store(false, Ordering::SeqCst);
                            // Every other round fails: the lock must be released all the same.
                            if (task + round) % 2 == 0 {
                                Err(Failure::Work(token))
                            } else {
                                Ok(token)
                            }
                        }
                    })
                    .await;
                match outcome {
                    Ok(token) | Err(Failure::Work(token)) => tokens.push(token),
                    Err(Failure::Lock(error)) => panic!("lock failed: {error}"),
                }
            }
            tokens
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let tokens = task.await.unwrap();
        assert!(tokens.windows(2).all(|pair| pair[0] < pair[1]));
        all.extend(tokens);
    }
    assert_eq!(counter.load(Ordering::SeqCst), (TASKS * 5) as u64);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), TASKS * 5, "tokens are unique");
    let state = locks.inspect("with").await.unwrap().unwrap();
    assert!(
        !state.held,
        "released after the last (successful or failed) work"
    );
}

#[derive(Debug)]
enum Failure {
    Work(FencingToken),
    Lock(LockError),
}

impl From<LockError> for Failure {
    fn from(error: LockError) -> Self {
        Failure::Lock(error)
    }
}

#[tokio::test]
async fn a_holder_that_never_releases_loses_the_lock_when_its_lease_ends() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let store = support::memory(clock.shared());
    // A lease far below the store's 60 s minimum TTL: the lease is checked against the clock.
    let ttl = Duration::from_millis(1500);
    let first = locks(&store).await.ttl(ttl).holder_id("first");
    let second = locks(&store)
        .await
        .ttl(ttl)
        .holder_id("second")
        .acquire_timeout(Duration::from_millis(30));

    let mut stale = first.try_acquire("job").await.unwrap().expect("free");
    assert_eq!(stale.token(), FencingToken::new(1));
    assert!(second.try_acquire("job").await.unwrap().is_none());
    clock.advance(Duration::from_millis(1499));
    assert!(second.try_acquire("job").await.unwrap().is_none());
    assert!(matches!(
        second.acquire("job").await,
        Err(LockError::Timeout { ref resource, .. }) if resource == "job"
    ));
    let state = second.inspect("job").await.unwrap().unwrap();
    assert!(state.held);
    assert_eq!(state.holder, "first");

    clock.advance(Duration::from_millis(1));
    let current = second
        .try_acquire("job")
        .await
        .unwrap()
        .expect("lease over");
    assert!(current.token() > stale.token());
    assert_eq!(current.token(), FencingToken::new(2));
    assert!(!stale.is_held().await.unwrap());
    assert!(current.is_held().await.unwrap());

    let extend = stale.extend(Duration::from_secs(30)).await;
    assert!(
        matches!(extend, Err(LockError::Lost { ref resource, token }) if resource == "job" && token.get() == 1),
        "{extend:?}"
    );
    let release = stale.release().await;
    assert!(
        release.as_ref().is_err_and(LockError::is_lost),
        "{release:?}"
    );
    // The stale holder's failures changed nothing.
    let state = first.inspect("job").await.unwrap().unwrap();
    assert!(state.held);
    assert_eq!(state.holder, "second");
    assert_eq!(state.token, FencingToken::new(2));

    current.release().await.unwrap();
    let next = first.try_acquire("job").await.unwrap().expect("released");
    assert_eq!(next.token(), FencingToken::new(3));
    next.release().await.unwrap();
}

#[tokio::test]
async fn fencing_tokens_keep_increasing_across_releases_and_expiries() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let store = support::memory(clock.shared());
    let locks = locks(&store).await.ttl(Duration::from_secs(5));
    let mut tokens = Vec::new();
    let mut abandoned = Vec::new();
    for round in 0..30 {
        let guard = locks.try_acquire("r").await.unwrap().expect("free");
        tokens.push(guard.token());
        if round % 3 == 0 {
            // Abandoned: taken over after its lease ends.
            clock.advance(Duration::from_secs(6));
            abandoned.push(guard);
        } else {
            guard.release().await.unwrap();
        }
    }
    assert!(
        tokens.windows(2).all(|pair| pair[0] < pair[1]),
        "{tokens:?}"
    );
    assert_eq!(tokens.last().unwrap().get(), 30);
    // Another resource counts on its own.
    let other = locks.try_acquire("other").await.unwrap().unwrap();
    assert_eq!(other.token(), FencingToken::new(1));
    other.release().await.unwrap();
    for guard in abandoned {
        assert!(guard.release().await.unwrap_err().is_lost());
    }
}

#[tokio::test]
async fn extending_keeps_the_lock_and_a_lapsed_lease_nobody_took_is_still_ours() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let store = support::memory(clock.shared());
    let locks = locks(&store).await.ttl(Duration::from_secs(10));
    let mut guard = locks.try_acquire("r").await.unwrap().unwrap();
    let first_end = guard.expires_at();

    clock.advance(Duration::from_secs(8));
    guard.extend(Duration::from_secs(10)).await.unwrap();
    assert!(guard.expires_at() > first_end);
    clock.advance(Duration::from_secs(8)); // 16 s after acquiring: past the first lease
    assert!(locks.try_acquire("r").await.unwrap().is_none());
    assert!(guard.is_held().await.unwrap());

    // The lease lapses, but nobody acquires meanwhile: extending is still safe, because the
    // record's version proves nobody else held the lock.
    clock.advance(Duration::from_secs(30));
    assert!(!guard.is_held().await.unwrap());
    guard.extend(Duration::from_secs(10)).await.unwrap();
    assert!(guard.is_held().await.unwrap());
    assert_eq!(guard.token(), FencingToken::new(1));
    guard.release().await.unwrap();
    let state = locks.inspect("r").await.unwrap().unwrap();
    assert!(!state.held);
    assert_eq!(state.token, FencingToken::new(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_guard_is_released_in_the_background() {
    let store = support::memory_system();
    let locks = locks(&store).await;
    let guard = locks.try_acquire("r").await.unwrap().unwrap();
    drop(guard);
    let again = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(guard) = locks.try_acquire("r").await.unwrap() {
                break guard;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the dropped guard's lock is released long before its 30 s lease ends");
    assert_eq!(again.token(), FencingToken::new(2));
    again.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_lock_renews_the_lease_while_the_work_runs() {
    let store = support::memory_system();
    // Renewed every third of a second: a renewal may be two thirds of a second late (a loaded
    // machine) before the lease lapses.
    let locks = locks(&store).await.ttl(Duration::from_secs(1));
    let other = locks.clone().acquire_timeout(Duration::ZERO);
    let (entered, inside) = tokio::sync::oneshot::channel();
    let work = tokio::spawn({
        let locks = locks.clone();
        async move {
            locks
                .with_lock("long", |token| async move {
                    entered.send(()).unwrap();
                    // Two and a half leases long.
                    tokio::time::sleep(Duration::from_millis(2500)).await;
                    Ok::<_, LockError>(token)
                })
                .await
        }
    });
    inside.await.unwrap();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(
            other.try_acquire("long").await.unwrap().is_none(),
            "the lease is renewed while the work runs"
        );
    }
    let token = work.await.unwrap().unwrap();
    assert_eq!(token, FencingToken::new(1));
    let after = other.try_acquire("long").await.unwrap().expect("released");
    assert_eq!(after.token(), FencingToken::new(2));
    after.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_lock_cancels_the_work_when_the_lock_is_lost() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let store = support::memory(clock.shared());
    let locks = locks(&store).await.ttl(Duration::from_millis(300));
    let finished = Arc::new(AtomicBool::new(false));
    let work = tokio::spawn({
        let (locks, finished) = (locks.clone(), finished.clone());
        async move {
            locks
                .with_lock("r", |_| async move {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    finished.store(true, Ordering::SeqCst);
                    Ok::<_, LockError>(())
                })
                .await
        }
    });
    while locks.inspect("r").await.unwrap().map_or(true, |s| !s.held) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The holder stalls past its lease (the manual clock jumps) and someone else takes over.
    let thief = loop {
        clock.advance(Duration::from_secs(1));
        if let Some(guard) = locks.try_acquire("r").await.unwrap() {
            break guard;
        }
    };
    let outcome = tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .expect("the next renewal notices the loss")
        .unwrap();
    assert!(
        matches!(outcome, Err(LockError::Lost { .. })),
        "{outcome:?}"
    );
    assert!(!finished.load(Ordering::SeqCst), "the work was cancelled");
    assert!(thief.is_held().await.unwrap());
    thief.release().await.unwrap();
}

#[tokio::test]
async fn a_store_without_atomic_compare_and_swap_is_refused() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let namespace = support::plain_namespace(clock.shared()).await;
    match DistributedLock::new(namespace) {
        Err(KvError::Unsupported { backend, operation }) => {
            assert_eq!(backend, "memory", "names the real backend");
            assert!(operation.contains("compare-and-swap"), "{operation}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[tokio::test]
async fn resource_names_are_checked() {
    let store = support::memory_system();
    let locks = locks(&store).await;
    assert!(matches!(
        locks.try_acquire("").await,
        Err(LockError::InvalidResource { .. })
    ));
    let long = "r".repeat(600);
    match locks.try_acquire(&long).await {
        Err(LockError::Store(KvError::Limit(LimitError::KeyTooLong { max: 512, .. }))) => {}
        other => panic!("expected a key limit error, got {other:?}"),
    }
    // The longest name that fits.
    let longest = "r".repeat(512 - kv_core::lock::KEY_PREFIX.len());
    let guard = locks.try_acquire(&longest).await.unwrap().unwrap();
    guard.release().await.unwrap();
}
