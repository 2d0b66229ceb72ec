//! An append-only event log per aggregate, with replay and snapshots, on any store.
//!
//! [`EventLog`] stores each event as one JSON entry whose key sorts by time, so a listing of
//! an aggregate's prefix is its history in order. It needs no compare-and-swap: appends are
//! plain writes of keys nobody else can produce.
//!
//! ```
//! # async fn example(store: kv_core::Store) -> Result<(), kv_core::event_log::EventLogError> {
//! use kv_core::event_log::EventLog;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! enum Cart {
//!     Added { sku: String, qty: u32 },
//!     Removed { sku: String },
//! }
//!
//! let log = EventLog::new(store.namespace("EVENTS").await?);
//! log.append("cart-17", &Cart::Added { sku: "apple".into(), qty: 3 }).await?;
//! let last = log.append("cart-17", &Cart::Removed { sku: "apple".into() }).await?;
//!
//! // The whole history, in order; or everything after a point.
//! let history: Vec<(_, Cart)> = log.replay("cart-17", None).await?;
//! assert_eq!(history.last().map(|(id, _)| *id), Some(last));
//!
//! // Fold events into state, remember it, and later start from there.
//! let (items, after) = log
//!     .rebuild("cart-17", 0i64, |items, _id, event: Cart| match event {
//!         Cart::Added { qty, .. } => items + i64::from(qty),
//!         Cart::Removed { .. } => items - 1,
//!     })
//!     .await?;
//! if let Some(after) = after {
//!     log.save_snapshot("cart-17", &after, &items).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! # Keys
//!
//! An event of aggregate `A` is stored at `ev:A:{EventId}`, its snapshot at `snap:A`. An
//! [`EventId`] is `{millis}-{sequence}-{node}`: the store clock's milliseconds since the Unix
//! epoch as 13 zero-padded digits, then a process-wide append counter and a per-process random
//! node id, each as 16 lowercase hex digits (47 characters in all). Every part has a fixed
//! width, so byte order, which is the order a store lists keys in, is the order of
//! (millisecond, sequence, node).
//!
//! Aggregate ids must not be empty, must not contain `:` (so that the prefix `ev:A:` never
//! matches the events of another aggregate), and must leave room for the rest of the key in
//! the [`Limits`](crate::Limits) (461 bytes with the default 512-byte keys).
//!
//! # Ordering guarantees
//!
//! - **Unique**: two appends never produce the same id. Within a process the sequence never
//!   repeats; across processes the random 64-bit node ids differ.
//! - **In append order within a process**: if one append returns before another starts in the
//!   same process, the first id sorts first, even within one millisecond (the sequence orders
//!   them) and even with a clock that stands still (a [`ManualClock`](crate::ManualClock)).
//!   Through one `EventLog` (and its clones) this holds even if the clock steps backwards: its
//!   millisecond part never decreases.
//! - **Across processes, by time only**: events of different processes are ordered by their
//!   writers' clocks to the millisecond; within one millisecond their order is arbitrary (by
//!   sequence, then node) but the same for every reader. Clock skew between writers skews the
//!   order to the same extent. If an aggregate needs one total order across writers, append
//!   under a [`DistributedLock`](crate::lock::DistributedLock) on it.
//! - **Replay from a point sees what was stored then**: an append that is still in flight (or
//!   made by a process with a lagging clock) may land *before* the point a reader already
//!   passed. A consumer tailing the log across processes should re-read a window before its
//!   last id.
//!
//! Replaying from a point lists the aggregate's keys from its start and skips those up to the
//! point (list cursors are backend-specific, so there is no seeking); values are read only
//! after the point, 100 at a time.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::UNIX_EPOCH;

use futures::stream::{self, Stream};
use futures::TryStreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::{debug, debug_span, Instrument};

use crate::error::KvError;
use crate::namespace::Namespace;
use crate::types::{ListOptions, PutOptions, PutOutcome, WriteMode};

/// The prefix of every event key: `ev:{aggregate}:{id}`.
pub const EVENT_KEY_PREFIX: &str = "ev:";
/// The prefix of every snapshot key: `snap:{aggregate}`.
pub const SNAPSHOT_KEY_PREFIX: &str = "snap:";
/// The character separating an aggregate id from the event id; aggregate ids may not hold it.
pub const SEPARATOR: char = ':';

const MILLIS_DIGITS: usize = 13;
const MAX_MILLIS: u64 = 9_999_999_999_999;
const HEX_DIGITS: usize = 16;
/// The length of an [`EventId`] in text.
pub const EVENT_ID_LEN: usize = MILLIS_DIGITS + 1 + HEX_DIGITS + 1 + HEX_DIGITS;

/// Every append of this process takes the next number.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// This process's random node id.
fn node() -> u64 {
    static NODE: OnceLock<u64> = OnceLock::new();
    *NODE.get_or_init(|| {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the operating system's random source is available");
        u64::from_le_bytes(bytes)
    })
}

/// The id of one event: when it was appended, and by which append of which process.
///
/// Ids order (and their text sorts) by millisecond, then sequence, then node; see the
/// [module documentation](self) for what that guarantees. The text form is
/// `{millis:013}-{sequence:016x}-{node:016x}`, and serde uses it.
///
/// ```
/// use kv_core::event_log::EventId;
///
/// let id: EventId = "1700000000123-000000000000002a-00000000deadbeef".parse().unwrap();
/// assert_eq!(id.millis(), 1_700_000_000_123);
/// assert_eq!(id.to_string(), "1700000000123-000000000000002a-00000000deadbeef");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    // Field order is the ordering: it matches the text's byte order.
    millis: u64,
    sequence: u64,
    node: u64,
}

impl EventId {
    /// An id from its parts; `millis` is capped at 13 decimal digits (the year 2286).
    pub fn from_parts(millis: u64, sequence: u64, node: u64) -> Self {
        EventId {
            millis: millis.min(MAX_MILLIS),
            sequence,
            node,
        }
    }

    /// The append's time by the writer's store clock, in milliseconds since the Unix epoch
    /// (never less than an earlier append's through the same [`EventLog`]).
    pub fn millis(&self) -> u64 {
        self.millis
    }

    /// The writer process's append counter.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The writer process's random id.
    pub fn node(&self) -> u64 {
        self.node
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:013}-{:016x}-{:016x}",
            self.millis, self.sequence, self.node
        )
    }
}

/// The text is not an [`EventId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an event id (13 digits, 16 hex digits, 16 hex digits, joined by '-')")]
pub struct ParseEventIdError(pub String);

impl FromStr for EventId {
    type Err = ParseEventIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ParseEventIdError(s.to_owned());
        let bytes = s.as_bytes();
        if bytes.len() != EVENT_ID_LEN
            || bytes[MILLIS_DIGITS] != b'-'
            || bytes[MILLIS_DIGITS + 1 + HEX_DIGITS] != b'-'
        {
            return Err(invalid());
        }
        let millis = &s[..MILLIS_DIGITS];
        let sequence = &s[MILLIS_DIGITS + 1..MILLIS_DIGITS + 1 + HEX_DIGITS];
        let node = &s[MILLIS_DIGITS + 2 + HEX_DIGITS..];
        let digits = millis.bytes().all(|b| b.is_ascii_digit());
        let hex = |part: &str| part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !digits || !hex(sequence) || !hex(node) {
            return Err(invalid());
        }
        Ok(EventId {
            millis: millis.parse().map_err(|_| invalid())?,
            sequence: u64::from_str_radix(sequence, 16).map_err(|_| invalid())?,
            node: u64::from_str_radix(node, 16).map_err(|_| invalid())?,
        })
    }
}

impl Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why an event log operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventLogError {
    /// The store failed, a limit was violated, or a stored event did not decode as the
    /// requested type ([`KvError::Decode`]).
    #[error(transparent)]
    Store(#[from] KvError),
    /// The aggregate id is empty.
    #[error("aggregate id must not be empty")]
    EmptyAggregateId,
    /// The aggregate id leaves no room for the rest of the key.
    #[error("aggregate id is {len} bytes long, more than the limit of {max} bytes")]
    AggregateIdTooLong {
        /// The id's length in bytes.
        len: usize,
        /// The longest id the namespace's key limit allows.
        max: usize,
    },
    /// The aggregate id contains the separator `:`, which would mix its events with another
    /// aggregate's.
    #[error("aggregate id {id:?} must not contain ':'")]
    AggregateIdSeparator {
        /// The rejected id.
        id: String,
    },
    /// A key under an aggregate's event prefix is not an event key: something else writes
    /// into the log's keyspace.
    #[error("key {key:?} is under the event log's prefix but is not an event key")]
    MalformedKey {
        /// The stored key.
        key: String,
    },
}

/// An aggregate's state as of an event, from [`EventLog::load_snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot<S> {
    /// The last event folded into `state`; replay continues after it.
    pub after: EventId,
    /// The state.
    pub state: S,
}

#[derive(Serialize)]
struct SnapshotOut<'a, S: ?Sized> {
    after: EventId,
    state: &'a S,
}

#[derive(Deserialize)]
struct SnapshotIn<S> {
    after: EventId,
    state: S,
}

#[derive(Deserialize)]
struct SnapshotHeader {
    after: EventId,
}

/// An event log over one [`Namespace`]: append, replay in order, snapshots.
///
/// Cheap to clone; clones share the guarantee that their ids never go back in time. See the
/// [module documentation](self) for the key format and the ordering guarantees.
#[derive(Debug, Clone)]
pub struct EventLog {
    namespace: Namespace,
    /// The largest millisecond this log (and its clones) has put into an id.
    last_millis: Arc<AtomicU64>,
}

impl EventLog {
    /// A log over `namespace`. Any store works; with atomic compare-and-swap, appends are
    /// also written only-if-absent and snapshots never go backwards under concurrent saves.
    pub fn new(namespace: Namespace) -> Self {
        EventLog {
            namespace,
            last_millis: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The namespace holding the events.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The longest aggregate id, in bytes, that the namespace's key limit allows.
    pub fn max_aggregate_id_len(&self) -> usize {
        let overhead = EVENT_KEY_PREFIX.len() + SEPARATOR.len_utf8() + EVENT_ID_LEN;
        let snapshot_overhead = SNAPSHOT_KEY_PREFIX.len();
        self.namespace
            .limits()
            .max_key_bytes
            .saturating_sub(overhead.max(snapshot_overhead))
    }

    /// Appends `event` (as JSON) to the history of `aggregate`; returns its id.
    pub async fn append<E: Serialize + ?Sized>(
        &self,
        aggregate: &str,
        event: &E,
    ) -> Result<EventId, EventLogError> {
        let prefix = self.event_prefix(aggregate)?;
        let value = serde_json::to_vec(event).map_err(|source| KvError::Encode {
            what: "value",
            source,
        })?;
        let atomic = self.namespace.capabilities().atomic_conditional_writes;
        let span = debug_span!("kv.event_log.append", aggregate, id = tracing::field::Empty);
        async {
            loop {
                let id = self.next_id();
                let key = format!("{prefix}{id}");
                let mode = if atomic {
                    WriteMode::OnlyIfAbsent
                } else {
                    WriteMode::Overwrite
                };
                let options = PutOptions::new().mode(mode);
                match self
                    .namespace
                    .put_with(&key, value.clone(), options)
                    .await?
                {
                    PutOutcome::Written(_) => {
                        tracing::Span::current().record("id", tracing::field::display(id));
                        return Ok(id);
                    }
                    // Only a colliding node id gets here: take the next id.
                    PutOutcome::ConditionFailed => debug!(%id, "event id taken; retrying"),
                }
            }
        }
        .instrument(span)
        .await
    }

    /// The events of `aggregate` in order, all of them or those after `after`.
    ///
    /// An event deleted or expired between listing and reading is left out; an event that
    /// does not decode as `E` fails the replay with [`KvError::Decode`].
    pub async fn replay<E: DeserializeOwned + Send + 'static>(
        &self,
        aggregate: &str,
        after: Option<&EventId>,
    ) -> Result<Vec<(EventId, E)>, EventLogError> {
        let span = debug_span!(
            "kv.event_log.replay",
            aggregate,
            events = tracing::field::Empty
        );
        async {
            let events: Vec<(EventId, E)> =
                self.replay_stream(aggregate, after)?.try_collect().await?;
            tracing::Span::current().record("events", events.len());
            Ok(events)
        }
        .instrument(span)
        .await
    }

    /// As [`replay`](Self::replay), as a stream that reads one page (up to 1000 keys) at a
    /// time, for histories too long to hold in memory.
    pub fn replay_stream<E: DeserializeOwned + Send + 'static>(
        &self,
        aggregate: &str,
        after: Option<&EventId>,
    ) -> Result<
        impl Stream<Item = Result<(EventId, E), EventLogError>> + Send + 'static,
        EventLogError,
    > {
        let prefix = self.event_prefix(aggregate)?;
        let namespace = self.namespace.clone();
        let after = after.copied();
        let batch = namespace.limits().max_bulk_get.max(1);
        let first = ListOptions::new()
            .prefix(prefix.clone())
            .limit(namespace.limits().max_list_limit.max(1));
        let aggregate = aggregate.to_owned();
        let pages = stream::try_unfold(Some(first), move |next| {
            let namespace = namespace.clone();
            let prefix = prefix.clone();
            let span = debug_span!("kv.event_log.replay_page", aggregate = %aggregate);
            async move {
                let Some(options) = next else {
                    return Ok::<_, EventLogError>(None);
                };
                let page = namespace.list(&options).await?;
                let following = match page.cursor {
                    Some(cursor) if !page.list_complete => Some(ListOptions {
                        cursor: Some(cursor),
                        ..options
                    }),
                    _ => None,
                };
                let mut wanted = Vec::with_capacity(page.keys.len());
                for info in page.keys {
                    let id = info
                        .name
                        .strip_prefix(prefix.as_str())
                        .and_then(|rest| rest.parse::<EventId>().ok())
                        .ok_or_else(|| EventLogError::MalformedKey {
                            key: info.name.clone(),
                        })?;
                    if after.map_or(true, |after| id > after) {
                        wanted.push((id, info.name));
                    }
                }
                let mut events = Vec::with_capacity(wanted.len());
                for chunk in wanted.chunks(batch) {
                    let keys: Vec<&str> = chunk.iter().map(|(_, key)| key.as_str()).collect();
                    let entries = namespace.get_many(&keys).await?;
                    for ((id, key), entry) in chunk.iter().zip(entries) {
                        let Some(entry) = entry else { continue };
                        let event = serde_json::from_slice(&entry.value).map_err(|error| {
                            KvError::Decode {
                                key: key.clone(),
                                format: "JSON",
                                source: Box::new(error),
                            }
                        })?;
                        events.push(Ok((*id, event)));
                    }
                }
                debug!(events = events.len(), "replayed a page");
                Ok(Some((stream::iter(events), following)))
            }
            .instrument(span)
        });
        Ok(pages.try_flatten())
    }

    /// Stores `state` as the state of `aggregate` after the event `after` (replacing an older
    /// snapshot). Returns `false`, storing nothing, when the stored snapshot is already at or
    /// after `after`.
    ///
    /// With atomic compare-and-swap the check and the write are one step, so concurrent saves
    /// keep the newest; without it, two concurrent saves may leave the older one.
    pub async fn save_snapshot<S: Serialize + ?Sized>(
        &self,
        aggregate: &str,
        after: &EventId,
        state: &S,
    ) -> Result<bool, EventLogError> {
        let key = self.snapshot_key(aggregate)?;
        let atomic = self.namespace.capabilities().atomic_conditional_writes;
        let document = SnapshotOut {
            after: *after,
            state,
        };
        let span = debug_span!("kv.event_log.save_snapshot", aggregate, after = %after);
        async {
            loop {
                let current = self
                    .namespace
                    .get_json_entry::<SnapshotHeader>(&key)
                    .await?;
                let mode = match current {
                    Some((header, _)) if header.after >= *after => {
                        debug!(stored = %header.after, "a newer snapshot is stored");
                        return Ok(false);
                    }
                    _ if !atomic => WriteMode::Overwrite,
                    Some((_, entry)) => WriteMode::OnlyIfVersion(entry.version),
                    None => WriteMode::OnlyIfAbsent,
                };
                let options = PutOptions::new().mode(mode);
                match self
                    .namespace
                    .put_json_with(&key, &document, options)
                    .await?
                {
                    PutOutcome::Written(_) => return Ok(true),
                    PutOutcome::ConditionFailed => debug!("snapshot changed meanwhile; retrying"),
                }
            }
        }
        .instrument(span)
        .await
    }

    /// The stored snapshot of `aggregate`, if any.
    pub async fn load_snapshot<S: DeserializeOwned>(
        &self,
        aggregate: &str,
    ) -> Result<Option<Snapshot<S>>, EventLogError> {
        let key = self.snapshot_key(aggregate)?;
        let span = debug_span!("kv.event_log.load_snapshot", aggregate);
        let stored = self
            .namespace
            .get_json::<SnapshotIn<S>>(&key)
            .instrument(span)
            .await?;
        Ok(stored.map(|snapshot| Snapshot {
            after: snapshot.after,
            state: snapshot.state,
        }))
    }

    /// The current state of `aggregate`: the snapshot's state (or `initial` without one) with
    /// every later event folded in by `apply`. Also returns the last event folded in (or the
    /// snapshot's), which is where a new snapshot of the result belongs; `None` when there is
    /// neither snapshot nor event.
    pub async fn rebuild<S, E, F>(
        &self,
        aggregate: &str,
        initial: S,
        mut apply: F,
    ) -> Result<(S, Option<EventId>), EventLogError>
    where
        S: DeserializeOwned,
        E: DeserializeOwned + Send + 'static,
        F: FnMut(S, &EventId, E) -> S,
    {
        let (mut state, mut last) = match self.load_snapshot::<S>(aggregate).await? {
            Some(snapshot) => (snapshot.state, Some(snapshot.after)),
            None => (initial, None),
        };
        let mut events = std::pin::pin!(self.replay_stream::<E>(aggregate, last.as_ref())?);
        while let Some((id, event)) = events.try_next().await? {
            state = apply(state, &id, event);
            last = Some(id);
        }
        Ok((state, last))
    }

    /// The next id: never below the last millisecond this log used, and a sequence no other
    /// append of this process gets.
    fn next_id(&self) -> EventId {
        let now = self
            .namespace
            .clock()
            .now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis().min(MAX_MILLIS as u128) as u64)
            .unwrap_or(0);
        let previous = self.last_millis.fetch_max(now, Ordering::SeqCst);
        let sequence = SEQUENCE.fetch_add(1, Ordering::SeqCst);
        EventId::from_parts(previous.max(now), sequence, node())
    }

    fn check_aggregate(&self, aggregate: &str) -> Result<(), EventLogError> {
        if aggregate.is_empty() {
            return Err(EventLogError::EmptyAggregateId);
        }
        if aggregate.contains(SEPARATOR) {
            return Err(EventLogError::AggregateIdSeparator {
                id: aggregate.to_owned(),
            });
        }
        let max = self.max_aggregate_id_len();
        if aggregate.len() > max {
            return Err(EventLogError::AggregateIdTooLong {
                len: aggregate.len(),
                max,
            });
        }
        Ok(())
    }

    fn event_prefix(&self, aggregate: &str) -> Result<String, EventLogError> {
        self.check_aggregate(aggregate)?;
        Ok(format!("{EVENT_KEY_PREFIX}{aggregate}{SEPARATOR}"))
    }

    fn snapshot_key(&self, aggregate: &str) -> Result<String, EventLogError> {
        self.check_aggregate(aggregate)?;
        Ok(format!("{SNAPSHOT_KEY_PREFIX}{aggregate}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_like_their_text() {
        let ids = [
            EventId::from_parts(5, 0xff, 1),
            EventId::from_parts(5, 0x100, 0),
            EventId::from_parts(40, 0, u64::MAX),
            EventId::from_parts(1_700_000_000_000, 3, 2),
            EventId::from_parts(u64::MAX, 0, 0),
        ];
        for window in ids.windows(2) {
            assert!(window[0] < window[1]);
            assert!(window[0].to_string() < window[1].to_string());
        }
        for id in ids {
            let text = id.to_string();
            assert_eq!(text.len(), EVENT_ID_LEN);
            assert_eq!(text.parse::<EventId>(), Ok(id));
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(serde_json::from_str::<EventId>(&json).unwrap(), id);
        }
    }

    #[test]
    fn malformed_ids_are_rejected() {
        let good = EventId::from_parts(1, 2, 3).to_string();
        assert!(good.parse::<EventId>().is_ok());
        for bad in [
            "",
            "1-2-3",
            &good[1..],
            &good.replace('-', "_"),
            "0000000000001-000000000000000A-0000000000000003",
            &format!("{good}0"),
            "+000000000001-0000000000000002-0000000000000003",
            "000000000000x-0000000000000002-0000000000000003",
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad:?}");
        }
    }
}
