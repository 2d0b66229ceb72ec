//! The check: read the state (unless remembered), decide, write it back by compare-and-swap,
//! and re-read and decide again on a lost race; the refund of a multi-quota check that a later
//! quota denied.

use std::time::Duration;

use kv_core::{unix_secs, Bytes, NewEntry, PutOutcome, Version, WriteMode};

use super::memory::{update_known, Stored, Stripe};
use super::outcome::{few, Few, Outcome, QuotaOutcome, RateLimitError};
use super::stats::bump;
use super::{store_key, Inner};
use crate::rate_limit::gcra::{self, Decision, Nanos};

/// One quota's state during a check.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    pub(super) stored: Option<Stored>,
    /// Read from the store during this check (not remembered from an earlier one).
    pub(super) fresh: bool,
}

/// One quota's part of a check: its store key, its state and the decision on it.
pub(super) struct Work<'k> {
    pub(super) key: &'k str,
    pub(super) slot: Slot,
    pub(super) decision: Decision,
}

/// A set of quota indices (at most [`MAX_QUOTAS`](super::MAX_QUOTAS)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Set(u64);

impl Set {
    fn insert(&mut self, i: usize) {
        self.0 |= 1 << i;
    }

    fn contains(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn iter(self) -> impl Iterator<Item = usize> {
        (0..64).filter(move |&i| self.contains(i))
    }

    fn only(i: usize) -> Self {
        Set(1 << i)
    }
}

/// A write the store answered at once, or the entry, mode and TTL it declined to answer at
/// once.
pub(super) type AnsweredOrDeclined =
    Result<Result<PutOutcome, kv_core::KvError>, (NewEntry, WriteMode, u64)>;

/// Where a commit ended.
enum Commit {
    Done,
    /// A quota denied once its state was re-read after a lost race.
    Denied,
}

impl Inner {
    pub(super) async fn check(&self, key: &str, cost: u32) -> Result<Outcome, RateLimitError> {
        let hash = self.key_hash(key);
        let lock = self.stripe(hash);
        // Uncontended (the common case) without the acquire future.
        let mut guard = match lock.try_lock() {
            Some(guard) => guard,
            None => lock.lock().await,
        };
        let Stripe {
            known: remembered,
            keys,
        } = &mut *guard;
        let now = gcra::to_nanos(self.clock.now());

        // The store keys, in the stripe's buffers (no allocation once they are long enough,
        // no copy of them in the check's state).
        keys.resize_with(self.quotas.len(), String::new);
        for (out, q) in keys.iter_mut().zip(self.quotas.iter()) {
            store_key(out, &q.name, key);
        }
        // The state: remembered, else read (all missing quotas in one read). The remembered
        // entry is looked up once, and updated in place at the end.
        let known = remembered
            .get_mut(&hash)
            .filter(|k| *k.key == *key)
            .map(|k| &mut k.states);
        let mut work: Few<Work<'_>> = few(keys.len(), |i| Work {
            key: &keys[i],
            slot: Slot {
                stored: known.as_ref().and_then(|k| k.get(i).copied().flatten()),
                fresh: false,
            },
            decision: Decision::default(),
        });
        let mut unknown = Set::default();
        for (i, w) in work.iter().enumerate() {
            if w.slot.stored.is_none() {
                unknown.insert(i);
            }
        }
        self.refresh(&mut work, unknown).await?;

        self.decide_all(&mut work, now, cost, Set(u64::MAX));
        // A denial on remembered state is confirmed against the store: the state may have
        // been reset, or given back, since.
        let mut stale = Set::default();
        for (i, w) in work.iter().enumerate() {
            if !w.decision.allowed && !w.slot.fresh {
                stale.insert(i);
            }
        }
        if !stale.is_empty() {
            self.refresh(&mut work, stale).await?;
            self.decide_all(&mut work, now, cost, stale);
        }

        let allowed = work.iter().all(|w| w.decision.allowed);
        if allowed && cost > 0 {
            let mut written = Set::default();
            match self.commit(&mut work, now, cost, &mut written).await {
                Ok(Commit::Done) => {}
                Ok(Commit::Denied) => {
                    // Boxed: a rare path, kept out of the size of every check.
                    Box::pin(self.refund(&mut work, written, now, cost)).await;
                    match known {
                        Some(slots) => update_known(slots, &work),
                        None => self.remember(remembered, hash, key, &work, now),
                    }
                    return Ok(self.outcome(false, now, &work));
                }
                Err(error) => {
                    // Boxed: a rare path, kept out of the size of every check.
                    Box::pin(self.refund(&mut work, written, now, cost)).await;
                    if known.is_some() {
                        remembered.remove(&hash);
                    }
                    return Err(error);
                }
            }
        }
        match known {
            Some(slots) => update_known(slots, &work),
            None => self.remember(remembered, hash, key, &work, now),
        }
        Ok(self.outcome(allowed, now, &work))
    }

    /// Decides the quotas in `which` on their current state.
    fn decide_all(&self, work: &mut [Work<'_>], now: Nanos, cost: u32, which: Set) {
        for (i, (q, w)) in self.quotas.iter().zip(work).enumerate() {
            if which.contains(i) {
                w.decision = gcra::decide(w.slot.stored.map(|s| s.tat), now, &q.quota, cost);
            }
        }
    }

    /// Writes every quota's new TAT, re-reading and re-deciding one whose write lost a race.
    /// `written` collects the quotas spent so far, for a refund when a later one denies.
    async fn commit(
        &self,
        work: &mut [Work<'_>],
        now: Nanos,
        cost: u32,
        written: &mut Set,
    ) -> Result<Commit, RateLimitError> {
        let mut attempts = 0;
        for i in 0..work.len() {
            loop {
                if !work[i].decision.allowed {
                    return Ok(Commit::Denied);
                }
                attempts += 1;
                let tat = work[i].decision.tat;
                let w = &work[i];
                match self.write(w.key, w.slot.stored, tat, now).await? {
                    PutOutcome::Written(version) => {
                        work[i].slot = Slot {
                            stored: Some(Stored { tat, version }),
                            fresh: true,
                        };
                        written.insert(i);
                        break;
                    }
                    PutOutcome::ConditionFailed => {
                        bump(&self.counters.conflicts);
                        if attempts >= self.max_attempts {
                            return Err(RateLimitError::Contention { attempts });
                        }
                        // Boxed: a lost race is rare, kept out of the size of every check.
                        Box::pin(self.refresh(work, Set::only(i))).await?;
                        self.decide_all(work, now, cost, Set::only(i));
                    }
                }
            }
        }
        Ok(Commit::Done)
    }

    /// Gives back `cost` units to each written quota (after a later quota denied, or failed).
    /// Best effort: a refund that keeps losing races, or fails, is logged and dropped; the
    /// error is on the strict side (a unit spent that was not used).
    async fn refund(&self, work: &mut [Work<'_>], written: Set, now: Nanos, cost: u32) {
        for i in written.iter() {
            let amount = self.quotas[i]
                .quota
                .interval_nanos()
                .saturating_mul(u64::from(cost));
            let mut refunded = false;
            for _ in 0..self.max_attempts {
                let Some(current) = work[i].slot.stored else {
                    refunded = true; // gone: nothing to give back
                    break;
                };
                let tat = current.tat.saturating_sub(amount).max(now.min(current.tat));
                match self.write(work[i].key, Some(current), tat, now).await {
                    Ok(PutOutcome::Written(version)) => {
                        work[i].slot.stored = Some(Stored { tat, version });
                        refunded = true;
                        break;
                    }
                    Ok(PutOutcome::ConditionFailed) => {
                        if self.refresh(work, Set::only(i)).await.is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            if refunded {
                bump(&self.counters.refunds);
            } else {
                tracing::warn!(
                    key = %crate::rate_limit::key::loggable(work[i].key),
                    "rate limit: could not give back a unit spent by a denied request"
                );
            }
        }
    }

    /// Reads the quotas in `which` from the store (one round trip).
    async fn refresh(&self, work: &mut [Work<'_>], which: Set) -> Result<(), RateLimitError> {
        if which.is_empty() {
            return Ok(());
        }
        bump(&self.counters.reads);
        if which.0.is_power_of_two() {
            let i = which.0.trailing_zeros() as usize;
            let w = &mut work[i];
            let entry = self.namespace.get_entry(w.key).await?;
            w.slot = Slot {
                stored: entry.map(|e| parse_entry(w.key, &e.value, e.version)),
                fresh: true,
            };
            return Ok(());
        }
        let wanted: Vec<&str> = which.iter().map(|i| work[i].key).collect();
        let entries = self.namespace.get_many(&wanted).await?;
        for (i, entry) in which.iter().zip(entries) {
            let w = &mut work[i];
            w.slot = Slot {
                stored: entry.map(|e| parse_entry(w.key, &e.value, e.version)),
                fresh: true,
            };
        }
        Ok(())
    }

    /// Writes `tat` over the state `expected` (by version; only-if-absent when `None`), or
    /// unconditionally when approximate. The entry lives as long as the state matters, and at
    /// least the store's minimum TTL.
    async fn write(
        &self,
        key: &str,
        expected: Option<Stored>,
        tat: Nanos,
        now: Nanos,
    ) -> Result<PutOutcome, RateLimitError> {
        match self.write_now(key, expected, tat, now) {
            Ok(answered) => Ok(answered?),
            Err((mut entry, mode, ttl)) => {
                // Awaited: the TTL counts from the clock as the write is sent.
                entry.expiration = Some(unix_secs(self.clock.now()).saturating_add(ttl));
                Ok(self.namespace.put_entry(key, entry, mode).await?)
            }
        }
    }

    /// The write of [`write`](Self::write) for a store that answers at once: `Ok(answer)`, or
    /// `Err` giving back the entry, its mode and its TTL when the store declines (nothing was
    /// written then). A key or value over the namespace's limits is an answered error.
    pub(super) fn write_now(
        &self,
        key: &str,
        expected: Option<Stored>,
        tat: Nanos,
        now: Nanos,
    ) -> AnsweredOrDeclined {
        bump(&self.counters.writes);
        let mode = match (self.exact, expected) {
            (false, _) => WriteMode::Overwrite,
            (true, Some(stored)) => WriteMode::OnlyIfVersion(stored.version),
            (true, None) => WriteMode::OnlyIfAbsent,
        };
        // The TTL counts from the store's whole second, so one more second covers the part
        // of the current second already gone.
        let matters = gcra::ceil_secs(Duration::from_nanos(tat.saturating_sub(now)));
        let ttl = matters.saturating_add(1).max(self.min_ttl_secs);
        // A store that answers at once (the memory backend) does so here, without the boxed
        // future of its asynchronous `put`; no time has passed since `now` for it, so the TTL
        // counts from there. The TTL is never under the store's minimum (a remote store
        // refuses a TTL under its minimum, so it must not start earlier than the write is
        // sent, which `write` sees to when the store declines).
        let entry = NewEntry {
            value: Bytes::copy_from_slice(itoa::Buffer::new().format(tat).as_bytes()),
            metadata: None,
            expiration: Some((now / 1_000_000_000).saturating_add(ttl)),
        };
        self.namespace
            .put_entry_now(key, entry, mode)
            .map_err(|entry| (entry, mode, ttl))
    }

    /// The outcome of a check. For a denied request, the quotas that would have admitted it
    /// report their state as it stands (nothing was spent from them).
    fn outcome(&self, allowed: bool, now: Nanos, work: &[Work<'_>]) -> Outcome {
        let quotas = few(work.len(), |i| {
            let (q, w) = (&self.quotas[i], &work[i]);
            let mut decision = w.decision;
            if !allowed && decision.allowed {
                let standing = gcra::decide(w.slot.stored.map(|s| s.tat), now, &q.quota, 0);
                decision.remaining = standing.remaining;
                decision.reset = standing.reset;
                decision.tat = standing.tat;
            }
            QuotaOutcome {
                name: q.name.clone(),
                quota: q.quota,
                decision,
            }
        });
        Outcome {
            allowed,
            checked_at: now,
            quotas,
        }
    }
}

fn parse_entry(key: &str, value: &[u8], version: Version) -> Stored {
    let tat = std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<Nanos>().ok());
    match tat {
        Some(tat) => Stored { tat, version },
        None => {
            tracing::warn!(
                key = %crate::rate_limit::key::loggable(key),
                "rate limit: unreadable state, treating it as a full quota"
            );
            Stored { tat: 0, version }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_values_count_as_a_full_quota() {
        let v = Version::from_raw(7);
        assert_eq!(
            parse_entry("k", b"123", v),
            Stored {
                tat: 123,
                version: v
            }
        );
        assert_eq!(parse_entry("k", b"x", v), Stored { tat: 0, version: v });
        assert_eq!(parse_entry("k", &[0xff], v), Stored { tat: 0, version: v });
    }
}
