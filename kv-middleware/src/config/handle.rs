//! [`Config`]: a typed, versioned config document, read from a snapshot.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kv_core::{
    Entry, KvError, ListOptions, Namespace, PutOptions, PutOutcome, SharedClock, Version, WriteMode,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::error::ConfigError;
use crate::shared::snapshot::{refresh_counter_names, RefreshStats, Refreshable, Refreshing};

/// How often the background task refreshes, by default.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// How many versions are kept for rollback, by default.
pub const DEFAULT_MAX_VERSIONS: usize = 10;
/// Between the config's key and a version number in the keys of kept versions:
/// `app:versions:00000000000000000007`.
pub const VERSIONS_INFIX: &str = ":versions:";

const MAX_UPDATE_ATTEMPTS: usize = 16;

type Validator<T> = Arc<dyn Fn(&T) -> Result<(), String> + Send + Sync>;

/// What a refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigRefresh {
    /// A new value is in use.
    Updated,
    /// The document did not change.
    Unchanged,
}

/// A kept version of a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigVersion {
    /// The version number (1, 2, ...).
    pub version: u64,
    /// When it was written, in seconds since the Unix epoch (store clock).
    pub updated_at: Option<u64>,
    /// What the writer said about it (for example `rollback to 3`).
    pub note: Option<String>,
}

/// Counters of a [`Config`] since it was loaded (per process).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigStats {
    /// Refreshes run.
    pub refreshes: u64,
    /// Refreshes that swapped in a new value.
    pub updates: u64,
    /// Refreshes that failed on the store.
    pub store_errors: u64,
    /// Refreshes whose document was refused (decode or validation).
    pub rejected: u64,
    /// When the last refresh succeeded, in milliseconds since the Unix epoch (store clock).
    pub last_success_unix_ms: Option<u64>,
    /// Why the last refresh failed, when it did.
    pub last_error: Option<String>,
}

/// The value in use and where it came from.
struct Current<T> {
    value: Arc<T>,
    /// The config version number (from the entry's metadata; `None` for a default, or a
    /// document written by other means, like the `kv` tool).
    version: Option<u64>,
    /// The store entry's version (`None` for a default).
    entry: Option<Version>,
}

/// Configures a [`Config`].
pub struct ConfigBuilder<T> {
    namespace: Namespace,
    key: String,
    default: Option<T>,
    validate: Option<Validator<T>>,
    refresh_interval: Option<Duration>,
    max_versions: usize,
    clock: SharedClock,
    store_timeout: Option<Duration>,
}

impl<T> fmt::Debug for ConfigBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigBuilder")
            .field("key", &self.key)
            .field("refresh_interval", &self.refresh_interval)
            .field("max_versions", &self.max_versions)
            .finish_non_exhaustive()
    }
}

impl<T> ConfigBuilder<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    /// Renamed [`with_default_value`](Self::with_default_value).
    #[deprecated(note = "renamed `with_default_value`")]
    #[doc(hidden)]
    pub fn default_value(self, value: T) -> Self {
        self.with_default_value(value)
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

    /// Renamed [`with_max_versions`](Self::with_max_versions).
    #[deprecated(note = "renamed `with_max_versions`")]
    #[doc(hidden)]
    pub fn max_versions(self, n: usize) -> Self {
        self.with_max_versions(n)
    }

    /// Renamed [`with_clock`](Self::with_clock).
    #[deprecated(note = "renamed `with_clock`")]
    #[doc(hidden)]
    pub fn clock(self, clock: SharedClock) -> Self {
        self.with_clock(clock)
    }

    /// Renamed [`with_store_timeout`](Self::with_store_timeout).
    #[deprecated(note = "renamed `with_store_timeout`")]
    #[doc(hidden)]
    pub fn store_timeout(self, timeout: Option<Duration>) -> Self {
        self.with_store_timeout(timeout)
    }

    /// The value used while the store holds no document (nothing is written).
    pub fn with_default_value(mut self, value: T) -> Self {
        self.default = Some(value);
        self
    }

    /// Checks every document beyond what serde checks (ranges, consistency); a refused
    /// document is never used nor written, with the message in the error and the log.
    pub fn with_validator<F>(mut self, f: F) -> Self
    where
        F: Fn(&T) -> Result<(), String> + Send + Sync + 'static,
    {
        self.validate = Some(Arc::new(f));
        self
    }

    /// Renamed [`with_validator`](Self::with_validator).
    #[deprecated(note = "renamed `with_validator`")]
    #[doc(hidden)]
    pub fn validate<F>(self, f: F) -> Self
    where
        F: Fn(&T) -> Result<(), String> + Send + Sync + 'static,
    {
        self.with_validator(f)
    }

    /// Refresh in the background this often (default 30 s).
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = Some(interval.max(Duration::from_millis(10)));
        self
    }

    /// No background task: the value changes only on [`Config::refresh`] and updates.
    pub fn with_manual_refresh(mut self) -> Self {
        self.refresh_interval = None;
        self
    }

    /// Keep this many versions for rollback (default 10, at least 1).
    pub fn with_max_versions(mut self, n: usize) -> Self {
        self.max_versions = n.max(1);
        self
    }

    /// Time writes with this clock (default: the namespace's).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Bounds each store call by `timeout` (default 5 seconds; `None`: unbounded), so a store
    /// that stops answering fails a refresh or an update instead of stalling it; readers keep
    /// the last good value meanwhile.
    pub fn with_store_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.store_timeout = timeout.into();
        self
    }

    /// Loads the document. Without one in the store, the default value is used, or
    /// [`ConfigError::Missing`] without a default. A document that is invalid falls back to
    /// the default (logged), or fails without one. A store error fails.
    pub async fn load(mut self) -> Result<Config<T>, ConfigError> {
        self.namespace = self.namespace.with_timeout(self.store_timeout);
        let first = self.namespace.get_entry(&self.key).await?;
        let mut start_error = None;
        let current = match (first, self.default) {
            (Some(entry), default) => {
                match parse_document(&self.key, self.validate.as_ref(), &entry.value) {
                    Ok(value) => Current::from_entry(value, &entry),
                    Err(error) => match default {
                        Some(default) => {
                            tracing::error!(%error, "config invalid at start; using the default value");
                            start_error = Some(error.to_string());
                            Current::default_value(default)
                        }
                        None => return Err(error),
                    },
                }
            }
            (None, Some(default)) => Current::default_value(default),
            (None, None) => return Err(ConfigError::Missing { key: self.key }),
        };
        let inner = Arc::new(Inner {
            namespace: self.namespace,
            key: self.key,
            validate: self.validate,
            max_versions: self.max_versions,
            current: Refreshing::new(current, self.clock.clone()),
            clock: self.clock,
        });
        inner.current.stamp_success();
        inner.current.set_last_error(start_error);
        if let Some(interval) = self.refresh_interval {
            inner.current.start_background(
                Arc::downgrade(&inner),
                interval,
                false,
                |inner| async move {
                    // Failures are logged and counted inside; the loop goes on.
                    let _ = Config { inner }.refresh().await;
                },
            );
        }
        Ok(Config { inner })
    }
}

impl<T> Current<T> {
    fn from_entry(value: T, entry: &Entry) -> Self {
        Current {
            value: Arc::new(value),
            version: metadata_version(entry.metadata.as_ref()),
            entry: Some(entry.version),
        }
    }

    fn default_value(value: T) -> Self {
        Current {
            value: Arc::new(value),
            version: None,
            entry: None,
        }
    }
}

/// Decodes and validates a document, naming the offending field on failure.
fn parse_document<T: DeserializeOwned>(
    key: &str,
    validate: Option<&Validator<T>>,
    bytes: &[u8],
) -> Result<T, ConfigError> {
    let invalid = |field: String, message: String| ConfigError::Invalid {
        key: key.to_owned(),
        field,
        message,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| invalid(e.path().to_string(), e.into_inner().to_string()))?;
    deserializer
        .end()
        .map_err(|e| invalid(".".to_owned(), e.to_string()))?;
    if let Some(validate) = validate {
        validate(&value).map_err(|message| invalid(".".to_owned(), message))?;
    }
    Ok(value)
}

impl<T> Refreshable for Current<T> {
    type Outcome = ConfigRefresh;
    type Error = ConfigError;
    const WHAT: &'static str = "config";
    const COUNTER_NAMES: [&'static str; 4] = refresh_counter_names!("kv_config");

    fn is_update(outcome: &ConfigRefresh) -> bool {
        *outcome == ConfigRefresh::Updated
    }

    fn is_store_error(error: &ConfigError) -> bool {
        matches!(error, ConfigError::Store(_))
    }
}

impl From<RefreshStats> for ConfigStats {
    fn from(stats: RefreshStats) -> Self {
        ConfigStats {
            refreshes: stats.refreshes,
            updates: stats.updates,
            store_errors: stats.store_errors,
            rejected: stats.rejected,
            last_success_unix_ms: stats.last_success_unix_ms,
            last_error: stats.last_error,
        }
    }
}

struct Inner<T> {
    namespace: Namespace,
    key: String,
    validate: Option<Validator<T>>,
    max_versions: usize,
    clock: SharedClock,
    current: Refreshing<Current<T>>,
}

/// A typed config document stored in a namespace: loaded at start, refreshed in the
/// background, validated before use, versioned with rollback.
///
/// Reads ([`get`](Config::get)) are lock-free and never touch the store. Cheap to clone;
/// clones share one value. See the [module docs](super).
pub struct Config<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Config<T> {
    fn clone(&self) -> Self {
        Config {
            inner: self.inner.clone(),
        }
    }
}

impl<T> fmt::Debug for Config<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("key", &self.inner.key)
            .field("version", &self.inner.current.load().version)
            .finish_non_exhaustive()
    }
}

impl<T> Config<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    /// Configures the config stored under `key` in `namespace`.
    pub fn builder(namespace: Namespace, key: impl Into<String>) -> ConfigBuilder<T> {
        ConfigBuilder {
            clock: namespace.clock().clone(),
            namespace,
            key: key.into(),
            default: None,
            validate: None,
            refresh_interval: Some(DEFAULT_REFRESH_INTERVAL),
            max_versions: DEFAULT_MAX_VERSIONS,
            store_timeout: Some(crate::DEFAULT_STORE_TIMEOUT),
        }
    }

    /// The value in use. Lock-free; never touches the store.
    pub fn get(&self) -> Arc<T> {
        self.inner.current.load().value.clone()
    }

    /// The version number of the value in use: `None` for the default value, or for a
    /// document written by other means than this API (the `kv` tool).
    pub fn version(&self) -> Option<u64> {
        self.inner.current.load().version
    }

    /// The key of the document in its namespace.
    pub fn key(&self) -> &str {
        &self.inner.key
    }

    /// The namespace holding the document.
    pub fn namespace(&self) -> &Namespace {
        &self.inner.namespace
    }

    /// The counters.
    pub fn stats(&self) -> ConfigStats {
        self.inner.current.stats().into()
    }

    /// Whether the last successful refresh is older than `max` (for health checks).
    pub fn is_older_than(&self, max: Duration) -> bool {
        self.inner.current.is_older_than(max)
    }

    /// Reads the document and, if it changed, decodes and validates it and swaps it in.
    ///
    /// Single-flight. A store error, a missing document or an invalid one keeps the value in
    /// use; the reason is logged, counted and returned.
    pub async fn refresh(&self) -> Result<ConfigRefresh, ConfigError> {
        self.inner.current.refresh(|| self.refresh_once()).await
    }

    async fn refresh_once(&self) -> Result<ConfigRefresh, ConfigError> {
        let Some(entry) = self.inner.namespace.get_entry(&self.inner.key).await? else {
            return Err(ConfigError::Missing {
                key: self.inner.key.clone(),
            });
        };
        if self.inner.current.load().entry == Some(entry.version) {
            return Ok(ConfigRefresh::Unchanged);
        }
        let value = self.parse(&entry.value)?;
        self.inner.current.store(Current::from_entry(value, &entry));
        tracing::debug!(key = %self.inner.key, version = ?self.version(), "config updated");
        Ok(ConfigRefresh::Updated)
    }

    fn parse(&self, bytes: &[u8]) -> Result<T, ConfigError> {
        parse_document(&self.inner.key, self.inner.validate.as_ref(), bytes)
    }

    fn check(&self, value: &T) -> Result<(), ConfigError> {
        if let Some(validate) = &self.inner.validate {
            validate(value).map_err(|message| ConfigError::Invalid {
                key: self.inner.key.clone(),
                field: ".".to_owned(),
                message,
            })?;
        }
        Ok(())
    }

    /// Every kept version, oldest first.
    pub async fn versions(&self) -> Result<Vec<ConfigVersion>, ConfigError> {
        let prefix = self.versions_prefix();
        let mut versions = Vec::new();
        let mut options = ListOptions::new()
            .prefix(prefix.clone())
            .limit(self.inner.namespace.limits().max_list_limit.max(1));
        loop {
            let page = self.inner.namespace.list(&options).await?;
            for key in page.keys {
                let Some(version) = key.name[prefix.len()..].parse::<u64>().ok() else {
                    continue;
                };
                let metadata = key.metadata.as_ref();
                versions.push(ConfigVersion {
                    version,
                    updated_at: metadata
                        .and_then(|m| m.get("updated_at"))
                        .and_then(Value::as_u64),
                    note: metadata
                        .and_then(|m| m.get("note"))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                });
            }
            match page.cursor {
                Some(cursor) if !page.list_complete => options.cursor = Some(cursor),
                _ => break,
            }
        }
        Ok(versions)
    }

    /// The value of a kept version; [`ConfigError::VersionNotFound`] when it is not kept.
    pub async fn version_value(&self, version: u64) -> Result<T, ConfigError> {
        let key = self.version_key(version);
        match self.inner.namespace.get(&key).await? {
            Some(bytes) => {
                let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
                serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
                    ConfigError::Invalid {
                        key: key.clone(),
                        field: e.path().to_string(),
                        message: e.into_inner().to_string(),
                    }
                })
            }
            None => Err(ConfigError::VersionNotFound {
                key: self.inner.key.clone(),
                version,
            }),
        }
    }

    fn versions_prefix(&self) -> String {
        format!("{}{VERSIONS_INFIX}", self.inner.key)
    }

    fn version_key(&self, version: u64) -> String {
        format!("{}{VERSIONS_INFIX}{version:020}", self.inner.key)
    }
}

impl<T> Config<T>
where
    T: DeserializeOwned + Serialize + Send + Sync + 'static,
{
    /// Replaces the document with `value` (validated first), as a new version; returns its
    /// number. Visible at once in this process, and in others within their refresh interval.
    pub async fn set(&self, value: &T) -> Result<u64, ConfigError> {
        let json = self.encode(value)?;
        self.write(|_| Ok(json.clone()), None, None).await
    }

    /// Replaces the document only if its version is still `expected`;
    /// [`ConfigError::Conflict`] otherwise (another admin wrote in between).
    pub async fn set_if_version(&self, value: &T, expected: u64) -> Result<u64, ConfigError> {
        let json = self.encode(value)?;
        self.write(|_| Ok(json.clone()), Some(expected), None).await
    }

    /// Read-modify-write: `change` edits the stored document (or the default value, when there
    /// is none yet), which is validated and written with compare-and-swap; when another
    /// writer got in first, the document is read again and `change` applied again (up to 16
    /// times), so concurrent updates never overwrite each other. On a store without
    /// compare-and-swap the write is unconditional (the last writer wins).
    pub async fn update<F>(&self, mut change: F) -> Result<u64, ConfigError>
    where
        F: FnMut(&mut T),
    {
        self.write(
            |current| {
                let mut value = match current {
                    Some(value) => value,
                    None => self.decode_value(&self.encode(&*self.get())?)?,
                };
                change(&mut value);
                self.encode(&value)
            },
            None,
            None,
        )
        .await
    }

    /// Writes kept version `version` back as a new version (validated again); returns the new
    /// version's number.
    pub async fn rollback(&self, version: u64) -> Result<u64, ConfigError> {
        let value = self.version_value(version).await?;
        let json = self.encode(&value)?;
        self.write(
            |_| Ok(json.clone()),
            None,
            Some(format!("rollback to {version}")),
        )
        .await
    }

    fn encode(&self, value: &T) -> Result<Value, ConfigError> {
        serde_json::to_value(value).map_err(|e| ConfigError::Encode {
            key: self.inner.key.clone(),
            message: e.to_string(),
        })
    }

    fn decode_value(&self, json: &Value) -> Result<T, ConfigError> {
        T::deserialize(json).map_err(|e| ConfigError::Invalid {
            key: self.inner.key.clone(),
            field: ".".to_owned(),
            message: e.to_string(),
        })
    }

    /// The write loop: read, compute the new document, validate, compare-and-swap, record the
    /// version, prune old versions, refresh.
    async fn write<F>(
        &self,
        mut next: F,
        expected: Option<u64>,
        note: Option<String>,
    ) -> Result<u64, ConfigError>
    where
        F: FnMut(Option<T>) -> Result<Value, ConfigError>,
    {
        let namespace = &self.inner.namespace;
        let key = &self.inner.key;
        let cas = namespace.capabilities().atomic_conditional_writes;
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let entry = namespace.get_entry(key).await?;
            let current_version = match &entry {
                Some(entry) => metadata_version(entry.metadata.as_ref()),
                None => None,
            };
            if let Some(expected) = expected {
                if current_version != Some(expected) {
                    return Err(ConfigError::Conflict {
                        key: key.clone(),
                        current: current_version,
                    });
                }
            }
            let current = match &entry {
                // A stored document that no longer decodes is replaced, not edited.
                Some(entry) => self.parse(&entry.value).ok(),
                None => None,
            };
            let json = next(current)?;
            let value = self.decode_value(&json)?;
            self.check(&value)?;
            let version = match current_version {
                Some(v) => v + 1,
                None => self.latest_kept_version().await? + 1,
            };
            let updated_at = self.inner.clock.unix_secs();
            let mut metadata = json!({"version": version, "updated_at": updated_at});
            if let Some(note) = &note {
                metadata["note"] = Value::String(note.clone());
            }
            let mode = match (&entry, cas) {
                (_, false) => WriteMode::Overwrite,
                (Some(entry), true) => WriteMode::OnlyIfVersion(entry.version),
                (None, true) => WriteMode::OnlyIfAbsent,
            };
            let options = PutOptions::new().metadata(metadata.clone()).mode(mode);
            match namespace.put_json_with(key, &json, options).await? {
                PutOutcome::ConditionFailed => {
                    if expected.is_some() {
                        return Err(ConfigError::Conflict {
                            key: key.clone(),
                            current: None,
                        });
                    }
                    continue;
                }
                PutOutcome::Written(_) => {
                    // The version's record. A failure here leaves the new document in place
                    // without its record; it is logged and the write still counts.
                    if let Err(error) = self.record_version(version, &json, metadata).await {
                        tracing::warn!(%error, key = %key, version, "config version not recorded");
                    }
                    let _ = self.refresh().await;
                    return Ok(version);
                }
            }
        }
        Err(ConfigError::Conflict {
            key: key.clone(),
            current: None,
        })
    }

    async fn record_version(
        &self,
        version: u64,
        json: &Value,
        metadata: Value,
    ) -> Result<(), KvError> {
        let namespace = &self.inner.namespace;
        let _ = namespace
            .put_json_with(
                &self.version_key(version),
                json,
                PutOptions::new().metadata(metadata),
            )
            .await?;
        let kept = self.kept_version_keys().await?;
        if kept.len() > self.inner.max_versions {
            let excess = kept.len() - self.inner.max_versions;
            for old in &kept[..excess] {
                namespace.delete(old).await?;
            }
        }
        Ok(())
    }

    async fn latest_kept_version(&self) -> Result<u64, ConfigError> {
        let prefix = self.versions_prefix();
        Ok(self
            .kept_version_keys()
            .await?
            .last()
            .and_then(|k| k[prefix.len()..].parse::<u64>().ok())
            .unwrap_or(0))
    }

    async fn kept_version_keys(&self) -> Result<Vec<String>, KvError> {
        let namespace = &self.inner.namespace;
        let mut keys = Vec::new();
        let mut options = ListOptions::new()
            .prefix(self.versions_prefix())
            .limit(namespace.limits().max_list_limit.max(1));
        loop {
            let page = namespace.list(&options).await?;
            keys.extend(page.keys.into_iter().map(|k| k.name));
            match page.cursor {
                Some(cursor) if !page.list_complete => options.cursor = Some(cursor),
                _ => return Ok(keys),
            }
        }
    }
}

fn metadata_version(metadata: Option<&Value>) -> Option<u64> {
    metadata?.get("version")?.as_u64()
}
