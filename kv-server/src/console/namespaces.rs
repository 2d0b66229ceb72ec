//! Namespaces: list (with a cheap count), create, rename, delete with a typed confirmation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use kv_core::{ListOptions, NamespaceInfo};
use serde::Deserialize;
use serde_json::json;

use super::ConsoleState;
use crate::error::{codes, ok, ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};

/// How many keys a count reads at most: one listing page. Beyond it the count says "more
/// than", so a page view never scans a large namespace.
pub(crate) const COUNT_PAGE: usize = 1000;

#[derive(Deserialize)]
pub(crate) struct TitleBody {
    title: String,
}

#[derive(Deserialize)]
pub(crate) struct DeleteBody {
    /// The namespace's title, typed again by the operator.
    confirm: String,
}

fn info(namespace: &NamespaceInfo) -> serde_json::Value {
    json!({ "id": namespace.id, "title": namespace.title })
}

/// `GET namespaces`: every namespace, by title.
pub(crate) async fn list(State(state): State<ConsoleState>) -> ApiResult {
    let mut all = state.app.store.list_namespaces().await?;
    all.sort_by(|a, b| a.title.cmp(&b.title));
    Ok(ok(all.iter().map(info).collect::<Vec<_>>()))
}

/// `GET namespaces/{id}/count`: the number of keys, read from at most one listing page
/// (`{count, more}`; `more` when there are more than [`COUNT_PAGE`]). The contract has no
/// count operation, so this is as cheap as a count gets on every backend.
pub(crate) async fn count(
    State(state): State<ConsoleState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult {
    let ns = state.app.namespace(&id).await?;
    let limit = COUNT_PAGE.min(ns.limits().max_list_limit);
    let page = ns.list(&ListOptions::new().limit(limit)).await?;
    Ok(ok(
        json!({ "count": page.keys.len(), "more": !page.list_complete }),
    ))
}

fn title(body: TitleBody) -> ApiResult<String> {
    let title = body.title.trim().to_owned();
    if title.is_empty() {
        return Err(ApiError::bad_request(
            codes::MISSING_TITLE,
            "a namespace needs a title",
        ));
    }
    kv_core::check_namespace_name(&title)?;
    Ok(title)
}

/// `POST namespaces` `{title}`.
pub(crate) async fn create(
    State(state): State<ConsoleState>,
    ApiJson(body): ApiJson<TitleBody>,
) -> ApiResult {
    let title = title(body)?;
    let created = state.app.store.create_namespace(&title).await?;
    tracing::info!(namespace = %created.id, "console: namespace created");
    Ok(ok(info(&created)))
}

async fn existing(state: &ConsoleState, id: &str) -> ApiResult<NamespaceInfo> {
    state
        .app
        .store
        .list_namespaces()
        .await?
        .into_iter()
        .find(|ns| ns.id == id)
        .ok_or_else(|| ApiError::namespace_not_found(id))
}

/// `PUT namespaces/{id}` `{title}`: renames.
pub(crate) async fn rename(
    State(state): State<ConsoleState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<TitleBody>,
) -> ApiResult {
    let title = title(body)?;
    let namespace = existing(&state, &id).await?;
    state
        .app
        .store
        .rename_namespace(&namespace.id, &title)
        .await?;
    Ok(ok(json!({ "id": namespace.id, "title": title })))
}

/// `DELETE namespaces/{id}` `{confirm}`: deletes the namespace and all its keys, only when
/// `confirm` is its title.
pub(crate) async fn delete(
    State(state): State<ConsoleState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DeleteBody>,
) -> ApiResult<Response> {
    let namespace = existing(&state, &id).await?;
    if body.confirm != namespace.title {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::BAD_REQUEST,
            format!(
                "type the namespace's title, {:?}, to delete it and all its keys",
                namespace.title
            ),
        ));
    }
    state.app.store.delete_namespace(&namespace.id).await?;
    state.app.forget(&namespace.id);
    tracing::info!(namespace = %namespace.id, "console: namespace deleted");
    Ok(ok(json!({ "id": namespace.id })))
}
