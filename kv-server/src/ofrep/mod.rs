//! OFREP, the OpenFeature Remote Evaluation Protocol, over a [`FlagStore`]
//! (`kv serve --flags-namespace NAME`).
//!
//! | method and path | answer |
//! | --- | --- |
//! | `POST /ofrep/v1/evaluate/flags/{key}` `{"context": {...}}` | one evaluation |
//! | `POST /ofrep/v1/evaluate/flags` `{"context": {...}}` | every flag, with an `ETag` |
//!
//! The shapes and status codes are the protocol's (`service/openapi.yaml` of
//! open-feature/protocol):
//!
//! - 200 `{"key", "value", "reason", "variant", "metadata"}` for an evaluation that served a
//!   variant. A `DISABLED` flag answers 200 `{"key", "reason": "DISABLED", "metadata"}` with no
//!   `value` and no `variant`: the protocol's "code default" form (ADR 0006), which tells the
//!   client to use the default its caller passed, as OpenFeature says a disabled flag does.
//! - 404 `{"key", "errorCode": "FLAG_NOT_FOUND", "errorDetails"}` for an unknown flag.
//! - 400 `{"key", "errorCode", "errorDetails"}` for any other evaluation error (`PARSE_ERROR`
//!   for a flag that does not validate, `GENERAL`, ...), and `INVALID_CONTEXT` for a body that
//!   is not JSON, a `context` that is not an object, or a `targetingKey` that is not a string.
//! - 500 `{"errorDetails"}` before the flags were ever loaded.
//! - 413 `{"errorDetails"}` for a body over 1 MiB.
//!
//! The bulk answer is `{"flags": [...]}`, one success or failure object per flag (a disabled
//! flag included, in the code-default form), sorted by key. Its `ETag` is a digest of the answer
//! itself, so it changes when a flag changes *or* when the same context now evaluates
//! differently (a new context, a time-based rule), and a request whose `If-None-Match` names it
//! gets 304 with no body. (An ETag made from the flags' versions alone would answer 304 to a
//! client whose context changed.)
//!
//! Metadata values are limited to booleans, strings and numbers, as the protocol's schema says;
//! other metadata values of a flag are left out of OFREP answers. The context is the request's
//! only: no header or client address is added to it, and `targetingKey` is whatever the client
//! sends, so OFREP suits evaluation for a client that is trusted to say who it is (a backend, or
//! a browser's own flags), not access control.
//!
//! The routes sit behind the server's bearer token like every other route.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use kv_middleware::flags::{EvaluationContext, EvaluationDetails, FlagStore};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Largest OFREP request body, in bytes: a context is small.
pub const MAX_OFREP_BODY_BYTES: usize = 1024 * 1024;

/// The single-flag evaluation path.
pub const EVALUATE_FLAG_PATH: &str = "/ofrep/v1/evaluate/flags/{key}";
/// The bulk evaluation path.
pub const EVALUATE_FLAGS_PATH: &str = "/ofrep/v1/evaluate/flags";

/// The OFREP routes over `flags`, for any router state.
pub(crate) fn router<S>(flags: FlagStore) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let one = crate::extract::limit_body(post(evaluate_one), MAX_OFREP_BODY_BYTES);
    let all = crate::extract::limit_body(post(evaluate_all), MAX_OFREP_BODY_BYTES);
    Router::new()
        .route(EVALUATE_FLAG_PATH, one)
        .route(EVALUATE_FLAGS_PATH, all)
        .with_state(flags)
}

async fn evaluate_one(
    State(flags): State<FlagStore>,
    key: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let key = match key {
        Ok(Path(key)) => key,
        Err(rejection) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"key": "", "errorCode": "GENERAL", "errorDetails": rejection.body_text()}),
            )
        }
    };
    let context = match body
        .map_err(BodyError::Read)
        .and_then(|b| parse_context(&b))
    {
        Ok(context) => context,
        Err(BodyError::Read(rejection)) => return body_failure(rejection),
        Err(BodyError::Context(details)) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"key": key, "errorCode": "INVALID_CONTEXT", "errorDetails": details}),
            )
        }
    };
    if !flags.is_ready() {
        return not_ready();
    }
    let (status, body) = evaluation_json(flags.snapshot().details(&key, &context, None));
    json_response(status, &body)
}

async fn evaluate_all(
    State(flags): State<FlagStore>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let context = match body
        .map_err(BodyError::Read)
        .and_then(|b| parse_context(&b))
    {
        Ok(context) => context,
        Err(BodyError::Read(rejection)) => return body_failure(rejection),
        Err(BodyError::Context(details)) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"errorCode": "INVALID_CONTEXT", "errorDetails": details}),
            )
        }
    };
    if !flags.is_ready() {
        return not_ready();
    }
    // One snapshot for the whole answer: every flag as of one moment.
    let snapshot = flags.snapshot();
    let results: Vec<Value> = snapshot
        .keys()
        .iter()
        .map(|key| evaluation_json(snapshot.details(key, &context, None)).1)
        .collect();
    let body = serde_json::to_vec(&json!({ "flags": results })).unwrap_or_default();
    let tag = etag_of(&body);
    if if_none_match(&headers, &tag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().insert(ETAG, tag);
        return response;
    }
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ETAG, tag);
    response
}

enum BodyError {
    Read(BytesRejection),
    Context(String),
}

/// The evaluation context of a request body `{"context": {...}}`; an empty body is an empty
/// context.
pub fn context_from_body(body: &[u8]) -> Result<EvaluationContext, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(EvaluationContext::new());
    }
    let request: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Value::Object(mut request) = request else {
        return Err("the body must be a JSON object".to_owned());
    };
    match request.remove("context") {
        None | Some(Value::Null) => Ok(EvaluationContext::new()),
        Some(Value::Object(context)) => context_from_json(context),
        Some(_) => Err("`context` must be a JSON object".to_owned()),
    }
}

/// An evaluation context from an OpenFeature context object: `targetingKey` (a string) is the
/// targeting key, every other field an attribute.
pub fn context_from_json(object: Map<String, Value>) -> Result<EvaluationContext, String> {
    let mut context = EvaluationContext::new();
    for (name, value) in object {
        if name == "targetingKey" {
            match value {
                Value::String(key) => context.set_targeting_key(Some(key)),
                Value::Null => {}
                _ => return Err("`targetingKey` must be a string".to_owned()),
            }
        } else {
            context.set_attribute(name, value);
        }
    }
    Ok(context)
}

fn parse_context(body: &[u8]) -> Result<EvaluationContext, BodyError> {
    context_from_body(body).map_err(BodyError::Context)
}

/// The status and body OFREP gives for one evaluation.
fn evaluation_json(details: EvaluationDetails<Option<Value>>) -> (StatusCode, Value) {
    let key = details.flag_key;
    let metadata = scalar_metadata(&details.flag_metadata);
    if let Some(value) = details.value {
        let mut body = json!({
            "key": key,
            "value": value,
            "reason": details.reason.as_str(),
            "metadata": metadata,
        });
        if let Some(variant) = details.variant {
            body["variant"] = json!(variant);
        }
        return (StatusCode::OK, body);
    }
    let Some(code) = details.error_code else {
        // No value and no error: the caller's default applies (a disabled flag).
        return (
            StatusCode::OK,
            json!({"key": key, "reason": details.reason.as_str(), "metadata": metadata}),
        );
    };
    let code = code.as_str();
    let status = match code {
        "FLAG_NOT_FOUND" => StatusCode::NOT_FOUND,
        "PROVIDER_NOT_READY" => return not_ready_json(),
        _ => StatusCode::BAD_REQUEST,
    };
    let error_code = match code {
        // The protocol's failure codes; anything else is GENERAL to a client.
        "FLAG_NOT_FOUND"
        | "PARSE_ERROR"
        | "TARGETING_KEY_MISSING"
        | "INVALID_CONTEXT"
        | "GENERAL" => code,
        _ => "GENERAL",
    };
    let details = details
        .error_message
        .unwrap_or_else(|| format!("flag `{key}` could not be evaluated ({code})"));
    let mut body = json!({"key": key, "errorCode": error_code, "errorDetails": details});
    if !metadata.is_empty() {
        body["metadata"] = Value::Object(metadata);
    }
    (status, body)
}

/// The metadata values the protocol allows: booleans, strings and numbers.
fn scalar_metadata(metadata: &Map<String, Value>) -> Map<String, Value> {
    metadata
        .iter()
        .filter(|(_, v)| matches!(v, Value::Bool(_) | Value::String(_) | Value::Number(_)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn not_ready_json() -> (StatusCode, Value) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"errorDetails": "the flags have not been loaded yet"}),
    )
}

fn not_ready() -> Response {
    let (status, body) = not_ready_json();
    json_response(status, &body)
}

fn body_failure(rejection: BytesRejection) -> Response {
    let status = rejection.status();
    let status = if status == StatusCode::PAYLOAD_TOO_LARGE {
        status
    } else {
        StatusCode::BAD_REQUEST
    };
    json_response(status, &json!({"errorDetails": rejection.body_text()}))
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, serde_json::to_vec(body).unwrap_or_default()).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A strong ETag naming these bytes.
fn etag_of(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex digits are a valid header")
}

/// Whether `If-None-Match` names `tag` (or is `*`). Weak and unquoted forms match too: clients
/// differ in how they echo a tag back.
fn if_none_match(headers: &HeaderMap, tag: &HeaderValue) -> bool {
    let tag = tag.to_str().unwrap_or_default().trim_matches('"');
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|candidate| {
            let candidate = candidate.trim();
            candidate
                .strip_prefix("W/")
                .unwrap_or(candidate)
                .trim_matches('"')
        })
        .any(|candidate| candidate == "*" || candidate == tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kv_middleware::flags::Reason;

    #[test]
    fn contexts_from_bodies() {
        assert!(context_from_body(b"").unwrap().targeting_key().is_none());
        let context =
            context_from_body(br#"{"context":{"targetingKey":"u1","plan":"pro"}}"#).unwrap();
        assert_eq!(context.targeting_key(), Some("u1"));
        assert_eq!(context.attribute("plan"), Some(&json!("pro")));
        assert!(context_from_body(b"{").is_err());
        assert!(context_from_body(b"[]").is_err());
        assert!(context_from_body(br#"{"context":[1]}"#).is_err());
        assert!(context_from_body(br#"{"context":{"targetingKey":7}}"#).is_err());
    }

    #[test]
    fn if_none_match_forms() {
        let tag = HeaderValue::from_static("\"abc\"");
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(IF_NONE_MATCH, HeaderValue::from_static(value));
            if_none_match(&headers, &tag)
        };
        assert!(with("\"abc\""));
        assert!(with("W/\"abc\""));
        assert!(with("abc"));
        assert!(with("\"x\", \"abc\""));
        assert!(with("*"));
        assert!(!with("\"abd\""));
        assert!(!if_none_match(&HeaderMap::new(), &tag));
    }

    #[test]
    fn disabled_evaluations_defer_to_the_callers_default() {
        let evaluation = EvaluationDetails {
            flag_key: "f".to_owned(),
            value: None,
            variant: None,
            reason: Reason::Disabled,
            error_code: None,
            error_message: None,
            flag_metadata: Map::new(),
        };
        let (status, body) = evaluation_json(evaluation);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"key": "f", "reason": "DISABLED", "metadata": {}})
        );
    }
}
