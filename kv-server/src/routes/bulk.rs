//! `PUT /{ns}/bulk`, `POST /{ns}/bulk/delete` (and the older `DELETE /{ns}/bulk`),
//! `POST /{ns}/bulk/get`.

use axum::extract::State;
use kv_core::Entry;
use serde::Deserialize;
use serde_json::{json, Map, Value};

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

/// `POST /{ns}/bulk/get`: up to 100 values as text or JSON, optionally with metadata.
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<NamespacePath>,
    ApiJson(body): ApiJson<BulkGetBody>,
) -> ApiResult {
    let ns = state.namespace(path.id()).await?;
    state
        .metrics
        .count(path.id(), Operation::read, body.keys.len() as u64);
    let entries = ns.get_many(&body.keys).await?;
    let mut values = Map::new();
    for (key, entry) in body.keys.iter().zip(entries) {
        let item = match entry {
            None => Value::Null,
            Some(entry) => render(key, entry, body.kind, body.with_metadata)?,
        };
        values.insert(key.clone(), item);
    }
    Ok(ok(json!({ "values": values })))
}

fn render(key: &str, entry: Entry, kind: ValueKind, with_metadata: bool) -> ApiResult<Value> {
    let value = match kind {
        ValueKind::Text => match String::from_utf8(entry.value.to_vec()) {
            Ok(text) => Value::String(text),
            Err(_) => {
                return Err(ApiError::bad_request(
                    codes::INVALID_BODY,
                    format!("value of key {key:?} is not UTF-8 text; read it with GET values"),
                ))
            }
        },
        ValueKind::Json => serde_json::from_slice(&entry.value).map_err(|e| {
            ApiError::bad_request(
                codes::INVALID_BODY,
                format!("value of key {key:?} is not JSON: {e}"),
            )
        })?,
    };
    if !with_metadata {
        return Ok(value);
    }
    let mut item = json!({ "value": value, "metadata": entry.metadata });
    if let Some(expiration) = entry.expiration {
        item["expiration"] = json!(expiration);
    }
    Ok(item)
}
