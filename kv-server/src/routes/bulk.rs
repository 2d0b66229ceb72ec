//! `PUT /{ns}/bulk`, `POST /{ns}/bulk/delete` (and the older `DELETE /{ns}/bulk`),
//! `POST /{ns}/bulk/get`.

use std::io::{self, Write};

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use kv_core::Entry;
use serde::Deserialize;
use serde_json::json;

use crate::bulk_format::{BulkItemError, BulkWriteItem};
use crate::error::{codes, ok, ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::metrics::Operation;
use crate::routes::namespaces::NamespacePath;
use crate::state::AppState;

/// `PUT /{ns}/bulk`: writes up to 10 000 items, all or none.
pub(crate) async fn write(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<NamespacePath>,
    ApiJson(items): ApiJson<Vec<BulkWriteItem>>,
) -> ApiResult {
    let ns = state.namespace(path.id()).await?;
    ns.limits().check_bulk_write(items.len())?;
    let count = items.len();
    let puts = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| item.into_put(index))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| {
            let code = match error {
                BulkItemError::Base64 { .. } => codes::INVALID_BASE64,
                BulkItemError::BothExpirations { .. } => codes::INVALID_EXPIRATION,
            };
            ApiError::bad_request(code, error.to_string())
        })?;
    state
        .metrics
        .count(path.id(), Operation::write, count as u64);
    ns.put_many(puts).await?;
    Ok(ok(
        json!({ "successful_key_count": count, "unsuccessful_keys": [] }),
    ))
}

/// `POST /{ns}/bulk/delete` (and `DELETE /{ns}/bulk`) with a JSON array of keys.
pub(crate) async fn delete(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<NamespacePath>,
    ApiJson(keys): ApiJson<Vec<String>>,
) -> ApiResult {
    let ns = state.namespace(path.id()).await?;
    state
        .metrics
        .count(path.id(), Operation::delete, keys.len() as u64);
    ns.delete_many(&keys).await?;
    Ok(ok(
        json!({ "successful_key_count": keys.len(), "unsuccessful_keys": [] }),
    ))
}

/// The body of a bulk get.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkGetBody {
    keys: Vec<String>,
    #[serde(rename = "type", default)]
    kind: ValueKind,
    #[serde(rename = "withMetadata", default)]
    with_metadata: bool,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ValueKind {
    #[default]
    Text,
    Json,
}

/// How many distinct keys a bulk get reads from the store at once. Reading in groups lets it
/// stop soon after what it read passed the answer's bound, so a request naming 100 large values
/// reads about the bound plus at most this many values, not all 100.
const READ_GROUP: usize = 10;

/// `POST /{ns}/bulk/get`: up to 100 values as text or JSON, optionally with metadata.
///
/// The answer has one entry per distinct key (a JSON object cannot repeat a key), so a key
/// asked for more than once is read and written once. The answer is bounded by
/// [`ServerConfig::bulk_get_response_limit`](crate::ServerConfig::bulk_get_response_limit):
/// larger is 413 with [`codes::BULK_GET_TOO_LARGE`], found out before the answer is built.
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<NamespacePath>,
    ApiJson(body): ApiJson<BulkGetBody>,
) -> ApiResult {
    let ns = state.namespace(path.id()).await?;
    let limits = ns.limits();
    // Every limit is checked before anything is read.
    limits.check_bulk_get(body.keys.len())?;
    let mut distinct: Vec<&str> = Vec::with_capacity(body.keys.len());
    for key in &body.keys {
        limits.check_key(key)?;
        if !distinct.contains(&key.as_str()) {
            distinct.push(key);
        }
    }
    state
        .metrics
        .count(path.id(), Operation::read, body.keys.len() as u64);
    let bound = state.config.bulk_get_response_limit(limits);
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::BULK_GET_TOO_LARGE,
            format!(
                "the answer would be larger than the {bound} bytes this server sends for a bulk \
                 get; ask for fewer keys at a time, or read large values with GET values"
            ),
        )
    };
    let mut entries: Vec<Option<Entry>> = Vec::with_capacity(distinct.len());
    // What the answer takes at least: each key and each value as it will be written.
    let mut at_least = 0usize;
    for group in distinct.chunks(READ_GROUP) {
        let read = ns.get_many(group).await?;
        for (key, entry) in group.iter().zip(&read) {
            let value = entry
                .as_ref()
                .map_or(0, |e| unquoted_len(&e.value, body.kind));
            at_least = at_least.saturating_add(key.len() + value);
        }
        if at_least > bound {
            return Err(too_large());
        }
        entries.extend(read);
    }
    let items = distinct
        .iter()
        .zip(&entries)
        .map(|(key, entry)| Item::new(key, entry.as_ref(), body.kind))
        .collect::<ApiResult<Vec<_>>>()?;
    // Measure the answer exactly (escapes included) before allocating it once.
    let mut measure = Measure { len: 0, bound };
    if write_answer(&mut measure, &items, body.with_metadata).is_err() || measure.len > bound {
        return Err(too_large());
    }
    let mut answer = Vec::with_capacity(measure.len);
    write_answer(&mut answer, &items, body.with_metadata).map_err(|error| {
        tracing::error!(%error, "writing a bulk get answer to memory failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "could not write the answer",
        )
    })?;
    Ok((
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        answer,
    )
        .into_response())
}

/// One distinct key's part of a bulk get answer, borrowing the entry read.
struct Item<'a> {
    key: &'a str,
    /// The entry and its value as it is written; `None` for a missing key.
    found: Option<(&'a Entry, Rendered<'a>)>,
}

/// A value as an answer writes it.
enum Rendered<'a> {
    /// Text, to quote.
    Text(&'a str),
    /// A JSON document, to copy as it is.
    Json(&'a str),
}

impl<'a> Item<'a> {
    /// Checks that the value is what `kind` asks for (400 otherwise), without copying it.
    fn new(key: &'a str, entry: Option<&'a Entry>, kind: ValueKind) -> ApiResult<Self> {
        let Some(entry) = entry else {
            return Ok(Item { key, found: None });
        };
        let value = match kind {
            ValueKind::Text => {
                let text = std::str::from_utf8(&entry.value).map_err(|_| {
                    ApiError::bad_request(
                        codes::INVALID_BODY,
                        format!("value of key {key:?} is not UTF-8 text; read it with GET values"),
                    )
                })?;
                Rendered::Text(text)
            }
            ValueKind::Json => {
                let not_json = |reason: String| {
                    ApiError::bad_request(
                        codes::INVALID_BODY,
                        format!("value of key {key:?} is not JSON: {reason}"),
                    )
                };
                let text = std::str::from_utf8(&entry.value)
                    .map_err(|_| not_json("not UTF-8".to_owned()))?;
                // Validated without building it: a parsed tree can take many times the
                // value's size, and the answer carries the document as stored anyway.
                serde_json::from_str::<serde::de::IgnoredAny>(text)
                    .map_err(|error| not_json(error.to_string()))?;
                Rendered::Json(text.trim_matches(JSON_WHITESPACE))
            }
        };
        Ok(Item {
            key,
            found: Some((entry, value)),
        })
    }
}

/// The characters JSON allows around a value.
const JSON_WHITESPACE: &[char] = &[' ', '\t', '\n', '\r'];

/// How many bytes of `value` an answer writes at least: all of a text value (escaping only
/// adds), a JSON value without the whitespace around it.
fn unquoted_len(value: &[u8], kind: ValueKind) -> usize {
    match kind {
        ValueKind::Text => value.len(),
        ValueKind::Json => {
            let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
            let start = value
                .iter()
                .position(|b| !is_space(b))
                .unwrap_or(value.len());
            let end = value
                .iter()
                .rposition(|b| !is_space(b))
                .map_or(start, |i| i + 1);
            end - start
        }
    }
}

/// Writes the envelope of a bulk get answer: `{"success":true,"errors":[],"messages":[],
/// "result":{"values":{key: value, ...}}}`, each value as text, JSON, or with metadata
/// `{"value", "metadata", "expiration"?}`.
fn write_answer(out: &mut impl Write, items: &[Item<'_>], with_metadata: bool) -> io::Result<()> {
    out.write_all(br#"{"success":true,"errors":[],"messages":[],"result":{"values":{"#)?;
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, item.key)?;
        out.write_all(b":")?;
        let Some((entry, value)) = &item.found else {
            out.write_all(b"null")?;
            continue;
        };
        if with_metadata {
            out.write_all(br#"{"value":"#)?;
        }
        match value {
            Rendered::Text(text) => serde_json::to_writer(&mut *out, text)?,
            Rendered::Json(json) => out.write_all(json.as_bytes())?,
        }
        if with_metadata {
            out.write_all(br#","metadata":"#)?;
            serde_json::to_writer(&mut *out, &entry.metadata)?;
            if let Some(expiration) = entry.expiration {
                write!(out, r#","expiration":{expiration}"#)?;
            }
            out.write_all(b"}")?;
        }
    }
    out.write_all(b"}}}")
}

/// A writer that only counts, failing once the count passes `bound` so that measuring an
/// answer far over the bound stops early.
struct Measure {
    len: usize,
    bound: usize,
}

impl Write for Measure {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.len = self.len.saturating_add(bytes.len());
        if self.len > self.bound {
            return Err(io::Error::other("over the bound"));
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
