//! Invalidation through the proxy: `PURGE <url>` and `POST /.kv/purge?prefix=PATH`, both
//! behind `Authorization: Bearer <purge token>`.

use axum::body::Body;
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, Method, Request, StatusCode, Uri};
use kv_middleware::cache::CacheLayer;
use serde_json::json;

use crate::error::{self, codes, ApiError};
use crate::tokens_match;

/// The path of prefix purges; reserved by the proxy, never forwarded.
pub const PURGE_PATH: &str = "/.kv/purge";

/// Whether the proxy answers this request itself rather than forwarding it.
pub(crate) fn is_purge(request: &Request<Body>) -> bool {
    request.method().as_str() == "PURGE" || request.uri().path() == PURGE_PATH
}

/// Answers a purge request: 403 when purging is disabled, 401 without the token, 405 for a
/// method other than `POST` on [`PURGE_PATH`], 400 without a usable prefix, else the purge.
pub(crate) async fn handle(
    cache: &CacheLayer,
    token: Option<&str>,
    request: Request<Body>,
) -> Response {
    let Some(token) = token else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            codes::AUTHENTICATION,
            "purging is disabled: start `kv proxy` with --purge-token",
        )
        .into_response();
    };
    if !authorized(&request, token) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            codes::AUTHENTICATION,
            "purging requires `Authorization: Bearer <purge token>`",
        )
        .into_response();
    }
    let uri = request.uri();
    let purged = if request.method().as_str() == "PURGE" {
        // `PURGE http://host/path?q` and `PURGE /path?q` purge the same target: every host,
        // method and variant of it.
        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        cache.purge(target).await
    } else if request.method() == Method::POST {
        let Some(prefix) = prefix_param(uri) else {
            return ApiError::bad_request(
                codes::BAD_REQUEST,
                "give the path prefix to purge as `?prefix=/PATH` (`/` purges everything)",
            )
            .into_response();
        };
        cache.purge_prefix(&prefix).await
    } else {
        let mut response = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            codes::METHOD_NOT_ALLOWED,
            format!("{PURGE_PATH} takes POST"),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    };
    match purged {
        Ok(deleted) => {
            tracing::info!(deleted, "purged");
            error::ok(json!({ "purged": deleted }))
        }
        // The store's error, mapped as everywhere in kv-server (503 when unavailable, ...).
        Err(store_error) => ApiError::from(store_error).into_response(),
    }
}

fn authorized(request: &Request<Body>, token: &str) -> bool {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|presented| tokens_match(presented, token.as_bytes()))
}

/// The `prefix` parameter, form-decoded, when it is a path (starts with `/`).
fn prefix_param(uri: &Uri) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Params {
        prefix: Option<String>,
    }
    Query::<Params>::try_from_uri(uri)
        .ok()?
        .0
        .prefix
        .filter(|prefix| prefix.starts_with('/'))
}
