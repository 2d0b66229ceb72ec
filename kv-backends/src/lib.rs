//! Backends for the [`kv_core`] store contract, one module and one cargo feature each:
//!
//! - [`memory`] (feature `memory`): concurrent, ordered, in-process; for tests and caches.
//! - [`file`](mod@file) (feature `file`): durable on one local file (redb); the embedded default.
//!
//! [`open`] turns a [`StoreUrl`](kv_core::StoreUrl) string into a [`Store`](kv_core::Store).
#![warn(missing_docs)]

#[cfg(feature = "file")]
pub mod file;
#[cfg(feature = "memory")]
pub mod memory;
mod open;
mod sweeper;

pub use crate::open::{open, open_url, OpenOptions};

/// The README's examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
