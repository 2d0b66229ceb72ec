//! Runnable example programs of the toolkit; each binary's source is its documentation.
//!
//! - `kv-quickstart`: writes, reads, lists, counts and expires keys on the default file store.
