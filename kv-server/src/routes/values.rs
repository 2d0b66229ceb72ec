//! `/{ns}/values/{key}` (GET raw bytes, PUT raw or multipart, DELETE) and `/{ns}/metadata/{key}`.

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header::{CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use kv_core::{DeleteOutcome, PutOptions, PutOutcome, Version, WriteMode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{codes, ok, ApiError, ApiResult};
use crate::extract::{
    declared_length, declared_too_large, read_at_most, ApiPath, ApiQuery, ApiRawPath, ReadError,
};
use crate::metrics::Operation;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub(crate) struct KeyPath {
    #[allow(dead_code)]
    account_id: String,
    namespace_id: String,
    key: String,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct WriteQuery {
    expiration: Option<String>,
    expiration_ttl: Option<String>,
}

/// The `expiration` response header carrying an entry's expiry (seconds since the epoch).
pub const EXPIRATION_HEADER: &str = "expiration";

/// Our extension: a value response carries the entry's metadata as unpadded base64url of its
/// JSON, so a client gets value, metadata, expiration and version in one round trip.
pub const METADATA_HEADER: &str = "x-kv-metadata";

/// `GET .../values/{key}`: the raw value, with `expiration` and `ETag` headers.
///
/// The hot path of the server: the path parameters are borrowed rather than deserialized, the
/// memory and file stores answer on the store's synchronous fast path, and the headers are
/// built without formatting.
pub(crate) async fn get_value(State(state): State<AppState>, path: ApiRawPath) -> ApiResult {
    let namespace_id = path.get("namespace_id")?;
    let key = path.get("key")?;
    let ns = state.namespace(namespace_id).await?;
    state.metrics.count(namespace_id, Operation::read, 1);
    let entry = ns
        .get_entry(key)
        .await?
        .ok_or_else(|| ApiError::key_not_found(key))?;
    let mut headers = HeaderMap::with_capacity(4);
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(ETAG, etag(entry.version));
    if let Some(expiration) = entry.expiration {
        headers.insert(EXPIRATION_HEADER, HeaderValue::from(expiration));
    }
    if let Some(metadata) = &entry.metadata {
        let json = serde_json::to_vec(metadata).expect("a JSON value serializes");
        let encoded = URL_SAFE_NO_PAD.encode(json);
        headers.insert(
            METADATA_HEADER,
            HeaderValue::from_str(&encoded).expect("base64url is a valid header value"),
        );
    }
    Ok((headers, entry.value).into_response())
}

/// `GET .../metadata/{key}`: the key's metadata (`null` when it has none).
pub(crate) async fn get_metadata(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<KeyPath>,
) -> ApiResult {
    let ns = state.namespace(&path.namespace_id).await?;
    state.metrics.count(&path.namespace_id, Operation::read, 1);
    let entry = ns
        .get_entry(&path.key)
        .await?
        .ok_or_else(|| ApiError::key_not_found(&path.key))?;
    let mut response = ok(entry.metadata.unwrap_or(Value::Null));
    response.headers_mut().insert(ETAG, etag(entry.version));
    Ok(response)
}

/// `PUT .../values/{key}`: a raw body or a multipart form with `value` and `metadata`.
pub(crate) async fn put_value(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<KeyPath>,
    ApiQuery(query): ApiQuery<WriteQuery>,
    request: Request,
) -> ApiResult {
    let ns = state.namespace(&path.namespace_id).await?;
    let mode = write_mode(request.headers())?;
    let mut options = PutOptions::new().mode(mode);
    options.expiry = parse_expiry(&query)?;
    let max_value = ns.limits().max_value_bytes;
    let (value, metadata) = match read_value(request, &path.key, max_value).await? {
        Read::Value(value, metadata) => (value, metadata),
        Read::Refused(response) => return Ok(response),
    };
    options.metadata = metadata;
    state.metrics.count(&path.namespace_id, Operation::write, 1);
    match ns.put_with(&path.key, value, options).await? {
        PutOutcome::Written(version) => {
            let mut response = ok(json!({}));
            response.headers_mut().insert(ETAG, etag(version));
            Ok(response)
        }
        PutOutcome::ConditionFailed => Err(ApiError::precondition_failed(&path.key)),
    }
}

/// `DELETE .../values/{key}`: removes the key (a missing key is not an error), honouring
/// `If-Match`.
pub(crate) async fn delete_value(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<KeyPath>,
    headers: HeaderMap,
) -> ApiResult {
    let ns = state.namespace(&path.namespace_id).await?;
    let mode = write_mode(&headers)?;
    state
        .metrics
        .count(&path.namespace_id, Operation::delete, 1);
    match ns.delete_with(&path.key, mode).await? {
        DeleteOutcome::Deleted { existed } => Ok(ok(json!({ "existed": existed }))),
        DeleteOutcome::ConditionFailed => Err(ApiError::precondition_failed(&path.key)),
    }
}

/// `.../values/` and `.../metadata/` with nothing after the slash: the empty key.
pub(crate) async fn empty_key() -> ApiError {
    kv_core::LimitError::EmptyKey.into()
}

/// An entry's version as a strong `ETag`.
pub fn etag(version: Version) -> HeaderValue {
    // `"` + 16 lowercase hex digits + `"`, written on the stack (no formatting machinery).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [b'"'; 18];
    let raw = version.raw();
    for (i, digit) in text[1..17].iter_mut().enumerate() {
        *digit = HEX[((raw >> (60 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&text).expect("hex digits are a valid header")
}

/// The write mode asked for by `If-Match: "<version>"` or `If-None-Match: *`.
pub(crate) fn write_mode(headers: &HeaderMap) -> ApiResult<WriteMode> {
    let header = |name: axum::http::HeaderName| {
        headers
            .get(&name)
            .map(|value: &HeaderValue| {
                value.to_str().map(str::trim).map_err(|_| {
                    ApiError::bad_request(codes::BAD_REQUEST, format!("{name} is not ASCII"))
                })
            })
            .transpose()
    };
    match (header(IF_MATCH)?, header(IF_NONE_MATCH)?) {
        (None, None) => Ok(WriteMode::Overwrite),
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            codes::BAD_REQUEST,
            "send either If-Match or If-None-Match, not both",
        )),
        (None, Some("*")) => Ok(WriteMode::OnlyIfAbsent),
        (None, Some(other)) => Err(ApiError::bad_request(
            codes::BAD_REQUEST,
            format!("If-None-Match supports only `*`, not {other:?}"),
        )),
        (Some("*"), None) => Err(ApiError::bad_request(
            codes::BAD_REQUEST,
            "If-Match: * is not supported; send the entry's ETag",
        )),
        (Some(tag), None) => {
            let unquoted = tag
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(tag);
            // A tag that is not one of our versions matches no entry: the condition fails.
            let version = unquoted
                .parse::<Version>()
                .unwrap_or(Version::from_raw(u64::MAX));
            Ok(WriteMode::OnlyIfVersion(version))
        }
    }
}

/// The expiry asked for by the `expiration` / `expiration_ttl` query parameters.
pub(crate) fn parse_expiry(query: &WriteQuery) -> ApiResult<Option<kv_core::Expiry>> {
    let number = |name: &str, text: &str| {
        text.trim().parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                codes::INVALID_EXPIRATION,
                format!("{name} must be a whole number of seconds, not {text:?}"),
            )
        })
    };
    match (&query.expiration, &query.expiration_ttl) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            codes::INVALID_EXPIRATION,
            "send either expiration or expiration_ttl, not both",
        )),
        (Some(at), None) => Ok(Some(kv_core::Expiry::At(number("expiration", at)?))),
        (None, Some(ttl)) => Ok(Some(kv_core::Expiry::Ttl(std::time::Duration::from_secs(
            number("expiration_ttl", ttl)?,
        )))),
        (None, None) => Ok(None),
    }
}

/// What [`read_value`] got from a request body.
enum Read {
    /// The value and its metadata.
    Value(Bytes, Option<Value>),
    /// The answer to send instead (a declared length over the limit).
    Refused(Response),
}

/// Reads the value and optional metadata from a raw or multipart body.
///
/// A raw body is held to the value limit itself (the route's limit leaves room for multipart
/// framing): one declaring a larger `Content-Length` is refused before any of it is read, and
/// one without a length is refused as soon as it passes the limit.
async fn read_value(request: Request, key: &str, max_value: usize) -> ApiResult<Read> {
    let is_multipart = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("multipart/form-data"));
    if !is_multipart {
        let declared = declared_length(request.headers());
        if let Some(length) = declared.filter(|&length| length > max_value as u64) {
            return Ok(Read::Refused(declared_too_large(length, max_value)));
        }
        return match read_at_most(request.into_body(), declared, max_value).await {
            Ok(body) => Ok(Read::Value(body, None)),
            // The body's whole length is not known (nor read): only that it passed the limit.
            Err(ReadError::TooLarge) => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::PAYLOAD_TOO_LARGE,
                format!("value of key {key:?} is more than the limit of {max_value} bytes"),
            )),
            Err(ReadError::Failed(error)) => Err(error),
        };
    }
    let mut form = Multipart::from_request(request, &()).await.map_err(|e| {
        ApiError::bad_request(codes::BAD_REQUEST, format!("invalid multipart form: {e}"))
    })?;
    let (mut value, mut metadata) = (None, None);
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("value") => value = Some(field.bytes().await.map_err(multipart_error)?),
            Some("metadata") => {
                let text = field.bytes().await.map_err(multipart_error)?;
                let parsed = serde_json::from_slice(&text).map_err(|e| {
                    ApiError::bad_request(
                        codes::INVALID_BODY,
                        format!("the metadata field is not JSON: {e}"),
                    )
                })?;
                metadata = Some(parsed);
            }
            _ => {}
        }
    }
    let value = value.ok_or_else(|| {
        ApiError::bad_request(
            codes::BAD_REQUEST,
            "the multipart form has no `value` field",
        )
    })?;
    Ok(Read::Value(value, metadata))
}

fn multipart_error(error: axum::extract::multipart::MultipartError) -> ApiError {
    if error.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            error.status(),
            codes::PAYLOAD_TOO_LARGE,
            "request body is larger than this endpoint accepts",
        )
    } else {
        ApiError::bad_request(
            codes::BAD_REQUEST,
            format!("invalid multipart form: {}", error.body_text()),
        )
    }
}

#[cfg(test)]
mod etag_tests {
    use super::*;

    #[test]
    fn etag_is_the_quoted_version_text() {
        for raw in [0, 1, 0xabc, 0x0123_4567_89ab_cdef, u64::MAX, 1 << 63] {
            let version = Version::from_raw(raw);
            assert_eq!(etag(version).to_str().unwrap(), format!("\"{version}\""));
        }
    }
}
