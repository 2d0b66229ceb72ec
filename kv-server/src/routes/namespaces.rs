//! `GET /`, `POST /`, `GET /{ns}`, `PUT /{ns}`, `DELETE /{ns}`: the namespace catalog.

use axum::extract::State;
use axum::response::Response;
use kv_core::NamespaceInfo;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{codes, ok, ok_with_info, ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub(crate) struct AccountPath {
    #[allow(dead_code)]
    account_id: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct NamespacePath {
    #[allow(dead_code)]
    account_id: String,
    namespace_id: String,
}

impl NamespacePath {
    /// The namespace id from the path.
    pub(crate) fn id(&self) -> &str {
        &self.namespace_id
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct TitleBody {
    title: Option<String>,
}

/// A namespace as the REST API shows it.
#[derive(Debug, Serialize)]
struct NamespaceResult {
    id: String,
    title: String,
    supports_url_encoding: bool,
}

impl From<NamespaceInfo> for NamespaceResult {
    fn from(info: NamespaceInfo) -> Self {
        NamespaceResult {
            id: info.id,
            title: info.title,
            supports_url_encoding: true,
        }
    }
}

fn title(body: TitleBody) -> ApiResult<String> {
    match body.title {
        Some(title) if !title.trim().is_empty() => Ok(title),
        _ => Err(ApiError::bad_request(
            codes::MISSING_TITLE,
            "the request body needs a non-empty `title`",
        )),
    }
}

/// `GET /`: every namespace (one page holding all of them).
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiPath(_): ApiPath<AccountPath>,
) -> ApiResult {
    let all = state.store.list_namespaces().await?;
    let count = all.len();
    let result: Vec<NamespaceResult> = all.into_iter().map(Into::into).collect();
    Ok(ok_with_info(
        result,
        Some(json!({
            "page": 1,
            "per_page": count.max(1),
            "count": count,
            "total_count": count,
            "total_pages": 1,
        })),
    ))
}

/// `POST /` with `{"title": ...}`: creates a namespace.
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiPath(_): ApiPath<AccountPath>,
    ApiJson(body): ApiJson<TitleBody>,
) -> ApiResult {
    let title = title(body)?;
    let info = state.store.create_namespace(&title).await?;
    tracing::info!(id = %info.id, title = %info.title, "namespace created");
    Ok(ok(NamespaceResult::from(info)))
}

/// `GET /{ns}`: one namespace.
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<NamespacePath>,
) -> ApiResult {
    let info = find(&state, &path.namespace_id).await?;
    Ok(ok(NamespaceResult::from(info)))
}

/// `PUT /{ns}` with `{"title": ...}`: renames a namespace.
pub(crate) async fn rename(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<NamespacePath>,
    ApiJson(body): ApiJson<TitleBody>,
) -> ApiResult {
    let title = title(body)?;
    let info = find(&state, &path.namespace_id).await?;
    state.store.rename_namespace(&info.id, &title).await?;
    Ok(ok(NamespaceResult::from(NamespaceInfo {
        id: info.id,
        title,
    })))
}

/// `DELETE /{ns}`: removes a namespace and everything in it.
pub(crate) async fn delete(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<NamespacePath>,
) -> ApiResult<Response> {
    let info = find(&state, &path.namespace_id).await?;
    state.forget(&info.id);
    state.store.delete_namespace(&info.id).await?;
    tracing::info!(id = %info.id, "namespace deleted");
    Ok(ok(json!({})))
}

/// The namespace with exactly this id (the REST API never resolves titles).
async fn find(state: &AppState, id: &str) -> ApiResult<NamespaceInfo> {
    state
        .store
        .list_namespaces()
        .await?
        .into_iter()
        .find(|ns| ns.id == id)
        .ok_or_else(|| ApiError::namespace_not_found(id))
}
