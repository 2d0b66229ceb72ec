//! [`RaceGate`]: makes racing writers collide for certain, and counts the races they lost.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    Capabilities, DeleteOutcome, Entry, ListOptions, ListPage, Namespace, NamespaceStore, NewEntry,
    PutOutcome, Result, WriteMode,
};

/// A [`NamespaceStore`] that holds the first `racers` conditional writes until all of them
/// have arrived, then lets them go on together; and counts every conditional write that lost
/// (a [`PutOutcome::ConditionFailed`]).
///
/// A test that claims "racing writers lose nothing" proves little if the writers never
/// actually raced: on a fast store one may finish before the other starts. Behind this gate,
/// writers that each read and then write conditionally all read the same version (no write
/// can land before every racer has read), so all but one of their first writes fail their
/// condition, and the test can assert [`Races::conflicts`] `> 0`.
///
/// The test must make at least `racers` conditional writes through the gate, or the first ones
/// wait forever.
///
/// ```
/// # async fn example(namespace: kv_core::Namespace) -> kv_core::Result<()> {
/// use kv_core::testing::RaceGate;
///
/// let (namespace, races) = RaceGate::wrap(&namespace, 2);
/// // ... two tasks doing read, then put-if-version, in a retry loop ...
/// # let _ = namespace;
/// assert!(races.conflicts() <= 1);
/// # Ok(()) }
/// ```
pub struct RaceGate {
    inner: Arc<dyn NamespaceStore>,
    barrier: Arc<tokio::sync::Barrier>,
    /// Conditional writes still to be held at the barrier.
    to_hold: Arc<AtomicUsize>,
    races: Races,
}

/// What a [`RaceGate`] saw; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Races {
    conflicts: Arc<AtomicU64>,
}

impl Races {
    /// Conditional writes that failed their condition: races lost.
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for RaceGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaceGate")
            .field("inner", &self.inner.kind())
            .field("to_hold", &self.to_hold.load(Ordering::SeqCst))
            .field("races", &self.races)
            .finish()
    }
}

impl RaceGate {
    /// A handle over the same data as `namespace` whose first `racers` conditional writes meet
    /// at a gate, and what the gate counts.
    pub fn wrap(namespace: &Namespace, racers: usize) -> (Namespace, Races) {
        let races = Races::default();
        let gate = RaceGate {
            inner: namespace.raw().clone(),
            barrier: Arc::new(tokio::sync::Barrier::new(racers)),
            to_hold: Arc::new(AtomicUsize::new(racers)),
            races: races.clone(),
        };
        let wrapped = Namespace::new(
            namespace.id(),
            Arc::new(gate),
            namespace.limits().clone(),
            namespace.clock().clone(),
        );
        (wrapped, races)
    }
}

#[async_trait]
impl NamespaceStore for RaceGate {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        self.inner.get(key).await
    }

    async fn put(&self, key: &str, entry: NewEntry, mode: WriteMode) -> Result<PutOutcome> {
        let conditional = !matches!(mode, WriteMode::Overwrite);
        if conditional
            && self
                .to_hold
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            self.barrier.wait().await;
        }
        let outcome = self.inner.put(key, entry, mode).await?;
        if matches!(outcome, PutOutcome::ConditionFailed) {
            self.races.conflicts.fetch_add(1, Ordering::SeqCst);
        }
        Ok(outcome)
    }

    async fn delete(&self, key: &str, mode: WriteMode) -> Result<DeleteOutcome> {
        self.inner.delete(key, mode).await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        self.inner.list(options).await
    }
}
