//! Errors of the flags module.

use std::fmt;
use std::sync::Arc;

use kv_core::KvError;

use super::compile::ValidationError;

/// Why a refresh or an admin operation on flags failed.
///
/// Cheap to clone: a refresh's outcome is shared by every caller that waited for it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FlagsError {
    /// The store failed; the last good snapshot stays in use.
    #[error("flag store error: {0}")]
    Store(#[source] Arc<KvError>),
    /// Flags or segments do not validate; nothing was written (admin), or the whole new
    /// snapshot was rejected and the last good one stays in use (refresh).
    #[error("{}", Invalid(.0))]
    Invalid(Vec<ValidationError>),
    /// A compare-and-swap write lost: the flag or segment changed since it was read.
    #[error("{kind} {key:?} was changed by someone else; read it again and retry")]
    Conflict {
        /// `flag` or `segment`.
        kind: &'static str,
        /// Its key or name.
        key: String,
    },
    /// The flag or segment to update does not exist.
    #[error("{kind} {key:?} not found")]
    NotFound {
        /// `flag` or `segment`.
        kind: &'static str,
        /// Its key or name.
        key: String,
    },
    /// The segment cannot be deleted: flags refer to it.
    #[error("segment {segment:?} is used by flags {flags:?}")]
    SegmentInUse {
        /// The segment.
        segment: String,
        /// The flags using it.
        flags: Vec<String>,
    },
}

impl From<KvError> for FlagsError {
    fn from(error: KvError) -> Self {
        FlagsError::Store(Arc::new(error))
    }
}

impl From<ValidationError> for FlagsError {
    fn from(error: ValidationError) -> Self {
        FlagsError::Invalid(vec![error])
    }
}

impl FlagsError {
    /// The validation errors, when that is what this is.
    pub fn validation_errors(&self) -> &[ValidationError] {
        match self {
            FlagsError::Invalid(errors) => errors,
            _ => &[],
        }
    }
}

struct Invalid<'a>(&'a [ValidationError]);

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => f.write_str("invalid flags"),
            [one] => write!(f, "invalid {one}"),
            [first, rest @ ..] => write!(f, "invalid {first} (and {} more)", rest.len()),
        }
    }
}
