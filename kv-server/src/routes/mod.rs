//! The REST endpoints, one module per resource.

pub(crate) mod bulk;
pub(crate) mod keys;
pub(crate) mod namespaces;
pub(crate) mod values;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::{codes, ApiError};

/// Answer for paths no endpoint serves.
pub(crate) async fn not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        codes::ENDPOINT_NOT_FOUND,
        "endpoint does not exist",
    )
    .into_response()
}

/// Answer for an endpoint called with a method it does not serve.
pub(crate) async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
    .into_response()
}
