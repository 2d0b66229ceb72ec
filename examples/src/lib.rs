//! Runnable example programs of the toolkit; each binary's source is its documentation.
//!
//! - `kv-quickstart`: writes, reads, lists, counts and expires keys on the default file store.
//! - `kv-sessions`: login, greeting and logout with the sessions layer, on any store URL.
//! - `kv-rate-limit`: a strict login limit and a lenient API limit with the draft headers.
//! - `kv-swr`: a slow origin behind the stale-while-revalidate cache layer.
//! - `kv-flags-config`: a page that changes with a flag and limits that come from config.
