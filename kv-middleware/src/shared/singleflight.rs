//! Request coalescing within one process: the first caller for a key leads (runs the origin or
//! the fetcher), later callers for the same key follow (wait for the leader's outcome).
//!
//! A flight ends when its leader publishes an outcome or is dropped (cancelled, panicked);
//! followers then see the outcome, or learn that there will be none and act on their own. The
//! map holds only flights in progress, so it never grows beyond the keys being fetched now.
//!
//! A follower joins the flight already in progress, whenever it started: right for a cache,
//! where any fresh enough answer will do. Refreshes of a snapshot need the opposite, an
//! outcome that started after the caller asked (so a refresh after a write sees the write);
//! that is `shared::refresh::SingleFlight`, a queue on one lock, which on top of these
//! flights would take a wait-then-join-again loop and a dummy key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

/// The flights in progress, by key.
#[derive(Debug)]
pub(crate) struct Flights<T> {
    inner: Arc<Inner<T>>,
}

/// The flights by key: the flight's id and a receiver of its outcome.
type FlightMap<T> = HashMap<String, (u64, watch::Receiver<Option<T>>)>;

#[derive(Debug)]
struct Inner<T> {
    map: Mutex<FlightMap<T>>,
    ids: AtomicU64,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Flights {
            inner: Arc::new(Inner {
                map: Mutex::new(HashMap::new()),
                ids: AtomicU64::new(0),
            }),
        }
    }
}

/// The caller's role in a key's flight.
pub(crate) enum Join<T> {
    /// No flight was running: this caller runs one and must publish through the guard.
    Leader(Leader<T>),
    /// A flight is running: wait for it.
    Follower(Follower<T>),
}

impl<T: Clone> Flights<T> {
    /// Joins the key's flight, starting one when none runs.
    pub fn join(&self, key: &str) -> Join<T> {
        let mut map = self
            .inner
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, receiver)) = map.get(key) {
            return Join::Follower(Follower {
                receiver: receiver.clone(),
            });
        }
        Join::Leader(self.start(&mut map, key))
    }

    /// Starts the key's flight only when none runs (a background refresh that must not queue).
    pub fn try_lead(&self, key: &str) -> Option<Leader<T>> {
        let mut map = self
            .inner
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.contains_key(key) {
            return None;
        }
        Some(self.start(&mut map, key))
    }

    /// How many flights run now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn start(&self, map: &mut FlightMap<T>, key: &str) -> Leader<T> {
        let id = self.inner.ids.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = watch::channel(None);
        map.insert(key.to_owned(), (id, receiver));
        Leader {
            inner: self.inner.clone(),
            key: key.to_owned(),
            id,
            sender,
        }
    }
}

/// The leader of a flight; publishing (or dropping) it ends the flight.
pub(crate) struct Leader<T> {
    inner: Arc<Inner<T>>,
    key: String,
    id: u64,
    sender: watch::Sender<Option<T>>,
}

impl<T> Leader<T> {
    /// Ends the flight with `outcome`, which every follower receives.
    pub fn publish(self, outcome: T) {
        self.remove();
        // No follower listening is fine.
        self.sender.send_replace(Some(outcome));
    }

    /// A follower of this very flight (for a leader that hands its work to a task).
    pub fn follow(&self) -> Follower<T> {
        Follower {
            receiver: self.sender.subscribe(),
        }
    }

    fn remove(&self) {
        let mut map = self
            .inner
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.key);
        }
    }
}

impl<T> Drop for Leader<T> {
    fn drop(&mut self) {
        // After `publish` this finds another flight or none; abandoned without an outcome,
        // followers wake up to an empty result when the sender goes.
        self.remove();
    }
}

/// A follower of a flight.
pub(crate) struct Follower<T> {
    receiver: watch::Receiver<Option<T>>,
}

/// Why a follower got no outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoOutcome {
    /// The leader went away without publishing.
    Abandoned,
    /// The wait timed out.
    TimedOut,
}

impl<T: Clone> Follower<T> {
    /// Waits for the leader's outcome, at most `timeout` (`None`: as long as it takes).
    pub async fn wait(mut self, timeout: Option<Duration>) -> Result<T, NoOutcome> {
        let wait = async {
            match self.receiver.wait_for(Option::is_some).await {
                Ok(value) => value.clone().ok_or(NoOutcome::Abandoned),
                Err(_) => Err(NoOutcome::Abandoned),
            }
        };
        match timeout {
            None => wait.await,
            Some(limit) => tokio::time::timeout(limit, wait)
                .await
                .unwrap_or(Err(NoOutcome::TimedOut)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_many_followers() {
        let flights = Flights::<u32>::default();
        let Join::Leader(leader) = flights.join("k") else {
            panic!("the first caller leads")
        };
        let followers: Vec<_> = (0..10)
            .map(|_| match flights.join("k") {
                Join::Follower(f) => tokio::spawn(f.wait(None)),
                Join::Leader(_) => panic!("later callers follow"),
            })
            .collect();
        assert!(flights.try_lead("k").is_none());
        assert!(matches!(flights.join("other"), Join::Leader(_)));
        leader.publish(7);
        for follower in followers {
            assert_eq!(follower.await.unwrap(), Ok(7));
        }
        assert_eq!(flights.len(), 0);
        assert!(flights.try_lead("k").is_some());
    }

    #[tokio::test]
    async fn abandoned_and_timed_out() {
        let flights = Flights::<u32>::default();
        let Join::Leader(leader) = flights.join("k") else {
            panic!()
        };
        let Join::Follower(follower) = flights.join("k") else {
            panic!()
        };
        let Join::Follower(patient) = flights.join("k") else {
            panic!()
        };
        assert_eq!(
            follower.wait(Some(Duration::from_millis(10))).await,
            Err(NoOutcome::TimedOut)
        );
        drop(leader);
        assert_eq!(patient.wait(None).await, Err(NoOutcome::Abandoned));
        assert_eq!(flights.len(), 0);
    }
}
