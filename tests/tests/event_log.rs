//! The event log (`kv_core::event_log`): many appends within one millisecond from concurrent
//! tasks, replay in order and from a point, snapshots, aggregate id checks, and stores with
//! and without compare-and-swap.

mod coordination_support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use coordination_support as support;
use kv_core::event_log::{EventId, EventLog, EventLogError, Snapshot};
use kv_core::{KvError, ManualClock, Store, SystemClock};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Appended {
    task: usize,
    n: usize,
}

async fn log(store: &Store) -> EventLog {
    EventLog::new(store.namespace("EVENTS").await.unwrap())
}

/// `tasks` tasks append `per_task` events each as fast as they can; then checks that replay
/// returns every event once, in id order, with each task's events in its append order.
/// Returns the ids in replay order.
async fn concurrent_appends(log: &EventLog, tasks: usize, per_task: usize) -> Vec<EventId> {
    let mut handles = Vec::new();
    for task in 0..tasks {
        let log = log.clone();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(per_task);
            for n in 0..per_task {
                ids.push(log.append("stream", &Appended { task, n }).await.unwrap());
            }
            ids
        }));
    }
    let mut appended = HashSet::new();
    for handle in handles {
        let ids = handle.await.unwrap();
        assert!(
            ids.windows(2).all(|pair| pair[0] < pair[1]),
            "one task's ids increase"
        );
        appended.extend(ids);
    }
    assert_eq!(appended.len(), tasks * per_task, "ids are unique");

    let replayed: Vec<(EventId, Appended)> = log.replay("stream", None).await.unwrap();
    assert_eq!(replayed.len(), tasks * per_task);
    let ids: Vec<EventId> = replayed.iter().map(|(id, _)| *id).collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "replay is in strictly increasing id order"
    );
    let texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
    assert!(
        texts.windows(2).all(|pair| pair[0] < pair[1]),
        "and key order"
    );
    assert_eq!(ids.iter().copied().collect::<HashSet<_>>(), appended);
    let mut next = vec![0; tasks];
    for (_, event) in &replayed {
        assert_eq!(event.n, next[event.task], "task {} in order", event.task);
        next[event.task] += 1;
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_concurrent_appends_replay_unique_and_in_order() {
    let store = support::memory_system();
    let log = log(&store).await;
    let ids = concurrent_appends(&log, 8, 1250).await;
    let mut per_millisecond: HashMap<u64, usize> = HashMap::new();
    for id in &ids {
        *per_millisecond.entry(id.millis()).or_default() += 1;
    }
    let busiest = per_millisecond.values().max().copied().unwrap_or(0);
    eprintln!(
        "10 000 events in {} milliseconds, up to {busiest} in one",
        per_millisecond.len()
    );
    assert!(busiest > 1, "several appends share a millisecond");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clock_that_stands_still_still_gives_unique_ordered_ids() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let store = support::memory(clock.shared());
    let log = log(&store).await;
    let ids = concurrent_appends(&log, 4, 500).await;
    assert!(ids.iter().all(|id| id.millis() == 1_700_000_000_000));
}

#[tokio::test]
async fn ids_never_go_back_when_the_clock_does() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let store = support::memory(clock.shared());
    let log = log(&store).await;
    let first = log.append("a", &1).await.unwrap();
    clock.set(std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000));
    let second = log.append("a", &2).await.unwrap();
    assert!(second > first);
    assert_eq!(second.millis(), first.millis());
    let replayed: Vec<(EventId, i32)> = log.replay("a", None).await.unwrap();
    assert_eq!(replayed, vec![(first, 1), (second, 2)]);
}

#[tokio::test]
async fn replay_from_a_point() {
    let store = support::memory_system();
    let log = log(&store).await;
    let mut ids = Vec::new();
    for n in 0..2500u32 {
        ids.push(log.append("order-1", &n).await.unwrap());
    }
    let all: Vec<(EventId, u32)> = log.replay("order-1", None).await.unwrap();
    assert_eq!(all.len(), 2500);

    for point in [0, 999, 1000, 1499, 2498] {
        let after: Vec<(EventId, u32)> = log.replay("order-1", Some(&ids[point])).await.unwrap();
        let expected: Vec<u32> = (point as u32 + 1..2500).collect();
        assert_eq!(after.iter().map(|(_, n)| *n).collect::<Vec<_>>(), expected);
        assert_eq!(after[0].0, ids[point + 1]);
    }
    let none: Vec<(EventId, u32)> = log.replay("order-1", ids.last()).await.unwrap();
    assert!(none.is_empty());
    // A point that is not an event of the log works as a position in time.
    let before_all = EventId::from_parts(0, 0, 0);
    let everything: Vec<(EventId, u32)> = log.replay("order-1", Some(&before_all)).await.unwrap();
    assert_eq!(everything.len(), 2500);
}

#[tokio::test]
async fn snapshots_let_replay_start_after_them() {
    let store = support::memory_system();
    let log = log(&store).await;
    let mut ids = Vec::new();
    for n in 1..=300u64 {
        ids.push(log.append("account", &n).await.unwrap());
    }
    let sum = |state: u64, _: &EventId, n: u64| state + n;
    assert!(log.load_snapshot::<u64>("account").await.unwrap().is_none());
    let (total, last) = log.rebuild("account", 0, sum).await.unwrap();
    assert_eq!(total, 300 * 301 / 2);
    assert_eq!(last, Some(ids[299]));

    // The state after event 150; recognisable (offset by a million) to prove that rebuild
    // starts from it and folds only the later events.
    let at_150: u64 = (1..=150).sum();
    assert!(log
        .save_snapshot("account", &ids[149], &(at_150 + 1_000_000))
        .await
        .unwrap());
    assert_eq!(
        log.load_snapshot::<u64>("account").await.unwrap(),
        Some(Snapshot {
            after: ids[149],
            state: at_150 + 1_000_000
        })
    );
    let after_snapshot: Vec<(EventId, u64)> = log.replay("account", Some(&ids[149])).await.unwrap();
    assert_eq!(after_snapshot.len(), 150);
    let (total, last) = log.rebuild("account", 0, sum).await.unwrap();
    assert_eq!(total, 300 * 301 / 2 + 1_000_000);
    assert_eq!(last, Some(ids[299]));

    // An older snapshot never replaces a newer one; a newer one does.
    assert!(!log.save_snapshot("account", &ids[99], &0u64).await.unwrap());
    assert!(!log
        .save_snapshot("account", &ids[149], &0u64)
        .await
        .unwrap());
    assert!(log
        .save_snapshot("account", &ids[299], &(300 * 301 / 2))
        .await
        .unwrap());
    let (total, last) = log.rebuild("account", 0, sum).await.unwrap();
    assert_eq!((total, last), (300 * 301 / 2, Some(ids[299])));

    // An aggregate with nothing: the initial state and no position.
    let (state, last) = log.rebuild("empty", 7u64, sum).await.unwrap();
    assert_eq!((state, last), (7, None));
}

#[tokio::test]
async fn aggregate_ids_are_checked_and_never_mix() {
    let store = support::memory_system();
    let log = log(&store).await;
    assert!(matches!(
        log.append("", &1).await,
        Err(EventLogError::EmptyAggregateId)
    ));
    assert!(matches!(
        log.append("a:b", &1).await,
        Err(EventLogError::AggregateIdSeparator { .. })
    ));
    assert!(matches!(
        log.replay::<i32>("a:b", None).await,
        Err(EventLogError::AggregateIdSeparator { .. })
    ));
    let max = log.max_aggregate_id_len();
    assert_eq!(max, 512 - "ev:".len() - ":".len() - 47);
    match log.append(&"x".repeat(max + 1), &1).await {
        Err(EventLogError::AggregateIdTooLong { len, max: limit }) => {
            assert_eq!((len, limit), (max + 1, max))
        }
        other => panic!("expected AggregateIdTooLong, got {other:?}"),
    }
    assert!(matches!(
        log.save_snapshot("", &EventId::from_parts(1, 1, 1), &1)
            .await,
        Err(EventLogError::EmptyAggregateId)
    ));
    // The longest id fits every key the log writes.
    let longest = "x".repeat(max);
    let id = log.append(&longest, &1).await.unwrap();
    assert!(log.save_snapshot(&longest, &id, &1).await.unwrap());
    let replayed: Vec<(EventId, i32)> = log.replay(&longest, None).await.unwrap();
    assert_eq!(replayed, vec![(id, 1)]);

    // Aggregates whose ids share a prefix keep their own events.
    for (aggregate, n) in [("a", 1), ("ab", 2), ("a-b", 3), ("a", 4), ("b", 5)] {
        log.append(aggregate, &n).await.unwrap();
    }
    let events = |aggregate: &'static str| {
        let log = log.clone();
        async move {
            let replayed: Vec<(EventId, i32)> = log.replay(aggregate, None).await.unwrap();
            replayed.into_iter().map(|(_, n)| n).collect::<Vec<_>>()
        }
    };
    assert_eq!(events("a").await, vec![1, 4]);
    assert_eq!(events("ab").await, vec![2]);
    assert_eq!(events("a-b").await, vec![3]);
    assert_eq!(events("b").await, vec![5]);
}

#[tokio::test]
async fn foreign_keys_and_undecodable_events_are_typed_errors() {
    let store = support::memory_system();
    let log = log(&store).await;
    log.append("agg", &1).await.unwrap();
    log.namespace()
        .put_text("ev:agg:nonsense", "1")
        .await
        .unwrap();
    match log.replay::<i32>("agg", None).await {
        Err(EventLogError::MalformedKey { key }) => assert_eq!(key, "ev:agg:nonsense"),
        other => panic!("expected MalformedKey, got {other:?}"),
    }
    log.namespace().delete("ev:agg:nonsense").await.unwrap();
    assert!(matches!(
        log.replay::<String>("agg", None).await,
        Err(EventLogError::Store(KvError::Decode { .. }))
    ));
}

async fn works_on(log: EventLog) {
    let ids = concurrent_appends(&log, 3, 100).await;
    assert!(log
        .save_snapshot("stream", &ids[150], &"half")
        .await
        .unwrap());
    assert!(!log
        .save_snapshot("stream", &ids[10], &"older")
        .await
        .unwrap());
    let snapshot = log
        .load_snapshot::<String>("stream")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snapshot.after, ids[150]);
    let rest: Vec<(EventId, Appended)> = log.replay("stream", Some(&snapshot.after)).await.unwrap();
    assert_eq!(rest.len(), 149);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_without_compare_and_swap() {
    let namespace = support::plain_namespace(SystemClock::shared()).await;
    assert!(!namespace.capabilities().atomic_conditional_writes);
    works_on(EventLog::new(namespace)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_on_the_file_backend() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::file(dir.path());
    works_on(log(&store).await).await;
}
