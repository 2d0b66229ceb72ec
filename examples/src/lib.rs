//! Runnable example programs of the toolkit; each binary's source is its documentation.
//!
//! - `kv-quickstart`: writes, reads, lists, counts and expires keys on the default file store.
//! - `kv-sessions`: login, greeting and logout with the sessions layer, on any store URL.
