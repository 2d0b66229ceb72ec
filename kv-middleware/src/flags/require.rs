//! [`RequireFlagLayer`]: hides a route unless a flag is on.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use super::handle::Flags;

/// Answers `404 Not Found` (empty body) unless a boolean flag is on for the request, so a route
/// in development is invisible to everyone outside its rollout.
///
/// It reads the [`Flags`] a [`FlagsLayer`](super::FlagsLayer) put into the request: place it
/// inside one (in axum, `route_layer(RequireFlagLayer::new("beta"))` with the flags layer on the
/// router). Without a flags layer, it answers `500 Internal Server Error` and logs why.
///
/// ```
/// # async fn example(store: kv_middleware::flags::FlagStore) {
/// use axum::{routing::get, Router};
/// use kv_middleware::flags::{FlagsLayer, RequireFlagLayer};
///
/// let app: Router = Router::new()
///     .route("/beta", get(|| async { "the new thing" }))
///     .route_layer(RequireFlagLayer::new("beta-page"))
///     .route("/", get(|| async { "home" }))
///     .layer(FlagsLayer::new(store));
/// # let _ = app;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RequireFlagLayer {
    flag: Arc<str>,
    status: StatusCode,
}

impl RequireFlagLayer {
    /// Requires the boolean flag `flag` to be on.
    pub fn new(flag: impl Into<String>) -> Self {
        RequireFlagLayer {
            flag: Arc::from(flag.into()),
            status: StatusCode::NOT_FOUND,
        }
    }

    /// Answer this status instead of 404 when the flag is off (for example 403).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

impl<S> Layer<S> for RequireFlagLayer {
    type Service = RequireFlagService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireFlagService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`RequireFlagLayer`].
#[derive(Debug, Clone)]
pub struct RequireFlagService<S> {
    inner: S,
    layer: RequireFlagLayer,
}

impl<S> RequireFlagService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireFlagService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = RequireFlagFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let status = match request.extensions().get::<Flags>() {
            Some(flags) if flags.is_enabled(&self.layer.flag) => None,
            Some(_) => Some(self.layer.status),
            None => {
                tracing::error!(
                    flag = %self.layer.flag,
                    "RequireFlagLayer found no flags: add kv_middleware::flags::FlagsLayer \
                     around it"
                );
                Some(StatusCode::INTERNAL_SERVER_ERROR)
            }
        };
        match status {
            None => RequireFlagFuture::inner(self.inner.call(request)),
            Some(status) => {
                let mut response = Response::new(ResBody::default());
                *response.status_mut() = status;
                RequireFlagFuture::early(response)
            }
        }
    }
}

/// The response future of [`RequireFlagService`]: the inner service's, or the refusal.
pub type RequireFlagFuture<F, B> = crate::EarlyResponseFuture<F, B>;
