//! [`FlagsService`]: the service [`FlagsLayer`](super::FlagsLayer) wraps around an inner one.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::{request_context, ContextSource, FlagsLayer};

/// Inserts a [`Flags`](super::Flags) handle into each request's extensions (replacing one an
/// outer flags layer put there: the inner layer wins), then calls the inner service.
///
/// The inner service must be `Clone` (every axum and tower-http service is): when the user comes
/// from the session, the request waits for the session to load before the inner service is
/// called.
#[derive(Debug, Clone)]
pub struct FlagsService<S> {
    inner: S,
    layer: FlagsLayer,
}

impl<S> FlagsService<S> {
    pub(crate) fn new(inner: S, layer: FlagsLayer) -> Self {
        FlagsService { inner, layer }
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for FlagsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        let flags = match &self.layer.context {
            ContextSource::Default { user_header } => {
                let parts = &parts;
                self.layer.store.flags_for_request(|headers| {
                    request_context(parts, user_header.as_ref(), Some(headers))
                })
            }
            ContextSource::Custom(build) => self.layer.store.flags_with(Arc::new(build(&parts))),
        };

        #[cfg(feature = "session")]
        if let Some(key) = &self.layer.session_user {
            if let Some(session) = parts.extensions.get::<crate::session::Session>().cloned() {
                let key = key.clone();
                let lookup = Box::pin(async move {
                    match session.get::<serde_json::Value>(&key).await {
                        Ok(Some(serde_json::Value::String(user))) => Some(user),
                        Ok(Some(serde_json::Value::Number(user))) => Some(user.to_string()),
                        Ok(_) => None,
                        Err(error) => {
                            // The session layer has logged the store failure itself.
                            tracing::debug!(%error, "flags: could not read the user from the session");
                            None
                        }
                    }
                });
                // Take the service that was polled ready; leave a fresh clone in its place.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let request = Request::from_parts(parts, body);
                return ResponseFuture::resolving(lookup, inner, request, flags);
            }
        }

        parts.extensions.insert(flags);
        ResponseFuture::called(self.inner.call(Request::from_parts(parts, body)))
    }
}
