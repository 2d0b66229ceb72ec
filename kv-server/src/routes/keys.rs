//! `GET /{ns}/keys?prefix=&limit=&cursor=`: one page of key names.
//!
//! As Cloudflare's: `limit` defaults to 1000 and may not exceed it, `result` holds
//! `{name, expiration?, metadata?}` in key order, and `result_info` is `{count, cursor}` with
//! `count` the keys on this page and an empty `cursor` on the last page (where Cloudflare's
//! clients stop). One difference: Cloudflare refuses a `limit` under 10, and this server
//! accepts any from 1, as the store contract does (no Cloudflare client sends a smaller one,
//! and a small page is useful in tests); a client that must also work against Cloudflare
//! asks for at least 10.

use axum::extract::State;
use kv_core::ListOptions;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{codes, ok_with_info, ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::metrics::Operation;
use crate::routes::namespaces::NamespacePath;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    prefix: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /{ns}/keys`.
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<NamespacePath>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult {
    let ns = state.namespace(path.id()).await?;
    let mut options = ListOptions::new();
    if let Some(limit) = query.limit.as_deref().filter(|l| !l.is_empty()) {
        options.limit = limit.trim().parse().map_err(|_| {
            ApiError::bad_request(
                codes::INVALID_LIMIT,
                format!("limit must be a whole number from 1 to 1000, not {limit:?}"),
            )
        })?;
    }
    options.prefix = query.prefix.filter(|p| !p.is_empty());
    options.cursor = query.cursor.filter(|c| !c.is_empty());
    state.metrics.count(path.id(), Operation::list, 1);
    let page = ns.list(&options).await?;
    let keys: Vec<Value> = page
        .keys
        .into_iter()
        .map(|key| {
            let mut item = json!({ "name": key.name });
            if let Some(expiration) = key.expiration {
                item["expiration"] = json!(expiration);
            }
            if let Some(metadata) = key.metadata {
                item["metadata"] = metadata;
            }
            item
        })
        .collect();
    let info = json!({
        "count": keys.len(),
        "cursor": page.cursor.unwrap_or_default(),
    });
    Ok(ok_with_info(keys, Some(info)))
}
