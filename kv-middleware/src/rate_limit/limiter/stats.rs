//! The limiter's counters ([`RateLimitStats`]), mirrored to the `metrics` facade.

/// Counters of a limiter (and of the layers using it), since it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RateLimitStats {
    /// Checks that admitted the request.
    pub allowed: u64,
    /// Checks that denied it.
    pub denied: u64,
    /// Checks that failed on a store error.
    pub store_errors: u64,
    /// Checks that timed out.
    pub timeouts: u64,
    /// Checks that gave up after losing every write race ([`RateLimitError::Contention`](super::RateLimitError::Contention)).
    pub contention: u64,
    /// Conditional writes that found the state changed by another writer (each is retried).
    pub conflicts: u64,
    /// Store reads (a multi-quota read is one).
    pub reads: u64,
    /// Store writes attempted.
    pub writes: u64,
    /// Units given back to a quota because another quota of the same check denied under a
    /// race (see the module docs).
    pub refunds: u64,
    /// Requests a layer let through without a check (allow-list).
    pub bypassed: u64,
    /// Requests a layer found no key in.
    pub missing_keys: u64,
    /// Requests a layer let through because the check failed and the policy is fail-open.
    pub failed_open: u64,
    /// Requests a layer answered 503 because the check failed and the policy is fail-closed.
    pub failed_closed: u64,
}

crate::shared::counters::named_counters! {
    #[derive(Debug)]
    pub(crate) struct Counters, "kv_rate_limit" {
        pub(super) allowed,
        pub(super) denied,
        pub(super) store_errors,
        pub(super) timeouts,
        pub(super) contention,
        pub(super) conflicts,
        pub(super) reads,
        pub(super) writes,
        pub(super) refunds,
        pub(crate) bypassed,
        pub(crate) missing_keys,
        pub(crate) failed_open,
        pub(crate) failed_closed,
    }
}

pub(crate) fn bump(counter: &crate::shared::counters::Counter) {
    counter.bump();
}

impl Counters {
    pub(super) fn snapshot(&self) -> RateLimitStats {
        let get = |c: &crate::shared::counters::Counter| c.get();
        RateLimitStats {
            allowed: get(&self.allowed),
            denied: get(&self.denied),
            store_errors: get(&self.store_errors),
            timeouts: get(&self.timeouts),
            contention: get(&self.contention),
            conflicts: get(&self.conflicts),
            reads: get(&self.reads),
            writes: get(&self.writes),
            refunds: get(&self.refunds),
            bypassed: get(&self.bypassed),
            missing_keys: get(&self.missing_keys),
            failed_open: get(&self.failed_open),
            failed_closed: get(&self.failed_closed),
        }
    }
}
