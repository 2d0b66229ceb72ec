//! [`FlagStore`]: the flags of one namespace, as a snapshot refreshed in the background, plus
//! the admin operations.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kv_core::{
    Entry, KvError, ListOptions, Namespace, PutOptions, PutOutcome, SharedClock, Version, WriteMode,
};

use super::compile::{compile_flag, compile_segment, decode, ItemKind, ValidationError, ValueKind};
use super::context::EvaluationContext;
use super::error::FlagsError;
use super::eval::Snapshot;
use super::eval::{EvaluationDetails, FlagType};
use super::handle::Flags;
use super::model::FlagDocument;
use super::model::{FlagDefinition, Segment};
use super::snapshot::{build, shared_from, FlagSnapshot};
use crate::shared::snapshot::{refresh_counter_names, RefreshStats, Refreshable, Refreshing};

/// Store keys of flags start with this: flag `new-ui` is the entry `flag:new-ui`.
pub const FLAG_PREFIX: &str = "flag:";
/// Store keys of segments start with this: segment `beta` is the entry `segment:beta`.
pub const SEGMENT_PREFIX: &str = "segment:";
/// The store key of a flagd document's shared part: `{"$evaluators": {...}, "metadata": {...}}`
/// (written by [`FlagStore::import_document`]).
pub const DOCUMENT_KEY: &str = "flagd:document";

/// How often the background task refreshes, by default.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// How old the last good snapshot may get before evaluations say `STALE`, by default.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(300);

/// How many times an update retries after losing a compare-and-swap race.
const MAX_UPDATE_ATTEMPTS: usize = 16;

/// What a refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlagsRefresh {
    /// A new snapshot is in use.
    Updated {
        /// Flags in it.
        flags: usize,
        /// Segments in it.
        segments: usize,
    },
    /// Nothing changed in the store since the last refresh.
    Unchanged,
}

/// Counters of a [`FlagStore`] since it was built (per process), for metrics and health checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlagStats {
    /// Refreshes run (background and on demand).
    pub refreshes: u64,
    /// Refreshes that swapped in a new snapshot.
    pub updates: u64,
    /// Refreshes that failed on the store.
    pub store_errors: u64,
    /// Refreshes whose flags did not validate (the snapshot was kept).
    pub rejected: u64,
    /// When the last refresh succeeded, in milliseconds since the Unix epoch (store clock).
    pub last_success_unix_ms: Option<u64>,
    /// Why the last refresh failed, when it did.
    pub last_error: Option<String>,
}

impl From<RefreshStats> for FlagStats {
    fn from(stats: RefreshStats) -> Self {
        FlagStats {
            refreshes: stats.refreshes,
            updates: stats.updates,
            store_errors: stats.store_errors,
            rejected: stats.rejected,
            last_success_unix_ms: stats.last_success_unix_ms,
            last_error: stats.last_error,
        }
    }
}

impl Refreshable for Snapshot {
    type Outcome = FlagsRefresh;
    type Error = FlagsError;
    const WHAT: &'static str = "flags";
    const COUNTER_NAMES: [&'static str; 4] = refresh_counter_names!("kv_flags");

    fn is_update(outcome: &FlagsRefresh) -> bool {
        matches!(outcome, FlagsRefresh::Updated { .. })
    }

    fn is_store_error(error: &FlagsError) -> bool {
        !matches!(error, FlagsError::Invalid(_))
    }

    /// The snapshot is in use; the items that failed are reported.
    fn problems(&self) -> Option<FlagsError> {
        (!self.errors.is_empty()).then(|| FlagsError::Invalid(self.errors.clone()))
    }
}

/// Configures a [`FlagStore`].
#[derive(Debug, Clone)]
pub struct FlagStoreBuilder {
    namespace: Namespace,
    clock: SharedClock,
    refresh_interval: Option<Duration>,
    max_staleness: Duration,
    store_timeout: Option<Duration>,
}

impl FlagStoreBuilder {
    /// Renamed [`with_store_timeout`](Self::with_store_timeout).
    #[deprecated(note = "renamed `with_store_timeout`")]
    #[doc(hidden)]
    pub fn store_timeout(self, timeout: Option<Duration>) -> Self {
        self.with_store_timeout(timeout)
    }

    /// Renamed [`with_refresh_interval`](Self::with_refresh_interval).
    #[deprecated(note = "renamed `with_refresh_interval`")]
    #[doc(hidden)]
    pub fn refresh_interval(self, interval: Duration) -> Self {
        self.with_refresh_interval(interval)
    }

    /// Renamed [`with_manual_refresh`](Self::with_manual_refresh).
    #[deprecated(note = "renamed `with_manual_refresh`")]
    #[doc(hidden)]
    pub fn manual_refresh(self) -> Self {
        self.with_manual_refresh()
    }

    /// Renamed [`with_max_staleness`](Self::with_max_staleness).
    #[deprecated(note = "renamed `with_max_staleness`")]
    #[doc(hidden)]
    pub fn max_staleness(self, max: Duration) -> Self {
        self.with_max_staleness(max)
    }

    /// Renamed [`with_clock`](Self::with_clock).
    #[deprecated(note = "renamed `with_clock`")]
    #[doc(hidden)]
    pub fn clock(self, clock: SharedClock) -> Self {
        self.with_clock(clock)
    }

    /// Bounds each store call by `timeout` (default 5 seconds; `None`: unbounded), so a store
    /// that stops answering fails a refresh or a write instead of stalling it; evaluations keep
    /// the last good snapshot meanwhile.
    pub fn with_store_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.store_timeout = timeout.into();
        self
    }

    /// Refresh in the background this often (default 30 s).
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = Some(interval.max(Duration::from_millis(10)));
        self
    }

    /// No background task: the snapshot changes only on [`FlagStore::refresh`] and admin
    /// writes (tests drive refreshes this way, with a manual clock).
    pub fn with_manual_refresh(mut self) -> Self {
        self.refresh_interval = None;
        self
    }

    /// Evaluations answer `STALE` once the last successful refresh is older than this
    /// (default 5 minutes).
    pub fn with_max_staleness(mut self, max: Duration) -> Self {
        self.max_staleness = max;
        self
    }

    /// Measure staleness with this clock (default: the namespace's).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The store, not loaded yet: evaluations answer the caller's default with
    /// `PROVIDER_NOT_READY` until a refresh succeeds. Inside a tokio runtime the background
    /// task starts now and refreshes at once.
    pub fn build(self) -> FlagStore {
        let namespace = self.namespace.with_timeout(self.store_timeout);
        let store = FlagStore {
            inner: Arc::new(Inner {
                namespace,
                max_staleness: self.max_staleness,
                snapshot: Refreshing::new(Snapshot::default(), self.clock),
            }),
        };
        if let Some(interval) = self.refresh_interval {
            store.start_background(interval, true);
        }
        store
    }

    /// Builds the store and loads it: fails if the first refresh does (the store is
    /// unreachable or the flags do not validate), so a service can refuse to start without
    /// its flags. The background task (if any) keeps running either way.
    pub async fn load(self) -> Result<FlagStore, FlagsError> {
        let store = FlagStoreBuilder {
            refresh_interval: None,
            ..self.clone()
        }
        .build();
        store.refresh().await?;
        if let Some(interval) = self.refresh_interval {
            store.start_background(interval, false);
        }
        Ok(store)
    }
}

/// The flags of one namespace: an immutable compiled snapshot swapped atomically (reads take
/// no lock and never touch the store), refreshed in the background and on demand, plus the
/// admin operations (validated writes, with compare-and-swap where the store has it).
///
/// Cheap to clone; clones share one snapshot. The background task stops when the last clone
/// is dropped.
#[derive(Clone)]
pub struct FlagStore {
    inner: Arc<Inner>,
}

struct Inner {
    namespace: Namespace,
    max_staleness: Duration,
    snapshot: Refreshing<Snapshot>,
}

impl fmt::Debug for FlagStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.inner.snapshot.load();
        f.debug_struct("FlagStore")
            .field("namespace", &self.inner.namespace.id())
            .field("ready", &snapshot.ready)
            .field("flags", &snapshot.flags.len())
            .field("segments", &snapshot.segments.len())
            .field("invalid", &snapshot.invalid.len())
            .finish()
    }
}

/// A flag as stored, with its version (for compare-and-swap).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFlag {
    /// The flag's key.
    pub key: String,
    /// Its definition.
    pub definition: FlagDefinition,
    /// The entry's version.
    pub version: Version,
}

/// A segment as stored, with its version.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSegment {
    /// The segment's name.
    pub name: String,
    /// Its definition.
    pub definition: Segment,
    /// The entry's version.
    pub version: Version,
}

impl FlagStore {
    /// Configures a store over `namespace` (one entry per flag, `flag:<key>`, and per segment,
    /// `segment:<name>`).
    pub fn builder(namespace: Namespace) -> FlagStoreBuilder {
        FlagStoreBuilder {
            clock: namespace.clock().clone(),
            namespace,
            refresh_interval: Some(DEFAULT_REFRESH_INTERVAL),
            max_staleness: DEFAULT_MAX_STALENESS,
            store_timeout: Some(crate::DEFAULT_STORE_TIMEOUT),
        }
    }

    /// [`FlagStore::builder`] with the defaults, loaded ([`FlagStoreBuilder::load`]).
    pub async fn load(namespace: Namespace) -> Result<FlagStore, FlagsError> {
        Self::builder(namespace).load().await
    }

    /// The namespace holding the flags.
    pub fn namespace(&self) -> &Namespace {
        &self.inner.namespace
    }

    /// A handle evaluating every flag of the current snapshot for `context`.
    pub fn flags(&self, context: EvaluationContext) -> Flags {
        self.flags_with(Arc::new(context))
    }

    pub(crate) fn flags_with(&self, context: Arc<EvaluationContext>) -> Flags {
        Flags::new(self.inner.snapshot.load_full(), context, self.is_stale())
    }

    /// A handle for one request: the current snapshot, and the context `build` makes given the
    /// headers that snapshot's flags read.
    pub(crate) fn flags_for_request(
        &self,
        build: impl FnOnce(&[http::HeaderName]) -> EvaluationContext,
    ) -> Flags {
        let snapshot = self.inner.snapshot.load_full();
        let context = build(&snapshot.headers);
        Flags::new(snapshot, Arc::new(context), self.is_stale())
    }

    /// Whether a snapshot was ever loaded.
    pub fn is_ready(&self) -> bool {
        self.inner.snapshot.load().ready
    }

    /// Whether the last successful refresh is older than the maximum staleness (evaluations
    /// then answer `STALE`).
    pub fn is_stale(&self) -> bool {
        self.inner.snapshot.is_older_than(self.inner.max_staleness)
    }

    /// The counters.
    pub fn stats(&self) -> FlagStats {
        self.inner.snapshot.stats().into()
    }

    /// The keys of the snapshot's flags (those answering `PARSE_ERROR` included), sorted.
    pub fn keys(&self) -> Vec<String> {
        self.snapshot().keys()
    }

    /// The type of a flag's variants, as the snapshot holds it.
    pub fn value_kind(&self, key: &str) -> Option<ValueKind> {
        self.inner.snapshot.load().flags.get(key).map(|f| f.kind)
    }

    /// A flag's definition as the snapshot holds it.
    pub fn definition(&self, key: &str) -> Option<Arc<FlagDefinition>> {
        self.inner
            .snapshot
            .load()
            .flags
            .get(key)
            .map(|f| f.definition.clone())
    }

    /// The current snapshot, to evaluate against without a handle (OFREP, the `kv` tool).
    pub fn snapshot(&self) -> FlagSnapshot {
        FlagSnapshot {
            inner: self.inner.snapshot.load_full(),
            stale: self.is_stale(),
        }
    }

    /// Evaluates `key` for `context` on the current snapshot, owned: value (`None` when the
    /// caller's default applies), variant, reason, error code and message, and the flag's
    /// metadata merged over its document's.
    pub fn evaluate(
        &self,
        key: &str,
        context: &EvaluationContext,
    ) -> EvaluationDetails<Option<serde_json::Value>> {
        self.snapshot().details(key, context, None)
    }

    /// [`evaluate`](FlagStore::evaluate) read as `ty` (`TYPE_MISMATCH` when the value is not
    /// one).
    pub fn evaluate_as(
        &self,
        key: &str,
        context: &EvaluationContext,
        ty: FlagType,
    ) -> EvaluationDetails<Option<serde_json::Value>> {
        self.snapshot().details(key, context, Some(ty))
    }

    /// What did not validate at the last refresh (which flag, segment or evaluator, which
    /// field, why); such a flag keeps its last good definition or answers `PARSE_ERROR`.
    pub fn validation_errors(&self) -> Vec<ValidationError> {
        self.inner.snapshot.load().errors.clone()
    }

    /// Writes a whole flagd document into the namespace: every flag as `flag:<key>` and the
    /// `$evaluators` and metadata as [`DOCUMENT_KEY`]. Everything is validated first; if
    /// anything fails nothing is written ([`FlagsError::Invalid`] lists it all). Flags of the
    /// namespace that the document lacks are left alone. Returns the number of flags written.
    ///
    /// The entries are written in bulk (100 at a time): a reader refreshing during the import
    /// may see part of it until its next refresh.
    pub async fn import_document(&self, document: &FlagDocument) -> Result<usize, FlagsError> {
        let mut errors = Vec::new();
        let shared = shared_from(
            document.evaluators.clone(),
            document.metadata.clone(),
            &mut errors,
        );
        let segments = self.inner.snapshot.load().segments.clone();
        let mut items = Vec::with_capacity(document.flags.len() + 1);
        for (key, value) in &document.flags {
            let flag = super::compile::decode_value::<FlagDefinition>(ItemKind::Flag, key, value)
                .and_then(|f| compile_flag(key, f.clone(), &segments, &shared).map(|_| f));
            match flag {
                Ok(flag) => {
                    let bytes = serde_json::to_vec(&flag).map_err(|e| {
                        FlagsError::from(ValidationError {
                            kind: ItemKind::Flag,
                            key: key.clone(),
                            field: ".".to_owned(),
                            message: e.to_string(),
                        })
                    })?;
                    items.push(kv_core::BulkPut::new(flag_key(key), bytes));
                }
                Err(error) => errors.push(error),
            }
        }
        if !errors.is_empty() {
            return Err(FlagsError::Invalid(errors));
        }
        let shared_part = serde_json::json!({
            "flags": {},
            "$evaluators": document.evaluators,
            "metadata": document.metadata,
        });
        items.push(kv_core::BulkPut::new(
            DOCUMENT_KEY,
            serde_json::to_vec(&shared_part).unwrap_or_default(),
        ));
        let count = document.flags.len();
        let namespace = &self.inner.namespace;
        let chunk = namespace.limits().max_bulk_write.max(1);
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let batch: Vec<_> = items.by_ref().take(chunk).collect();
            namespace.put_many(batch).await?;
        }
        self.refresh_after_write().await;
        Ok(count)
    }

    /// The namespace's flags as one flagd document, read from the store (not the snapshot):
    /// every flag as stored (an invalid one too, so nothing is lost), with the `$evaluators`
    /// and metadata of [`DOCUMENT_KEY`].
    pub async fn export_document(&self) -> Result<FlagDocument, FlagsError> {
        let namespace = &self.inner.namespace;
        let mut document = match namespace.get_entry(DOCUMENT_KEY).await? {
            Some(entry) => decode::<FlagDocument>(ItemKind::Document, DOCUMENT_KEY, &entry.value)?,
            None => FlagDocument::default(),
        };
        document.schema = Some(FlagDocument::SCHEMA.to_owned());
        let names = list_keys(namespace, FLAG_PREFIX).await?;
        for chunk in names.chunks(namespace.limits().max_bulk_get.max(1)) {
            for (name, entry) in chunk.iter().zip(namespace.get_many(chunk).await?) {
                if let Some(entry) = entry {
                    let key = &name[FLAG_PREFIX.len()..];
                    let value: serde_json::Value = serde_json::from_slice(&entry.value)
                        .unwrap_or_else(|_| {
                            serde_json::Value::String(
                                String::from_utf8_lossy(&entry.value).into_owned(),
                            )
                        });
                    document.flags.insert(key.to_owned(), value);
                }
            }
        }
        Ok(document)
    }

    // ---- refresh ----

    /// Reads every flag and segment, validates them all, and swaps the new snapshot in.
    ///
    /// Single-flight: concurrent calls share one refresh that started after they called. On
    /// failure (store error, or any flag or segment invalid) the last good snapshot stays in
    /// use; the error is logged, counted and returned.
    pub async fn refresh(&self) -> Result<FlagsRefresh, FlagsError> {
        self.inner.snapshot.refresh(|| self.load_snapshot()).await
    }

    /// Refreshes every `interval` (the first time at once when `immediate`) while a clone of
    /// this store lives. Failures are logged and counted by `refresh`; the loop goes on.
    fn start_background(&self, interval: Duration, immediate: bool) {
        self.inner.snapshot.start_background(
            Arc::downgrade(&self.inner),
            interval,
            immediate,
            |inner| async move {
                let _ = FlagStore { inner }.refresh().await;
            },
        );
    }

    async fn load_snapshot(&self) -> Result<FlagsRefresh, FlagsError> {
        let namespace = &self.inner.namespace;
        let names = list_keys(namespace, "").await?;
        let names: Vec<String> = names
            .into_iter()
            .filter(|k| {
                k.starts_with(FLAG_PREFIX) || k.starts_with(SEGMENT_PREFIX) || k == DOCUMENT_KEY
            })
            .collect();
        let mut entries: Vec<(String, Entry)> = Vec::with_capacity(names.len());
        for chunk in names.chunks(namespace.limits().max_bulk_get.max(1)) {
            let got = namespace.get_many(chunk).await?;
            for (name, entry) in chunk.iter().zip(got) {
                if let Some(entry) = entry {
                    entries.push((name.clone(), entry));
                }
            }
        }
        let versions: HashMap<String, Version> = entries
            .iter()
            .map(|(k, e)| (k.clone(), e.version))
            .collect();
        let current = self.inner.snapshot.load();
        if current.ready && current.versions == versions {
            return Ok(FlagsRefresh::Unchanged);
        }
        let snapshot = build_snapshot(&entries, versions, Some(&current));
        let (flags, segments) = (snapshot.flags.len(), snapshot.segments.len());
        self.inner.snapshot.store(snapshot);
        tracing::debug!(flags, segments, "flags snapshot updated");
        Ok(FlagsRefresh::Updated { flags, segments })
    }

    // ---- admin: flags ----

    /// Reads one flag from the store (not the snapshot), with its version.
    pub async fn get_flag(&self, key: &str) -> Result<Option<StoredFlag>, FlagsError> {
        let store_key = flag_key(key);
        match self.inner.namespace.get_entry(&store_key).await? {
            None => Ok(None),
            Some(entry) => {
                let definition = decode(ItemKind::Flag, key, &entry.value)?;
                Ok(Some(StoredFlag {
                    key: key.to_owned(),
                    definition,
                    version: entry.version,
                }))
            }
        }
    }

    /// Every flag in the store, by key.
    pub async fn list_flags(&self) -> Result<Vec<StoredFlag>, FlagsError> {
        let names = list_keys(&self.inner.namespace, FLAG_PREFIX).await?;
        let mut flags = Vec::with_capacity(names.len());
        for chunk in names.chunks(self.inner.namespace.limits().max_bulk_get.max(1)) {
            for (name, entry) in chunk
                .iter()
                .zip(self.inner.namespace.get_many(chunk).await?)
            {
                if let Some(entry) = entry {
                    let key = &name[FLAG_PREFIX.len()..];
                    flags.push(StoredFlag {
                        key: key.to_owned(),
                        definition: decode(ItemKind::Flag, key, &entry.value)?,
                        version: entry.version,
                    });
                }
            }
        }
        Ok(flags)
    }

    /// Validates and writes a flag unconditionally (the last writer wins), then refreshes so
    /// this process sees it at once. Returns the new version.
    pub async fn set_flag(&self, key: &str, flag: &FlagDefinition) -> Result<Version, FlagsError> {
        self.write_flag(key, flag, WriteMode::Overwrite).await
    }
    /// Writes `flag` unless the store already holds `key` (seeding a default at start); whether
    /// it was written. On a store with compare-and-swap this is one only-if-absent write, safe
    /// when several processes seed at once; without, it reads first and then writes, so two
    /// processes seeding the same key at the same moment may both write (the same default).
    pub async fn set_flag_if_absent(
        &self,
        key: &str,
        flag: &FlagDefinition,
    ) -> Result<bool, FlagsError> {
        if !self
            .inner
            .namespace
            .capabilities()
            .atomic_conditional_writes
        {
            if self.get_flag(key).await?.is_some() {
                return Ok(false);
            }
            self.set_flag(key, flag).await?;
            return Ok(true);
        }
        match self.set_flag_if(key, flag, None).await {
            Ok(_) => Ok(true),
            Err(FlagsError::Conflict { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Validates and writes a flag only if it is still at `expected` (`None`: only if it does
    /// not exist yet); [`FlagsError::Conflict`] otherwise. Needs a store with compare-and-swap
    /// (memory, file, Redis, a kv-server); others refuse with `KvError::Unsupported`.
    pub async fn set_flag_if(
        &self,
        key: &str,
        flag: &FlagDefinition,
        expected: Option<Version>,
    ) -> Result<Version, FlagsError> {
        let mode = match expected {
            Some(version) => WriteMode::OnlyIfVersion(version),
            None => WriteMode::OnlyIfAbsent,
        };
        self.write_flag(key, flag, mode).await
    }

    /// Read-modify-write of one existing flag: `change` edits it, the result is validated and
    /// written with compare-and-swap, and on a concurrent change the flag is read again and
    /// `change` applied again (up to 16 times), so two admins never overwrite each other. On a
    /// store without compare-and-swap the write is unconditional.
    pub async fn update_flag<F>(&self, key: &str, mut change: F) -> Result<Version, FlagsError>
    where
        F: FnMut(&mut FlagDefinition),
    {
        let cas = self
            .inner
            .namespace
            .capabilities()
            .atomic_conditional_writes;
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let Some(mut stored) = self.get_flag(key).await? else {
                return Err(FlagsError::NotFound {
                    kind: "flag",
                    key: key.to_owned(),
                });
            };
            change(&mut stored.definition);
            let mode = if cas {
                WriteMode::OnlyIfVersion(stored.version)
            } else {
                WriteMode::Overwrite
            };
            match self.write_flag(key, &stored.definition, mode).await {
                Err(FlagsError::Conflict { .. }) => continue,
                other => return other,
            }
        }
        Err(FlagsError::Conflict {
            kind: "flag",
            key: key.to_owned(),
        })
    }

    async fn write_flag(
        &self,
        key: &str,
        flag: &FlagDefinition,
        mode: WriteMode,
    ) -> Result<Version, FlagsError> {
        self.validate_flag(key, flag).await?;
        let outcome = self
            .inner
            .namespace
            .put_json_with(&flag_key(key), flag, PutOptions::new().mode(mode))
            .await?;
        match outcome {
            PutOutcome::Written(version) => {
                self.refresh_after_write().await;
                Ok(version)
            }
            PutOutcome::ConditionFailed => Err(FlagsError::Conflict {
                kind: "flag",
                key: key.to_owned(),
            }),
        }
    }

    /// Checks a flag as a refresh would, against the segments of the snapshot (and of the
    /// store, for segments the snapshot lacks), without writing it.
    pub async fn validate_flag(&self, key: &str, flag: &FlagDefinition) -> Result<(), FlagsError> {
        let mut segments = self.inner.snapshot.load().segments.clone();
        let referenced = flag
            .rules
            .iter()
            .flat_map(|r| &r.conditions)
            .filter_map(|c| c.segment.as_deref());
        for name in referenced {
            if segments.contains_key(name) {
                continue;
            }
            if let Some(stored) = self.get_segment(name).await? {
                let compiled = compile_segment(name, stored.definition)?;
                segments.insert(name.to_owned(), Arc::new(compiled));
            }
        }
        let shared = &self.inner.snapshot.load().shared;
        compile_flag(key, flag.clone(), &segments, shared)?;
        Ok(())
    }

    /// Deletes a flag (unconditionally); `true` if it existed.
    pub async fn delete_flag(&self, key: &str) -> Result<bool, FlagsError> {
        let outcome = self
            .inner
            .namespace
            .delete_with(&flag_key(key), WriteMode::Overwrite)
            .await?;
        self.refresh_after_write().await;
        Ok(matches!(
            outcome,
            kv_core::DeleteOutcome::Deleted { existed: true }
        ))
    }

    /// Deletes a flag only if it is still at `version`; [`FlagsError::Conflict`] otherwise.
    pub async fn delete_flag_if(&self, key: &str, version: Version) -> Result<(), FlagsError> {
        match self
            .inner
            .namespace
            .delete_with(&flag_key(key), WriteMode::OnlyIfVersion(version))
            .await?
        {
            kv_core::DeleteOutcome::Deleted { .. } => {
                self.refresh_after_write().await;
                Ok(())
            }
            kv_core::DeleteOutcome::ConditionFailed => Err(FlagsError::Conflict {
                kind: "flag",
                key: key.to_owned(),
            }),
        }
    }

    // ---- admin: segments ----

    /// Reads one segment from the store, with its version.
    pub async fn get_segment(&self, name: &str) -> Result<Option<StoredSegment>, FlagsError> {
        match self.inner.namespace.get_entry(&segment_key(name)).await? {
            None => Ok(None),
            Some(entry) => Ok(Some(StoredSegment {
                name: name.to_owned(),
                definition: decode(ItemKind::Segment, name, &entry.value)?,
                version: entry.version,
            })),
        }
    }

    /// Every segment in the store, by name.
    pub async fn list_segments(&self) -> Result<Vec<StoredSegment>, FlagsError> {
        let names = list_keys(&self.inner.namespace, SEGMENT_PREFIX).await?;
        let mut segments = Vec::with_capacity(names.len());
        for name in names {
            let name = &name[SEGMENT_PREFIX.len()..];
            if let Some(segment) = self.get_segment(name).await? {
                segments.push(segment);
            }
        }
        Ok(segments)
    }

    /// Validates and writes a segment (only if still at `expected` when given), then
    /// refreshes.
    pub async fn set_segment(
        &self,
        name: &str,
        segment: &Segment,
        expected: Option<Version>,
    ) -> Result<Version, FlagsError> {
        compile_segment(name, segment.clone())?;
        let mode = expected.map_or(WriteMode::Overwrite, WriteMode::OnlyIfVersion);
        match self
            .inner
            .namespace
            .put_json_with(&segment_key(name), segment, PutOptions::new().mode(mode))
            .await?
        {
            PutOutcome::Written(version) => {
                self.refresh_after_write().await;
                Ok(version)
            }
            PutOutcome::ConditionFailed => Err(FlagsError::Conflict {
                kind: "segment",
                key: name.to_owned(),
            }),
        }
    }

    /// Deletes a segment, refusing with [`FlagsError::SegmentInUse`] while a flag in the store
    /// refers to it (deleting it would make every later refresh fail validation).
    pub async fn delete_segment(&self, name: &str) -> Result<bool, FlagsError> {
        let users: Vec<String> = self
            .list_flags()
            .await?
            .into_iter()
            .filter(|f| {
                f.definition
                    .rules
                    .iter()
                    .flat_map(|r| &r.conditions)
                    .any(|c| c.segment.as_deref() == Some(name))
            })
            .map(|f| f.key)
            .collect();
        if !users.is_empty() {
            return Err(FlagsError::SegmentInUse {
                segment: name.to_owned(),
                flags: users,
            });
        }
        let outcome = self
            .inner
            .namespace
            .delete_with(&segment_key(name), WriteMode::Overwrite)
            .await?;
        self.refresh_after_write().await;
        Ok(matches!(
            outcome,
            kv_core::DeleteOutcome::Deleted { existed: true }
        ))
    }

    /// After a write: make it visible in this process at once. A failure here does not undo
    /// the write; it is logged by `refresh`.
    async fn refresh_after_write(&self) {
        let _ = self.refresh().await;
    }
}

fn flag_key(key: &str) -> String {
    format!("{FLAG_PREFIX}{key}")
}

fn segment_key(name: &str) -> String {
    format!("{SEGMENT_PREFIX}{name}")
}

/// Every key with `prefix`, page by page.
async fn list_keys(namespace: &Namespace, prefix: &str) -> Result<Vec<String>, KvError> {
    let mut names = Vec::new();
    let mut options = ListOptions::new()
        .prefix(prefix)
        .limit(namespace.limits().max_list_limit.max(1));
    loop {
        let page = namespace.list(&options).await?;
        names.extend(page.keys.into_iter().map(|k| k.name));
        match page.cursor {
            Some(cursor) if !page.list_complete => options.cursor = Some(cursor),
            _ => return Ok(names),
        }
    }
}

/// Decodes and compiles every entry. An invalid item is reported and fails alone: a flag keeps
/// its definition from `previous` or answers `PARSE_ERROR`.
fn build_snapshot(
    entries: &[(String, Entry)],
    versions: HashMap<String, Version>,
    previous: Option<&Snapshot>,
) -> Snapshot {
    let mut errors: Vec<ValidationError> = Vec::new();
    let mut evaluators = serde_json::Map::new();
    let mut metadata = serde_json::Map::new();
    let mut segments = Vec::new();
    let mut flags = Vec::new();
    for (name, entry) in entries {
        if name == DOCUMENT_KEY {
            match decode::<FlagDocument>(ItemKind::Document, DOCUMENT_KEY, &entry.value) {
                Ok(document) => {
                    evaluators = document.evaluators;
                    metadata = document.metadata;
                }
                Err(error) => errors.push(error),
            }
        } else if let Some(name) = name.strip_prefix(SEGMENT_PREFIX) {
            segments.push((
                name.to_owned(),
                decode::<Segment>(ItemKind::Segment, name, &entry.value),
            ));
        } else if let Some(key) = name.strip_prefix(FLAG_PREFIX) {
            flags.push((
                key.to_owned(),
                decode::<FlagDefinition>(ItemKind::Flag, key, &entry.value),
            ));
        }
    }
    let shared = shared_from(evaluators, metadata, &mut errors);
    build(segments, flags, shared, errors, previous, versions)
}
