//! [`Counter`]: one counter of a layer's `stats()`, mirrored to the `metrics` facade.

use std::sync::atomic::{AtomicU64, Ordering};

/// A counter of a layer's `stats()`. With the `metrics` feature every increment is also given
/// to the `metrics` facade's recorder under the counter's name (see the crate docs' table), so
/// whatever exporter the application installed sees the same numbers as `stats()`.
#[derive(Debug)]
pub(crate) struct Counter {
    value: AtomicU64,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    name: &'static str,
}

impl Counter {
    /// A counter at 0, mirrored under `name`.
    pub(crate) const fn new(name: &'static str) -> Self {
        Counter {
            value: AtomicU64::new(0),
            name,
        }
    }

    /// Adds `n`.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!(self.name).increment(n);
    }

    /// Adds 1.
    #[inline]
    pub(crate) fn bump(&self) {
        self.add(1);
    }

    /// The count so far.
    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    /// The name it is mirrored under.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }
}

/// A struct of [`Counter`]s, each mirrored as `{prefix}_{field}_total`.
#[cfg(any(
    feature = "session",
    feature = "rate_limit",
    feature = "cache",
    feature = "origin"
))]
macro_rules! named_counters {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident, $prefix:literal {
            $($fvis:vis $field:ident),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $($fvis $field: $crate::shared::counters::Counter,)*
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    $($field: $crate::shared::counters::Counter::new(
                        concat!($prefix, "_", stringify!($field), "_total")
                    ),)*
                }
            }
        }
    };
}
#[cfg(any(
    feature = "session",
    feature = "rate_limit",
    feature = "cache",
    feature = "origin"
))]
pub(crate) use named_counters;
