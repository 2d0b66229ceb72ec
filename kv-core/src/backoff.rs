//! [`Backoff`]: how long to pause between attempts, for the lock's wait and the HTTP
//! backend's retries alike.

use std::fmt;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Exponential backoff with jitter: the step starts at `initial` and doubles up to `max`, and
/// each pause is half the step plus a random part of up to the other half, so waiters that
/// failed together spread out instead of retrying in step.
///
/// Built on `backon`'s exponential backoff (its jitter adds up to one more step, so it runs on
/// half steps). Steps are computed in `f32` seconds: a pause may miss its bounds by a
/// millionth of itself.
///
/// ```
/// use kv_core::Backoff;
/// use std::time::Duration;
///
/// let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(40));
/// let first = backoff.next_pause();
/// assert!(first >= Duration::from_micros(4_999) && first <= Duration::from_micros(10_001));
/// ```
pub struct Backoff {
    half_steps: backon::ExponentialBackoff,
}

impl Backoff {
    /// Starts at `initial`, doubling up to `max` (a `max` below `initial` caps every step
    /// after the first).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            half_steps: ExponentialBuilder::new()
                .with_min_delay(initial / 2)
                .with_max_delay(max / 2)
                .with_jitter()
                .without_max_times()
                .build(),
        }
    }

    /// The next pause: between half the current step and the whole of it; the step then
    /// doubles (up to the maximum).
    pub fn next_pause(&mut self) -> Duration {
        // Without a maximum number of times the iterator never ends.
        self.half_steps.next().unwrap_or_default()
    }
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backoff").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `pause` lies in `[step / 2, step]`, give or take the `f32` rounding.
    fn within(pause: Duration, step: Duration) -> bool {
        let slack = step.as_secs_f64() * 1e-6;
        let pause = pause.as_secs_f64();
        pause >= step.as_secs_f64() / 2.0 - slack && pause <= step.as_secs_f64() + slack
    }

    #[test]
    fn pauses_grow_to_the_maximum_with_jitter() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(80));
        let pauses: Vec<Duration> = (0..40).map(|_| backoff.next_pause()).collect();
        for (i, pause) in pauses.iter().enumerate() {
            let step = Duration::from_millis(10 * (1 << i.min(3)));
            assert!(within(*pause, step), "{i}: {pause:?}");
        }
        // The random half is random: forty pauses are not all alike.
        assert!(pauses[3..].iter().any(|p| *p != pauses[3]));
    }

    #[test]
    fn a_maximum_below_the_start_caps_later_steps() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(30));
        assert!(within(backoff.next_pause(), Duration::from_millis(100)));
        for _ in 0..5 {
            assert!(within(backoff.next_pause(), Duration::from_millis(30)));
        }
    }

    #[test]
    fn zero_never_waits() {
        let mut backoff = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert!((0..5).all(|_| backoff.next_pause() == Duration::ZERO));
    }
}
