//! Runtime config: the documents of the configured namespace, each one's live version and
//! history, any kept version's value (the page diffs two), and rollback.
//!
//! Everything goes through kv-middleware's [`Config`] handle, so versions, history and
//! rollback follow its stored form (`<key>` and `<key>:versions:<N>`).

use axum::extract::State;
use axum::http::StatusCode;
use kv_core::ListOptions;
use kv_middleware::config::{Config, ConfigError};
use serde::Deserialize;
use serde_json::{json, Value};

use super::ConsoleState;
use crate::error::{codes, ok, ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

/// What separates a document's key from its kept versions.
const VERSIONS_MARK: &str = ":versions:";

fn config_error(error: ConfigError) -> ApiError {
    match error {
        ConfigError::Store(kv) => super::store_error(kv),
        ConfigError::Conflict { key, .. } => ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            codes::PRECONDITION_FAILED,
            format!("config {key:?} changed since you opened it; reload it"),
        ),
        ConfigError::VersionNotFound { .. } | ConfigError::Missing { .. } => ApiError::new(
            StatusCode::NOT_FOUND,
            codes::KEY_NOT_FOUND,
            error.to_string(),
        ),
        other => ApiError::bad_request(codes::INVALID_BODY, other.to_string()),
    }
}

async fn namespace(state: &ConsoleState) -> ApiResult<Option<kv_core::Namespace>> {
    let title = &state.config.namespaces.config;
    match state.app.store.find_namespace(title).await? {
        Some(info) => Ok(Some(state.app.namespace(&info.id).await?)),
        None => Ok(None),
    }
}

async fn handle(state: &ConsoleState, key: &str) -> ApiResult<Config<Value>> {
    let Some(ns) = namespace(state).await? else {
        return Err(ApiError::namespace_not_found(
            &state.config.namespaces.config,
        ));
    };
    // Any JSON document; manual refresh: no background task for a page view.
    Config::<Value>::builder(ns, key)
        .with_default_value(Value::Null)
        .with_manual_refresh()
        .load()
        .await
        .map_err(config_error)
}

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    cursor: Option<String>,
}

/// `GET config?cursor=`: one page of the namespace's documents (kept versions left out).
pub(crate) async fn list(
    State(state): State<ConsoleState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult {
    let title = state.config.namespaces.config.clone();
    let Some(ns) = namespace(&state).await? else {
        return Ok(ok(
            json!({"namespace": title, "exists": false, "documents": [], "cursor": ""}),
        ));
    };
    let mut options = ListOptions::new().limit(1000.min(ns.limits().max_list_limit));
    if let Some(cursor) = query.cursor.filter(|c| !c.is_empty()) {
        options = options.cursor(cursor);
    }
    let page = ns.list(&options).await?;
    let documents: Vec<Value> = page
        .keys
        .iter()
        .filter(|key| !key.name.contains(VERSIONS_MARK))
        .map(|key| json!({"key": key.name, "metadata": key.metadata}))
        .collect();
    Ok(ok(json!({
        "namespace": title,
        "exists": true,
        "documents": documents,
        "cursor": page.cursor.unwrap_or_default(),
    })))
}

/// `GET config/{key}`: the live document, its version, and the kept versions.
pub(crate) async fn document(
    State(state): State<ConsoleState>,
    ApiPath(key): ApiPath<String>,
) -> ApiResult {
    let config = handle(&state, &key).await?;
    let versions = config.versions().await.map_err(config_error)?;
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"version": v.version, "updated_at": v.updated_at, "note": v.note}))
        .collect();
    Ok(ok(json!({
        "key": key,
        "live": *config.get(),
        "version": config.version(),
        "versions": versions,
        "now": config.namespace().clock().unix_secs(),
    })))
}

/// `GET config/{key}/versions/{n}`: a kept version's value.
pub(crate) async fn version(
    State(state): State<ConsoleState>,
    ApiPath((key, version)): ApiPath<(String, u64)>,
) -> ApiResult {
    let config = handle(&state, &key).await?;
    let value = config.version_value(version).await.map_err(config_error)?;
    Ok(ok(json!({"key": key, "version": version, "value": value})))
}

#[derive(Deserialize)]
pub(crate) struct RollbackBody {
    version: u64,
}

/// `POST config/{key}/rollback` `{version}`: writes that version again, as a new version.
pub(crate) async fn rollback(
    State(state): State<ConsoleState>,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<RollbackBody>,
) -> ApiResult {
    let config = handle(&state, &key).await?;
    let new = config.rollback(body.version).await.map_err(config_error)?;
    tracing::info!(config = %key, from = body.version, to = new, "console: config rolled back");
    Ok(ok(json!({"key": key, "version": new})))
}
