//! The values that cross the store contract: entries, versions, options and outcomes.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

/// An entry's version: it changes on every write of the key, including a re-creation after a
/// delete, so a compare-and-swap never confuses two generations of one key.
///
/// Versions are opaque; their text form (16 lowercase hex digits) is what an HTTP `ETag` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(u64);

impl Version {
    /// Wraps a backend's raw version number.
    pub const fn from_raw(raw: u64) -> Self {
        Version(raw)
    }

    /// The raw version number, for backends that store it.
    pub const fn raw(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The text is not a version printed by [`Version`]'s `Display`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a store version (16 hex digits)")]
pub struct ParseVersionError(pub String);

impl FromStr for Version {
    type Err = ParseVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 {
            return Err(ParseVersionError(s.to_owned()));
        }
        u64::from_str_radix(s, 16)
            .map(Version)
            .map_err(|_| ParseVersionError(s.to_owned()))
    }
}

/// A stored entry as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The value's bytes.
    pub value: Bytes,
    /// The JSON metadata written with the value, if any.
    pub metadata: Option<Value>,
    /// When the entry expires, in seconds since the Unix epoch.
    pub expiration: Option<u64>,
    /// The entry's current version.
    pub version: Version,
}

/// When an entry should expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// At this time, in seconds since the Unix epoch (at least the minimum TTL ahead).
    At(u64),
    /// This long after the write (at least the minimum TTL; whole seconds count).
    Ttl(Duration),
}

/// The condition a write or delete is applied under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Apply unconditionally.
    #[default]
    Overwrite,
    /// Apply only if the key holds no (unexpired) entry.
    OnlyIfAbsent,
    /// Apply only if the key's current entry has this version.
    OnlyIfVersion(Version),
}

impl WriteMode {
    /// Whether this mode needs the backend to compare and write atomically.
    pub fn is_conditional(self) -> bool {
        !matches!(self, WriteMode::Overwrite)
    }

    /// Whether the condition holds for a key whose current version is `current`
    /// (`None` when the key is absent or expired).
    pub fn allows(self, current: Option<Version>) -> bool {
        match self {
            WriteMode::Overwrite => true,
            WriteMode::OnlyIfAbsent => current.is_none(),
            WriteMode::OnlyIfVersion(expected) => current == Some(expected),
        }
    }
}

/// Options of a put: expiry, metadata and write mode.
///
/// ```
/// use kv_core::PutOptions;
/// use std::time::Duration;
///
/// let options = PutOptions::new()
///     .ttl(Duration::from_secs(3600))
///     .metadata(serde_json::json!({"owner": "billing"}))
///     .only_if_absent();
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PutOptions {
    /// When the entry expires; `None` keeps it until deleted.
    pub expiry: Option<Expiry>,
    /// JSON metadata stored beside the value and returned by get-with-metadata and list.
    pub metadata: Option<Value>,
    /// The write's condition.
    pub mode: WriteMode,
}

impl PutOptions {
    /// An unconditional write that never expires and carries no metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Expire this long after the write.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.expiry = Some(Expiry::Ttl(ttl));
        self
    }

    /// Expire at this time, in seconds since the Unix epoch.
    pub fn expiration(mut self, unix_secs: u64) -> Self {
        self.expiry = Some(Expiry::At(unix_secs));
        self
    }

    /// Store this JSON metadata with the value.
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Write only if the key is absent.
    pub fn only_if_absent(mut self) -> Self {
        self.mode = WriteMode::OnlyIfAbsent;
        self
    }

    /// Write only if the key's current version is `version`.
    pub fn only_if_version(mut self, version: Version) -> Self {
        self.mode = WriteMode::OnlyIfVersion(version);
        self
    }

    /// Write under this mode.
    pub fn mode(mut self, mode: WriteMode) -> Self {
        self.mode = mode;
        self
    }
}

/// A validated entry on its way into a backend: the expiry is already absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    /// The value's bytes.
    pub value: Bytes,
    /// JSON metadata, already checked against the size limit.
    pub metadata: Option<Value>,
    /// Expiration in seconds since the Unix epoch.
    pub expiration: Option<u64>,
}

/// The outcome of a put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a conditional write may not have happened"]
pub enum PutOutcome {
    /// The entry was written and now has this version.
    Written(Version),
    /// The write mode's condition did not hold; nothing was written.
    ConditionFailed,
}

impl PutOutcome {
    /// The new version, when the write happened.
    pub fn version(self) -> Option<Version> {
        match self {
            PutOutcome::Written(version) => Some(version),
            PutOutcome::ConditionFailed => None,
        }
    }
}

/// The outcome of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a conditional delete may not have happened"]
pub enum DeleteOutcome {
    /// The condition held; `existed` says whether there was an entry to remove.
    Deleted {
        /// Whether an unexpired entry was removed.
        existed: bool,
    },
    /// The write mode's condition did not hold; nothing was deleted.
    ConditionFailed,
}

/// One item of a bulk put.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkPut {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Bytes,
    /// Expiry and metadata; the mode must be [`WriteMode::Overwrite`].
    pub options: PutOptions,
}

impl BulkPut {
    /// An item with no expiry and no metadata.
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        BulkPut {
            key: key.into(),
            value: value.into(),
            options: PutOptions::default(),
        }
    }

    /// The same item with these options.
    pub fn with_options(mut self, options: PutOptions) -> Self {
        self.options = options;
        self
    }
}

/// What to list: a literal key prefix, a page size and where to resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    /// Only keys starting with these bytes (no wildcards).
    pub prefix: Option<String>,
    /// Page size, `1..=1000` by default limits.
    pub limit: usize,
    /// The cursor of the previous page.
    pub cursor: Option<String>,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            prefix: None,
            limit: 1000,
            cursor: None,
        }
    }
}

impl ListOptions {
    /// The first page of everything, 1000 keys at a time.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only keys with this prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// At most this many keys per page.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Resume after the page that returned this cursor.
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }
}

/// A listed key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyInfo {
    /// The key.
    pub name: String,
    /// When it expires, in seconds since the Unix epoch.
    pub expiration: Option<u64>,
    /// Its JSON metadata.
    pub metadata: Option<Value>,
}

/// One page of a listing, in key byte order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListPage {
    /// The keys of this page.
    pub keys: Vec<KeyInfo>,
    /// Whether this is the last page.
    pub list_complete: bool,
    /// Where the next page starts; `Some` exactly when `list_complete` is false.
    pub cursor: Option<String>,
}

/// A namespace as the catalog records it: a stable id and a human title.
///
/// The id (32 lowercase hex digits for namespaces created here, as Cloudflare's) addresses the
/// namespace in the REST API and never changes; the title is unique within a store and can be
/// renamed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamespaceInfo {
    /// The stable id.
    pub id: String,
    /// The unique, renameable title.
    pub title: String,
}

/// What a backend can do faithfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Conditional writes and deletes are atomic; without it they are refused with
    /// [`KvError::Unsupported`](crate::KvError::Unsupported).
    pub atomic_conditional_writes: bool,
    /// A read returns the entry's metadata. Without it (a remote store that serves no way to
    /// read metadata) entries read without their metadata, and a server in front of such a
    /// store must not promise metadata to its clients.
    pub metadata: bool,
    /// Expirations are kept. Without it (a remote store known to drop them, such as
    /// Miniflare's explorer API) a write with an expiration is refused with
    /// [`KvError::Unsupported`](crate::KvError::Unsupported) rather than stored forever.
    pub expirations: bool,
}

impl Capabilities {
    /// A backend with atomic compare-and-swap (and metadata and expirations).
    pub const fn atomic() -> Self {
        Capabilities {
            atomic_conditional_writes: true,
            metadata: true,
            expirations: true,
        }
    }

    /// A backend without atomic compare-and-swap (but with metadata and expirations).
    pub const fn plain() -> Self {
        Capabilities {
            atomic_conditional_writes: false,
            metadata: true,
            expirations: true,
        }
    }

    /// These capabilities, with or without [`metadata`](Self::metadata).
    pub const fn with_metadata(mut self, metadata: bool) -> Self {
        self.metadata = metadata;
        self
    }

    /// These capabilities, with or without [`expirations`](Self::expirations).
    pub const fn with_expirations(mut self, expirations: bool) -> Self {
        self.expirations = expirations;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_text_round_trip() {
        let v = Version::from_raw(0xdead_beef);
        assert_eq!(v.to_string(), "00000000deadbeef");
        assert_eq!("00000000deadbeef".parse::<Version>(), Ok(v));
        assert!("deadbeef".parse::<Version>().is_err());
        assert!("zzzzzzzzzzzzzzzz".parse::<Version>().is_err());
    }

    #[test]
    fn write_mode_conditions() {
        let v1 = Version::from_raw(1);
        let v2 = Version::from_raw(2);
        assert!(WriteMode::Overwrite.allows(Some(v1)));
        assert!(WriteMode::OnlyIfAbsent.allows(None));
        assert!(!WriteMode::OnlyIfAbsent.allows(Some(v1)));
        assert!(WriteMode::OnlyIfVersion(v1).allows(Some(v1)));
        assert!(!WriteMode::OnlyIfVersion(v1).allows(Some(v2)));
        assert!(!WriteMode::OnlyIfVersion(v1).allows(None));
    }
}
