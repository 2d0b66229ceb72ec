//! axum extractors (feature `axum`).

use std::fmt;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use super::handle::Flags;

/// The rejection of the [`Flags`] extractor when no [`FlagsLayer`](super::FlagsLayer) wraps the
/// route: a `500 Internal Server Error` that names the missing layer.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct MissingFlagsLayer;

impl fmt::Display for MissingFlagsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the Flags extractor found no flags: add kv_middleware::flags::FlagsLayer to this \
             route (Router::layer or route_layer)",
        )
    }
}

impl std::error::Error for MissingFlagsLayer {}

impl IntoResponse for MissingFlagsLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

/// Extracts the request's flags; rejects with [`MissingFlagsLayer`] when no layer is there.
impl<S: Send + Sync> FromRequestParts<S> for Flags {
    type Rejection = MissingFlagsLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Flags>()
            .cloned()
            .ok_or(MissingFlagsLayer)
    }
}

/// `Option<Flags>`: `None` when no layer is there.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Flags {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Flags>().cloned())
    }
}
