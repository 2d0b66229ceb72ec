//! The check without a future, for a store that answers at once (the memory backend), in its
//! common case: a key this process remembers, one quota, a request admitted by one conditional
//! write. Anything else (a key not remembered, a denial to confirm with a read, several quotas,
//! a cost of 0, a busy stripe, a lost race, a store that declines to answer at once) is left to
//! the asynchronous check, with nothing written: the layer then boxes that check's future, which
//! this path spares (see BENCHMARKS.md).

use kv_core::PutOutcome;

use super::memory::{Stored, Stripe};
use super::outcome::{few, Outcome, QuotaOutcome, RateLimitError};
use super::stats::bump;
use super::{store_key, Inner};
use crate::rate_limit::gcra;

impl Inner {
    /// `Some` with the check's result when it could be decided without waiting; `None` when
    /// the asynchronous check must decide (nothing was written then).
    pub(super) fn check_at_once(
        &self,
        key: &str,
        cost: u32,
    ) -> Option<Result<Outcome, RateLimitError>> {
        if self.quotas.len() != 1 || cost == 0 {
            return None;
        }
        let hash = self.key_hash(key);
        let mut guard = self.stripe(hash).try_lock()?;
        let Stripe {
            known: remembered,
            keys,
        } = &mut *guard;
        let stored = remembered
            .get(&hash)
            .filter(|k| *k.key == *key)
            .and_then(|k| k.states.first().copied().flatten())?;
        let now = gcra::to_nanos(self.clock.now());
        let quota = &self.quotas[0];
        let decision = gcra::decide(Some(stored.tat), now, &quota.quota, cost);
        if !decision.allowed {
            // A denial on remembered state is confirmed against the store first.
            return None;
        }
        keys.resize_with(1, String::new);
        store_key(&mut keys[0], &quota.name, key);
        let written = match self.write_now(&keys[0], Some(stored), decision.tat, now) {
            Ok(Ok(PutOutcome::Written(version))) => version,
            Err(_declined) => return None,
            Ok(Ok(PutOutcome::ConditionFailed)) => {
                // Another process changed the state: forgotten, so that the asynchronous
                // check reads it before it writes.
                bump(&self.counters.conflicts);
                remembered.remove(&hash);
                return None;
            }
            Ok(Err(error)) => {
                remembered.remove(&hash);
                return Some(Err(error.into()));
            }
        };
        if let Some(known) = remembered.get_mut(&hash) {
            known.states[0] = Some(Stored {
                tat: decision.tat,
                version: written,
            });
        }
        Some(Ok(Outcome {
            allowed: true,
            checked_at: now,
            quotas: few(1, |_| QuotaOutcome {
                name: quota.name.clone(),
                quota: quota.quota,
                decision,
            }),
        }))
    }
}
