//! The session's error type.

use kv_core::KvError;

/// Why a session operation failed.
///
/// With the `axum` feature it is a response: `500 Internal Server Error` with a fixed text that
/// reveals nothing about the store or the session, so handlers can use `?` on session calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed while loading, saving or deleting the session.
    #[error("session store error: {0}")]
    Store(#[from] KvError),
    /// Loading the session failed earlier in this request (the first call returned
    /// [`SessionError::Store`]); the session is unusable for the rest of the request.
    #[error("the session could not be loaded earlier in this request")]
    LoadFailed,
    /// A value could not be encoded as JSON.
    #[error("could not encode session value {key:?} as JSON: {source}")]
    Encode {
        /// The session key being written.
        key: String,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value does not decode as the requested type.
    #[error("session value {key:?} does not decode as the requested type: {source}")]
    Decode {
        /// The session key being read.
        key: String,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// The operating system could not provide randomness for a new session ID.
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
    /// A save kept meeting concurrent writes to the same session and gave up.
    #[error("session save gave up after {attempts} attempts against concurrent writes")]
    Conflict {
        /// How many writes were attempted.
        attempts: u32,
    },
    /// The cookie configuration cannot be written as a `Set-Cookie` header.
    #[error("invalid session cookie: {0}")]
    InvalidCookie(String),
}
