//! The key-value store contract that every backend and every middleware of this toolkit uses.
//!
//! - [`NamespaceStore`] is the object-safe async trait a backend implements for one namespace, and
//!   [`Backend`] hands namespaces out by name.
//! - [`Store`] and [`Namespace`] are the cheap-to-clone handles users hold: text, bytes and JSON
//!   (serde) values, metadata, expiry, compare-and-swap through [`WriteMode`], paging and
//!   streaming listings, and bulk operations. Every request is checked against the [`Limits`]
//!   (Workers KV's by default) before any I/O, and each violation is its own [`LimitError`].
//! - Every store call made through a [`Namespace`] runs in a `tracing` span named
//!   [`STORE_SPAN_NAME`] (`kv.store`, `DEBUG` level) with the fields `backend`, `namespace`,
//!   `operation`, `outcome`, `duration_us` and, on failure, `error`.
//! - Time comes from a [`Clock`]: the system clock, or a [`ManualClock`] in tests.
//! - [`StoreUrl`] parses the one string that selects a backend.
//! - Coordination patterns on any backend: a [`lock::DistributedLock`] with fencing tokens
//!   (on compare-and-swap) and an [`event_log::EventLog`] with time-ordered keys and snapshots.
//! - [`Backoff`]: exponential backoff with jitter, for the lock's waits and the HTTP
//!   backend's retries.
//! - With the `conformance` feature, `conformance` is the test suite that defines the
//!   contract; every backend runs all of it through `conformance_tests!`.
//! - With the `testing` feature, `testing` has a store wrapper that injects faults, and a
//!   log capture for tests of what is logged.
//!
//! ```
//! # async fn example(store: kv_core::Store) -> kv_core::Result<()> {
//! use kv_core::{PutOptions, PutOutcome, WriteMode};
//!
//! let counters = store.namespace("COUNTERS").await?;
//! // Compare-and-swap: increment without losing a concurrent update.
//! loop {
//!     let (count, version) = match counters.get_json_entry::<u64>("hits").await? {
//!         Some((count, entry)) => (count, Some(entry.version)),
//!         None => (0, None),
//!     };
//!     let mode = match version {
//!         Some(version) => WriteMode::OnlyIfVersion(version),
//!         None => WriteMode::OnlyIfAbsent,
//!     };
//!     let options = PutOptions::new().mode(mode);
//!     if let PutOutcome::Written(_) = counters.put_json_with("hits", &(count + 1), options).await? {
//!         break;
//!     }
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod backoff;
mod clock;
mod cursor;
mod error;
mod limits;
mod namespace;
mod span;
mod store;
mod timeout;
mod types;
mod url;

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod decorator;
pub mod event_log;
pub mod lock;
#[cfg(feature = "testing")]
pub mod testing;

pub use crate::backoff::Backoff;
pub use crate::clock::{is_expired, unix_secs, Clock, ManualClock, SharedClock, SystemClock};
pub use crate::cursor::{collect_page, decode_cursor, encode_cursor, list_start};
pub use crate::error::{BoxError, KvError, LimitError, Message, Result};
pub use crate::limits::Limits;
pub use crate::namespace::{
    check_namespace_name, new_namespace_id, Namespace, Store, MAX_NAMESPACE_NAME_BYTES,
};
pub use crate::span::STORE_SPAN_NAME;
pub use crate::store::{Backend, NamespaceStore};
pub use crate::timeout::TimeoutStore;
pub use crate::types::{
    BulkPut, Capabilities, DeleteOutcome, Entry, Expiry, KeyInfo, ListOptions, ListPage,
    NamespaceInfo, NewEntry, ParseVersionError, PutOptions, PutOutcome, Version, WriteMode,
};
pub use crate::url::{redact_store_url, StoreUrl, DEFAULT_STORE_URL, STORE_URL_ENV};

/// Re-exported for implementing [`NamespaceStore`] and [`Backend`].
pub use async_trait::async_trait;
/// Re-exported so backends and users name the same `Bytes`.
pub use bytes::Bytes;
