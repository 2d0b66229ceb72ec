//! [`OriginCheckService`]: the service that checks each request before the inner service sees it.

use std::task::{Context, Poll};

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use kv_core::Bytes;
use tower_service::Service;

use super::layer::OriginCheckLayer;
use super::policy::{is_safe, CrossOriginRefusal, SEC_FETCH_SITE};
use super::ResponseFuture;

/// The service [`OriginCheckLayer`] wraps around an inner service.
///
/// A refused request never reaches the inner service: the answer is `403 Forbidden` with a
/// short problem document (`application/problem+json`), so the response body must be
/// buildable from [`Bytes`] (axum's `Body`, `Full<Bytes>`, ... are).
#[derive(Debug, Clone)]
pub struct OriginCheckService<S> {
    inner: S,
    layer: OriginCheckLayer,
}

impl<S> OriginCheckService<S> {
    pub(crate) fn new(inner: S, layer: OriginCheckLayer) -> Self {
        OriginCheckService { inner, layer }
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for OriginCheckService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if is_safe(request.method()) {
            return ResponseFuture::inner(self.inner.call(request));
        }
        let verdict = self.layer.policy.check(request.uri(), request.headers());
        self.layer.counters.count(verdict.is_err());
        match verdict {
            Ok(()) => ResponseFuture::inner(self.inner.call(request)),
            Err(refusal) => {
                // The headers that decided, clipped: they are the browser's, not secrets, but
                // a client may send anything there. Not the path: some carry tokens.
                let header = |name: &http::HeaderName| {
                    request
                        .headers()
                        .get(name)
                        .map(|value| clip(value.as_bytes()))
                        .unwrap_or_default()
                };
                tracing::debug!(
                    method = %request.method(),
                    sec_fetch_site = %header(&SEC_FETCH_SITE),
                    origin = %header(&http::header::ORIGIN),
                    reason = refusal.as_str(),
                    "origin check: refused a cross-origin request"
                );
                ResponseFuture::early(forbidden(refusal).map(ResBody::from))
            }
        }
    }
}

/// At most 100 bytes of a header, as text with anything unusual escaped.
fn clip(bytes: &[u8]) -> String {
    let clipped = &bytes[..bytes.len().min(100)];
    clipped.escape_ascii().to_string()
}

/// The 403 answer: `{"type":"about:blank","title":"Forbidden","status":403,"detail":...}`.
fn forbidden(refusal: CrossOriginRefusal) -> Response<Bytes> {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
        "detail": format!("Cross-origin request refused: {refusal}."),
    });
    let mut response = Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}
