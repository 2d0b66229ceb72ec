//! The generic cell rate algorithm as one pure function: [`decide`].
//!
//! A key's whole state is one instant, the *theoretical arrival time* (TAT): when the key's
//! quota would be fully refilled if nothing more arrived. With `τ` the emission interval (the
//! period divided by the count) and `b` the burst, a request of cost `c` arriving at `now` is
//! admitted when
//!
//! ```text
//! tat' = max(tat, now) + c·τ        and        tat' − now ≤ b·τ
//! ```
//!
//! and then `tat'` becomes the new state. A denied request changes nothing. An absent state and
//! a TAT at or before `now` mean the same thing (a full quota), which is why the stored entry
//! may expire once its TAT has passed.

use std::time::Duration;

use super::quota::Quota;

/// Time in nanoseconds since the Unix epoch, as the limiter stores it.
pub type Nanos = u64;

/// What [`decide`] concluded for one quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// The TAT to store when admitted (nanoseconds since the epoch). When denied, the TAT the
    /// decision was taken on (`max(stored, now)`), which must not be written.
    pub tat: Nanos,
    /// Units still available right after this decision (after spending the cost when admitted),
    /// rounded down.
    pub remaining: u64,
    /// How long until the quota is full again (the TAT minus now), if nothing more arrives.
    pub reset: Duration,
    /// For a denied request, how long until the same request would be admitted; `None` when it
    /// never can be, because its cost is larger than the burst. Always `None` when admitted.
    pub retry_after: Option<Duration>,
}

/// Decides a request of `cost` units at `now`, given the key's stored TAT (`None` when the key
/// has no state), for `quota`.
///
/// A cost of 0 asks without spending: it is admitted (unless the stored state is beyond what
/// the quota allows, as after the quota was lowered) and reports the current remaining units.
///
/// ```
/// use kv_middleware::rate_limit::{gcra, Quota};
/// use std::time::Duration;
///
/// let quota = Quota::per_second(2)?; // τ = 500 ms, burst 2
/// let now = 1_000_000_000_000;
/// let first = gcra::decide(None, now, &quota, 1);
/// assert!(first.allowed);
/// assert_eq!((first.remaining, first.reset), (1, Duration::from_millis(500)));
/// let second = gcra::decide(Some(first.tat), now, &quota, 1);
/// assert_eq!((second.allowed, second.remaining), (true, 0));
/// let third = gcra::decide(Some(second.tat), now, &quota, 1);
/// assert!(!third.allowed);
/// assert_eq!(third.retry_after, Some(Duration::from_millis(500)));
/// # Ok::<(), kv_middleware::rate_limit::QuotaError>(())
/// ```
pub fn decide(stored_tat: Option<Nanos>, now: Nanos, quota: &Quota, cost: u32) -> Decision {
    let interval = quota.interval_nanos();
    // The same in 64 bits when the tolerance, the cost and the new TAT fit (nearly always;
    // this runs for every request).
    let burst = quota.burst();
    if let (Some(tolerance), Some(spend)) = (
        interval.checked_mul(u64::from(burst)),
        interval.checked_mul(u64::from(cost)),
    ) {
        let tat = stored_tat.unwrap_or(now).max(now);
        if let Some(new_tat) = tat.checked_add(spend) {
            let ahead = new_tat - now;
            if ahead <= tolerance {
                return Decision {
                    allowed: true,
                    tat: new_tat,
                    remaining: (tolerance - ahead) / interval,
                    reset: Duration::from_nanos(ahead),
                    retry_after: None,
                };
            }
            let backlog = tat - now;
            return Decision {
                allowed: false,
                tat,
                remaining: tolerance.saturating_sub(backlog) / interval,
                reset: Duration::from_nanos(backlog),
                retry_after: (cost <= burst).then(|| Duration::from_nanos(ahead - tolerance)),
            };
        }
    }
    decide_wide(stored_tat, now, quota, cost)
}

/// [`decide`] in 128 bits, for values near the ends of the range.
fn decide_wide(stored_tat: Option<Nanos>, now: Nanos, quota: &Quota, cost: u32) -> Decision {
    let interval = u128::from(quota.interval_nanos());
    let tolerance = interval * u128::from(quota.burst());
    let now_wide = u128::from(now);
    let tat = u128::from(stored_tat.unwrap_or(now).max(now));
    let new_tat = tat + interval * u128::from(cost);
    let ahead = new_tat - now_wide;
    if ahead <= tolerance {
        return Decision {
            allowed: true,
            tat: saturate(new_tat),
            remaining: saturate(div(tolerance - ahead, interval)),
            reset: nanos_duration(ahead),
            retry_after: None,
        };
    }
    let backlog = tat - now_wide;
    let retry_after = (cost <= quota.burst()).then(|| nanos_duration(ahead - tolerance));
    Decision {
        allowed: false,
        tat: saturate(tat),
        remaining: saturate(div(tolerance.saturating_sub(backlog), interval)),
        reset: nanos_duration(backlog),
        retry_after,
    }
}

/// A duration in whole seconds, rounded up: what `Retry-After` and the `t` of `RateLimit` say.
pub fn ceil_secs(duration: Duration) -> u64 {
    let secs = duration.as_secs();
    if duration.subsec_nanos() > 0 {
        secs.saturating_add(1)
    } else {
        secs
    }
}

/// Nanoseconds since the epoch of a [`SystemTime`](std::time::SystemTime); 0 before the epoch,
/// saturating after the year 2554.
pub fn to_nanos(time: std::time::SystemTime) -> Nanos {
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| saturate(d.as_nanos()))
        .unwrap_or(0)
}

/// `a / b`, in 64 bits when both fit (a 128-bit division is several times slower).
fn div(a: u128, b: u128) -> u128 {
    match (u64::try_from(a), u64::try_from(b)) {
        (Ok(a), Ok(b)) => u128::from(a / b),
        _ => a / b,
    }
}

fn saturate(value: u128) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

fn nanos_duration(nanos: u128) -> Duration {
    Duration::from_nanos(saturate(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;
    const T0: u64 = 1_700_000_000 * SEC;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// Runs requests at the given offsets (ms after T0) with costs, returning what each saw.
    fn run(quota: &Quota, requests: &[(u64, u32)]) -> Vec<(bool, u64, Duration, Option<Duration>)> {
        let mut tat = None;
        requests
            .iter()
            .map(|&(at_ms, cost)| {
                let d = decide(tat, T0 + at_ms * 1_000_000, quota, cost);
                if d.allowed {
                    tat = Some(d.tat);
                }
                (d.allowed, d.remaining, d.reset, d.retry_after)
            })
            .collect()
    }

    #[test]
    fn a_burst_from_idle_then_denial() {
        // 5 per second: τ = 200 ms, burst 5; all at once.
        let quota: Quota = "5/s".parse().unwrap();
        let seen = run(&quota, &[(0, 1); 7]);
        assert_eq!(
            seen,
            vec![
                (true, 4, ms(200), None),
                (true, 3, ms(400), None),
                (true, 2, ms(600), None),
                (true, 1, ms(800), None),
                (true, 0, ms(1000), None),
                (false, 0, ms(1000), Some(ms(200))),
                (false, 0, ms(1000), Some(ms(200))),
            ]
        );
    }

    #[test]
    fn steady_rate_is_sustained_and_early_requests_wait() {
        // 10 per second with burst 1: exactly one every 100 ms.
        let quota = Quota::per_second(10).unwrap().with_burst(1).unwrap();
        let seen = run(
            &quota,
            &[(0, 1), (100, 1), (150, 1), (200, 1), (299, 1), (300, 1)],
        );
        assert_eq!(
            seen,
            vec![
                (true, 0, ms(100), None),
                (true, 0, ms(100), None),
                (false, 0, ms(50), Some(ms(50))),
                (true, 0, ms(100), None),
                (false, 0, ms(1), Some(ms(1))),
                (true, 0, ms(100), None),
            ]
        );
    }

    #[test]
    fn cost_greater_than_one() {
        // 10 per second, burst 10: τ = 100 ms.
        let quota: Quota = "10/s".parse().unwrap();
        let seen = run(
            &quota,
            &[(0, 4), (0, 4), (0, 4), (0, 2), (250, 3), (250, 11)],
        );
        assert_eq!(
            seen,
            vec![
                (true, 6, ms(400), None),
                (true, 2, ms(800), None),
                // 4 more would put the TAT 1200 ms ahead; 200 ms must pass first.
                (false, 2, ms(800), Some(ms(200))),
                (true, 0, ms(1000), None),
                // 250 ms later 2.5 units refilled: 3 are too many by 50 ms.
                (false, 2, ms(750), Some(ms(50))),
                // More than the burst can never pass.
                (false, 2, ms(750), None),
            ]
        );
    }

    #[test]
    fn recovery_after_idle() {
        // 60 per minute: τ = 1 s, burst 60.
        let quota: Quota = "60/min".parse().unwrap();
        let mut requests = vec![(0, 1); 60];
        requests.push((0, 1)); // denied
        requests.push((30_500, 1)); // 30.5 s later: 30 refilled (rounded down) before this one
        requests.push((30_500, 30)); // the other 29 and one too many
        requests.push((30_500, 29));
        requests.push((3_600_000, 1)); // an hour later the quota is full again
        let seen = run(&quota, &requests);
        assert_eq!(seen[59], (true, 0, ms(60_000), None));
        assert_eq!(seen[60], (false, 0, ms(60_000), Some(ms(1000))));
        assert_eq!(seen[61], (true, 29, ms(30_500), None));
        assert_eq!(seen[62], (false, 29, ms(30_500), Some(ms(500))));
        assert_eq!(seen[63], (true, 0, ms(59_500), None));
        assert_eq!(seen[64], (true, 59, ms(1000), None));
    }

    #[test]
    fn remaining_and_reset_partway_through_a_refill() {
        // 2 per second: τ = 500 ms, burst 2.
        let quota: Quota = "2/s".parse().unwrap();
        let seen = run(&quota, &[(0, 1), (0, 1), (600, 1), (600, 1)]);
        assert_eq!(seen[1], (true, 0, ms(1000), None));
        // At 600 ms the TAT (1000) is 400 ms ahead: one unit is back (plus 100 ms of the next).
        assert_eq!(seen[2], (true, 0, ms(900), None));
        assert_eq!(seen[3], (false, 0, ms(900), Some(ms(400))));
    }

    #[test]
    fn cost_zero_reports_without_spending() {
        let quota: Quota = "3/s".parse().unwrap();
        let d = decide(None, T0, &quota, 0);
        assert_eq!((d.allowed, d.remaining, d.tat), (true, 3, T0));
        assert_eq!(d.reset, Duration::ZERO);
        let tat = decide(None, T0, &quota, 2).tat;
        let d = decide(Some(tat), T0, &quota, 0);
        assert_eq!((d.allowed, d.remaining, d.tat), (true, 1, tat));
    }

    #[test]
    fn a_stored_tat_in_the_past_counts_as_a_full_quota() {
        let quota: Quota = "3/s".parse().unwrap();
        let stale = decide(Some(T0 - 3600 * SEC), T0, &quota, 1);
        assert_eq!(stale, decide(None, T0, &quota, 1));
    }

    #[test]
    fn a_state_beyond_a_lowered_quota_is_denied_without_underflow() {
        // Stored under a bigger burst: 10 s ahead, but this quota tolerates 1 s.
        let quota: Quota = "1/s".parse().unwrap();
        let d = decide(Some(T0 + 10 * SEC), T0, &quota, 0);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.retry_after, Some(Duration::from_secs(9)));
    }

    #[test]
    fn extreme_values_saturate_instead_of_overflowing() {
        let quota = Quota::new(1, Duration::from_secs(400 * 365 * 86_400)).unwrap();
        let d = decide(Some(u64::MAX - 5), u64::MAX - 10, &quota, u32::MAX);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, None);
        let d = decide(None, u64::MAX, &quota, 1);
        assert!(d.allowed);
        assert_eq!(d.tat, u64::MAX);
    }

    #[test]
    fn the_64_bit_path_agrees_with_the_128_bit_one() {
        let quotas: Vec<Quota> = [
            "1/s",
            "3/s",
            "100/min",
            "5 per 15 minutes",
            "4000000000/s",
            "1/day",
        ]
        .iter()
        .map(|q| q.parse().unwrap())
        .chain([
            Quota::per_second(10).unwrap().with_burst(1).unwrap(),
            Quota::new(7, Duration::from_secs(400 * 365 * 86_400)).unwrap(),
            Quota::new(u32::MAX, Duration::from_secs(1)).unwrap(),
        ])
        .collect();
        let mut seed = 0x5eed_u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            seed
        };
        for quota in &quotas {
            for _ in 0..2_000 {
                let now = match next() % 3 {
                    0 => T0 + next() % (100 * SEC),
                    1 => next(),
                    _ => u64::MAX - next() % (10 * SEC),
                };
                let stored = match next() % 4 {
                    0 => None,
                    1 => Some(now.saturating_sub(next() % (10 * SEC))),
                    2 => Some(now.saturating_add(next() % (100 * SEC))),
                    _ => Some(next()),
                };
                let cost = match next() % 4 {
                    0 => 0,
                    1 => 1,
                    2 => (next() % 20) as u32,
                    _ => next() as u32,
                };
                assert_eq!(
                    decide(stored, now, quota, cost),
                    decide_wide(stored, now, quota, cost),
                    "{quota} stored {stored:?} now {now} cost {cost}"
                );
            }
        }
    }

    #[test]
    fn ceil_secs_rounds_up() {
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_nanos(1)), 1);
        assert_eq!(ceil_secs(ms(1000)), 1);
        assert_eq!(ceil_secs(ms(1001)), 2);
    }
}
