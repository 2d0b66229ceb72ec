//! Extractors whose rejections are the JSON error envelope rather than axum's plain text.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::{codes, ApiError};

/// Path parameters; a path that does not decode is a 400 envelope.
pub(crate) struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|path| ApiPath(path.0))
            .map_err(|rejection| {
                ApiError::bad_request(codes::BAD_REQUEST, format!("invalid path: {rejection}"))
            })
    }
}

/// Query parameters; a query that does not parse is a 400 envelope.
pub(crate) struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|query| ApiQuery(query.0))
            .map_err(|rejection| {
                ApiError::bad_request(codes::BAD_REQUEST, format!("invalid query: {rejection}"))
            })
    }
}

/// The whole body, read under the route's body limit; too large is a 413 envelope.
pub(crate) struct ApiBody(pub Bytes);

impl<S> FromRequest<S> for ApiBody
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(request, state)
            .await
            .map(ApiBody)
            .map_err(body_rejection)
    }
}

/// Turns a body-reading failure into the envelope (413 when the limit was hit).
pub(crate) fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::PAYLOAD_TOO_LARGE,
            "request body is larger than this endpoint accepts",
        )
    } else {
        ApiError::bad_request(
            codes::BAD_REQUEST,
            format!("could not read the request body: {rejection}"),
        )
    }
}

/// A JSON request body, parsed with a 400 envelope naming what is wrong.
pub(crate) struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ApiBody(bytes) = ApiBody::from_request(request, state).await?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|error| {
                ApiError::bad_request(
                    codes::INVALID_BODY,
                    format!("request body is not the expected JSON: {error}"),
                )
            })
    }
}
