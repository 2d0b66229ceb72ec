//! The judge step: what a stored entry may be used for now.

use super::Engine;
use crate::cache::entry::{Freshness, StoredResponse, StoredValue};
use crate::cache::stats::Counters;

/// A stored entry the engine can judge by its age.
pub(crate) trait Judged {
    /// Where the entry stands at `now_ms`.
    fn freshness(&self, now_ms: u64) -> Freshness;
}

impl Judged for StoredResponse {
    fn freshness(&self, now_ms: u64) -> Freshness {
        StoredResponse::freshness(self, now_ms)
    }
}

impl Judged for StoredValue {
    fn freshness(&self, now_ms: u64) -> Freshness {
        StoredValue::freshness(self, now_ms)
    }
}

/// What to do with a stored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Serve it: it is fresh (counted as a hit).
    Fresh,
    /// Serve it at once and refresh it in the background (counted as a stale hit).
    StaleWhileRevalidate,
    /// Serve it: it is in its stale-if-error window and the key backs off after failures, so
    /// no fetch is made (counted as served stale-if-error).
    StaleIfErrorBackingOff,
    /// Fetch; the entry may still stand in if the fetch fails (nothing counted yet).
    Fetch,
}

impl<O> Engine<O> {
    /// Judges `entry`, stored under `key`, at `now_ms`, and counts the hits it decides.
    pub fn judge(&self, entry: &impl Judged, key: &str, now_ms: u64) -> Verdict {
        match entry.freshness(now_ms) {
            Freshness::Fresh => {
                Counters::bump(&self.counters.hits);
                Verdict::Fresh
            }
            Freshness::StaleWhileRevalidate => {
                Counters::bump(&self.counters.stale_hits);
                Verdict::StaleWhileRevalidate
            }
            Freshness::StaleIfError if self.backoff.is_paused(key, now_ms) => {
                Counters::bump(&self.counters.stale_if_error);
                Verdict::StaleIfErrorBackingOff
            }
            _ => Verdict::Fetch,
        }
    }
}
