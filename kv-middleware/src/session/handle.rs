//! The `Session` handle and the load / save logic behind it.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, StatusCode};
use kv_core::{KvError, PutOptions, PutOutcome, Version, WriteMode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::config::{Config, Counters, LoadErrorPolicy};
use super::cookie_config::{Presented, RawCookies};
use super::error::SessionError;
use super::expiry::Expiry;
use super::expiry::StoredExpiry;
use super::id::SessionId;
use super::record::{write_record, Data, Found, RawObject, RecordHead};

/// A request's session: cheap to clone, lazy, and saved by the layer when it changed.
///
/// [`SessionLayer`](super::SessionLayer) puts one in every request's extensions (with the `axum`
/// feature it is also an extractor); [`SessionManager`](super::SessionManager) makes them for
/// code outside requests. Clones share one state.
///
/// Nothing is read from the store until a method needs the data: a handler that never touches
/// the session costs no store access. Values are JSON (serde); inserting a value equal to the
/// current one is not a change. All methods that may load return `Result`, because the store
/// may fail.
///
/// ```
/// # async fn handler(session: kv_middleware::session::Session)
/// #     -> Result<(), kv_middleware::session::SessionError> {
/// let visits: u64 = session.get("visits").await?.unwrap_or(0);
/// session.insert("visits", visits + 1).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    incoming: Incoming,
    /// Set by every method; the layer skips all work for a session never touched.
    touched: AtomicBool,
    state: tokio::sync::Mutex<State>,
}

/// Where the session's ID comes from.
enum Incoming {
    /// Raw, unverified values of the request's session cookies.
    Cookies(RawCookies),
    /// An ID given to the manager.
    Id(SessionId),
    /// A new session.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Unloaded,
    Ready,
    /// Loading failed under [`LoadErrorPolicy::Fail`].
    Failed,
}

/// The stored record a session currently is.
#[derive(Debug, Clone)]
struct Stored {
    key: String,
    version: Version,
    /// The session's end as stored, in seconds since the Unix epoch.
    expires_at: u64,
}

/// What the response must tell the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CookieAction {
    /// Nothing: the browser's cookie is still right.
    Keep,
    /// Set the cookie to the current ID and lifetime.
    Set,
    /// Remove the cookie.
    Remove,
}

struct State {
    phase: Phase,
    /// The session's ID: the stored one, or the one a new session will be saved under.
    id: Option<SessionId>,
    /// The record `id` is stored as; `None` for a session not (or no longer) in the store.
    stored: Option<Stored>,
    data: Data,
    /// The session's own expiry (from its record or `set_expiry`); `None`: the layer's.
    expiry: Option<Expiry>,
    expiry_changed: bool,
    /// A record replaced by `cycle_id`, deleted by the next save.
    retired: Option<(SessionId, Stored)>,
    cookie: CookieAction,
    /// Whether the browser holds a cookie of ours (valid or not) or was sent one.
    has_cookie: bool,
    /// The store's clock when the session was read (seconds since the Unix epoch), reused by
    /// the end-of-request decision so that a read-only request reads the clock once.
    read_at: Option<u64>,
}

impl State {
    fn new(phase: Phase) -> Self {
        State {
            phase,
            id: None,
            stored: None,
            data: Data::default(),
            expiry: None,
            expiry_changed: false,
            retired: None,
            cookie: CookieAction::Keep,
            has_cookie: false,
            read_at: None,
        }
    }

    fn effective_expiry(&self, config: &Config) -> Expiry {
        self.expiry.unwrap_or(config.expiry)
    }

    /// Whether a rolling session's remaining lifetime is down to the refresh fraction.
    fn refresh_due(&self, config: &Config, now: u64) -> bool {
        let (Some(stored), Some(period)) =
            (&self.stored, self.effective_expiry(config).rolling_secs())
        else {
            return false;
        };
        let remaining = stored.expires_at.saturating_sub(now);
        (remaining as f64) <= config.refresh_fraction * period as f64
    }

    fn is_modified(&self) -> bool {
        self.phase == Phase::Ready
            && (self.data.is_modified()
                || self.expiry_changed
                || self.retired.is_some()
                || (self.stored.is_none() && !self.data.is_empty()))
    }

    fn needs_save(&self, config: &Config, now: u64) -> bool {
        if self.stored.is_none() {
            // New (or cycled): saved once it holds data; a cycled-away record is deleted.
            return self.retired.is_some() || !self.data.is_empty();
        }
        // Stored: saved (or deleted, if emptied) when changed or due for a refresh.
        self.data.is_modified() || self.expiry_changed || self.refresh_due(config, now)
    }

    /// Adopts a loaded record as this session's.
    fn adopt(&mut self, id: SessionId, key: String, loaded: Loaded) {
        self.id = Some(id);
        self.stored = Some(Stored {
            key,
            version: loaded.version,
            expires_at: loaded.expires_at,
        });
        self.data = Data::new(loaded.data);
        self.expiry = loaded.expiry.map(Expiry::from);
        self.expiry_changed = false;
        self.read_at = Some(loaded.read_at);
    }

    /// Forgets the stored session: what follows is a new, empty session.
    fn reset_to_new(&mut self) {
        self.id = None;
        self.stored = None;
        self.data = Data::default();
        self.expiry = None;
        self.expiry_changed = false;
        self.retired = None;
        self.cookie = if self.has_cookie || self.cookie == CookieAction::Set {
            CookieAction::Remove
        } else {
            CookieAction::Keep
        };
    }

    fn current_id(&mut self) -> Result<SessionId, SessionError> {
        match &self.id {
            Some(id) => Ok(id.clone()),
            None => {
                let id = SessionId::generate()?;
                self.id = Some(id.clone());
                Ok(id)
            }
        }
    }

    /// Loads the session stored under `id` (or starts a new one), following the load policy.
    async fn load(&mut self, config: &Config, id: Option<SessionId>) -> Result<(), SessionError> {
        let Some(id) = id else {
            self.phase = Phase::Ready;
            return Ok(());
        };
        let key = id.store_key();
        match fetch(config, &key).await {
            Ok(Some(loaded)) => {
                tracing::debug!(target: "kv_middleware::session", found = true, "session: loaded");
                self.adopt(id, key, loaded);
                self.phase = Phase::Ready;
                Ok(())
            }
            Ok(None) => {
                tracing::debug!(target: "kv_middleware::session", found = false, "session: loaded");
                self.phase = Phase::Ready;
                Ok(())
            }
            Err(error) => {
                Counters::bump(&config.counters.load_errors);
                match config.load_error_policy {
                    LoadErrorPolicy::Empty => {
                        tracing::error!(%error, "could not load the session; continuing with an empty one");
                        self.phase = Phase::Ready;
                        Ok(())
                    }
                    LoadErrorPolicy::Fail => {
                        tracing::error!(%error, "could not load the session");
                        self.phase = Phase::Failed;
                        Err(SessionError::Store(error))
                    }
                }
            }
        }
    }

    /// Writes the session if it needs it (`force`: if it is not empty), deletes it if it
    /// became empty or ended, and merges with concurrent writes when compare-and-swap is there.
    async fn persist(&mut self, config: &Config, force: bool) -> Result<(), SessionError> {
        let ns = &config.namespace;
        let cas = ns.capabilities().atomic_conditional_writes;
        let mut attempts = 0;
        loop {
            let now = config.now_secs();
            if !force && !self.needs_save(config, now) {
                return Ok(());
            }
            let expiry = self.effective_expiry(config);
            let expires_at = expiry.deadline(now);
            if self.data.is_empty() || expires_at <= now {
                if self.stored.is_none() && self.retired.is_none() {
                    // Nothing stored, nothing to store.
                    return Ok(());
                }
                return self.delete_records(config).await;
            }
            if attempts == config.max_save_attempts {
                return Err(SessionError::Conflict { attempts });
            }
            attempts += 1;

            // The record outlives the session by up to the store's minimum TTL; its own
            // `expires_at` decides on load.
            let ttl = (expires_at - now).max(ns.limits().min_ttl_secs).max(1);
            let (key, mode) = match &self.stored {
                Some(stored) if cas => {
                    (stored.key.clone(), WriteMode::OnlyIfVersion(stored.version))
                }
                Some(stored) => (stored.key.clone(), WriteMode::Overwrite),
                None if cas => (self.current_id()?.store_key(), WriteMode::OnlyIfAbsent),
                None => (self.current_id()?.store_key(), WriteMode::Overwrite),
            };
            let (bytes, data_range) =
                write_record(&self.data, expires_at, self.expiry.map(Expiry::to_stored)).map_err(
                    |source| KvError::Encode {
                        what: "session record",
                        source,
                    },
                )?;
            let options = PutOptions::new().ttl(Duration::from_secs(ttl)).mode(mode);
            match ns.put_with(&key, bytes.clone(), options).await? {
                PutOutcome::Written(version) => {
                    Counters::bump(&config.counters.writes);
                    tracing::debug!(
                        target: "kv_middleware::session",
                        created = self.stored.is_none(),
                        attempts,
                        "session: saved"
                    );
                    self.stored = Some(Stored {
                        key,
                        version,
                        expires_at,
                    });
                    self.data.commit(RawObject::new(bytes, data_range));
                    self.read_at = Some(now);
                    self.expiry_changed = false;
                    self.cookie = CookieAction::Set;
                    if let Some((_, retired)) = self.retired.take() {
                        ns.delete(&retired.key).await?;
                        Counters::bump(&config.counters.deletes);
                    }
                    return Ok(());
                }
                PutOutcome::ConditionFailed if self.stored.is_none() => {
                    // An ID collision (2^-256): draw another.
                    self.id = Some(SessionId::generate()?);
                }
                PutOutcome::ConditionFailed => {
                    Counters::bump(&config.counters.conflicts);
                    match fetch(config, &key).await? {
                        Some(loaded) => {
                            // Re-apply this request's changes on the newer record.
                            self.data.rebase(loaded.data);
                            if !self.expiry_changed {
                                self.expiry = loaded.expiry.map(Expiry::from);
                            }
                            self.stored = Some(Stored {
                                key,
                                version: loaded.version,
                                expires_at: loaded.expires_at,
                            });
                        }
                        None => {
                            tracing::warn!(
                                "the session ended during this request (destroyed or expired \
                                 concurrently); its changes are dropped"
                            );
                            self.reset_to_new();
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    /// Deletes the stored record (and a retired one) and turns this into a new session.
    async fn delete_records(&mut self, config: &Config) -> Result<(), SessionError> {
        let keys = self
            .stored
            .iter()
            .chain(self.retired.as_ref().map(|(_, stored)| stored))
            .map(|stored| stored.key.clone())
            .collect::<Vec<_>>();
        for key in keys {
            config.namespace.delete(&key).await?;
            Counters::bump(&config.counters.deletes);
            tracing::debug!(target: "kv_middleware::session", "session: deleted");
        }
        self.reset_to_new();
        Ok(())
    }

    /// The `Set-Cookie` header this request's session needs, if any.
    fn cookie_header(
        &self,
        config: &Config,
        now: u64,
    ) -> Result<Option<HeaderValue>, SessionError> {
        match self.cookie {
            CookieAction::Keep => Ok(None),
            CookieAction::Remove => config.cookie.removal_cookie().map(Some),
            CookieAction::Set => {
                let (Some(id), Some(stored)) = (&self.id, &self.stored) else {
                    return Ok(None);
                };
                let max_age = self
                    .effective_expiry(config)
                    .persistent_cookie()
                    .then(|| stored.expires_at.saturating_sub(now));
                config.cookie.set_cookie(id, max_age).map(Some)
            }
        }
    }
}

/// A record read from the store.
struct Loaded {
    read_at: u64,
    data: RawObject,
    expires_at: u64,
    expiry: Option<StoredExpiry>,
    version: Version,
}

/// Reads the record under `key`; an absent, unreadable or ended record is no session.
async fn fetch(config: &Config, key: &str) -> Result<Option<Loaded>, KvError> {
    Counters::bump(&config.counters.loads);
    let Some(entry) = config.namespace.get_entry(key).await? else {
        return Ok(None);
    };
    let head = match RecordHead::parse(&entry.value) {
        Ok(head) => head,
        Err(error) => {
            tracing::warn!(%error, "ignoring a stored session that is not a session record");
            return Ok(None);
        }
    };
    let now = config.now_secs();
    if head.expires_at <= now {
        return Ok(None);
    }
    Ok(Some(Loaded {
        read_at: now,
        data: head.data(&entry.value),
        expires_at: head.expires_at,
        expiry: head.expiry,
        version: entry.version,
    }))
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("namespace", &self.inner.config.namespace.id())
            .field("cookie", &self.inner.config.cookie.wire_name())
            .field("touched", &self.inner.touched.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Session {
    fn with_incoming(config: Arc<Config>, incoming: Incoming) -> Self {
        Session {
            inner: Arc::new(Inner {
                config,
                incoming,
                touched: AtomicBool::new(false),
                state: tokio::sync::Mutex::new(State::new(Phase::Unloaded)),
            }),
        }
    }

    /// The session of a request that carried these raw cookie values.
    pub(crate) fn from_cookies(config: Arc<Config>, cookies: RawCookies) -> Self {
        Self::with_incoming(config, Incoming::Cookies(cookies))
    }

    /// The session stored under `id` (loaded on first use).
    pub(crate) fn for_id(config: Arc<Config>, id: SessionId) -> Self {
        Self::with_incoming(config, Incoming::Id(id))
    }

    /// A new, empty session.
    pub(crate) fn new_empty(config: Arc<Config>) -> Self {
        Self::with_incoming(config, Incoming::None)
    }

    /// The ID the request presented (verified and well formed), if any: `None` also when its
    /// cookies name several sessions (logged and counted here).
    fn incoming_id(&self) -> Option<SessionId> {
        let values = match &self.inner.incoming {
            Incoming::Cookies(values) => values,
            Incoming::Id(id) => return Some(id.clone()),
            Incoming::None => return None,
        };
        match self.inner.config.cookie.resolve(values) {
            Presented::One(id) => Some(id),
            Presented::None => {
                if !values.is_empty() {
                    tracing::debug!("ignoring a malformed or badly signed session cookie");
                }
                None
            }
            Presented::Conflicting => {
                // Which one is the user's own cannot be told: taking either could sign the
                // user in as whoever planted the other (cookie tossing). No value is logged.
                Counters::bump(&self.inner.config.counters.conflicting_cookies);
                tracing::debug!(
                    "ignoring the session cookies: the request names more than one session \
                     (a cookie planted by another site?)"
                );
                None
            }
        }
    }

    fn has_incoming_cookie(&self) -> bool {
        matches!(&self.inner.incoming, Incoming::Cookies(values) if !values.is_empty())
    }

    /// Locks the state, loading it on first use.
    async fn state(&self) -> Result<tokio::sync::MutexGuard<'_, State>, SessionError> {
        self.inner.touched.store(true, Ordering::Relaxed);
        let mut state = self.inner.state.lock().await;
        match state.phase {
            Phase::Ready => Ok(state),
            Phase::Failed => Err(SessionError::LoadFailed),
            Phase::Unloaded => {
                state.has_cookie = self.has_incoming_cookie();
                let id = self.incoming_id();
                state.load(&self.inner.config, id).await?;
                Ok(state)
            }
        }
    }

    /// The value under `key`, decoded from JSON as `T`; `None` when absent.
    ///
    /// A stored value that does not decode as `T` is [`SessionError::Decode`].
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let state = self.state().await?;
        match state.data.get(key) {
            None => Ok(None),
            Some(found) => found
                .decode()
                .map(Some)
                .map_err(|source| SessionError::Decode {
                    key: key.to_owned(),
                    source,
                }),
        }
    }

    /// The raw JSON value under `key`.
    pub async fn get_value(&self, key: &str) -> Result<Option<Value>, SessionError> {
        let state = self.state().await?;
        Ok(state.data.get(key).map(Found::to_value))
    }

    /// Stores `value` (as JSON) under `key`. A value equal to the current one is not a change.
    pub async fn insert(&self, key: &str, value: impl Serialize) -> Result<(), SessionError> {
        let value = serde_json::to_value(value).map_err(|source| SessionError::Encode {
            key: key.to_owned(),
            source,
        })?;
        let mut state = self.state().await?;
        state.data.insert(key, value);
        Ok(())
    }

    /// Stores a raw JSON value under `key`; returns the previous value.
    pub async fn insert_value(
        &self,
        key: &str,
        value: Value,
    ) -> Result<Option<Value>, SessionError> {
        let mut state = self.state().await?;
        let previous = state.data.get(key).map(Found::to_value);
        state.data.insert(key, value);
        Ok(previous)
    }

    /// Removes `key`, returning its value decoded as `T`.
    ///
    /// The key is removed even when its value does not decode as `T` (then the result is
    /// [`SessionError::Decode`]).
    pub async fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        match self.remove_value(key).await? {
            None => Ok(None),
            Some(value) => T::deserialize(value)
                .map(Some)
                .map_err(|source| SessionError::Decode {
                    key: key.to_owned(),
                    source,
                }),
        }
    }

    /// Removes `key`, returning its raw JSON value.
    pub async fn remove_value(&self, key: &str) -> Result<Option<Value>, SessionError> {
        let mut state = self.state().await?;
        let previous = state.data.get(key).map(Found::to_value);
        state.data.remove(key);
        Ok(previous)
    }

    /// Removes every key. A session left empty is deleted from the store when saved, and its
    /// cookie removed; the ID stays the same until then.
    pub async fn clear(&self) -> Result<(), SessionError> {
        let mut state = self.state().await?;
        state.data.clear();
        Ok(())
    }

    /// Whether the session holds no data.
    pub async fn is_empty(&self) -> Result<bool, SessionError> {
        let state = self.state().await?;
        Ok(state.data.is_empty())
    }

    /// The session's ID.
    ///
    /// A new session gets its ID at once (it is saved under it if it ever holds data), so the
    /// ID is known before the first save. An unknown or expired cookie's ID is never reused.
    pub async fn id(&self) -> Result<SessionId, SessionError> {
        let mut state = self.state().await?;
        state.current_id()
    }

    /// Gives the session a new ID, keeping its data; the record under the old ID is deleted
    /// when the session is saved (at the end of the request, or by [`save`](Self::save)).
    ///
    /// Call it when the privilege level changes (login) to defeat session fixation. Returns the
    /// new ID.
    pub async fn cycle_id(&self) -> Result<SessionId, SessionError> {
        let mut state = self.state().await?;
        if let Some(stored) = state.stored.take() {
            if state.retired.is_none() {
                if let Some(old_id) = state.id.take() {
                    state.retired = Some((old_id, stored));
                }
            }
        }
        let id = SessionId::generate()?;
        state.id = Some(id.clone());
        Ok(id)
    }

    /// Deletes the session from the store now and empties this handle; the response removes
    /// the cookie (keeping its Path, Domain, Secure, HttpOnly and SameSite). For logout.
    ///
    /// Costs no read: a session not yet loaded is deleted by its ID. Writing to the handle
    /// afterwards starts a new session with a new ID.
    pub async fn destroy(&self) -> Result<(), SessionError> {
        self.inner.touched.store(true, Ordering::Relaxed);
        let config = &self.inner.config;
        let mut state = self.inner.state.lock().await;
        match state.phase {
            Phase::Failed => return Err(SessionError::LoadFailed),
            Phase::Ready => {}
            Phase::Unloaded => {
                state.has_cookie = self.has_incoming_cookie();
                if let Some(id) = self.incoming_id() {
                    let key = id.store_key();
                    state.id = Some(id);
                    state.stored = Some(Stored {
                        key,
                        version: Version::from_raw(0),
                        expires_at: 0,
                    });
                }
                state.phase = Phase::Ready;
            }
        }
        // Cookies naming several sessions load none of them; logging out still ends them all,
        // so that the user's own session does not outlive the logout in the store. (The other
        // is the planter's: ending it harms nobody else.)
        if let Incoming::Cookies(values) = &self.inner.incoming {
            if config.cookie.resolve(values) == Presented::Conflicting {
                for id in config.cookie.ids(values) {
                    config.namespace.delete(&id.store_key()).await?;
                    Counters::bump(&config.counters.deletes);
                }
            }
        }
        state.delete_records(config).await
    }

    /// tower-sessions' name for [`destroy`](Self::destroy), with the same meaning: the data is
    /// cleared, the record is deleted from the store now, and a later write starts a new
    /// session under a new ID. (Here the response also removes the cookie.)
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use kv_backends::memory::MemoryBackend;
    /// # use kv_middleware::session::SessionManager;
    /// # let store = kv_core::Store::new(MemoryBackend::new());
    /// # let manager = SessionManager::new(store.namespace("SESSIONS").await?);
    /// let session = manager.create();
    /// session.insert("user", "ada").await?;
    /// session.save().await?;
    /// let id = session.id().await?;
    ///
    /// session.flush().await?;
    /// assert!(session.is_empty().await?);
    /// assert!(manager.load(&id).await?.is_none(), "deleted from the store");
    /// session.insert("user", "bob").await?;
    /// assert_ne!(session.id().await?, id, "a new session, a new ID");
    /// # Ok(()) }
    /// ```
    pub async fn flush(&self) -> Result<(), SessionError> {
        self.destroy().await
    }

    /// Saves the session now, even if unchanged (which refreshes a rolling expiry); a session
    /// with no data is deleted instead, or not stored at all if it is new.
    ///
    /// Inside a request the response carries the cookie that goes with it, whatever the status.
    /// The layer saves changes by itself, so calling this is only needed before the response is
    /// ready (for example before a long streaming body) or for sessions made by a
    /// [`SessionManager`](super::SessionManager).
    pub async fn save(&self) -> Result<(), SessionError> {
        let mut state = self.state().await?;
        let result = state.persist(&self.inner.config, true).await;
        if result.is_err() {
            Counters::bump(&self.inner.config.counters.save_errors);
        }
        result
    }

    /// Discards this request's unsaved changes (data, expiry, a pending ID change) and reads
    /// the session again from the store.
    pub async fn reload(&self) -> Result<(), SessionError> {
        self.inner.touched.store(true, Ordering::Relaxed);
        let config = &self.inner.config;
        let mut state = self.inner.state.lock().await;
        let target = match state.phase {
            Phase::Unloaded | Phase::Failed => {
                state.has_cookie = self.has_incoming_cookie();
                self.incoming_id()
            }
            Phase::Ready => match state.retired.take() {
                Some((old_id, _)) => Some(old_id),
                None => state.stored.is_some().then(|| state.id.clone()).flatten(),
            },
        };
        let (has_cookie, cookie) = (state.has_cookie, state.cookie);
        *state = State::new(Phase::Unloaded);
        state.has_cookie = has_cookie;
        state.cookie = cookie;
        state.load(config, target).await
    }

    /// The session's expiry: its own if one was set, else the layer's.
    pub async fn expiry(&self) -> Result<Expiry, SessionError> {
        let state = self.state().await?;
        Ok(state.effective_expiry(&self.inner.config))
    }

    /// Sets this session's expiry (kept with the session across requests); takes effect at
    /// the next save, which this causes.
    pub async fn set_expiry(&self, expiry: Expiry) -> Result<(), SessionError> {
        let mut state = self.state().await?;
        if state.expiry != Some(expiry) {
            state.expiry = Some(expiry);
            state.expiry_changed = true;
        }
        Ok(())
    }

    /// When the stored session ends, as last saved; `None` for a session not in the store.
    pub async fn expires_at(&self) -> Result<Option<SystemTime>, SessionError> {
        let state = self.state().await?;
        Ok(state
            .stored
            .as_ref()
            .map(|stored| UNIX_EPOCH + Duration::from_secs(stored.expires_at.min(253_402_300_799))))
    }

    /// Whether the session has unsaved changes (data, expiry or ID). Does not load the session.
    pub async fn is_modified(&self) -> bool {
        self.inner.state.lock().await.is_modified()
    }

    /// Whether any method was called on this session (or a clone) yet.
    pub(crate) fn is_touched(&self) -> bool {
        self.inner.touched.load(Ordering::Relaxed)
    }

    /// The layer's last step when it needs no store access (the common case: nothing to
    /// save); `None` when it does, or when a clone still holds the state: then [`finish`].
    ///
    /// [`finish`]: Self::finish
    pub(crate) fn finish_now(&self, status: StatusCode) -> Option<Result<Option<HeaderValue>, ()>> {
        let state = self.inner.state.try_lock().ok()?;
        let config = &self.inner.config;
        match state.phase {
            Phase::Unloaded => return Some(Ok(None)),
            Phase::Failed => return Some(Err(())),
            Phase::Ready => {}
        }
        let now = state.read_at.unwrap_or_else(|| config.now_secs());
        if !status.is_server_error() && state.needs_save(config, now) {
            return None;
        }
        Some(state.cookie_header(config, now).map_err(|error| {
            tracing::error!(%error, "could not write the session cookie; answering 500");
        }))
    }

    /// The layer's last step: saves what needs saving (unless the response is a server error)
    /// and returns the `Set-Cookie` header to add; `Err` means answer 500 instead.
    pub(crate) async fn finish(&self, status: StatusCode) -> Result<Option<HeaderValue>, ()> {
        let config = &self.inner.config;
        let mut state = self.inner.state.lock().await;
        match state.phase {
            Phase::Unloaded => return Ok(None),
            Phase::Failed => return Err(()),
            Phase::Ready => {}
        }
        if !status.is_server_error() {
            if let Err(error) = state.persist(config, false).await {
                Counters::bump(&config.counters.save_errors);
                tracing::error!(%error, "could not save the session; answering 500");
                return Err(());
            }
        }
        let now = state.read_at.unwrap_or_else(|| config.now_secs());
        state.cookie_header(config, now).map_err(|error| {
            tracing::error!(%error, "could not write the session cookie; answering 500");
        })
    }

    /// The `Set-Cookie` header for this session as it stands (for the manager).
    pub(crate) async fn cookie_header(&self) -> Result<Option<HeaderValue>, SessionError> {
        let state = self.inner.state.lock().await;
        let config = &self.inner.config;
        let (Some(id), Some(stored)) = (&state.id, &state.stored) else {
            return Ok(None);
        };
        let max_age = state
            .effective_expiry(config)
            .persistent_cookie()
            .then(|| stored.expires_at.saturating_sub(config.now_secs()));
        config.cookie.set_cookie(id, max_age).map(Some)
    }

    /// Loads now; `true` when the session exists in the store (for the manager).
    pub(crate) async fn load_now(&self) -> Result<bool, SessionError> {
        let state = self.state().await?;
        Ok(state.stored.is_some())
    }
}
