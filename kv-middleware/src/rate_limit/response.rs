//! What the layer answers in place of the inner service: [`Rejection`]s and their default
//! `application/problem+json` responses.

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use kv_core::Bytes;

use super::gcra::ceil_secs;
use super::limiter::{Outcome, RateLimitError};

/// The problem type of a 429 (draft-ietf-httpapi-ratelimit-headers, "Quota Exceeded").
pub const QUOTA_EXCEEDED_TYPE: &str =
    "https://iana.org/assignments/http-problem-types#quota-exceeded";

/// `application/problem+json`.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Why the layer answers a request itself.
#[derive(Debug)]
#[non_exhaustive]
pub enum Rejection<'a> {
    /// A quota is exhausted: 429. The layer adds `Retry-After` and the rate-limit headers to
    /// whatever response is made of this.
    QuotaExceeded(&'a Outcome),
    /// Other requests for the same key kept winning the race to update its state, and the
    /// check gave up: 429 with `Retry-After: 1`.
    Contended,
    /// The check failed (store error or timeout) and the policy is fail-closed: 503.
    Unavailable(&'a RateLimitError),
    /// The request carries no key and the policy rejects such requests: 400.
    MissingKey(&'a str),
}

impl Rejection<'_> {
    /// The default response: a problem document (RFC 9457).
    ///
    /// - 429, type `https://iana.org/assignments/http-problem-types#quota-exceeded`, with the
    ///   names of the exhausted quotas in `violated-policies`:
    ///   `{"type":"…#quota-exceeded","title":"Request cannot be satisfied as assigned quota has
    ///   been exceeded","status":429,"detail":"Quota \"login\" is exhausted; retry in 60 s.",
    ///   "violated-policies":["login"]}` (a cost larger than a quota's burst: "Quota \"login\"
    ///   is too small for this request.")
    /// - 429 `about:blank` "Too Many Requests" when contended, 503 "Service Unavailable" when
    ///   failing closed, 400 "Bad Request" for a missing key; each with a `detail`.
    pub fn default_response(&self) -> Response<Bytes> {
        match self {
            Rejection::QuotaExceeded(outcome) => {
                let violated: Vec<&str> = outcome.violated().map(|q| q.name()).collect();
                let names = violated
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let (noun, verb) = match violated.len() {
                    1 => ("Quota", "is"),
                    _ => ("Quotas", "are"),
                };
                let detail = match outcome.retry_after() {
                    Some(wait) => format!(
                        "{noun} {names} {verb} exhausted; retry in {} s.",
                        ceil_secs(wait).max(1)
                    ),
                    None => format!("{noun} {names} {verb} too small for this request."),
                };
                problem(Problem {
                    kind: QUOTA_EXCEEDED_TYPE,
                    title: "Request cannot be satisfied as assigned quota has been exceeded",
                    status: StatusCode::TOO_MANY_REQUESTS,
                    detail,
                    violated_policies: Some(violated),
                })
            }
            Rejection::Contended => {
                let mut response = problem(Problem {
                    kind: "about:blank",
                    title: "Too Many Requests",
                    status: StatusCode::TOO_MANY_REQUESTS,
                    detail: "Too many simultaneous requests for this client; retry shortly."
                        .to_owned(),
                    violated_policies: None,
                });
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            Rejection::Unavailable(_) => problem(Problem {
                kind: "about:blank",
                title: "Service Unavailable",
                status: StatusCode::SERVICE_UNAVAILABLE,
                detail: "The rate limiter cannot reach its store.".to_owned(),
                violated_policies: None,
            }),
            Rejection::MissingKey(reason) => problem(Problem {
                kind: "about:blank",
                title: "Bad Request",
                status: StatusCode::BAD_REQUEST,
                detail: format!("The request cannot be rate limited: {reason}."),
                violated_policies: None,
            }),
        }
    }
}

/// A problem document (RFC 9457), its members in a fixed order.
#[derive(serde::Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    #[serde(serialize_with = "status_code")]
    status: StatusCode,
    detail: String,
    #[serde(rename = "violated-policies", skip_serializing_if = "Option::is_none")]
    violated_policies: Option<Vec<&'a str>>,
}

fn status_code<S: serde::Serializer>(status: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(status.as_u16())
}

fn problem(problem: Problem<'_>) -> Response<Bytes> {
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = problem.status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}
