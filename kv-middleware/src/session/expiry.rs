//! When a session ends.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How long a session lives. Times have a resolution of one second.
///
/// | kind | server side | cookie |
/// | --- | --- | --- |
/// | [`OnInactivity`](Self::OnInactivity) (rolling) | ends this long after the last save or refresh | `Max-Age` = remaining lifetime |
/// | [`AtDateTime`](Self::AtDateTime) | ends at that instant; never refreshed | `Max-Age` = time left until then |
/// | [`OnSessionEnd`](Self::OnSessionEnd) | ends after this much inactivity (rolling, like `OnInactivity`) | no `Max-Age`: the browser drops it when it closes |
///
/// The store entry's TTL follows the session's end (but is never shorter than the store's
/// minimum TTL, 60 s on Workers KV; the session's own end is checked on load, so a session
/// that ends sooner is still gone on time).
///
/// Rolling kinds are refreshed without writing on every request: see
/// [`SessionLayer::with_refresh_fraction`](super::SessionLayer::with_refresh_fraction).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use kv_middleware::session::Expiry;
///
/// assert_eq!(Expiry::default(), Expiry::OnInactivity(Duration::from_secs(24 * 3600)));
/// let fixed = Expiry::AtDateTime(SystemTime::now() + Duration::from_secs(3600));
/// let browser = Expiry::OnSessionEnd(Duration::from_secs(8 * 3600));
/// # let _ = (fixed, browser);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Rolling: the session ends after this much inactivity.
    OnInactivity(Duration),
    /// The session ends at this instant, however active it is.
    AtDateTime(SystemTime),
    /// The cookie is a browser-session cookie (no `Max-Age`), and the server forgets the session
    /// after this much inactivity, so an abandoned session does not live forever.
    OnSessionEnd(Duration),
}

impl Default for Expiry {
    /// Rolling, 24 hours of inactivity.
    fn default() -> Self {
        Expiry::OnInactivity(Duration::from_secs(24 * 60 * 60))
    }
}

impl Expiry {
    /// The session's end, in seconds since the Unix epoch, for a save at `now_secs`.
    pub(crate) fn deadline(self, now_secs: u64) -> u64 {
        match self {
            Expiry::OnInactivity(period) | Expiry::OnSessionEnd(period) => {
                now_secs.saturating_add(period.as_secs())
            }
            Expiry::AtDateTime(at) => kv_core::unix_secs(at),
        }
    }

    /// The inactivity period of a rolling kind, in seconds.
    pub(crate) fn rolling_secs(self) -> Option<u64> {
        match self {
            Expiry::OnInactivity(period) | Expiry::OnSessionEnd(period) => Some(period.as_secs()),
            Expiry::AtDateTime(_) => None,
        }
    }

    /// Whether the cookie carries a `Max-Age`.
    pub(crate) fn persistent_cookie(self) -> bool {
        !matches!(self, Expiry::OnSessionEnd(_))
    }

    pub(crate) fn to_stored(self) -> StoredExpiry {
        match self {
            Expiry::OnInactivity(period) => StoredExpiry::Inactivity(period.as_secs()),
            Expiry::AtDateTime(at) => StoredExpiry::At(kv_core::unix_secs(at)),
            Expiry::OnSessionEnd(period) => StoredExpiry::SessionEnd(period.as_secs()),
        }
    }
}

/// An [`Expiry`] as the store record holds it: `{"inactivity": 86400}`, `{"at": 1700000000}`,
/// `{"session_end": 28800}` (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StoredExpiry {
    Inactivity(u64),
    At(u64),
    SessionEnd(u64),
}

impl From<StoredExpiry> for Expiry {
    fn from(stored: StoredExpiry) -> Self {
        match stored {
            StoredExpiry::Inactivity(secs) => Expiry::OnInactivity(Duration::from_secs(secs)),
            // Clamped to the year 9999, so a corrupt record cannot overflow `SystemTime`.
            StoredExpiry::At(secs) => {
                Expiry::AtDateTime(UNIX_EPOCH + Duration::from_secs(secs.min(253_402_300_799)))
            }
            StoredExpiry::SessionEnd(secs) => Expiry::OnSessionEnd(Duration::from_secs(secs)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines() {
        let hour = Duration::from_secs(3600);
        assert_eq!(Expiry::OnInactivity(hour).deadline(1000), 4600);
        assert_eq!(Expiry::OnSessionEnd(hour).deadline(1000), 4600);
        let at = UNIX_EPOCH + Duration::from_secs(5000);
        assert_eq!(Expiry::AtDateTime(at).deadline(1000), 5000);
        assert_eq!(
            Expiry::OnInactivity(Duration::MAX).deadline(u64::MAX - 1),
            u64::MAX
        );
    }

    #[test]
    fn stored_form_round_trips() {
        for expiry in [
            Expiry::OnInactivity(Duration::from_secs(60)),
            Expiry::AtDateTime(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            Expiry::OnSessionEnd(Duration::from_secs(600)),
        ] {
            let json = serde_json::to_string(&expiry.to_stored()).unwrap();
            let back: StoredExpiry = serde_json::from_str(&json).unwrap();
            assert_eq!(Expiry::from(back), expiry);
        }
        assert_eq!(
            serde_json::to_string(&Expiry::default().to_stored()).unwrap(),
            r#"{"inactivity":86400}"#
        );
    }
}
