//! What several layers share, one copy each: crate-private, so the layers can change it
//! together without a public promise.

#![allow(dead_code)] // each layer's feature uses part of it

#[cfg(any(feature = "rate_limit", feature = "flags"))]
pub(crate) mod cidr;
#[cfg(any(feature = "session", feature = "cache"))]
pub(crate) mod hex;
pub(crate) mod text;
#[macro_use]
pub(crate) mod counters;
#[cfg(any(feature = "flags", feature = "config"))]
pub(crate) mod refresh;
#[cfg(any(feature = "origin", feature = "config", feature = "flags"))]
pub(crate) mod response_future;
#[cfg(feature = "cache")]
pub(crate) mod singleflight;
#[cfg(any(feature = "flags", feature = "config"))]
pub(crate) mod snapshot;
#[cfg(any(feature = "cache", feature = "rate_limit"))]
pub(crate) mod timeout;
