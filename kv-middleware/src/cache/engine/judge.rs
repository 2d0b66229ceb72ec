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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;

    #[test]
    fn verdicts_follow_the_windows_and_the_backoff() {
        let engine = Engine::<()>::default();
        // Fresh for 10 s, then 20 s of stale-while-revalidate and 60 s of stale-if-error.
        let entry = StoredValue {
            stored_at_ms: 1_000,
            fresh_ms: 10_000,
            swr_ms: 20_000,
            sie_ms: 60_000,
            value: Bytes::from_static(b"v"),
        };
        assert_eq!(engine.judge(&entry, "k", 1_000), Verdict::Fresh);
        assert_eq!(
            engine.judge(&entry, "k", 11_000),
            Verdict::StaleWhileRevalidate
        );
        assert_eq!(engine.judge(&entry, "k", 41_000), Verdict::Fetch);
        let second = Duration::from_secs(1);
        engine.backoff.failed("k", 41_000, second, second);
        assert_eq!(
            engine.judge(&entry, "k", 41_000),
            Verdict::StaleIfErrorBackingOff
        );
        assert_eq!(engine.judge(&entry, "k", 70_000), Verdict::Fetch);
        assert_eq!(engine.judge(&entry, "k", 61_000), Verdict::Fetch);
        let stats = engine.counters.snapshot();
        assert_eq!(
            (stats.hits, stats.stale_hits, stats.stale_if_error),
            (1, 1, 1)
        );
    }
}
