//! The limits of the contract, checked before any I/O.

use std::time::SystemTime;

use crate::clock::unix_secs;
use crate::error::LimitError;
use crate::types::Expiry;

/// The limits every write, read and listing is checked against before it reaches a backend.
///
/// The default is Workers KV's: a self-hosted store may relax them, while a store that must stay
/// interchangeable with Workers KV keeps the default.
///
/// ```
/// use kv_core::Limits;
///
/// let relaxed = Limits { max_value_bytes: 100 * 1024 * 1024, ..Limits::default() };
/// assert_eq!(relaxed.max_key_bytes, 512);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest key, in UTF-8 bytes (512).
    pub max_key_bytes: usize,
    /// Largest value, in bytes (25 MiB).
    pub max_value_bytes: usize,
    /// Largest metadata, serialized as JSON, in bytes (1024).
    pub max_metadata_bytes: usize,
    /// Shortest TTL, and how far ahead an absolute expiration must be, in seconds (60).
    pub min_ttl_secs: u64,
    /// Latest expiration, in seconds since the Unix epoch (253 402 300 799, the last second of
    /// the year 9999); see [`Limits::DEFAULT_MAX_EXPIRATION_SECS`].
    ///
    /// A TTL that ends later is refused with [`LimitError::TtlTooLong`] and an absolute
    /// expiration that is later with [`LimitError::ExpirationTooLate`]: refused rather than
    /// shortened, as Workers KV refuses an `expiration_ttl` it cannot honour, so an entry never
    /// carries an expiration its writer did not ask for. A backend may hold a lower ceiling of
    /// its own (Redis: 2^53 - 1 ms since the epoch) and refuses beyond it with the same error.
    pub max_expiration_secs: u64,
    /// Largest list page (1000).
    pub max_list_limit: usize,
    /// Most keys in one bulk get (100).
    pub max_bulk_get: usize,
    /// Most items in one bulk write or bulk delete (10 000).
    pub max_bulk_write: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 512,
            max_value_bytes: 25 * 1024 * 1024,
            max_metadata_bytes: 1024,
            min_ttl_secs: 60,
            max_expiration_secs: Self::DEFAULT_MAX_EXPIRATION_SECS,
            max_list_limit: 1000,
            max_bulk_get: 100,
            max_bulk_write: 10_000,
        }
    }
}

impl Limits {
    /// The default latest expiration: 9999-12-31T23:59:59Z, in seconds since the Unix epoch.
    ///
    /// Far enough to mean "practically never", and small enough that every expiration can be
    /// printed as a calendar date (RFC 3339, HTTP dates, JavaScript's `Date`) and counted in
    /// milliseconds without overflow, both as an `i64` and as a double (the only number type of
    /// Redis's Lua scripts, exact up to 2^53).
    pub const DEFAULT_MAX_EXPIRATION_SECS: u64 = 253_402_300_799;

    /// Checks a key: not empty, not `.` or `..`, at most `max_key_bytes`.
    pub fn check_key(&self, key: &str) -> Result<(), LimitError> {
        if key.is_empty() {
            return Err(LimitError::EmptyKey);
        }
        if key == "." || key == ".." {
            return Err(LimitError::DotKey {
                key: key.to_owned(),
            });
        }
        if key.len() > self.max_key_bytes {
            return Err(LimitError::KeyTooLong {
                len: key.len(),
                max: self.max_key_bytes,
            });
        }
        Ok(())
    }

    /// Checks a value's size.
    pub fn check_value(&self, key: &str, len: usize) -> Result<(), LimitError> {
        if len > self.max_value_bytes {
            return Err(LimitError::ValueTooLarge {
                key: key.to_owned(),
                len,
                max: self.max_value_bytes,
            });
        }
        Ok(())
    }

    /// Checks the size of metadata already serialized as JSON.
    pub fn check_metadata(&self, key: &str, json_len: usize) -> Result<(), LimitError> {
        if json_len > self.max_metadata_bytes {
            return Err(LimitError::MetadataTooLarge {
                key: key.to_owned(),
                len: json_len,
                max: self.max_metadata_bytes,
            });
        }
        Ok(())
    }

    /// Turns a requested expiry into an absolute expiration (seconds since the epoch), checking
    /// the minimum TTL, that an absolute time is far enough ahead of `now`, and that neither ends
    /// after [`max_expiration_secs`](Self::max_expiration_secs).
    ///
    /// Every backend gets its expirations through here, so they all refuse the same requests,
    /// before any I/O; the arithmetic saturates, so no TTL or time can overflow it.
    pub fn resolve_expiry(
        &self,
        expiry: Option<Expiry>,
        now: SystemTime,
    ) -> Result<Option<u64>, LimitError> {
        let now_secs = unix_secs(now);
        match expiry {
            None => Ok(None),
            Some(Expiry::Ttl(ttl)) => {
                let ttl_secs = ttl.as_secs();
                if ttl_secs < self.min_ttl_secs {
                    return Err(LimitError::TtlTooShort {
                        ttl_secs,
                        min_secs: self.min_ttl_secs,
                    });
                }
                let max_secs = self.max_expiration_secs.saturating_sub(now_secs);
                if ttl_secs > max_secs {
                    return Err(LimitError::TtlTooLong {
                        ttl_secs,
                        max_secs,
                        max_expiration: self.max_expiration_secs,
                    });
                }
                // Cannot overflow: at most `max_expiration_secs` after the check above.
                Ok(Some(now_secs + ttl_secs))
            }
            Some(Expiry::At(expiration)) => {
                if expiration < now_secs.saturating_add(self.min_ttl_secs) {
                    return Err(LimitError::ExpirationTooSoon {
                        expiration,
                        now: now_secs,
                        min_secs: self.min_ttl_secs,
                    });
                }
                if expiration > self.max_expiration_secs {
                    return Err(LimitError::ExpirationTooLate {
                        expiration,
                        max: self.max_expiration_secs,
                    });
                }
                Ok(Some(expiration))
            }
        }
    }

    /// Checks a list page size.
    pub fn check_list_limit(&self, limit: usize) -> Result<(), LimitError> {
        if limit == 0 || limit > self.max_list_limit {
            return Err(LimitError::ListLimit {
                limit,
                max: self.max_list_limit,
            });
        }
        Ok(())
    }

    /// Checks the number of keys in a bulk get.
    pub fn check_bulk_get(&self, count: usize) -> Result<(), LimitError> {
        if count == 0 || count > self.max_bulk_get {
            return Err(LimitError::BulkGetCount {
                count,
                max: self.max_bulk_get,
            });
        }
        Ok(())
    }

    /// Checks the number of items in a bulk write or delete.
    pub fn check_bulk_write(&self, count: usize) -> Result<(), LimitError> {
        if count > self.max_bulk_write {
            return Err(LimitError::BulkWriteCount {
                count,
                max: self.max_bulk_write,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn keys() {
        let limits = Limits::default();
        assert_eq!(limits.check_key(""), Err(LimitError::EmptyKey));
        assert!(matches!(
            limits.check_key(".."),
            Err(LimitError::DotKey { .. })
        ));
        assert!(limits.check_key("...").is_ok());
        assert!(limits.check_key(&"é".repeat(256)).is_ok());
        assert_eq!(
            limits.check_key(&"a".repeat(513)),
            Err(LimitError::KeyTooLong { len: 513, max: 512 })
        );
    }

    #[test]
    fn expiry() {
        let limits = Limits::default();
        let now = UNIX_EPOCH + Duration::from_millis(1_000_500);
        let ttl = |s| Some(Expiry::Ttl(Duration::from_secs(s)));
        assert_eq!(limits.resolve_expiry(ttl(60), now), Ok(Some(1060)));
        assert!(matches!(
            limits.resolve_expiry(ttl(59), now),
            Err(LimitError::TtlTooShort { ttl_secs: 59, .. })
        ));
        assert_eq!(
            limits.resolve_expiry(Some(Expiry::At(1060)), now),
            Ok(Some(1060))
        );
        assert!(matches!(
            limits.resolve_expiry(Some(Expiry::At(1059)), now),
            Err(LimitError::ExpirationTooSoon {
                expiration: 1059,
                now: 1000,
                ..
            })
        ));
        assert_eq!(limits.resolve_expiry(None, now), Ok(None));
    }

    #[test]
    fn expiry_upper_bound() {
        let limits = Limits::default();
        let max = Limits::DEFAULT_MAX_EXPIRATION_SECS;
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ttl = |s| Some(Expiry::Ttl(Duration::from_secs(s)));
        let longest = max - 1_700_000_000;
        assert_eq!(limits.resolve_expiry(ttl(longest), now), Ok(Some(max)));
        for too_long in [longest + 1, 9_223_372_036_854_775, u64::MAX] {
            assert_eq!(
                limits.resolve_expiry(ttl(too_long), now),
                Err(LimitError::TtlTooLong {
                    ttl_secs: too_long,
                    max_secs: longest,
                    max_expiration: max,
                })
            );
        }
        assert_eq!(
            limits.resolve_expiry(Some(Expiry::At(max)), now),
            Ok(Some(max))
        );
        for too_late in [max + 1, u64::MAX] {
            assert_eq!(
                limits.resolve_expiry(Some(Expiry::At(too_late)), now),
                Err(LimitError::ExpirationTooLate {
                    expiration: too_late,
                    max
                })
            );
        }
        // A clock past the bound (or a bound relaxed to the end of time) cannot overflow.
        let late = UNIX_EPOCH + Duration::from_secs(max + 10);
        assert!(matches!(
            limits.resolve_expiry(ttl(60), late),
            Err(LimitError::TtlTooLong { max_secs: 0, .. })
        ));
        let unbounded = Limits {
            max_expiration_secs: u64::MAX,
            ..Limits::default()
        };
        assert_eq!(
            unbounded.resolve_expiry(ttl(u64::MAX - 1_700_000_000), now),
            Ok(Some(u64::MAX))
        );
        assert!(unbounded.resolve_expiry(ttl(u64::MAX), now).is_err());
    }
}
