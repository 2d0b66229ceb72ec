//! The response headers: `RateLimit-Policy` and `RateLimit` as structured fields
//! (draft-ietf-httpapi-ratelimit-headers-10), `Retry-After`, and the legacy `X-RateLimit-*`.

use std::fmt::Write as _;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::HeaderMap;

use super::gcra::ceil_secs;
use super::limiter::{NamedQuota, Outcome};
use crate::shared::text::StackText;

/// `RateLimit-Policy`: the quota policies (`"name";q=100;w=60`).
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`: each policy's current state (`"name";r=42;t=3`).
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// Legacy `X-RateLimit-Limit`: the most restrictive quota's count.
pub static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// Legacy `X-RateLimit-Remaining`: its units left.
pub static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// Legacy `X-RateLimit-Reset`: when it is full again, in seconds since the Unix epoch.
pub static X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Which rate-limit headers responses carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HeaderStyle {
    /// `RateLimit-Policy` and `RateLimit` (the default).
    #[default]
    Draft,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (epoch seconds),
    /// describing the most restrictive quota.
    Legacy,
    /// Both.
    Both,
    /// None (a 429 still carries `Retry-After`).
    None,
}

impl HeaderStyle {
    fn draft(self) -> bool {
        matches!(self, HeaderStyle::Draft | HeaderStyle::Both)
    }

    fn legacy(self) -> bool {
        matches!(self, HeaderStyle::Legacy | HeaderStyle::Both)
    }
}

/// Writes `name` as a structured-field String.
fn push_sf_string(out: &mut String, name: &str) {
    out.push('"');
    for c in name.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// The `RateLimit-Policy` value of these quotas: `"api";q=100;w=60, "burst";q=10;w=1`.
pub fn policy_value(quotas: &[NamedQuota]) -> HeaderValue {
    let mut out = String::new();
    for (i, q) in quotas.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_sf_string(&mut out, q.name());
        let _ = write!(
            out,
            ";q={};w={}",
            q.quota().count(),
            q.quota().window_secs()
        );
    }
    header_value(out)
}

/// The `RateLimit` value of an outcome: `"api";r=42;t=3` for each quota, with `t` the seconds
/// until the quota is full again, rounded up.
pub fn ratelimit_value(outcome: &Outcome) -> HeaderValue {
    // Built on the stack (this runs for every request), on the heap only if it is long; the
    // header value is then its one copy.
    let mut out = StackText::<128>::new();
    for (i, q) in outcome.quotas().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str("\"");
        // Quota names are letters, digits, '_', '-' and '.': nothing to escape.
        out.push_str(q.name());
        out.push_str("\";r=");
        out.push_u64(q.remaining());
        out.push_str(";t=");
        out.push_u64(ceil_secs(q.reset()));
    }
    HeaderValue::from_bytes(out.as_bytes()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Retry-After` in whole seconds, rounded up, never 0.
pub fn retry_after_value(retry_after: Duration) -> HeaderValue {
    HeaderValue::from(ceil_secs(retry_after).max(1))
}

fn header_value(text: String) -> HeaderValue {
    // Quota names are restricted to visible ASCII, so this cannot fail.
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The headers one check adds to its response. Kept small (the legacy ones, rarely chosen,
/// on the heap): it travels in the response future of every request.
#[derive(Debug, Clone, Default)]
pub(crate) struct LimitHeaders {
    policy: Option<HeaderValue>,
    ratelimit: Option<HeaderValue>,
    legacy: Option<Box<[HeaderValue; 3]>>,
    retry_after: Option<HeaderValue>,
}

impl LimitHeaders {
    pub(crate) fn new(style: HeaderStyle, policy: &HeaderValue, outcome: &Outcome) -> Self {
        let mut headers = LimitHeaders::default();
        if style.draft() {
            headers.policy = Some(policy.clone());
            headers.ratelimit = Some(ratelimit_value(outcome));
        }
        if style.legacy() {
            if let Some(binding) = outcome.binding() {
                let reset_at = outcome.checked_at() + binding.reset();
                let reset_secs = ceil_secs(
                    reset_at
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default(),
                );
                headers.legacy = Some(Box::new([
                    HeaderValue::from(binding.quota().count()),
                    HeaderValue::from(binding.remaining()),
                    HeaderValue::from(reset_secs),
                ]));
            }
        }
        if let Some(retry_after) = outcome.retry_after() {
            headers.retry_after = Some(retry_after_value(retry_after));
        }
        headers
    }

    /// Adds the headers: the draft fields are appended (so the policies of nested layers add
    /// up to one list), the legacy ones and `Retry-After` are set unless already present (the
    /// innermost layer's win).
    pub(crate) fn apply(self, headers: &mut HeaderMap) {
        if let Some(policy) = self.policy {
            headers.append(RATELIMIT_POLICY.clone(), policy);
        }
        if let Some(ratelimit) = self.ratelimit {
            headers.append(RATELIMIT.clone(), ratelimit);
        }
        if let Some([limit, remaining, reset]) = self.legacy.map(|legacy| *legacy) {
            for (name, value) in [
                (&X_RATELIMIT_LIMIT, limit),
                (&X_RATELIMIT_REMAINING, remaining),
                (&X_RATELIMIT_RESET, reset),
            ] {
                if !headers.contains_key(name) {
                    headers.insert(name.clone(), value);
                }
            }
        }
        if let Some(retry_after) = self.retry_after {
            if !headers.contains_key(RETRY_AFTER) {
                headers.insert(RETRY_AFTER, retry_after);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_field_strings_are_escaped() {
        let mut out = String::new();
        push_sf_string(&mut out, r#"a"b\c"#);
        assert_eq!(out, r#""a\"b\\c""#);
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_never_zero() {
        assert_eq!(retry_after_value(Duration::ZERO), "1");
        assert_eq!(retry_after_value(Duration::from_nanos(1)), "1");
        assert_eq!(retry_after_value(Duration::from_millis(1000)), "1");
        assert_eq!(retry_after_value(Duration::from_millis(1001)), "2");
        assert_eq!(retry_after_value(Duration::from_secs(3600)), "3600");
    }
}
