//! Backends for the [`kv_core`] store contract, one module and one cargo feature each:
//!
//! - [`memory`] (feature `memory`): concurrent, ordered, in-process; for tests and caches.
//! - [`file`](mod@file) (feature `file`): durable on one local file (redb); the embedded default.
//! - `http` (feature `http`): a client of kv-server, Cloudflare Workers KV and Miniflare over
//!   the KV REST API.
//! - [`redis`](mod@redis) (feature `redis`): the scale-out store several processes share.
//!
//! and one decorator:
//!
//! - `read_cache` (feature `read-cache`): a read-through cache in front of any backend, for
//!   edge-like read latency over a remote store.
//!
//! [`open`] turns a [`StoreUrl`](kv_core::StoreUrl) string into a [`Store`](kv_core::Store).
#![warn(missing_docs)]

#[cfg(feature = "file")]
pub mod file;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "memory")]
pub mod memory;
mod open;
#[cfg(feature = "read-cache")]
pub mod read_cache;
#[cfg(feature = "redis")]
pub mod redis;
mod sweeper;

#[cfg(feature = "http")]
pub use crate::http::{HttpBackend, HttpBackendBuilder};
pub use crate::open::{open, open_url, OpenOptions};
#[cfg(feature = "read-cache")]
pub use crate::read_cache::{ReadCache, ReadCacheBuilder, ReadCacheStats};

/// The README's examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
