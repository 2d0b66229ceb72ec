//! The REST protocol's wire details: URL encoding, the JSON envelope, ETags, the metadata header,
//! content-derived versions and multipart bodies.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;
use kv_core::{KvError, NewEntry, Version};
use percent_encoding::{utf8_percent_encode, AsciiSet, PercentEncode, NON_ALPHANUMERIC};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::BACKEND;

/// Every byte but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`) is percent-encoded,
/// so `/`, `?`, `#`, `%`, spaces, control characters and non-ASCII text all survive a path
/// segment or a query value.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `text` for one path segment or one query value.
pub(crate) fn encode(text: &str) -> PercentEncode<'_> {
    utf8_percent_encode(text, COMPONENT)
}

/// Envelope error code: the key does not exist.
pub(crate) const KEY_NOT_FOUND: u32 = 10009;
/// Envelope error code: the namespace does not exist.
pub(crate) const NAMESPACE_NOT_FOUND: u32 = 10013;
/// Envelope error code: another namespace has this title.
pub(crate) const NAMESPACE_EXISTS: u32 = 10014;
/// Envelope error code (kv-server): a list cursor the server did not hand out.
pub(crate) const INVALID_CURSOR: u32 = 10033;
/// Envelope error code (kv-server): the store cannot do this faithfully.
pub(crate) const UNSUPPORTED: u32 = 10039;
/// Envelope error code (kv-server): no such endpoint.
pub(crate) const ENDPOINT_NOT_FOUND: u32 = 10025;
/// Envelope error code (kv-server): the endpoint exists, but not for this method.
pub(crate) const METHOD_NOT_ALLOWED: u32 = 10038;
/// Envelope error code (kv-server, with 502): the store behind it has no route for this.
pub(crate) const UPSTREAM_NOT_SERVED: u32 = 10042;
/// Envelope error code (kv-server, with 502): the store behind it rejected the request.
pub(crate) const UPSTREAM_REJECTED: u32 = 10043;
/// Envelope error code (Cloudflare's API): "No route for that URI".
pub(crate) const NO_ROUTE: u32 = 7000;

/// Whether an error answer means "this server has no route for the request" rather than
/// anything about the data: a 404, 405 or 501 without an error code (Miniflare answers
/// unknown routes with a `text/plain` `404 Not Found`), or a code that says so (kv-server's
/// 10025 / 10038 and, behind a kv-server, 10042; Cloudflare's 7000).
pub(crate) fn is_not_served(status: http::StatusCode, error: &RemoteError) -> bool {
    use http::StatusCode;
    match error.code {
        0 => matches!(
            status,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED
        ),
        ENDPOINT_NOT_FOUND | METHOD_NOT_ALLOWED | UPSTREAM_NOT_SERVED | NO_ROUTE => true,
        _ => false,
    }
}

/// The `expiration` response header of a value read.
pub(crate) const EXPIRATION_HEADER: &str = "expiration";
/// kv-server's extension: the metadata of a value read, as unpadded base64url of its JSON.
pub(crate) const METADATA_HEADER: &str = "x-kv-metadata";
/// kv-server's extension: the capabilities it advertises on every response.
pub(crate) const CAPABILITIES_HEADER: &str = "x-kv-capabilities";
/// The [`CAPABILITIES_HEADER`] token of a server with atomic conditional writes.
pub(crate) const COMPARE_AND_SWAP: &str = "compare-and-swap";
/// The [`CAPABILITIES_HEADER`] token of a server that always sends [`METADATA_HEADER`].
pub(crate) const METADATA_CAPABILITY: &str = "metadata-header";

/// One entry of an envelope's `errors`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ApiMessage {
    #[serde(default)]
    pub code: u32,
    #[serde(default)]
    pub message: String,
}

/// The envelope `{success, errors, messages, result, result_info}`; only what we read.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub(crate) struct Envelope<T> {
    #[serde(default)]
    pub errors: Vec<ApiMessage>,
    #[serde(default = "none")]
    pub result: Option<T>,
    #[serde(default)]
    pub result_info: Option<ResultInfo>,
}

fn none<T>() -> Option<T> {
    None
}

/// The paging part of an envelope: a cursor (key listings) or Cloudflare's page fields
/// (namespace listings).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ResultInfo {
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub page: Option<u64>,
    #[serde(default)]
    pub per_page: Option<u64>,
    #[serde(default)]
    pub total_count: Option<u64>,
    #[serde(default)]
    pub total_pages: Option<u64>,
}

/// A namespace as the catalog endpoints return it.
#[derive(Debug, Deserialize)]
pub(crate) struct NamespaceItem {
    pub id: String,
    pub title: String,
}

/// A key as the listing returns it. A `metadata` that is present but JSON `null` stays
/// `Some(Value::Null)`, unlike a missing one.
#[derive(Debug, Deserialize)]
pub(crate) struct KeyItem {
    pub name: String,
    #[serde(default)]
    pub expiration: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub metadata: Option<Value>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// The result of a bulk write or delete.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BulkResult {
    #[serde(default)]
    pub unsuccessful_keys: Vec<String>,
}

/// The result of a single delete: kv-server says whether there was an entry.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DeleteResult {
    #[serde(default)]
    pub existed: Option<bool>,
}

/// A remote store's error answer, as the source of [`KvError::Unavailable`] when the server
/// was overloaded or failing (429 and 5xx) and retries did not help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// The HTTP status.
    pub status: u16,
    /// The first error code of the envelope (0 when the answer was not an envelope).
    pub code: u32,
    /// The first error message of the envelope (or the start of the body, or the status text).
    pub message: String,
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "remote store answered {} (code {}): {}",
            self.status, self.code, self.message
        )
    }
}

impl std::error::Error for RemoteError {}

impl RemoteError {
    /// Reads the first error of an error answer; a body that is not an envelope gives code 0
    /// and a message from the body's start or the status's reason.
    pub(crate) fn from_answer(status: http::StatusCode, body: &[u8]) -> Self {
        let first = serde_json::from_slice::<Envelope<serde::de::IgnoredAny>>(body)
            .ok()
            .and_then(|envelope| envelope.errors.into_iter().next());
        let (code, message) = match first {
            Some(error) => (error.code, error.message),
            None => (0, fallback_message(status, body)),
        };
        RemoteError {
            status: status.as_u16(),
            code,
            message,
        }
    }

    /// The typed error for an answer no operation-specific rule claimed.
    pub(crate) fn into_kv_error(self) -> KvError {
        KvError::Remote {
            status: self.status,
            code: self.code,
            message: self.message,
        }
    }
}

fn fallback_message(status: http::StatusCode, body: &[u8]) -> String {
    const MAX: usize = 200;
    match std::str::from_utf8(body) {
        Ok(text) if !text.trim().is_empty() => {
            let text = text.trim();
            let mut end = text.len().min(MAX);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text[..end].to_owned()
        }
        _ => status
            .canonical_reason()
            .unwrap_or("unexpected status")
            .to_owned(),
    }
}

/// Parses a successful answer's envelope.
pub(crate) fn parse_envelope<T>(body: &[u8], what: &'static str) -> Result<Envelope<T>, KvError>
where
    T: for<'de> Deserialize<'de>,
{
    serde_json::from_slice(body).map_err(|error| protocol(format!("{what}: {error}")))
}

/// A protocol violation: the server answered something this client cannot read.
pub(crate) fn protocol(message: impl Into<String>) -> KvError {
    KvError::backend(
        BACKEND,
        kv_core::Message(format!(
            "unexpected answer from the server: {}",
            message.into()
        )),
    )
}

/// The version an `ETag` carries (`"<16 hex>"`, weak or strong), when it is one of ours.
pub(crate) fn etag_version(headers: &HeaderMap) -> Option<Version> {
    let tag = headers.get(http::header::ETAG)?.to_str().ok()?.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    let tag = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag);
    tag.parse().ok()
}

/// The `ETag` request value naming `version`.
pub(crate) fn etag_value(version: Version) -> http::HeaderValue {
    http::HeaderValue::from_str(&format!("\"{version}\"")).expect("hex digits are a header value")
}

/// The version of an entry read from a server that sends no `ETag`: a hash of its content, so
/// it is stable across reads and changes when the content does (but not on a rewrite of the
/// same content, which is why such servers never get compare-and-swap).
pub(crate) fn content_version(
    value: &[u8],
    metadata: Option<&Value>,
    expiration: Option<u64>,
) -> Version {
    // FNV-1a, 64 bits: stable across Rust versions and platforms, unlike `DefaultHasher`.
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    fn mix(mut hash: u64, bytes: &[u8]) -> u64 {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
        hash
    }
    let mut hash = mix(OFFSET, &(value.len() as u64).to_le_bytes());
    hash = mix(hash, value);
    match metadata {
        Some(metadata) => {
            hash = mix(hash, &[1]);
            hash = mix(hash, metadata.to_string().as_bytes());
        }
        None => hash = mix(hash, &[0]),
    }
    match expiration {
        Some(at) => {
            hash = mix(hash, &[1]);
            hash = mix(hash, &at.to_le_bytes());
        }
        None => hash = mix(hash, &[0]),
    }
    Version::from_raw(hash)
}

/// The version of an entry we just wrote, from the answer's `ETag` or else its content.
pub(crate) fn written_version(headers: &HeaderMap, entry: &NewEntry) -> Version {
    etag_version(headers)
        .unwrap_or_else(|| content_version(&entry.value, entry.metadata.as_ref(), entry.expiration))
}

/// Decodes the `x-kv-metadata` header.
pub(crate) fn decode_metadata_header(value: &http::HeaderValue) -> Result<Value, KvError> {
    let json = URL_SAFE_NO_PAD
        .decode(value.as_bytes())
        .map_err(|e| protocol(format!("{METADATA_HEADER} is not base64url: {e}")))?;
    serde_json::from_slice(&json)
        .map_err(|e| protocol(format!("{METADATA_HEADER} is not JSON: {e}")))
}

/// Reads the `expiration` header (seconds since the epoch).
pub(crate) fn expiration_header(headers: &HeaderMap) -> Result<Option<u64>, KvError> {
    match headers.get(EXPIRATION_HEADER) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| protocol(format!("{EXPIRATION_HEADER} header {value:?}"))),
    }
}

/// Whether a capabilities header lists `token` (comma-separated, case-insensitive).
pub(crate) fn has_capability(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(CAPABILITIES_HEADER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// A `multipart/form-data` body with the `value` and `metadata` fields that a value write with
/// metadata sends; returns the content type and the body.
pub(crate) fn multipart(value: &[u8], metadata: &Value) -> (String, Bytes) {
    // 128 random bits: the chance that the boundary occurs inside a value is negligible.
    let boundary = format!("kv-boundary-{}", kv_core::new_namespace_id());
    let metadata = metadata.to_string();
    let mut body = BytesMut::with_capacity(value.len() + metadata.len() + 4 * boundary.len() + 256);
    let field = |body: &mut BytesMut, name: &str, content_type: &str| {
        body.put_slice(b"--");
        body.put_slice(boundary.as_bytes());
        body.put_slice(b"\r\nContent-Disposition: form-data; name=\"");
        body.put_slice(name.as_bytes());
        body.put_slice(b"\"\r\nContent-Type: ");
        body.put_slice(content_type.as_bytes());
        body.put_slice(b"\r\n\r\n");
    };
    field(&mut body, "value", "application/octet-stream");
    body.put_slice(value);
    body.put_slice(b"\r\n");
    field(&mut body, "metadata", "application/json");
    body.put_slice(metadata.as_bytes());
    body.put_slice(b"\r\n--");
    body.put_slice(boundary.as_bytes());
    body.put_slice(b"--\r\n");
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.freeze(),
    )
}

/// The relative lifetime sent for an absolute `expiration` at `now_secs` (see the module docs
/// of the backend, "Time").
pub(crate) fn expiration_ttl(expiration: u64, now_secs: u64) -> u64 {
    expiration.saturating_sub(now_secs)
}

/// One item of a bulk write in Cloudflare's format: text values as they are, others base64;
/// the expiry as `expiration_ttl` from `now_secs`.
pub(crate) fn bulk_item(key: &str, entry: &NewEntry, now_secs: u64) -> Value {
    let mut item = serde_json::Map::with_capacity(5);
    item.insert("key".into(), Value::String(key.to_owned()));
    match std::str::from_utf8(&entry.value) {
        Ok(text) => {
            item.insert("value".into(), Value::String(text.to_owned()));
        }
        Err(_) => {
            item.insert("value".into(), Value::String(STANDARD.encode(&entry.value)));
            item.insert("base64".into(), Value::Bool(true));
        }
    }
    if let Some(expiration) = entry.expiration {
        item.insert(
            "expiration_ttl".into(),
            Value::from(expiration_ttl(expiration, now_secs)),
        );
    }
    if let Some(metadata) = &entry.metadata {
        item.insert("metadata".into(), metadata.clone());
    }
    Value::Object(item)
}

/// About how many bytes [`bulk_item`] adds to a request body.
pub(crate) fn bulk_item_size(key: &str, entry: &NewEntry) -> usize {
    let metadata = entry.metadata.as_ref().map_or(0, |m| m.to_string().len());
    // base64 is 4/3 of the value; JSON escaping of text can be larger, but bodies are capped
    // well below the server's limit.
    key.len() * 2 + entry.value.len() * 4 / 3 + metadata + 96
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, StatusCode};
    use serde_json::json;

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        let encoded = encode("a/b c?d#e%f+g&h=i~j_k.l-m").to_string();
        assert_eq!(encoded, "a%2Fb%20c%3Fd%23e%25f%2Bg%26h%3Di~j_k.l-m");
        assert_eq!(encode("ключ").to_string(), "%D0%BA%D0%BB%D1%8E%D1%87");
        assert_eq!(encode("nul\0\n").to_string(), "nul%00%0A");
        assert_eq!(encode("...").to_string(), "...");
    }

    #[test]
    fn etags() {
        let mut headers = HeaderMap::new();
        assert_eq!(etag_version(&headers), None);
        let version = Version::from_raw(0xabc);
        headers.insert(http::header::ETAG, etag_value(version));
        assert_eq!(etag_version(&headers), Some(version));
        headers.insert(
            http::header::ETAG,
            HeaderValue::from_static("W/\"0000000000000abc\""),
        );
        assert_eq!(etag_version(&headers), Some(version));
        headers.insert(http::header::ETAG, HeaderValue::from_static("\"xyz\""));
        assert_eq!(etag_version(&headers), None);
    }

    #[test]
    fn content_versions_depend_on_every_part() {
        let base = content_version(b"v", None, None);
        assert_eq!(base, content_version(b"v", None, None));
        assert_ne!(base, content_version(b"w", None, None));
        assert_ne!(base, content_version(b"v", Some(&json!(null)), None));
        assert_ne!(base, content_version(b"v", None, Some(10)));
        assert_ne!(
            content_version(b"v", Some(&json!({"a": 1})), None),
            content_version(b"v", Some(&json!({"a": 2})), None)
        );
    }

    #[test]
    fn remote_errors_read_the_envelope_or_fall_back() {
        let body = br#"{"success":false,"errors":[{"code":10009,"message":"key not found"}],"messages":[],"result":null}"#;
        let error = RemoteError::from_answer(StatusCode::NOT_FOUND, body);
        assert_eq!((error.status, error.code), (404, 10009));
        assert_eq!(error.message, "key not found");
        let error = RemoteError::from_answer(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(
            (error.code, error.message.as_str()),
            (0, "<html>bad gateway</html>")
        );
        let error = RemoteError::from_answer(StatusCode::BAD_GATEWAY, b"");
        assert_eq!(error.message, "Bad Gateway");
    }

    #[test]
    fn not_served_is_a_route_answer_not_a_data_answer() {
        let text = RemoteError::from_answer(StatusCode::NOT_FOUND, b"404 Not Found");
        assert!(is_not_served(StatusCode::NOT_FOUND, &text));
        assert!(is_not_served(StatusCode::METHOD_NOT_ALLOWED, &text));
        assert!(!is_not_served(StatusCode::BAD_REQUEST, &text));
        let missing_key = RemoteError::from_answer(
            StatusCode::NOT_FOUND,
            br#"{"success":false,"errors":[{"code":10009,"message":"get: 'key not found'"}]}"#,
        );
        assert!(!is_not_served(StatusCode::NOT_FOUND, &missing_key));
        let missing_ns = RemoteError::from_answer(
            StatusCode::NOT_FOUND,
            br#"{"success":false,"errors":[{"code":10013,"message":"namespace not found"}]}"#,
        );
        assert!(!is_not_served(StatusCode::NOT_FOUND, &missing_ns));
        for code in [
            ENDPOINT_NOT_FOUND,
            METHOD_NOT_ALLOWED,
            UPSTREAM_NOT_SERVED,
            NO_ROUTE,
        ] {
            let body = format!(r#"{{"success":false,"errors":[{{"code":{code},"message":"x"}}]}}"#);
            let error = RemoteError::from_answer(StatusCode::BAD_GATEWAY, body.as_bytes());
            assert!(is_not_served(StatusCode::BAD_GATEWAY, &error), "{code}");
        }
        let unsupported = RemoteError::from_answer(
            StatusCode::NOT_IMPLEMENTED,
            br#"{"success":false,"errors":[{"code":10039,"message":"x"}]}"#,
        );
        assert!(!is_not_served(StatusCode::NOT_IMPLEMENTED, &unsupported));
    }

    #[test]
    fn key_items_keep_null_metadata() {
        let items: Vec<KeyItem> =
            serde_json::from_str(r#"[{"name":"a","metadata":null},{"name":"b","expiration":5}]"#)
                .unwrap();
        assert_eq!(items[0].metadata, Some(Value::Null));
        assert_eq!(items[1].metadata, None);
        assert_eq!(items[1].expiration, Some(5));
    }

    #[test]
    fn capabilities_are_comma_separated_tokens() {
        let mut headers = HeaderMap::new();
        assert!(!has_capability(&headers, COMPARE_AND_SWAP));
        headers.insert(
            CAPABILITIES_HEADER,
            HeaderValue::from_static("metadata-header, Compare-And-Swap"),
        );
        assert!(has_capability(&headers, COMPARE_AND_SWAP));
        assert!(has_capability(&headers, METADATA_CAPABILITY));
        assert!(!has_capability(&headers, "other"));
    }

    #[test]
    fn multipart_body_has_both_fields() {
        let (content_type, body) = multipart(b"\x00\xffvalue", &json!({"a": 1}));
        let boundary = content_type.split("boundary=").nth(1).unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("name=\"value\""));
        assert!(text.contains("name=\"metadata\""));
        assert!(text.contains("{\"a\":1}"));
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
    }

    #[test]
    fn bulk_items_base64_only_binary_values() {
        let text = NewEntry {
            value: Bytes::from_static(b"hello"),
            metadata: Some(json!({"m": true})),
            expiration: Some(99),
        };
        assert_eq!(
            bulk_item("k", &text, 9),
            json!({"key": "k", "value": "hello", "expiration_ttl": 90, "metadata": {"m": true}})
        );
        let binary = NewEntry {
            value: Bytes::from_static(&[0xff, 0]),
            metadata: None,
            expiration: None,
        };
        assert_eq!(
            bulk_item("k", &binary, 9),
            json!({"key": "k", "value": "/wA=", "base64": true})
        );
    }
}
