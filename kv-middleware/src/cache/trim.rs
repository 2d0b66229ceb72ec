//! The namespace bound: at most so many entries and bytes of cached responses, the oldest
//! evicted first.
//!
//! Every entry the HTTP cache writes carries list metadata `{"stored_at": ms, "bytes": n}`
//! (its store time on the namespace's clock, and the size of its key and value). Each process
//! counts what it writes; after a *step* of writes (a twentieth of the bound, in entries or in
//! bytes — and after its first write, since it cannot know what others left) it starts one
//! background trim (single-flight, through the layer's flights): the trim lists the key prefix
//! a page at a time with metadata, and when the namespace holds more than the *low-water mark*
//! (the bound less two steps) it deletes the oldest entries until it holds no more than that.
//!
//! So between two trims of a process, it adds less than a step; with one or two processes
//! writing, the namespace never holds more than the bound (beyond the writes made while a
//! trim's listing runs: the bound is enforced within one trim's lag). With N > 2 processes
//! it can hold up to N − 2 more steps until the next trim. Entries without the metadata (not
//! the cache's, or written before it) are neither counted nor evicted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use kv_core::{KvError, ListOptions, Namespace};
use serde_json::Value;

use super::key;
use super::layer::{Config, State};
use super::stats::Counters;
use crate::shared::timeout::bounded;

/// The single-flight key of the trim: cache keys always hold `#`, this never does.
const TRIM_FLIGHT: &str = "trim";

/// The default entry bound: 10 000 entries.
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;

/// The default byte bound: 256 MiB of keys and values.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// How much the cache may keep in its namespace (`u64::MAX`: no bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bound {
    pub max_entries: u64,
    pub max_bytes: u64,
}

impl Default for Bound {
    fn default() -> Self {
        Bound {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

impl Bound {
    fn enabled(&self) -> bool {
        self.max_entries != u64::MAX || self.max_bytes != u64::MAX
    }

    /// How much one process writes between its trims.
    fn step(max: u64) -> u64 {
        (max / 20).max(1)
    }

    /// What a trim leaves at most: room for one step from each of two processes.
    fn low_water(max: u64) -> u64 {
        max.saturating_sub(2 * Self::step(max))
    }
}

/// What this process wrote since its last trim.
#[derive(Debug, Default)]
pub(crate) struct Trimmer {
    entries: AtomicU64,
    bytes: AtomicU64,
    /// Whether this process trimmed (or tried) at least once.
    started: AtomicBool,
}

impl Trimmer {
    fn due(&self, bound: &Bound) -> bool {
        !self.started.load(Ordering::Relaxed)
            || self.entries.load(Ordering::Relaxed) >= Bound::step(bound.max_entries)
            || self.bytes.load(Ordering::Relaxed) >= Bound::step(bound.max_bytes)
    }
}

/// The list metadata of an entry written at `stored_at_ms` whose key and value take `bytes`.
pub(crate) fn metadata(stored_at_ms: u64, bytes: usize) -> Value {
    serde_json::json!({ "stored_at": stored_at_ms, "bytes": bytes })
}

/// The list metadata of a stored response: [`metadata`] plus the moments (Unix milliseconds)
/// until which it is fresh, served stale while revalidating, and usable when the origin fails,
/// so that a listing (the console's cache view) shows each entry's state without reading it.
pub(crate) fn response_metadata(response: &super::entry::StoredResponse, bytes: usize) -> Value {
    let windows = &response.windows;
    let received = response
        .stored_at_ms
        .saturating_sub(windows.initial_age.saturating_mul(1000));
    let fresh_until = received.saturating_add(windows.fresh.saturating_mul(1000));
    let stale = |window: u64| {
        let window = if windows.no_stale { 0 } else { window };
        fresh_until.saturating_add(window.saturating_mul(1000))
    };
    serde_json::json!({
        "stored_at": response.stored_at_ms,
        "bytes": bytes,
        "fresh_until": fresh_until,
        "revalidate_until": stale(windows.stale_while_revalidate),
        "error_until": stale(windows.stale_if_error),
    })
}

/// An entry's store time and size from its list metadata; `None` for anything else.
fn parse_metadata(metadata: Option<&Value>) -> Option<(u64, u64)> {
    let object = metadata?.as_object()?;
    Some((
        object.get("stored_at")?.as_u64()?,
        object.get("bytes")?.as_u64()?,
    ))
}

/// Counts a write of `entries` entries taking `bytes`, and starts a background trim when one is
/// due and none runs in this process.
pub(crate) fn after_write(config: &Arc<Config>, state: &Arc<State>, entries: u64, bytes: u64) {
    let bound = config.bound;
    if !bound.enabled() {
        return;
    }
    let trimmer = &state.trimmer;
    trimmer.entries.fetch_add(entries, Ordering::Relaxed);
    trimmer.bytes.fetch_add(bytes, Ordering::Relaxed);
    if !trimmer.due(&bound) {
        return;
    }
    let Some(leader) = state.engine.flights.try_lead(TRIM_FLIGHT) else {
        return; // one runs; it looks again when it ends
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let (config, state) = (config.clone(), state.clone());
    runtime.spawn(async move {
        // Writes made while a trim runs count towards the next one, run at once if due.
        loop {
            state.trimmer.started.store(true, Ordering::Relaxed);
            state.trimmer.entries.store(0, Ordering::Relaxed);
            state.trimmer.bytes.store(0, Ordering::Relaxed);
            match trim(&config).await {
                Ok(evicted) => {
                    Counters::bump(&state.engine.counters.trims);
                    Counters::add(&state.engine.counters.evictions, evicted);
                    if evicted > 0 {
                        tracing::debug!(evicted, "cache trimmed to its bound");
                    }
                }
                Err(error) => {
                    // The next step of writes tries again; no retry loop against a failing store.
                    Counters::bump(&state.engine.counters.store_errors);
                    tracing::warn!(error = %error, "cache trim failed");
                    break;
                }
            }
            if !state.trimmer.due(&bound) {
                drop(leader);
                // A write that came between the check and the drop found the flight taken.
                if state.trimmer.due(&bound) {
                    after_write(&config, &state, 0, 0);
                }
                return;
            }
        }
        drop(leader);
    });
}

/// Why a trim stopped.
#[derive(Debug, thiserror::Error)]
enum TrimError {
    #[error(transparent)]
    Store(#[from] KvError),
    #[error("a store operation timed out")]
    Timeout,
}

/// One trim: lists the cache's entries and deletes the oldest down to the low-water mark.
/// Returns how many it deleted.
async fn trim(config: &Config) -> Result<u64, TrimError> {
    let ns: &Namespace = &config.store.namespace;
    let limits = ns.limits();
    let timeout = config.store.store_timeout;
    let mut options = ListOptions::new().limit(limits.max_list_limit.clamp(1, 1000));
    if !config.key.prefix.is_empty() {
        options = options.prefix(key::fit_prefix(&config.key.prefix, limits.max_key_bytes));
    }
    let mut entries: Vec<(u64, String, u64)> = Vec::new();
    let mut total_bytes: u64 = 0;
    loop {
        let page = bounded(timeout, ns.list(&options))
            .await
            .ok_or(TrimError::Timeout)??;
        for info in page.keys {
            if let Some((stored_at, bytes)) = parse_metadata(info.metadata.as_ref()) {
                total_bytes = total_bytes.saturating_add(bytes);
                entries.push((stored_at, info.name, bytes));
            }
        }
        match page.cursor {
            Some(cursor) if !page.list_complete => options.cursor = Some(cursor),
            _ => break,
        }
    }
    let bound = config.bound;
    let (keep_entries, keep_bytes) = (
        Bound::low_water(bound.max_entries),
        Bound::low_water(bound.max_bytes),
    );
    let (mut count, mut bytes) = (entries.len() as u64, total_bytes);
    if count <= keep_entries && bytes <= keep_bytes {
        return Ok(0);
    }
    // Oldest first; the name breaks ties so that processes agree on the order.
    entries.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut doomed = Vec::new();
    for (_, name, size) in entries {
        if count <= keep_entries && bytes <= keep_bytes {
            break;
        }
        doomed.push(name);
        count -= 1;
        bytes = bytes.saturating_sub(size);
    }
    let batch = limits.max_bulk_write.clamp(1, 1000);
    let mut deleted = 0;
    for chunk in doomed.chunks(batch) {
        bounded(timeout, ns.delete_many(chunk))
            .await
            .ok_or(TrimError::Timeout)??;
        deleted += chunk.len() as u64;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_low_water() {
        assert_eq!(Bound::step(10_000), 500);
        assert_eq!(Bound::low_water(10_000), 9_000);
        assert_eq!(Bound::step(10), 1);
        assert_eq!(Bound::low_water(10), 8);
        assert_eq!(Bound::low_water(1), 0);
        assert!(!Bound {
            max_entries: u64::MAX,
            max_bytes: u64::MAX
        }
        .enabled());
    }

    #[test]
    fn metadata_round_trip() {
        let value = metadata(1_700_000_000_123, 4096);
        assert_eq!(
            parse_metadata(Some(&value)),
            Some((1_700_000_000_123, 4096))
        );
        assert_eq!(parse_metadata(None), None);
        assert_eq!(
            parse_metadata(Some(&serde_json::json!({"stored_at": 1}))),
            None
        );
        assert_eq!(parse_metadata(Some(&serde_json::json!("x"))), None);
    }
}
