//! Typed errors of the store contract.

use std::fmt;

/// A boxed error from a backend's own machinery (I/O, the engine, the network).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of every store operation.
pub type Result<T, E = KvError> = std::result::Result<T, E>;

/// A violated limit of the contract, found before any I/O.
///
/// Each variant names the offending value and the limit so that a log line or an HTTP error
/// message can say exactly what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// The key is the empty string.
    #[error("key must not be empty")]
    EmptyKey,
    /// The key is `.` or `..`, which cannot be addressed in a URL path.
    #[error("key must not be {key:?}")]
    DotKey {
        /// The rejected key.
        key: String,
    },
    /// The key is longer than the limit in UTF-8 bytes.
    #[error("key is {len} bytes long, more than the limit of {max} bytes")]
    KeyTooLong {
        /// The key's length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The value is larger than the limit.
    #[error("value of key {key:?} is {len} bytes, more than the limit of {max} bytes")]
    ValueTooLarge {
        /// The key being written.
        key: String,
        /// The value's size in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The metadata, serialized as JSON, is larger than the limit.
    #[error("metadata of key {key:?} is {len} bytes as JSON, more than the limit of {max} bytes")]
    MetadataTooLarge {
        /// The key being written.
        key: String,
        /// The metadata's size in bytes once serialized.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The TTL is shorter than the minimum.
    #[error("expiration TTL of {ttl_secs} s is shorter than the minimum of {min_secs} s")]
    TtlTooShort {
        /// The requested TTL in seconds.
        ttl_secs: u64,
        /// The minimum TTL in seconds.
        min_secs: u64,
    },
    /// The absolute expiration is in the past or closer to now than the minimum.
    #[error("expiration {expiration} (unix seconds) is less than {min_secs} s after now ({now})")]
    ExpirationTooSoon {
        /// The requested expiration, in seconds since the Unix epoch.
        expiration: u64,
        /// The store's clock at the time of the check, in seconds since the Unix epoch.
        now: u64,
        /// How far ahead an expiration must be, in seconds.
        min_secs: u64,
    },
    /// The TTL would end after the latest expiration the store accepts.
    #[error(
        "expiration TTL of {ttl_secs} s is longer than the maximum of {max_secs} s \
         (no expiration may be later than {max_expiration} unix seconds)"
    )]
    TtlTooLong {
        /// The requested TTL in seconds.
        ttl_secs: u64,
        /// The longest TTL accepted at the time of the check, in seconds.
        max_secs: u64,
        /// The latest expiration accepted, in seconds since the Unix epoch.
        max_expiration: u64,
    },
    /// The absolute expiration is later than the latest the store accepts.
    #[error("expiration {expiration} (unix seconds) is later than the latest allowed, {max}")]
    ExpirationTooLate {
        /// The requested expiration, in seconds since the Unix epoch.
        expiration: u64,
        /// The latest expiration accepted, in seconds since the Unix epoch.
        max: u64,
    },
    /// The list page size is outside `1..=max`.
    #[error("list limit {limit} is outside the allowed range 1..={max}")]
    ListLimit {
        /// The requested page size.
        limit: usize,
        /// The largest page size.
        max: usize,
    },
    /// A bulk get names no keys or more keys than the limit.
    #[error("bulk get of {count} keys is outside the allowed range 1..={max}")]
    BulkGetCount {
        /// The number of keys requested.
        count: usize,
        /// The largest number of keys.
        max: usize,
    },
    /// A bulk write or bulk delete holds more items than the limit.
    #[error("bulk write of {count} items is more than the limit of {max}")]
    BulkWriteCount {
        /// The number of items in the request.
        count: usize,
        /// The largest number of items.
        max: usize,
    },
}

/// Every error a store operation can return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// A limit of the contract was violated; nothing was stored.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// A list cursor that this store did not hand out.
    #[error("invalid list cursor {cursor:?}: {reason}")]
    InvalidCursor {
        /// The cursor as received.
        cursor: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A namespace name that cannot be used.
    #[error("invalid namespace name {name:?}: {reason}")]
    InvalidNamespace {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The namespace does not exist (backends whose namespaces must be created first).
    #[error("namespace {name:?} not found")]
    NamespaceNotFound {
        /// The namespace asked for.
        name: String,
    },
    /// Another namespace already has this title.
    #[error("a namespace titled {title:?} already exists")]
    NamespaceExists {
        /// The title asked for.
        title: String,
    },
    /// The backend cannot perform this operation faithfully, so it refuses it.
    #[error("{backend} backend does not support {operation}")]
    Unsupported {
        /// The backend's name.
        backend: &'static str,
        /// The refused operation.
        operation: &'static str,
    },
    /// A remote store does not serve this operation: it has no route for it (it answered 404
    /// or 405 without the API's error envelope, or said the endpoint does not exist). Unlike
    /// [`KvError::Unsupported`], the refusal comes from the server behind the backend, and
    /// unlike a missing key or namespace it says nothing about the data.
    #[error("{backend} backend: the server does not serve {operation} (it answered {status}: no such route)")]
    NotServed {
        /// The backend's name.
        backend: &'static str,
        /// The operation the server has no route for.
        operation: &'static str,
        /// The HTTP status of the server's answer.
        status: u16,
    },
    /// A value could not be decoded as the requested type.
    #[error("value of key {key:?} is not valid {format}: {source}")]
    Decode {
        /// The key that was read.
        key: String,
        /// The expected format (`JSON`, `UTF-8`).
        format: &'static str,
        /// The decoder's error.
        #[source]
        source: BoxError,
    },
    /// A value or metadata could not be encoded as JSON.
    #[error("could not encode {what} as JSON: {source}")]
    Encode {
        /// What was being encoded (`value` or `metadata`).
        what: &'static str,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// The store is already opened by another process or handle.
    #[error("store {path} is already open in another process (or another handle in this one)")]
    StoreLocked {
        /// The store's location.
        path: String,
    },
    /// A store URL that cannot be parsed.
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidStoreUrl {
        /// The URL as given, with any password or token replaced by `***`
        /// ([`redact_store_url`](crate::redact_store_url)).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A valid store URL whose backend this build cannot open.
    #[error("store URL {url:?} needs the {backend} backend, which {reason}")]
    BackendNotAvailable {
        /// The URL as given, with any password or token replaced by `***`.
        url: String,
        /// The backend it selects.
        backend: &'static str,
        /// Why it cannot be opened (not compiled in, not yet implemented).
        reason: &'static str,
    },
    /// The backend is unreachable right now (connection lost, timed out); retrying later may work.
    #[error("{backend} backend unavailable: {source}")]
    Unavailable {
        /// The backend's name.
        backend: &'static str,
        /// The underlying failure.
        #[source]
        source: BoxError,
    },
    /// A remote store (a kv-server, Cloudflare) rejected the request with an error envelope.
    #[error("remote store answered {status} (code {code}): {message}")]
    Remote {
        /// The HTTP status.
        status: u16,
        /// The first error code of the envelope.
        code: u32,
        /// The first error message of the envelope.
        message: String,
    },
    /// Any other failure inside the backend (I/O, storage engine, protocol).
    #[error("{backend} backend error: {source}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// The underlying failure.
        #[source]
        source: BoxError,
    },
}

impl KvError {
    /// Wraps a backend failure.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        KvError::Backend {
            backend,
            source: source.into(),
        }
    }

    /// The limit violation, when this error is one.
    pub fn as_limit(&self) -> Option<&LimitError> {
        match self {
            KvError::Limit(limit) => Some(limit),
            _ => None,
        }
    }

    /// Whether retrying the same operation later may succeed (the store was unreachable).
    pub fn is_transient(&self) -> bool {
        matches!(self, KvError::Unavailable { .. })
    }
}

/// A message-only error, for backends that have nothing richer to wrap.
#[derive(Debug)]
pub struct Message(pub String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}
