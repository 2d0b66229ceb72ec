//! When and how long to wait before a request is sent again.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use kv_core::Backoff;

/// How the http backend retries a request that failed for a reason that may pass: a connection
/// error, a timeout, or an answer of 429 or 5xx (but not 501).
///
/// Only requests that are safe to send twice are retried after they may have reached the
/// server: reads, unconditional writes and deletes (a repeated put or delete leaves the same
/// state), bulk writes and deletes. Conditional writes and namespace creation are retried only
/// when the connection could not be made at all, so the first attempt certainly did not arrive.
///
/// Waits grow exponentially from an initial backoff to a maximum (see
/// [`backoff`](Self::backoff)), each with random jitter (half fixed, half random:
/// [`kv_core::Backoff`], as the lock's waits). A
/// `Retry-After` header (seconds or an HTTP date) replaces the computed wait, up to
/// [`max_retry_after`](Self::max_retry_after); a longer one ends the retries at once, so a
/// caller is never held for longer than it could expect.
///
/// ```
/// use kv_backends::http::RetryPolicy;
/// use std::time::Duration;
///
/// let patient = RetryPolicy::default()
///     .max_retries(5)
///     .backoff(Duration::from_millis(50), Duration::from_secs(2));
/// assert_eq!(patient.retries(), 5);
/// assert_eq!(RetryPolicy::none().retries(), 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 3 retries, waits from 100 ms up to 5 s, `Retry-After` honoured up to 30 s.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Retry at most this many times (so a request is sent at most `retries + 1` times).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Wait about `initial` before the first retry, doubling up to `max`.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Honour a `Retry-After` of at most this long; a longer one ends the retries.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The most retries of one request.
    pub fn retries(&self) -> u32 {
        self.max_retries
    }

    /// The waits before the retries of one request, in order: exponential, capped, with
    /// half of each random.
    pub(crate) fn waits(&self) -> Backoff {
        Backoff::new(self.initial_backoff, self.max_backoff)
    }

    /// The wait a `Retry-After` header asks for, or `Err(())` when it is longer than this
    /// policy accepts.
    pub(crate) fn retry_after(&self, headers: &HeaderMap) -> Result<Option<Duration>, ()> {
        match retry_after(headers, SystemTime::now()) {
            Some(wait) if wait > self.max_retry_after => Err(()),
            other => Ok(other),
        }
    }
}

/// Reads `Retry-After`: delay-seconds or an HTTP date (a date in the past means now).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn delays_grow_and_are_capped() {
        let policy =
            RetryPolicy::default().backoff(Duration::from_millis(100), Duration::from_millis(350));
        let mut waits = policy.waits();
        for attempt in 0..40 {
            let delay = waits.next_pause().as_secs_f64();
            let full = (Duration::from_millis(100) * 2u32.pow(attempt.min(10)))
                .min(Duration::from_millis(350))
                .as_secs_f64();
            // Give or take the f32 rounding of kv_core::Backoff.
            let slack = full * 1e-6;
            assert!(
                delay >= full / 2.0 - slack && delay <= full + slack,
                "{attempt}: {delay}"
            );
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static(" 7 "));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        // 2015-10-21 07:28:00 UTC is `now`; ten seconds later:
        headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:10 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(10)));
        headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:27:00 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn long_retry_after_ends_retries() {
        let policy = RetryPolicy::default().max_retry_after(Duration::from_secs(5));
        let mut headers = HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("6"));
        assert_eq!(policy.retry_after(&headers), Err(()));
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
        assert_eq!(
            policy.retry_after(&headers),
            Ok(Some(Duration::from_secs(5)))
        );
    }
}
