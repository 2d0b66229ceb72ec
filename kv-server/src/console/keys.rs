//! Keys: prefix search with cursor paging, one entry's view, compare-and-swap edits, delete,
//! download, and bulk upload in chunks.

use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use kv_core::{Entry, ListOptions, PutOptions, PutOutcome, Version, WriteMode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::ConsoleState;
use crate::bulk_format::BulkWriteItem;
use crate::error::{codes, ok, ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::metrics::Operation;

/// Keys per page when the page asks for no other number.
const DEFAULT_PAGE: usize = 50;

/// Bytes of a binary value shown as hex.
const HEX_PREVIEW: usize = 256;

/// Bytes of a text value sent to the page (the rest is a download away).
const TEXT_PREVIEW: usize = 256 * 1024;

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    prefix: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `GET namespaces/{id}/keys?prefix=&cursor=&limit=`: one page, as the REST API pages.
pub(crate) async fn list(
    State(state): State<ConsoleState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult {
    let ns = state.app.namespace(&id).await?;
    let mut options = ListOptions::new().limit(query.limit.unwrap_or(DEFAULT_PAGE));
    if let Some(prefix) = query.prefix.filter(|p| !p.is_empty()) {
        options = options.prefix(prefix);
    }
    if let Some(cursor) = query.cursor.filter(|c| !c.is_empty()) {
        options = options.cursor(cursor);
    }
    // Counted in `/metrics` as the REST API's calls are: the console uses the same quota.
    state.app.metrics.count(&id, Operation::list, 1);
    let page = ns.list(&options).await?;
    let keys: Vec<Value> = page
        .keys
        .iter()
        .map(
            |key| json!({"name": key.name, "expiration": key.expiration, "metadata": key.metadata}),
        )
        .collect();
    Ok(ok(json!({
        "keys": keys,
        "cursor": page.cursor.unwrap_or_default(),
        "list_complete": page.list_complete,
        "now": ns.clock().unix_secs(),
    })))
}

#[derive(Deserialize)]
pub(crate) struct KeyQuery {
    key: String,
    /// For a delete: only if the entry is still at this version.
    version: Option<String>,
}

/// How a value is shown: text, pretty JSON, or binary (size and a hex preview).
fn describe(value: &[u8]) -> Value {
    match std::str::from_utf8(value) {
        Ok(text) => {
            let pretty = serde_json::from_str::<Value>(text)
                .ok()
                .filter(|v| v.is_object() || v.is_array())
                .and_then(|v| serde_json::to_string_pretty(&v).ok());
            let shown: String = if text.len() > TEXT_PREVIEW {
                let mut end = TEXT_PREVIEW;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text[..end].to_owned()
            } else {
                text.to_owned()
            };
            match pretty {
                Some(pretty) if text.len() <= TEXT_PREVIEW => {
                    json!({"kind": "json", "text": shown, "pretty": pretty, "truncated": false})
                }
                _ => json!({"kind": "text", "text": shown, "truncated": text.len() > TEXT_PREVIEW}),
            }
        }
        Err(_) => {
            let preview = &value[..value.len().min(HEX_PREVIEW)];
            let hex = preview
                .chunks(16)
                .map(|row| {
                    row.iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect::<Vec<_>>()
                .join("\n");
            json!({"kind": "binary", "hex": hex, "truncated": value.len() > HEX_PREVIEW})
        }
    }
}

fn entry_view(key: &str, entry: &Entry, now: u64) -> Value {
    json!({
        "key": key,
        "size": entry.value.len(),
        "value": describe(&entry.value),
        "metadata": entry.metadata,
        "expiration": entry.expiration,
        "version": entry.version.to_string(),
        "now": now,
    })
}

/// `GET namespaces/{id}/entry?key=`: the entry as the page shows it, with its version (which
/// an edit sends back for compare-and-swap).
pub(crate) async fn get(
    State(state): State<ConsoleState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
) -> ApiResult {
    let ns = state.app.namespace(&id).await?;
    state.app.metrics.count(&id, Operation::read, 1);
    match ns.get_entry(&query.key).await? {
        Some(entry) => Ok(ok(entry_view(&query.key, &entry, ns.clock().unix_secs()))),
        None => Err(ApiError::key_not_found(&query.key)),
    }
}

/// `GET namespaces/{id}/download?key=`: the raw bytes, as an attachment (never rendered).
pub(crate) async fn download(
    State(state): State<ConsoleState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
) -> ApiResult<Response> {
    let ns = state.app.namespace(&id).await?;
    state.app.metrics.count(&id, Operation::read, 1);
    let Some(value) = ns.get(&query.key).await? else {
        return Err(ApiError::key_not_found(&query.key));
    };
    // The file name keeps only characters that are safe in a header.
    let name: String = query
        .key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut response = value.into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

/// An edit or a new key, from the page.
#[derive(Deserialize)]
pub(crate) struct PutBody {
    key: String,
    /// The value as text, or base64 when `base64` is true.
    value: String,
    #[serde(default)]
    base64: bool,
    /// Keep the stored value (an edit of metadata or expiry only, as for a binary value).
    #[serde(default)]
    keep_value: bool,
    /// JSON metadata, or none.
    metadata: Option<Value>,
    /// Expire this many seconds after the write.
    ttl: Option<u64>,
    /// Expire at this Unix time (when `ttl` is not given).
    expiration: Option<u64>,
    /// The version the entry had when it was opened: the write happens only if it still has
    /// it. `None` creates the key, only if it does not exist.
    version: Option<String>,
}

fn changed_since_opened(key: &str) -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        codes::PRECONDITION_FAILED,
        format!(
            "{key:?} changed since you opened it (someone else wrote or deleted it); nothing was \
             saved. Reload it to see the current value, then edit again."
        ),
    )
}

fn parse_version(text: &str) -> ApiResult<Version> {
    text.parse().map_err(|e: kv_core::ParseVersionError| {
        ApiError::bad_request(codes::BAD_REQUEST, e.to_string())
    })
}

/// Checks a write's condition by reading, for a store without atomic compare-and-swap (the
/// answer says the check was not atomic).
async fn check_without_cas(ns: &kv_core::Namespace, key: &str, mode: WriteMode) -> ApiResult<()> {
    let current = ns.get_entry(key).await?.map(|entry| entry.version);
    if mode.allows(current) {
        Ok(())
    } else if matches!(mode, WriteMode::OnlyIfAbsent) {
        Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            codes::PRECONDITION_FAILED,
            format!("{key:?} already exists; open it to edit it"),
        ))
    } else {
        Err(changed_since_opened(key))
    }
}

/// `PUT namespaces/{id}/entry`: writes value, metadata and expiry, under compare-and-swap on
/// the version the page opened (or only-if-absent for a new key). A key that changed since is
/// refused with 412 and a message saying so.
pub(crate) async fn put(
    State(state): State<ConsoleState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PutBody>,
) -> ApiResult {
    let ns = state.app.namespace(&id).await?;
    let value = if body.keep_value {
        // The version check below makes sure this is the value the page showed.
        match ns.get_entry(&body.key).await? {
            Some(entry) => entry.value.to_vec(),
            None => return Err(changed_since_opened(&body.key)),
        }
    } else if body.base64 {
        base64::engine::general_purpose::STANDARD
            .decode(body.value.as_bytes())
            .map_err(|e| {
                ApiError::bad_request(codes::INVALID_BASE64, format!("value is not base64: {e}"))
            })?
    } else {
        body.value.into_bytes()
    };
    let mode = match &body.version {
        Some(version) => WriteMode::OnlyIfVersion(parse_version(version)?),
        None => WriteMode::OnlyIfAbsent,
    };
    let mut options = PutOptions::new();
    match (body.ttl, body.expiration) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                codes::INVALID_EXPIRATION,
                "give a TTL or an expiration, not both",
            ))
        }
        (Some(ttl), None) => options = options.ttl(std::time::Duration::from_secs(ttl)),
        (None, Some(at)) => options = options.expiration(at),
        (None, None) => {}
    }
    if let Some(metadata) = body.metadata.filter(|m| !m.is_null()) {
        options = options.metadata(metadata);
    }
    let atomic = ns.capabilities().atomic_conditional_writes;
    if !atomic {
        check_without_cas(&ns, &body.key, mode).await?;
    } else {
        options = options.mode(mode);
    }
    state.app.metrics.count(&id, Operation::write, 1);
    match ns.put_with(&body.key, value, options).await? {
        PutOutcome::Written(version) => Ok(ok(json!({
            "key": body.key,
            "version": version.to_string(),
            "atomic": atomic,
        }))),
        PutOutcome::ConditionFailed if body.version.is_none() => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            codes::PRECONDITION_FAILED,
            format!("{:?} already exists; open it to edit it", body.key),
        )),
        PutOutcome::ConditionFailed => Err(changed_since_opened(&body.key)),
    }
}

/// `DELETE namespaces/{id}/entry?key=&version=`: deletes, only if still at `version` when
/// one is given.
pub(crate) async fn delete(
    State(state): State<ConsoleState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<KeyQuery>,
) -> ApiResult {
    let ns = state.app.namespace(&id).await?;
    let mode = match &query.version {
        Some(version) => WriteMode::OnlyIfVersion(parse_version(version)?),
        None => WriteMode::Overwrite,
    };
    let mode = if mode.is_conditional() && !ns.capabilities().atomic_conditional_writes {
        check_without_cas(&ns, &query.key, mode).await?;
        WriteMode::Overwrite
    } else {
        mode
    };
    state.app.metrics.count(&id, Operation::delete, 1);
    match ns.delete_with(&query.key, mode).await? {
        kv_core::DeleteOutcome::Deleted { existed } => {
            Ok(ok(json!({ "key": query.key, "existed": existed })))
        }
        kv_core::DeleteOutcome::ConditionFailed => Err(changed_since_opened(&query.key)),
    }
}

/// `POST namespaces/{id}/bulk`: one chunk of a bulk upload, in Cloudflare's bulk format (the
/// page splits the file and shows its progress chunk by chunk).
pub(crate) async fn bulk(
    State(state): State<ConsoleState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(items): ApiJson<Vec<BulkWriteItem>>,
) -> ApiResult {
    let ns = state.app.namespace(&id).await?;
    ns.limits().check_bulk_write(items.len())?;
    let count = items.len();
    let puts = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| item.into_put(index))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ApiError::bad_request(codes::INVALID_BODY, error.to_string()))?;
    state.app.metrics.count(&id, Operation::write, count as u64);
    ns.put_many(puts).await?;
    Ok(ok(json!({ "written": count })))
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn values_are_shown_by_kind() {
        assert_eq!(describe(b"hello")["kind"], "text");
        let json = describe(br#"{"a":[1,2]}"#);
        assert_eq!(json["kind"], "json");
        assert_eq!(json["pretty"], "{\n  \"a\": [\n    1,\n    2\n  ]\n}");
        let binary = describe(&[0xff, 0x00, 0x10]);
        assert_eq!(binary["kind"], "binary");
        assert_eq!(binary["hex"], "ff 00 10");
        assert_eq!(describe(&[0xfe; 300])["truncated"], true);
    }
}
