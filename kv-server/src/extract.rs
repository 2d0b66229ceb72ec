//! Extractors whose rejections are the JSON error envelope rather than axum's plain text, and
//! the request body limits.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use bytes::{Bytes, BytesMut};
use futures::future::{ready, Either, Ready};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use tower::{Layer, Service, ServiceBuilder};

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

/// Path parameters borrowed from the request, percent-decoded, without deserializing them into
/// owned strings (the value GET's hot path); a path that does not decode is the same 400
/// envelope as [`ApiPath`]'s.
pub(crate) struct ApiRawPath(pub axum::extract::RawPathParams);

impl ApiRawPath {
    /// The parameter `name` (the router always captures it on the routes that use this).
    pub(crate) fn get(&self, name: &str) -> Result<&str, ApiError> {
        self.0
            .iter()
            .find_map(|(param, value)| (param == name).then_some(value))
            .ok_or_else(|| {
                ApiError::bad_request(
                    codes::BAD_REQUEST,
                    format!("invalid path: no `{name}` parameter"),
                )
            })
    }
}

impl<S> FromRequestParts<S> for ApiRawPath
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map(ApiRawPath)
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

/// Limits `route`'s request bodies to `limit` bytes: a body whose `Content-Length` is larger is
/// answered 413 at once, before any of it is read (and the connection closed, since the body is
/// left unread), and a body without a length (chunked) fails its read with 413 as soon as it
/// passes the limit, so no more than `limit` bytes of it are ever buffered.
pub(crate) fn limit_body<S>(route: MethodRouter<S>, limit: usize) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    // One `layer` call: axum wraps (and boxes) each endpoint once per call.
    route.layer::<_, Infallible>(
        ServiceBuilder::new()
            .layer(DeclaredLengthLimit { limit })
            .layer(DefaultBodyLimit::max(limit)),
    )
}

/// The layer of [`limit_body`] that refuses a declared length over the limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeclaredLengthLimit {
    limit: usize,
}

impl<S> Layer<S> for DeclaredLengthLimit {
    type Service = DeclaredLength<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DeclaredLength {
            inner,
            limit: self.limit,
        }
    }
}

/// The service of [`DeclaredLengthLimit`].
#[derive(Debug, Clone)]
pub(crate) struct DeclaredLength<S> {
    inner: S,
    limit: usize,
}

impl<S> Service<Request> for DeclaredLength<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match declared_length(request.headers()) {
            Some(length) if length > self.limit as u64 => {
                Either::Left(ready(Ok(declared_too_large(length, self.limit))))
            }
            _ => Either::Right(self.inner.call(request)),
        }
    }
}

/// The body length a request declares in `Content-Length` (hyper has already refused a
/// malformed or conflicting one).
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The 413 answer to a body declared larger than `limit`: the envelope, and `Connection: close`
/// because the body is left unread, so the connection cannot carry another request (and the
/// client learns not to send the rest).
pub(crate) fn declared_too_large(length: u64, limit: usize) -> Response {
    let mut response = ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::PAYLOAD_TOO_LARGE,
        format!(
            "request body of {length} bytes is larger than the {limit} bytes this endpoint accepts"
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Why [`read_at_most`] stopped.
pub(crate) enum ReadError {
    /// The body passed the limit.
    TooLarge,
    /// The body could not be read (the client went away, or stalled past the body timeout).
    Failed(ApiError),
}

/// Reads a whole body of at most `limit` bytes, stopping at the first piece that passes it, so
/// the caller answers 413 having buffered no more than `limit` bytes. A body that arrives in
/// one piece is kept as it is; one in several is gathered into one buffer, allocated once when
/// the length was `declared`.
pub(crate) async fn read_at_most(
    body: Body,
    declared: Option<u64>,
    limit: usize,
) -> Result<Bytes, ReadError> {
    let mut stream = body.into_data_stream();
    let mut first: Option<Bytes> = None;
    let mut gathered = BytesMut::new();
    let mut total = 0usize;
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|error| {
            ReadError::Failed(ApiError::bad_request(
                codes::BAD_REQUEST,
                format!("could not read the request body: {error}"),
            ))
        })?;
        total += piece.len();
        if total > limit {
            return Err(ReadError::TooLarge);
        }
        if let Some(earlier) = first.take() {
            let expected = declared.map_or(0, |length| length.min(limit as u64) as usize);
            gathered.reserve(expected.max(total));
            gathered.extend_from_slice(&earlier);
            gathered.extend_from_slice(&piece);
        } else if gathered.is_empty() {
            first = Some(piece);
        } else {
            gathered.extend_from_slice(&piece);
        }
    }
    Ok(first.unwrap_or_else(|| gathered.freeze()))
}
