//! Errors of the config module.

use std::sync::Arc;

use kv_core::KvError;

/// Why loading, refreshing or updating a config failed.
///
/// Cheap to clone: a refresh's outcome is shared by every caller that waited for it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The store failed; the last good value stays in use.
    #[error("config store error: {0}")]
    Store(#[source] Arc<KvError>),
    /// The document does not decode as the config type, or the validation function refused
    /// it; the last good value stays in use (refresh), or nothing was written (update).
    #[error("config {key:?} is invalid: {field}: {message}")]
    Invalid {
        /// The config's key.
        key: String,
        /// The offending field's path (`limits.max_items`), `.` for the document.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The store holds no document and no default was given.
    #[error("config {key:?} not found in the store (and no default given)")]
    Missing {
        /// The config's key.
        key: String,
    },
    /// A compare-and-swap update lost: the config changed since it was read.
    #[error("config {key:?} was changed by someone else (now at version {current:?}); read it again and retry")]
    Conflict {
        /// The config's key.
        key: String,
        /// The version now stored, when known.
        current: Option<u64>,
    },
    /// The version asked for is not (or no longer) kept.
    #[error("config {key:?} has no version {version} (only the last versions are kept)")]
    VersionNotFound {
        /// The config's key.
        key: String,
        /// The version asked for.
        version: u64,
    },
    /// The value could not be encoded as JSON.
    #[error("config {key:?} could not be encoded as JSON: {message}")]
    Encode {
        /// The config's key.
        key: String,
        /// The encoder's message.
        message: String,
    },
}

impl From<KvError> for ConfigError {
    fn from(error: KvError) -> Self {
        ConfigError::Store(Arc::new(error))
    }
}
