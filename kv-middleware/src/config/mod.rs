//! Runtime configuration: one typed, versioned document in a namespace (feature `config`).
//!
//! [`Config<T>`] loads the document at start, validates it (serde, plus an optional function of
//! yours), and keeps it in memory; reads ([`Config::get`]) are lock-free and never touch the
//! store. A background task (every 30 s by default) and [`Config::refresh`] pick up changes
//! made by other processes; a document that does not decode or validate is refused, logged,
//! and the last good value stays in use. [`ConfigLayer`] puts the handle into every request (an
//! axum extractor with the `axum` feature), and [`ApiKeyLayer`] admits requests whose API key
//! the config lists: the Workers KV pattern of keeping allowed keys in KV.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use kv_middleware::config::Config;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
//! struct Limits {
//!     max_items: u32,
//!     api_keys: Vec<String>,
//! }
//!
//! let store = kv_backends::open("memory:").await?;
//! let config = Config::builder(store.namespace("CONFIG").await?, "limits")
//!     .with_default_value(Limits { max_items: 10, api_keys: vec![] })
//!     .with_validator(|l: &Limits| {
//!         if l.max_items == 0 { Err("max_items must be at least 1".into()) } else { Ok(()) }
//!     })
//!     .load()
//!     .await?;
//! assert_eq!(config.get().max_items, 10); // the default: nothing stored yet
//!
//! // Updates are compare-and-swap read-modify-writes, each a new version.
//! let v1 = config.update(|l| l.max_items = 50).await?;
//! let v2 = config.update(|l| l.max_items = 0).await; // refused by the validation
//! assert!(v2.is_err());
//! config.update(|l| l.max_items = 100).await?;
//! assert_eq!(config.get().max_items, 100);
//!
//! // Roll back to a kept version: written again as a new version.
//! config.rollback(v1).await?;
//! assert_eq!(config.get().max_items, 50);
//! assert_eq!(config.versions().await?.len(), 3);
//! # Ok(()) }
//! ```
//!
//! # Stored form
//!
//! - `<key>`: the current document, as plain JSON of `T`, so an operator can read and edit it
//!   with the `kv` tool (`kv --namespace CONFIG key put limits '{"max_items":5,...}'`). Writes
//!   through this API add metadata `{"version": N, "updated_at": <unix seconds>}`.
//! - `<key>:versions:<N, 20 digits>`: each version written through this API, the last 10 by
//!   default ([`ConfigBuilder::max_versions`]), for [`Config::versions`],
//!   [`Config::version_value`] and [`Config::rollback`]. A document written by other means
//!   (the `kv` tool) is validated and used like any other, but is not a numbered version
//!   ([`Config::version`] is `None`) and cannot be rolled back to.
//!
//! A refresh is one read of `<key>`; an unchanged entry version skips decoding.
//!
//! # Updates and concurrent writers
//!
//! [`Config::update`] reads the document, applies your change, validates the result and writes
//! it with compare-and-swap on the version it read; if another writer got in first, it reads
//! again and re-applies the change (up to 16 times), so no update is lost.
//! [`Config::set_if_version`] instead fails with [`ConfigError::Conflict`] when the document is
//! no longer at the version the caller saw (an admin form). The version record and pruning
//! follow the write; a write is visible at once in the writing process and in others within
//! their refresh interval. Without compare-and-swap in the store (see
//! [`Capabilities`](kv_core::Capabilities)) writes are unconditional: the last writer wins.
//!
//! # Store failures
//!
//! Reads never fail: they serve the value in use. A failed or refused refresh is counted in
//! [`Config::stats`] (with the last error), logged with `tracing` (at `warn` when the error is
//! new, at `debug` while it repeats), and retried at the next interval. At start, a store
//! error fails [`ConfigBuilder::load`]; a missing or invalid document falls back to the
//! default value when one is given.

mod api_key;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod handle;
mod layer;

pub use self::api_key::{ApiKeyFuture, ApiKeyLayer, ApiKeyService, DEFAULT_API_KEY_HEADER};

/// Renamed [`ApiKeyService`] (every service of the crate is `...Service`).
#[deprecated(note = "renamed `ApiKeyService`")]
#[doc(hidden)]
pub type ApiKey<S, T> = ApiKeyService<S, T>;
pub use self::error::ConfigError;
#[cfg(feature = "axum")]
pub use self::extract::MissingConfigLayer;
pub use self::handle::{
    Config, ConfigBuilder, ConfigRefresh, ConfigStats, ConfigVersion, DEFAULT_MAX_VERSIONS,
    DEFAULT_REFRESH_INTERVAL, VERSIONS_INFIX,
};
pub use self::layer::{ConfigLayer, ConfigService};

/// Renamed [`ConfigRefresh`] (`flags` has its own refresh outcome, [`FlagsRefresh`](crate::flags::FlagsRefresh)).
#[deprecated(note = "renamed `ConfigRefresh`")]
#[doc(hidden)]
pub type RefreshOutcome = ConfigRefresh;
