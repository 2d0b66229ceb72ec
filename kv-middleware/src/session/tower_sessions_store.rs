//! tower-sessions' [`SessionStore`] over a namespace (feature `tower-sessions`).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use kv_core::{KvError, Namespace, PutOptions, PutOutcome, WriteMode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, SessionStore};

use super::id::sha256_hex;

/// What every key of a [`TowerSessionsStore`] starts with, so that it can share a namespace
/// with [`SessionLayer`](super::SessionLayer) (whose keys are 64 bare hex digits).
const KEY_PREFIX: &str = "tower-sessions:";

/// How many fresh IDs [`create`](SessionStore::create) tries before giving up: with 128-bit
/// random IDs even a second try is never expected, so reaching this means something else is
/// wrong (a store that answers "already there" to everything).
const MAX_CREATE_ATTEMPTS: usize = 16;

/// A [tower-sessions](https://docs.rs/tower-sessions) session store over one namespace, for
/// tower-sessions users who want our backends (memory, file, Redis, HTTP) without changing
/// their handlers: the store is the one line that changes.
///
/// ```
/// # async fn example(namespace: kv_core::Namespace) {
/// use kv_middleware::session::TowerSessionsStore;
/// use tower_sessions::SessionManagerLayer;
///
/// // Was: SessionManagerLayer::new(MemoryStore::default())
/// let layer = SessionManagerLayer::new(TowerSessionsStore::new(namespace));
/// # let _ = layer;
/// # }
/// ```
///
/// # Behaviour
///
/// - **create** writes only if the key is absent (compare-and-swap); on a collision it draws a
///   new [`Id`] and tries again, so two sessions never share a record, even created by two
///   processes at once. On a store without compare-and-swap (see
///   [`Capabilities`](kv_core::Capabilities)) it checks for the key and then writes: a
///   collision of two fresh 128-bit IDs in that instant is the only way to lose a record.
/// - **save** overwrites (last writer wins, as in every tower-sessions store).
/// - **load** returns `None` for a missing record, and for one whose `expiry_date` is at or
///   before now on the store's [clock](kv_core::Clock) (a manual clock in tests).
/// - **delete** removes the record; deleting a missing one is not an error.
///
/// # Expiry
///
/// A record is stored with an expiration at its `expiry_date` (rounded up to the next second),
/// so the store drops ended sessions by itself: there is no deletion task to run, and
/// [`ExpiredDeletion`](tower_sessions_core::ExpiredDeletion) is not needed. The store refuses
/// expirations less than its minimum TTL ahead (60 s by default, as Workers KV): a session
/// that ends sooner is stored with that minimum instead, and **load** hides it from its
/// `expiry_date` on, so it ends when it should and only its storage lingers up to the minimum.
/// A record saved when already ended is deleted instead of written. An `expiry_date` beyond the
/// store's latest expiration is stored with that latest expiration.
///
/// # Stored form
///
/// Under `tower-sessions:` followed by the lowercase hex SHA-256 of the ID's text form, so that
/// whoever reads the store (a backup, a shared Redis) cannot present a valid cookie; the value
/// is the JSON document `{"expires_at": <unix seconds>, "nanos": <0..1e9>, "data": {...}}`.
///
/// # Store failures
///
/// Every call is bounded by a store timeout (default
/// [`DEFAULT_STORE_TIMEOUT`](crate::DEFAULT_STORE_TIMEOUT),
/// [`with_store_timeout`](Self::with_store_timeout)). A store error or timeout becomes
/// [`session_store::Error::Backend`] and tower-sessions answers the request with 500. A write
/// whose reply was lost may have landed: a lost **create** leaves a record nobody holds a
/// cookie for (it expires on its own), a lost **save** may or may not have replaced the
/// previous data, and a lost **delete** may or may not have removed it; in every case the
/// request that was told "error" was answered 500, so no response claimed a write that did not
/// happen.
#[derive(Clone)]
pub struct TowerSessionsStore {
    namespace: Namespace,
}

impl fmt::Debug for TowerSessionsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TowerSessionsStore")
            .field("namespace", &self.namespace.id())
            .finish()
    }
}

/// The stored form of a [`Record`]. tower-sessions' own serde form of `expiry_date` depends on
/// the `time` crate's features in the build, so the expiry is stored as plain numbers that
/// every build reads alike.
#[derive(Serialize, Deserialize)]
struct Stored {
    expires_at: i64,
    nanos: u32,
    data: Map<String, Value>,
}

impl TowerSessionsStore {
    /// A store of sessions in `namespace`, each call bounded by the default store timeout.
    pub fn new(namespace: Namespace) -> Self {
        TowerSessionsStore {
            namespace: namespace.with_timeout(crate::DEFAULT_STORE_TIMEOUT),
        }
    }

    /// Bounds every store call by `timeout` instead of the default; `None` leaves calls
    /// unbounded (only for a store that cannot hang, such as the memory backend).
    pub fn with_store_timeout(mut self, timeout: Option<Duration>) -> Self {
        // Rebuilt from the unbounded store so that timeouts do not stack.
        let unbounded = Namespace::new(
            self.namespace.id(),
            self.namespace.raw().clone(),
            self.namespace.limits().clone(),
            self.namespace.clock().clone(),
        );
        self.namespace = match timeout {
            Some(timeout) => unbounded.with_timeout(timeout),
            None => unbounded,
        };
        self
    }

    /// The key a session is stored under.
    fn key(id: &Id) -> String {
        format!("{KEY_PREFIX}{}", sha256_hex(id.to_string().as_bytes()))
    }

    /// The store's clock, in nanoseconds since the Unix epoch.
    fn now_nanos(&self) -> i128 {
        let now = self.namespace.clock().now();
        match now.duration_since(std::time::UNIX_EPOCH) {
            Ok(since) => since.as_nanos() as i128,
            Err(before) => -(before.duration().as_nanos() as i128),
        }
    }

    /// The value and write options for `record`; `None` when it has already ended.
    fn encode(&self, record: &Record) -> session_store::Result<Option<(Vec<u8>, PutOptions)>> {
        let ends = record.expiry_date.unix_timestamp_nanos();
        let now = self.now_nanos();
        if ends <= now {
            return Ok(None);
        }
        let limits = self.namespace.limits();
        let now_secs = now.div_euclid(1_000_000_000) as i64;
        // Rounded up: the store must not drop a record before load would still show it.
        let ends_secs =
            ends.div_euclid(1_000_000_000) as i64 + i64::from(ends.rem_euclid(1_000_000_000) != 0);
        let earliest = now_secs.saturating_add(limits.min_ttl_secs.try_into().unwrap_or(i64::MAX));
        let latest = i64::try_from(limits.max_expiration_secs).unwrap_or(i64::MAX);
        let expiration = ends_secs.max(earliest).min(latest).max(0) as u64;
        let stored = Stored {
            expires_at: record.expiry_date.unix_timestamp(),
            nanos: record.expiry_date.nanosecond(),
            data: record
                .data
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let bytes = serde_json::to_vec(&stored)
            .map_err(|error| session_store::Error::Encode(error.to_string()))?;
        Ok(Some((bytes, PutOptions::new().expiration(expiration))))
    }

    /// Writes `record` if no record has its ID; `false` when one has.
    async fn put_if_absent(&self, key: &str, bytes: Vec<u8>, options: PutOptions) -> Result<bool> {
        if self.namespace.capabilities().atomic_conditional_writes {
            let options = options.mode(WriteMode::OnlyIfAbsent);
            let outcome = self.namespace.put_with(key, bytes, options).await?;
            return Ok(matches!(outcome, PutOutcome::Written(_)));
        }
        if self.namespace.get_entry(key).await?.is_some() {
            return Ok(false);
        }
        // An unconditional write: its outcome is always `Written`.
        let _ = self.namespace.put_with(key, bytes, options).await?;
        Ok(true)
    }
}

type Result<T> = std::result::Result<T, KvError>;

fn backend(error: KvError) -> session_store::Error {
    session_store::Error::Backend(error.to_string())
}

#[async_trait]
impl SessionStore for TowerSessionsStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        for attempt in 0..MAX_CREATE_ATTEMPTS {
            let Some((bytes, options)) = self.encode(record)? else {
                // Ended before it began: nothing to store, and no ID to protect.
                return Ok(());
            };
            if self
                .put_if_absent(&Self::key(&record.id), bytes, options)
                .await
                .map_err(backend)?
            {
                return Ok(());
            }
            tracing::debug!(attempt, "session ID collision; drawing a new ID");
            record.id = Id::default();
        }
        Err(session_store::Error::Backend(format!(
            "no free session ID after {MAX_CREATE_ATTEMPTS} attempts"
        )))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let key = Self::key(&record.id);
        match self.encode(record)? {
            Some((bytes, options)) => {
                // An unconditional write: its outcome is always `Written`.
                let _ = self
                    .namespace
                    .put_with(&key, bytes, options)
                    .await
                    .map_err(backend)?;
            }
            None => self.namespace.delete(&key).await.map_err(backend)?,
        }
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some(bytes) = self.namespace.get(&Self::key(id)).await.map_err(backend)? else {
            return Ok(None);
        };
        let stored: Stored = serde_json::from_slice(&bytes)
            .map_err(|error| session_store::Error::Decode(error.to_string()))?;
        let ends = i128::from(stored.expires_at) * 1_000_000_000 + i128::from(stored.nanos);
        if ends <= self.now_nanos() {
            return Ok(None);
        }
        let expiry_date = OffsetDateTime::from_unix_timestamp_nanos(ends)
            .map_err(|error| session_store::Error::Decode(error.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data: stored.data.into_iter().collect(),
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.namespace.delete(&Self::key(id)).await.map_err(backend)
    }
}
