//! [`RateLimitService`]: checks each request before the inner service sees it.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use http::{Request, Response};
use tower_service::Service;

use super::future::{CheckFuture, ResponseFuture, Verdict};
use super::headers::{HeaderStyle, LimitHeaders};
use super::key::{loggable, Extraction, KeyFuture, RateKey, RequestHead, MAX_KEY_BYTES};
use super::layer::{Config, MissingKey, StoreErrorPolicy};
use super::limiter::{bump, Outcome, RateLimitError};
use super::response::Rejection;

/// The service [`RateLimitLayer`](super::RateLimitLayer) wraps around an inner service.
///
/// The response body type is the inner service's; the layer makes its own answers (429, 503,
/// 400) from bytes, so the body must implement `From<Bytes>` (axum's `Body`,
/// `http_body_util::Full<Bytes>` and most body types do).
///
/// For each request it finds the key, checks the limiter, and then either calls the inner
/// service (adding the rate-limit headers to its response) or answers itself (429, or as the
/// policies say). The inner service is called only after the check, with the service instance
/// that `poll_ready` readied: when the check completes at once (an in-process store), within
/// `call` itself; otherwise from the response future, which then owns that instance and
/// leaves a clone behind.
#[derive(Debug, Clone)]
pub struct RateLimitService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> RateLimitService<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> Self {
        RateLimitService { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Where a request's key comes from.
enum Key {
    Ready(RateKey),
    Later(KeyFuture),
}

/// A waker that does nothing, for the first poll of a check inside `call`.
fn noop_waker() -> &'static Waker {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    static WAKER: OnceLock<Waker> = OnceLock::new();
    WAKER.get_or_init(|| Waker::from(Arc::new(Noop)))
}

/// A key of an acceptable length, else the reason it is not.
fn usable(key: RateKey) -> Result<RateKey, Cow<'static, str>> {
    let len = key.as_str().len();
    if len == 0 || len > MAX_KEY_BYTES {
        return Err(Cow::Borrowed("the key is empty or longer than 256 bytes"));
    }
    Ok(key)
}

/// What to do with a request without a key.
enum Keyless {
    Allow,
    Reject(Response<kv_core::Bytes>),
    Shared(RateKey),
}

fn keyless(config: &Config, reason: &str) -> Keyless {
    bump(&config.limiter.counters().missing_keys);
    tracing::debug!(reason, "rate limit: request without a key");
    match &config.on_missing_key {
        MissingKey::Allow => Keyless::Allow,
        MissingKey::Shared(key) => Keyless::Shared(RateKey::new(key.clone())),
        MissingKey::Reject => Keyless::Reject(config.reject(&Rejection::MissingKey(reason))),
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimitService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: From<kv_core::Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, S::Future, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        let head = RequestHead::from_request(&request);
        if config.allow_if.as_ref().is_some_and(|allow| allow(&head)) {
            bump(&config.limiter.counters().bypassed);
            return ResponseFuture::inner(self.inner.call(request), None);
        }
        let cost = config.cost(&head);
        let extracted = match config.key.extract(&head) {
            Extraction::Key(key) => usable(key).map(Key::Ready),
            Extraction::Deferred(later) => Ok(Key::Later(later)),
            Extraction::Missing(reason) => Err(reason),
        };
        let key = match extracted {
            Ok(key) => key,
            Err(reason) => match keyless(config, &reason) {
                Keyless::Allow => return ResponseFuture::inner(self.inner.call(request), None),
                Keyless::Reject(response) => return ResponseFuture::rejected(response),
                Keyless::Shared(key) => Key::Ready(key),
            },
        };
        if let Key::Ready(key) = &key {
            if config.allow.allows(key) {
                bump(&config.limiter.counters().bypassed);
                return ResponseFuture::inner(self.inner.call(request), None);
            }
        }
        if let Key::Ready(key) = &key {
            // A store that answers at once, in the common case: decided here, without the
            // boxed check future.
            if let Some(result) = config.limiter.check_at_once(key.as_str(), cost) {
                return match decided(config, key, result) {
                    Verdict::Allow(headers) => {
                        ResponseFuture::inner(self.inner.call(request), headers)
                    }
                    Verdict::Reject(response) => ResponseFuture::rejected(response),
                };
            }
        }
        let mut check: CheckFuture = Box::pin(verdict(config.clone(), key, cost));
        // An in-process store decides at once: then the inner service, readied by
        // `poll_ready`, is called right here. The future registered nothing that matters: it
        // will be polled again, with the caller's waker, if it is pending.
        let mut cx = Context::from_waker(noop_waker());
        match check.as_mut().poll(&mut cx) {
            Poll::Ready(Verdict::Allow(headers)) => {
                ResponseFuture::inner(self.inner.call(request), headers)
            }
            Poll::Ready(Verdict::Reject(response)) => ResponseFuture::rejected(response),
            Poll::Pending => {
                // The instance `poll_ready` readied goes with the request; a clone stays.
                let ready = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, ready);
                ResponseFuture::checking(check, service, request)
            }
        }
    }
}

async fn verdict(config: Arc<Config>, key: Key, cost: u32) -> Verdict {
    let key = match key {
        Key::Ready(key) => key,
        Key::Later(later) => match later.await.and_then(usable) {
            Ok(key) => {
                if config.allow.allows(&key) {
                    bump(&config.limiter.counters().bypassed);
                    return Verdict::Allow(None);
                }
                key
            }
            Err(reason) => match keyless(&config, &reason) {
                Keyless::Allow => return Verdict::Allow(None),
                Keyless::Reject(response) => return Verdict::Reject(response),
                Keyless::Shared(key) => key,
            },
        },
    };
    let result = config.limiter.check(key.as_str(), cost).await;
    decided(&config, &key, result)
}

/// The verdict on a check's result: its headers for an admitted request, a rejection for a
/// denied one, the store-error policy for a failed one.
fn decided(config: &Config, key: &RateKey, result: Result<Outcome, RateLimitError>) -> Verdict {
    match result {
        Ok(outcome) => {
            tracing::debug!(
                target: "kv_middleware::rate_limit",
                key = %loggable(key.as_str()),
                allowed = outcome.is_allowed(),
                remaining = outcome.remaining(),
                "rate limit: {}",
                if outcome.is_allowed() { "admitted" } else { "denied" }
            );
            let headers = (config.headers != HeaderStyle::None || !outcome.is_allowed())
                .then(|| LimitHeaders::new(config.headers, &config.policy, &outcome));
            if outcome.is_allowed() {
                return Verdict::Allow(headers);
            }
            let mut response = config.reject(&Rejection::QuotaExceeded(&outcome));
            if let Some(headers) = headers {
                headers.apply(response.headers_mut());
            }
            Verdict::Reject(response)
        }
        Err(RateLimitError::Contention { attempts }) => {
            tracing::debug!(key = %key, attempts, "rate limit: gave up on a contended key");
            Verdict::Reject(config.reject(&Rejection::Contended))
        }
        // Store errors, timeouts, and an unusable shared key of `MissingKey::Shared`.
        Err(error) => failed(config, key, &error),
    }
}

fn failed(config: &Config, key: &RateKey, error: &RateLimitError) -> Verdict {
    let counters = config.limiter.counters();
    match config.on_store_error {
        StoreErrorPolicy::FailOpen => {
            bump(&counters.failed_open);
            tracing::warn!(key = %loggable(key.as_str()), %error, "rate limit: check failed, letting the request through (fail-open)");
            Verdict::Allow(None)
        }
        StoreErrorPolicy::FailClosed => {
            bump(&counters.failed_closed);
            tracing::warn!(key = %loggable(key.as_str()), %error, "rate limit: check failed, answering 503 (fail-closed)");
            Verdict::Reject(config.reject(&Rejection::Unavailable(error)))
        }
    }
}
