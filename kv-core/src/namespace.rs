//! The typed handles users hold: [`Store`] over a backend and [`Namespace`] over one keyspace.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, Stream};
use futures::TryStreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use crate::clock::SharedClock;
use crate::error::{KvError, Result};
use crate::limits::Limits;
use crate::span::CallSpan;
use crate::store::{Backend, NamespaceStore};
use crate::types::{
    BulkPut, Capabilities, DeleteOutcome, Entry, KeyInfo, ListOptions, ListPage, NamespaceInfo,
    NewEntry, PutOptions, PutOutcome, Version, WriteMode,
};

/// Longest namespace name, in bytes.
pub const MAX_NAMESPACE_NAME_BYTES: usize = 256;

/// Checks a namespace name: 1 to 256 bytes, no control characters.
pub fn check_namespace_name(name: &str) -> Result<()> {
    let invalid = |reason| KvError::InvalidNamespace {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if name.len() > MAX_NAMESPACE_NAME_BYTES {
        return Err(invalid("longer than 256 bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(())
}

/// A handle to a backend: opens namespaces, lists and deletes them. Cheap to clone.
///
/// ```
/// # async fn example(store: kv_core::Store) -> kv_core::Result<()> {
/// let sessions = store.namespace("SESSIONS").await?;
/// sessions.put_text("greeting", "hello").await?;
/// assert_eq!(sessions.get_text("greeting").await?.as_deref(), Some("hello"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    limits: Arc<Limits>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Store {
    /// A handle over `backend` with the default (Workers KV) limits.
    pub fn new(backend: impl Backend) -> Self {
        Self::from_arc(Arc::new(backend))
    }

    /// A handle over a shared backend with the default limits.
    pub fn from_arc(backend: Arc<dyn Backend>) -> Self {
        Store {
            backend,
            limits: Arc::new(Limits::default()),
        }
    }

    /// The same store checked against other limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = Arc::new(limits);
        self
    }

    /// The backend's short name (`memory`, `file`, ...).
    pub fn kind(&self) -> &'static str {
        self.backend.kind()
    }

    /// The limits every request is checked against.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// What the backend does faithfully (for example atomic compare-and-swap).
    pub fn capabilities(&self) -> Capabilities {
        self.backend.capabilities()
    }

    /// The backend's clock.
    pub fn clock(&self) -> SharedClock {
        self.backend.clock()
    }

    /// Opens the namespace with this id or title, creating it (with this title) when neither
    /// exists. This is what applications call; the REST server addresses namespaces strictly by
    /// id through [`Store::namespace_by_id`].
    pub async fn namespace(&self, title_or_id: &str) -> Result<Namespace> {
        check_namespace_name(title_or_id)?;
        // Two processes may race to create the same title: the loser finds the winner's.
        for _ in 0..3 {
            if let Some(info) = self.find_namespace(title_or_id).await? {
                return self.namespace_by_id(&info.id).await;
            }
            match self.backend.create_namespace(title_or_id).await {
                Ok(info) => return self.namespace_by_id(&info.id).await,
                Err(KvError::NamespaceExists { .. }) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(KvError::NamespaceNotFound {
            name: title_or_id.to_owned(),
        })
    }

    /// Opens the namespace with exactly this id; [`KvError::NamespaceNotFound`] when there is
    /// none.
    pub async fn namespace_by_id(&self, id: &str) -> Result<Namespace> {
        let inner = self.backend.open_namespace(id).await?;
        Ok(Namespace {
            id: Arc::from(id),
            inner,
            limits: self.limits.clone(),
            clock: self.backend.clock(),
        })
    }

    /// Creates a namespace titled `title`; [`KvError::NamespaceExists`] when the title is taken.
    pub async fn create_namespace(&self, title: &str) -> Result<NamespaceInfo> {
        check_namespace_name(title)?;
        self.backend.create_namespace(title).await
    }

    /// Every namespace, sorted by title.
    pub async fn list_namespaces(&self) -> Result<Vec<NamespaceInfo>> {
        self.backend.list_namespaces().await
    }

    /// The namespace whose id, or else whose title, is `title_or_id`.
    pub async fn find_namespace(&self, title_or_id: &str) -> Result<Option<NamespaceInfo>> {
        let all = self.backend.list_namespaces().await?;
        let by_id = all.iter().position(|ns| ns.id == title_or_id);
        let found = by_id.or_else(|| all.iter().position(|ns| ns.title == title_or_id));
        Ok(found.map(|i| all[i].clone()))
    }

    /// Gives the namespace with this id or title a new title.
    pub async fn rename_namespace(&self, title_or_id: &str, new_title: &str) -> Result<()> {
        check_namespace_name(new_title)?;
        let info = self.require(title_or_id).await?;
        self.backend.rename_namespace(&info.id, new_title).await
    }

    /// Deletes the namespace with this id or title and its entries; `false` when there is none.
    pub async fn delete_namespace(&self, title_or_id: &str) -> Result<bool> {
        match self.find_namespace(title_or_id).await? {
            Some(info) => self.backend.delete_namespace(&info.id).await,
            None => Ok(false),
        }
    }

    async fn require(&self, title_or_id: &str) -> Result<NamespaceInfo> {
        self.find_namespace(title_or_id)
            .await?
            .ok_or_else(|| KvError::NamespaceNotFound {
                name: title_or_id.to_owned(),
            })
    }
}

/// A new namespace id: 32 lowercase hex digits (128 random bits), the shape of Cloudflare's.
pub fn new_namespace_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A cheap-to-clone handle to one namespace, with typed conveniences over [`NamespaceStore`].
///
/// Every request is checked against the [`Limits`] before it reaches the backend, so a limit
/// violation is a typed [`KvError::Limit`] and nothing is stored.
///
/// ```
/// # async fn example(store: kv_core::Store) -> kv_core::Result<()> {
/// use kv_core::{PutOptions, PutOutcome};
/// use std::time::Duration;
///
/// let cache = store.namespace("CACHE").await?;
/// let options = PutOptions::new()
///     .ttl(Duration::from_secs(300))
///     .metadata(serde_json::json!({"source": "db"}));
/// let outcome = cache.put_with("user:1", "Ada", options).await?;
/// assert!(matches!(outcome, PutOutcome::Written(_)));
///
/// let entry = cache.get_entry("user:1").await?.expect("just written");
/// assert_eq!(&entry.value[..], b"Ada");
/// assert_eq!(entry.metadata, Some(serde_json::json!({"source": "db"})));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Namespace {
    id: Arc<str>,
    inner: Arc<dyn NamespaceStore>,
    limits: Arc<Limits>,
    clock: SharedClock,
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Namespace")
            .field("id", &self.id)
            .field("store", &self.inner)
            .finish()
    }
}

impl Namespace {
    /// A handle over a namespace store with explicit limits and clock.
    pub fn new(
        id: impl Into<Arc<str>>,
        inner: Arc<dyn NamespaceStore>,
        limits: Limits,
        clock: SharedClock,
    ) -> Self {
        Namespace {
            id: id.into(),
            inner,
            limits: Arc::new(limits),
            clock,
        }
    }

    /// The namespace's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The limits requests are checked against.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The clock deciding expiry.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// What the backend does faithfully (for example atomic compare-and-swap).
    pub fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    /// The underlying store, for decorators that wrap it.
    pub fn raw(&self) -> &Arc<dyn NamespaceStore> {
        &self.inner
    }

    /// The same namespace with every store call bounded by `timeout`: a call that takes longer
    /// fails with [`KvError::Unavailable`](crate::KvError::Unavailable) (its outcome unknown,
    /// as with a lost connection). Layers use it so that a store that stops answering cannot
    /// hang requests. `None` gives the namespace unchanged. Needs a tokio runtime with its
    /// timer.
    ///
    /// ```
    /// # async fn example(namespace: kv_core::Namespace) {
    /// use std::time::Duration;
    ///
    /// let bounded = namespace.with_timeout(Duration::from_secs(2));
    /// # let _ = bounded;
    /// # }
    /// ```
    pub fn with_timeout(&self, timeout: impl Into<Option<std::time::Duration>>) -> Namespace {
        let inner = match timeout.into() {
            Some(timeout) => Arc::new(crate::timeout::TimeoutStore::new(
                self.inner.clone(),
                timeout,
            )) as Arc<dyn NamespaceStore>,
            // No bound: the same store, for settings that make the timeout optional.
            None => self.inner.clone(),
        };
        Namespace {
            id: self.id.clone(),
            inner,
            limits: self.limits.clone(),
            clock: self.clock.clone(),
        }
    }

    // ---- reads ----

    /// The value's bytes, or `None` when the key is absent or expired.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(self.get_entry(key).await?.map(|entry| entry.value))
    }

    /// The value as UTF-8 text.
    pub async fn get_text(&self, key: &str) -> Result<Option<String>> {
        match self.get(key).await? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes.to_vec())
                .map(Some)
                .map_err(|e| decode_error(key, "UTF-8", e)),
        }
    }

    /// The value decoded from JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| decode_error(key, "JSON", e)),
        }
    }

    /// The whole entry: value, metadata, expiration and version.
    pub async fn get_entry(&self, key: &str) -> Result<Option<Entry>> {
        self.limits.check_key(key)?;
        self.store_call(
            "get",
            || self.inner.get_now(key).ok_or(()),
            |()| self.inner.get(key),
            |found| if found.is_some() { "hit" } else { "miss" },
        )
        .await
    }

    /// One store call in its `tracing` span (see the table in the crate docs): the store's
    /// synchronous fast path first (`now`), so a store that answers at once does so without a
    /// boxed future or a task hop, and the async call (`later`, given back what `now` declined
    /// with) only when it declines. `outcome` names a successful result in the span.
    #[inline]
    async fn store_call<T, Declined, Later>(
        &self,
        operation: &'static str,
        now: impl FnOnce() -> std::result::Result<Result<T>, Declined>,
        later: impl FnOnce(Declined) -> Later,
        outcome: impl FnOnce(&T) -> &'static str,
    ) -> Result<T>
    where
        Later: Future<Output = Result<T>>,
    {
        let call = CallSpan::start(self.inner.kind(), &self.id, operation);
        let fast = {
            let _entered = call.span.enter();
            now()
        };
        let result = match fast {
            Ok(result) => result,
            Err(declined) => later(declined).instrument(call.span.clone()).await,
        };
        call.finish(&result, outcome);
        result
    }

    /// The value decoded from JSON together with the entry's metadata and version.
    pub async fn get_json_entry<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<(T, Entry)>> {
        match self.get_entry(key).await? {
            None => Ok(None),
            Some(entry) => {
                let value = serde_json::from_slice(&entry.value)
                    .map_err(|e| decode_error(key, "JSON", e))?;
                Ok(Some((value, entry)))
            }
        }
    }

    /// Reads up to 100 keys at once; the result keeps the order of `keys`, `None` for a missing
    /// key.
    ///
    /// A key asked for more than once is read from the store once, and its entry repeated in
    /// the result (the value's bytes are shared, not copied): a request naming one large value
    /// many times costs one read and one copy of it, whatever the backend.
    pub async fn get_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Option<Entry>>> {
        self.limits.check_bulk_get(keys.len())?;
        // With at most 100 keys a linear search is cheaper than hashing them.
        let mut distinct: Vec<String> = Vec::with_capacity(keys.len());
        let mut positions = Vec::with_capacity(keys.len());
        for key in keys {
            let key = key.as_ref();
            self.limits.check_key(key)?;
            let position = match distinct.iter().position(|seen| seen == key) {
                Some(position) => position,
                None => {
                    distinct.push(key.to_owned());
                    distinct.len() - 1
                }
            };
            positions.push(position);
        }
        let entries = self
            .store_call(
                "get_many",
                no_fast_path,
                |()| self.inner.get_many(&distinct),
                |_| "ok",
            )
            .await?;
        if entries.len() != distinct.len() {
            // Checked rather than trusted: indexing below must not panic on a faulty backend.
            return Err(KvError::backend(
                self.inner.kind(),
                format!(
                    "bulk get of {} keys returned {} entries",
                    distinct.len(),
                    entries.len()
                ),
            ));
        }
        if distinct.len() == keys.len() {
            return Ok(entries);
        }
        Ok(positions
            .into_iter()
            .map(|position| entries[position].clone())
            .collect())
    }

    // ---- writes ----

    /// Writes bytes unconditionally, with no expiry and no metadata; returns the new version.
    pub async fn put(&self, key: &str, value: impl Into<Bytes>) -> Result<Version> {
        let outcome = self.put_with(key, value, PutOptions::default()).await?;
        Ok(outcome
            .version()
            .expect("an unconditional write always happens"))
    }

    /// Writes text unconditionally.
    pub async fn put_text(&self, key: &str, value: &str) -> Result<Version> {
        self.put(key, Bytes::copy_from_slice(value.as_bytes()))
            .await
    }

    /// Writes a value as JSON unconditionally.
    pub async fn put_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<Version> {
        let bytes = encode_json("value", value)?;
        self.put(key, bytes).await
    }

    /// Writes a value as JSON with options (expiry, metadata, write mode).
    pub async fn put_json_with<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        options: PutOptions,
    ) -> Result<PutOutcome> {
        let bytes = encode_json("value", value)?;
        self.put_with(key, bytes, options).await
    }

    /// Writes bytes with options; a write mode whose condition fails gives
    /// [`PutOutcome::ConditionFailed`].
    pub async fn put_with(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        options: PutOptions,
    ) -> Result<PutOutcome> {
        let mode = options.mode;
        // The options are moved into the entry (the metadata is not copied).
        let entry = self.new_entry(key, value.into(), options)?;
        self.check_mode(mode, "conditional put")?;
        self.put_checked(key, entry, mode).await
    }

    /// Writes an entry the caller built (with an absolute expiration) under `mode`: for hot
    /// paths that keep their own value bytes and expiry arithmetic, such as a rate limiter, and
    /// still want the store's fast path and the `kv.store` span rather than calling
    /// [`raw`](Self::raw). Checked as [`put_with`](Self::put_with) checks: key, value and
    /// metadata limits, an expiration at least the minimum TTL ahead, and a conditional mode
    /// only on a store with atomic writes (the metadata's size is measured only when there is
    /// metadata).
    pub async fn put_entry(
        &self,
        key: &str,
        entry: NewEntry,
        mode: WriteMode,
    ) -> Result<PutOutcome> {
        self.check_entry(key, &entry, mode)?;
        self.put_checked(key, entry, mode).await
    }

    /// [`put_entry`](Self::put_entry) for a store that answers at once (the memory backend),
    /// without a future: `Ok` with the answer (or the error of a check), or `Err` giving the
    /// entry back when the store would have to wait (nothing was written; await
    /// [`put_entry`](Self::put_entry) then). For a hot path that decides synchronously, such
    /// as a rate limiter admitting a request inside `Service::call`. Checked as `put_entry`
    /// checks; an answered write has its `kv.store` span like every other call (created when
    /// the store answered, so a declined attempt leaves no span behind).
    pub fn put_entry_now(
        &self,
        key: &str,
        entry: NewEntry,
        mode: WriteMode,
    ) -> std::result::Result<Result<PutOutcome>, NewEntry> {
        if let Err(error) = self.check_entry(key, &entry, mode) {
            return Ok(Err(error));
        }
        let start = CallSpan::clock_if_listened();
        let result = self.inner.put_now(key, entry, mode)?;
        CallSpan::started_at(self.inner.kind(), &self.id, "put", start)
            .finish(&result, put_outcome);
        Ok(result)
    }

    /// The checks of [`put_entry`](Self::put_entry): key, value and metadata limits, an
    /// expiration the limits allow, and a conditional mode only on a store with atomic writes.
    fn check_entry(&self, key: &str, entry: &NewEntry, mode: WriteMode) -> Result<()> {
        self.limits.check_key(key)?;
        self.limits.check_value(key, entry.value.len())?;
        self.check_metadata(key, entry.metadata.as_ref())?;
        if let Some(expiration) = entry.expiration {
            self.limits
                .resolve_expiry(Some(crate::types::Expiry::At(expiration)), self.clock.now())?;
        }
        self.check_mode(mode, "conditional put")
    }

    /// The store call of a put whose entry and mode are checked.
    async fn put_checked(&self, key: &str, entry: NewEntry, mode: WriteMode) -> Result<PutOutcome> {
        self.store_call(
            "put",
            || self.inner.put_now(key, entry, mode),
            |entry| self.inner.put(key, entry, mode),
            put_outcome,
        )
        .await
    }

    /// Deletes a key unconditionally; deleting an absent key is a no-op.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let _ = self.delete_with(key, WriteMode::Overwrite).await?;
        Ok(())
    }

    /// Deletes a key under a write mode (for example only if its version still matches).
    pub async fn delete_with(&self, key: &str, mode: WriteMode) -> Result<DeleteOutcome> {
        self.limits.check_key(key)?;
        self.check_mode(mode, "conditional delete")?;
        self.store_call(
            "delete",
            || self.inner.delete_now(key, mode).ok_or(()),
            |()| self.inner.delete(key, mode),
            |outcome| match outcome {
                DeleteOutcome::Deleted { existed: true } => "deleted",
                DeleteOutcome::Deleted { existed: false } => "absent",
                DeleteOutcome::ConditionFailed => "condition_failed",
            },
        )
        .await
    }

    /// Writes many entries unconditionally (up to the bulk write limit). Every item is checked
    /// before any is written.
    pub async fn put_many(&self, items: Vec<BulkPut>) -> Result<()> {
        self.limits.check_bulk_write(items.len())?;
        let mut checked = Vec::with_capacity(items.len());
        for item in items {
            if item.options.mode.is_conditional() {
                return Err(KvError::Unsupported {
                    backend: "bulk",
                    operation: "conditional writes in a bulk put",
                });
            }
            let entry = self.new_entry(&item.key, item.value, item.options)?;
            checked.push((item.key, entry));
        }
        if checked.is_empty() {
            return Ok(());
        }
        self.store_call(
            "put_many",
            no_fast_path,
            |()| self.inner.put_many(checked),
            |_| "ok",
        )
        .await
    }

    /// Deletes many keys unconditionally (up to the bulk write limit).
    pub async fn delete_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<()> {
        self.limits.check_bulk_write(keys.len())?;
        let keys = keys
            .iter()
            .map(|key| {
                let key = key.as_ref();
                self.limits.check_key(key)?;
                Ok(key.to_owned())
            })
            .collect::<Result<Vec<_>>>()?;
        if keys.is_empty() {
            return Ok(());
        }
        self.store_call(
            "delete_many",
            no_fast_path,
            |()| self.inner.delete_many(&keys),
            |_| "ok",
        )
        .await
    }

    // ---- listing ----

    /// One page of keys in byte order.
    pub async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        self.limits.check_list_limit(options.limit)?;
        self.store_call(
            "list",
            || self.inner.list_now(options).ok_or(()),
            |()| self.inner.list(options),
            |_| "ok",
        )
        .await
    }

    /// Every key with `prefix`, as a stream that fetches pages of 1000 on demand.
    pub fn list_all(&self, prefix: &str) -> impl Stream<Item = Result<KeyInfo>> + Send + 'static {
        let namespace = self.clone();
        let first = ListOptions::new()
            .prefix(prefix)
            .limit(self.limits.max_list_limit);
        stream::try_unfold(Some(first), move |next| {
            let namespace = namespace.clone();
            async move {
                let Some(options) = next else {
                    return Ok::<_, KvError>(None);
                };
                let page = namespace.list(&options).await?;
                let following = match page.cursor {
                    Some(cursor) if !page.list_complete => Some(ListOptions {
                        cursor: Some(cursor),
                        ..options
                    }),
                    _ => None,
                };
                Ok(Some((
                    stream::iter(page.keys.into_iter().map(Ok::<_, KvError>)),
                    following,
                )))
            }
        })
        .try_flatten()
    }

    fn new_entry(&self, key: &str, value: Bytes, options: PutOptions) -> Result<NewEntry> {
        self.limits.check_key(key)?;
        self.limits.check_value(key, value.len())?;
        self.check_metadata(key, options.metadata.as_ref())?;
        let expiration = self
            .limits
            .resolve_expiry(options.expiry, self.clock.now())?;
        Ok(NewEntry {
            value,
            metadata: options.metadata,
            expiration,
        })
    }

    /// Checks the metadata's size as JSON (measured only when there is metadata).
    fn check_metadata(&self, key: &str, metadata: Option<&serde_json::Value>) -> Result<()> {
        let Some(metadata) = metadata else {
            return Ok(());
        };
        let json_len = serde_json::to_vec(metadata)
            .map_err(|source| KvError::Encode {
                what: "metadata",
                source,
            })?
            .len();
        Ok(self.limits.check_metadata(key, json_len)?)
    }

    fn check_mode(&self, mode: WriteMode, operation: &'static str) -> Result<()> {
        if mode.is_conditional() && !self.inner.capabilities().atomic_conditional_writes {
            return Err(KvError::Unsupported {
                backend: self.inner.kind(),
                operation,
            });
        }
        Ok(())
    }
}

/// How a put's span names its successful outcome.
fn put_outcome(outcome: &PutOutcome) -> &'static str {
    match outcome {
        PutOutcome::Written(_) => "written",
        PutOutcome::ConditionFailed => "condition_failed",
    }
}

/// The `now` of a [`Namespace::store_call`] whose store operation has no synchronous form.
fn no_fast_path<T>() -> std::result::Result<Result<T>, ()> {
    Err(())
}

fn encode_json<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|source| KvError::Encode { what, source })
}

fn decode_error(
    key: &str,
    format: &'static str,
    error: impl std::error::Error + Send + Sync + 'static,
) -> KvError {
    KvError::Decode {
        key: key.to_owned(),
        format,
        source: Box::new(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::types::{DeleteOutcome, ListPage};
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A store without atomic compare-and-swap that counts the calls reaching it.
    #[derive(Debug, Default)]
    struct PlainStore {
        calls: AtomicUsize,
    }

    #[async_trait]
    impl NamespaceStore for PlainStore {
        fn kind(&self) -> &'static str {
            "plain"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::plain()
        }
        async fn get(&self, _: &str) -> Result<Option<Entry>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        }
        async fn put(&self, _: &str, _: NewEntry, _: WriteMode) -> Result<PutOutcome> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(PutOutcome::Written(Version::from_raw(1)))
        }
        async fn delete(&self, _: &str, _: WriteMode) -> Result<DeleteOutcome> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(DeleteOutcome::Deleted { existed: false })
        }
        async fn list(&self, _: &ListOptions) -> Result<ListPage> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(ListPage::default())
        }
    }

    fn namespace(store: Arc<PlainStore>) -> Namespace {
        let clock = ManualClock::at_unix_secs(1_000_000);
        Namespace::new("n", store, Limits::default(), clock.shared())
    }

    #[tokio::test]
    async fn conditional_writes_are_refused_without_atomic_cas() {
        let store = Arc::new(PlainStore::default());
        let ns = namespace(store.clone());
        let refused = ns
            .put_with("k", "v", PutOptions::new().only_if_absent())
            .await;
        assert!(matches!(
            refused,
            Err(KvError::Unsupported {
                backend: "plain",
                operation: "conditional put"
            })
        ));
        let refused = ns
            .delete_with("k", WriteMode::OnlyIfVersion(Version::from_raw(3)))
            .await;
        assert!(matches!(refused, Err(KvError::Unsupported { .. })));
        assert_eq!(
            store.calls.load(Ordering::SeqCst),
            0,
            "nothing reached the store"
        );
        // Unconditional writes still work.
        ns.put_text("k", "v").await.unwrap();
        ns.delete("k").await.unwrap();
        assert_eq!(store.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn put_entry_checks_like_put_with() {
        let store = Arc::new(PlainStore::default());
        let ns = namespace(store.clone());
        let now = 1_000_000;
        let entry = |value: &'static str, expiration| NewEntry {
            value: Bytes::from_static(value.as_bytes()),
            metadata: None,
            expiration,
        };
        let too_soon = ns
            .put_entry("k", entry("v", Some(now + 59)), WriteMode::Overwrite)
            .await;
        assert!(matches!(too_soon, Err(KvError::Limit(_))), "{too_soon:?}");
        let empty_key = ns
            .put_entry("", entry("v", None), WriteMode::Overwrite)
            .await;
        assert!(matches!(empty_key, Err(KvError::Limit(_))));
        let conditional = ns
            .put_entry("k", entry("v", None), WriteMode::OnlyIfAbsent)
            .await;
        assert!(matches!(conditional, Err(KvError::Unsupported { .. })));
        assert_eq!(
            store.calls.load(Ordering::SeqCst),
            0,
            "refused before the store"
        );
        let written = ns
            .put_entry("k", entry("v", Some(now + 60)), WriteMode::Overwrite)
            .await
            .unwrap();
        assert_eq!(written, PutOutcome::Written(Version::from_raw(1)));
        assert_eq!(store.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn limits_are_checked_before_the_store_is_called() {
        let store = Arc::new(PlainStore::default());
        let ns = namespace(store.clone());
        assert!(ns.put_text("", "v").await.is_err());
        assert!(ns.get(&"k".repeat(513)).await.is_err());
        assert!(ns.list(&ListOptions::new().limit(0)).await.is_err());
        let bad_metadata = PutOptions::new().metadata(serde_json::json!("x".repeat(2000)));
        assert!(ns.put_with("k", "v", bad_metadata).await.is_err());
        assert_eq!(store.calls.load(Ordering::SeqCst), 0);
    }

    /// A store that records the keys each `get_many` asks for and answers every key with a
    /// value equal to its name.
    #[derive(Debug, Default)]
    struct RecordingStore {
        asked: std::sync::Mutex<Vec<Vec<String>>>,
    }

    #[async_trait]
    impl NamespaceStore for RecordingStore {
        fn kind(&self) -> &'static str {
            "recording"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::plain()
        }
        async fn get(&self, key: &str) -> Result<Option<Entry>> {
            Ok(Some(Entry {
                value: Bytes::copy_from_slice(key.as_bytes()),
                metadata: None,
                expiration: None,
                version: Version::from_raw(1),
            }))
        }
        async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
            self.asked.lock().unwrap().push(keys.to_vec());
            let mut entries = Vec::new();
            for key in keys {
                entries.push(self.get(key).await?);
            }
            Ok(entries)
        }
        async fn put(&self, _: &str, _: NewEntry, _: WriteMode) -> Result<PutOutcome> {
            Ok(PutOutcome::Written(Version::from_raw(1)))
        }
        async fn delete(&self, _: &str, _: WriteMode) -> Result<DeleteOutcome> {
            Ok(DeleteOutcome::Deleted { existed: false })
        }
        async fn list(&self, _: &ListOptions) -> Result<ListPage> {
            Ok(ListPage::default())
        }
    }

    #[tokio::test]
    async fn bulk_get_reads_each_distinct_key_once() {
        let store = Arc::new(RecordingStore::default());
        let clock = ManualClock::at_unix_secs(1_000_000);
        let ns = Namespace::new("n", store.clone(), Limits::default(), clock.shared());
        let mut keys = vec!["big"; 100];
        keys[3] = "small";
        keys[50] = "small";
        let got = ns.get_many(&keys).await.unwrap();
        assert_eq!(
            *store.asked.lock().unwrap(),
            [vec!["big".to_owned(), "small".to_owned()]],
            "one store call naming each distinct key once, in first-seen order"
        );
        let values: Vec<&[u8]> = got.iter().map(|e| &e.as_ref().unwrap().value[..]).collect();
        let expected: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        assert_eq!(values, expected, "one entry per requested key, in order");
        // The repeated entries share the one value read.
        let first = got[0].as_ref().unwrap().value.as_ptr();
        assert!(got
            .iter()
            .enumerate()
            .filter(|(i, _)| keys[*i] == "big")
            .all(|(_, e)| e.as_ref().unwrap().value.as_ptr() == first));
    }

    #[test]
    fn namespace_names() {
        assert!(check_namespace_name("SESSIONS").is_ok());
        assert!(check_namespace_name("my cache/v2").is_ok());
        assert!(check_namespace_name("").is_err());
        assert!(check_namespace_name("a\nb").is_err());
        assert!(check_namespace_name(&"n".repeat(257)).is_err());
    }
}
