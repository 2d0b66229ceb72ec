//! The JSON error envelope and the mapping from store errors to HTTP statuses.
//!
//! Codes follow Cloudflare's where it documents one (10000 authentication, 10001 unavailable,
//! 10009 key not found, 10013 namespace not found, 10014 namespace exists, 10019 missing title,
//! 10024 payload too large, 10025 endpoint does not exist, 10028 invalid limit); the others are
//! this server's own and listed in [`codes`].
//!
//! Failures of a remote store behind the server (`kv serve --store http://...`) are 502: with
//! [`codes::UPSTREAM_NOT_SERVED`] when it has no route for the operation, with
//! [`codes::UPSTREAM_REJECTED`] when it refused the request; never 404 (which would read as
//! a missing key) and never 500.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use kv_core::{KvError, LimitError};
use serde::Serialize;
use serde_json::Value;

/// Error codes carried in `errors[].code`.
pub mod codes {
    /// Missing or wrong bearer token.
    pub const AUTHENTICATION: u32 = 10000;
    /// The backing store is unreachable right now.
    pub const UNAVAILABLE: u32 = 10001;
    /// An unexpected failure inside the store.
    pub const INTERNAL: u32 = 10002;
    /// The key does not exist (or has expired).
    pub const KEY_NOT_FOUND: u32 = 10009;
    /// The namespace id does not exist.
    pub const NAMESPACE_NOT_FOUND: u32 = 10013;
    /// Another namespace already has this title.
    pub const NAMESPACE_EXISTS: u32 = 10014;
    /// A namespace create or rename without a title.
    pub const MISSING_TITLE: u32 = 10019;
    /// The value, the metadata or the request body is too large.
    pub const PAYLOAD_TOO_LARGE: u32 = 10024;
    /// No such endpoint.
    pub const ENDPOINT_NOT_FOUND: u32 = 10025;
    /// A list limit outside 1..=1000.
    pub const INVALID_LIMIT: u32 = 10028;
    /// An empty key, `.` or `..`.
    pub const INVALID_KEY: u32 = 10030;
    /// A key longer than 512 bytes.
    pub const KEY_TOO_LONG: u32 = 10031;
    /// A TTL or an expiration that is too short, too soon, too long, too late or not a number.
    pub const INVALID_EXPIRATION: u32 = 10032;
    /// A list cursor this server did not hand out.
    pub const INVALID_CURSOR: u32 = 10033;
    /// A request body that is not the JSON this endpoint expects.
    pub const INVALID_BODY: u32 = 10034;
    /// A bulk item whose `base64` value does not decode.
    pub const INVALID_BASE64: u32 = 10035;
    /// A bulk request with too many (or no) items.
    pub const BULK_SIZE: u32 = 10036;
    /// An `If-Match` / `If-None-Match` condition that does not hold.
    pub const PRECONDITION_FAILED: u32 = 10037;
    /// The endpoint exists but not for this method.
    pub const METHOD_NOT_ALLOWED: u32 = 10038;
    /// The backing store cannot do this faithfully.
    pub const UNSUPPORTED: u32 = 10039;
    /// Anything else wrong with the request (headers, query, multipart form).
    pub const BAD_REQUEST: u32 = 10040;
    /// A bulk get whose answer would be larger than the server's bound (413); ask for fewer
    /// keys at a time.
    pub const BULK_GET_TOO_LARGE: u32 = 10041;
    /// 502: the store behind this server is a remote one (`kv serve --store http://...`) that
    /// has no route for this operation (Miniflare's explorer API cannot create, rename or
    /// delete namespaces). Not a missing key or namespace; asking again gets the same answer.
    pub const UPSTREAM_NOT_SERVED: u32 = 10042;
    /// 502: the remote store behind this server rejected the request with an error of its own
    /// (the message carries its status and code).
    pub const UPSTREAM_REJECTED: u32 = 10043;
}

/// One entry of the envelope's `errors` or `messages`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Message {
    /// A numeric code (see [`codes`]).
    pub code: u32,
    /// What went wrong, naming the offending value or limit.
    pub message: String,
}

/// The JSON envelope of every answer but a raw value.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope<T: Serialize> {
    /// Whether the call succeeded.
    pub success: bool,
    /// Why it failed (empty on success).
    pub errors: Vec<Message>,
    /// Informational messages (always empty here).
    pub messages: Vec<Message>,
    /// The call's result (`null` on failure).
    pub result: T,
    /// Paging information for listings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_info: Option<Value>,
}

/// A successful envelope around `result`.
pub fn ok<T: Serialize>(result: T) -> Response {
    ok_with_info(result, None)
}

/// A successful envelope with `result_info`.
pub fn ok_with_info<T: Serialize>(result: T, result_info: Option<Value>) -> Response {
    Json(Envelope {
        success: true,
        errors: Vec::new(),
        messages: Vec::new(),
        result,
        result_info,
    })
    .into_response()
}

/// An error answer: a status, a code and a message, sent as the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The envelope code.
    pub code: u32,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with a code.
    pub fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 for a missing key.
    pub fn key_not_found(key: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::KEY_NOT_FOUND,
            format!("get: 'key not found': {key:?}"),
        )
    }

    /// 404 for a missing namespace.
    pub fn namespace_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::NAMESPACE_NOT_FOUND,
            format!("namespace not found: {id:?}"),
        )
    }

    /// 412 for a failed `If-Match` / `If-None-Match`.
    pub fn precondition_failed(key: &str) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            codes::PRECONDITION_FAILED,
            format!("precondition failed for key {key:?}: its version does not match"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(Envelope {
                success: false,
                errors: vec![Message {
                    code: self.code,
                    message: self.message,
                }],
                messages: Vec::new(),
                result: Value::Null,
                result_info: None,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<LimitError> for ApiError {
    fn from(error: LimitError) -> Self {
        let message = error.to_string();
        let (status, code) = match &error {
            LimitError::KeyTooLong { .. } => (StatusCode::URI_TOO_LONG, codes::KEY_TOO_LONG),
            LimitError::EmptyKey | LimitError::DotKey { .. } => {
                (StatusCode::BAD_REQUEST, codes::INVALID_KEY)
            }
            LimitError::ValueTooLarge { .. } | LimitError::MetadataTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, codes::PAYLOAD_TOO_LARGE)
            }
            LimitError::TtlTooShort { .. }
            | LimitError::ExpirationTooSoon { .. }
            | LimitError::TtlTooLong { .. }
            | LimitError::ExpirationTooLate { .. } => {
                (StatusCode::BAD_REQUEST, codes::INVALID_EXPIRATION)
            }
            LimitError::ListLimit { .. } => (StatusCode::BAD_REQUEST, codes::INVALID_LIMIT),
            LimitError::BulkGetCount { .. } | LimitError::BulkWriteCount { .. } => {
                (StatusCode::BAD_REQUEST, codes::BULK_SIZE)
            }
            _ => (StatusCode::BAD_REQUEST, codes::BAD_REQUEST),
        };
        ApiError::new(status, code, message)
    }
}

impl From<KvError> for ApiError {
    fn from(error: KvError) -> Self {
        match error {
            KvError::Limit(limit) => limit.into(),
            KvError::InvalidCursor { .. } => {
                ApiError::bad_request(codes::INVALID_CURSOR, error.to_string())
            }
            KvError::InvalidNamespace { .. } => {
                ApiError::bad_request(codes::BAD_REQUEST, error.to_string())
            }
            KvError::NamespaceNotFound { name } => ApiError::namespace_not_found(&name),
            KvError::NamespaceExists { .. } => {
                ApiError::bad_request(codes::NAMESPACE_EXISTS, error.to_string())
            }
            KvError::Unsupported { .. } => ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                codes::UNSUPPORTED,
                error.to_string(),
            ),
            KvError::Decode { .. } => ApiError::bad_request(codes::INVALID_BODY, error.to_string()),
            KvError::NotServed { .. } => {
                tracing::warn!(%error, "the store behind this server has no such route");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    codes::UPSTREAM_NOT_SERVED,
                    error.to_string(),
                )
            }
            KvError::Remote { status, code, .. } => {
                tracing::warn!(%error, "the store behind this server rejected a request");
                // The upstream's message stays in the log: it may describe the upstream's
                // internals, which this server's clients need not see.
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    codes::UPSTREAM_REJECTED,
                    format!("the store behind this server answered {status} (code {code})"),
                )
            }
            KvError::Unavailable { .. } => {
                tracing::warn!(%error, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::UNAVAILABLE,
                    "the store is temporarily unavailable",
                )
            }
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    codes::INTERNAL,
                    "internal store error",
                )
            }
        }
    }
}

/// The result type of handlers.
pub type ApiResult<T = Response> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_failures_are_502_with_their_own_codes() {
        let not_served = ApiError::from(KvError::NotServed {
            backend: "http",
            operation: "namespace creation",
            status: 404,
        });
        assert_eq!(not_served.status, StatusCode::BAD_GATEWAY);
        assert_eq!(not_served.code, codes::UPSTREAM_NOT_SERVED);
        assert!(not_served.message.contains("namespace creation"));
        let rejected = ApiError::from(KvError::Remote {
            status: 400,
            code: 10001,
            message: "limit: Number must be greater than or equal to 10".into(),
        });
        assert_eq!(rejected.status, StatusCode::BAD_GATEWAY);
        assert_eq!(rejected.code, codes::UPSTREAM_REJECTED);
        assert!(rejected.message.contains("400 (code 10001)"));
        let unsupported = ApiError::from(KvError::Unsupported {
            backend: "http",
            operation: "expirations",
        });
        assert_eq!(unsupported.status, StatusCode::NOT_IMPLEMENTED);
    }
}
