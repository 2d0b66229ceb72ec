//! axum extractors (feature `axum`).

use std::fmt;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use super::handle::Config;

/// The rejection of the [`Config`] extractor when no [`ConfigLayer`](super::ConfigLayer) of that
/// type wraps the route: a `500 Internal Server Error` that names the missing layer.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct MissingConfigLayer;

impl fmt::Display for MissingConfigLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the Config extractor found no config of this type: add \
             kv_middleware::config::ConfigLayer to this route (Router::layer or route_layer)",
        )
    }
}

impl std::error::Error for MissingConfigLayer {}

impl IntoResponse for MissingConfigLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

/// Extracts the request's config handle; rejects with [`MissingConfigLayer`] when no layer
/// is there.
impl<S, T> FromRequestParts<S> for Config<T>
where
    S: Send + Sync,
    T: Send + Sync + 'static,
{
    type Rejection = MissingConfigLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Config<T>>()
            .cloned()
            .ok_or(MissingConfigLayer)
    }
}

/// `Option<Config<T>>`: `None` when no layer is there.
impl<S, T> OptionalFromRequestParts<S> for Config<T>
where
    S: Send + Sync,
    T: Send + Sync + 'static,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Config<T>>().cloned())
    }
}
