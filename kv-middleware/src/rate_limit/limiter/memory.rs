//! What a limiter remembers in this process: per key, the last stored state and version of
//! each quota, in bounded maps under the striped lock that serializes one key's checks.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use kv_core::Version;

use super::check::Work;
use super::outcome::{few, Few};
use super::Inner;
use crate::rate_limit::gcra::Nanos;

pub(super) const STRIPES: usize = 256;

#[derive(Debug, Default)]
pub(super) struct Stripe {
    /// Per key, per quota: the last stored TAT and version known, under the key's hash (of
    /// two keys with the same hash, the one remembered last takes the other's place). At most
    /// `per_stripe` keys.
    pub(super) known: KnownStates,
    /// The store keys of the check under way, one per quota: buffers reused from check to
    /// check.
    pub(super) keys: Vec<String>,
}

pub(super) type KnownStates = HashMap<u64, Known, BuildHasherDefault<Premixed>>;

/// A remembered key and its states.
#[derive(Debug)]
pub(super) struct Known {
    pub(super) key: Box<str>,
    pub(super) states: Few<Option<Stored>>,
}

/// The hasher of the stripes' maps, whose keys are [`Inner::key_hash`]es already.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Premixed(u64);

impl Hasher for Premixed {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A stored state: the TAT (0 when the value was unreadable) and the entry's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stored {
    pub(super) tat: Nanos,
    pub(super) version: Version,
}

/// The stripe of a key's hash: bits the stripe's map does not index by (it takes the low ones
/// and the top seven).
pub(super) fn stripe_index(hash: u64) -> usize {
    (hash >> 32) as usize % STRIPES
}

impl Inner {
    /// Remembers the states of a key not remembered yet.
    pub(super) fn remember(
        &self,
        known: &mut KnownStates,
        hash: u64,
        key: &str,
        work: &[Work<'_>],
        now: Nanos,
    ) {
        if self.per_stripe == 0 {
            return;
        }
        if work.iter().all(|w| w.slot.stored.is_none()) {
            return;
        }
        if known.len() >= self.per_stripe {
            // Drop keys whose state no longer matters, else any few: an eighth of the stripe,
            // so that a full stripe whose states all matter is not scanned on every new key.
            known.retain(|_, k| k.states.iter().flatten().any(|s| s.tat > now));
            if known.len() >= self.per_stripe {
                let mut excess = known.len() + 1 - (self.per_stripe - self.per_stripe / 8);
                known.retain(|_, _| {
                    let keep = excess == 0;
                    excess = excess.saturating_sub(1);
                    keep
                });
            }
        }
        let states = few(work.len(), |i| work[i].slot.stored);
        known.insert(
            hash,
            Known {
                key: key.into(),
                states,
            },
        );
    }
}

/// Updates the remembered states of a key.
pub(super) fn update_known(known: &mut [Option<Stored>], work: &[Work<'_>]) {
    for (known, w) in known.iter_mut().zip(work) {
        *known = w.slot.stored;
    }
}
