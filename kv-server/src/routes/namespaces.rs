//! `GET /`, `POST /`, `GET /{ns}`, `PUT /{ns}`, `DELETE /{ns}`: the namespace catalog.
//!
//! The listing pages as Cloudflare's `GET /accounts/{id}/storage/kv/namespaces` does
//! (`page`, `per_page`, `order`, `direction`); see [`list`].

use axum::extract::State;
use axum::response::Response;
use kv_core::NamespaceInfo;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{codes, ok, ok_with_info, ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
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

/// The page size when a listing names none. Cloudflare's API reference gives no default for
/// `per_page` (only its bounds, 1 to 1000); its own example answer shows pages of 20, and so
/// this server pages by 20 too. Clients that want everything at once ask for 1000.
pub(crate) const DEFAULT_PER_PAGE: u64 = 20;

/// The largest `per_page` a listing accepts, as Cloudflare's.
pub(crate) const MAX_PER_PAGE: u64 = 1000;

/// The query of `GET /`. Every field is read as text so that a bad value is answered with the
/// envelope naming the parameter, not with a generic query error.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    page: Option<String>,
    per_page: Option<String>,
    order: Option<String>,
    direction: Option<String>,
}

/// The field a listing is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Id,
    Title,
}

/// One page of the namespace listing, as asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Paging {
    /// From 1.
    page: u64,
    /// 1..=[`MAX_PER_PAGE`].
    per_page: u64,
    order: Order,
    descending: bool,
}

/// An empty parameter (`?page=`) counts as absent, as clients that always send every
/// parameter send empty ones.
fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl Paging {
    /// Checks the query: `page` from 1, `per_page` 1..=1000, `order` `id` or `title`,
    /// `direction` `asc` or `desc`. Without `order` the listing is by title, the order every
    /// backend keeps its catalog in; without `direction`, ascending.
    fn from_query(query: &ListQuery) -> ApiResult<Paging> {
        let page = match present(&query.page) {
            None => 1,
            Some(text) => match text.parse::<u64>() {
                Ok(page) if page >= 1 => page,
                _ => {
                    return Err(ApiError::bad_request(
                        codes::BAD_REQUEST,
                        format!("page must be a whole number from 1, not {text:?}"),
                    ))
                }
            },
        };
        let per_page = match present(&query.per_page) {
            None => DEFAULT_PER_PAGE,
            Some(text) => match text.parse::<u64>() {
                Ok(per_page) if (1..=MAX_PER_PAGE).contains(&per_page) => per_page,
                _ => {
                    return Err(ApiError::bad_request(
                        codes::INVALID_LIMIT,
                        format!(
                            "per_page must be a whole number from 1 to {MAX_PER_PAGE}, not {text:?}"
                        ),
                    ))
                }
            },
        };
        let order = match present(&query.order) {
            None | Some("title") => Order::Title,
            Some("id") => Order::Id,
            Some(other) => {
                return Err(ApiError::bad_request(
                    codes::BAD_REQUEST,
                    format!("order must be `id` or `title`, not {other:?}"),
                ))
            }
        };
        let descending = match present(&query.direction) {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(ApiError::bad_request(
                    codes::BAD_REQUEST,
                    format!("direction must be `asc` or `desc`, not {other:?}"),
                ))
            }
        };
        Ok(Paging {
            page,
            per_page,
            order,
            descending,
        })
    }

    /// Orders `all` and keeps this page of it; a page past the end is empty.
    fn apply(&self, mut all: Vec<NamespaceInfo>) -> Vec<NamespaceInfo> {
        // Ids and titles are each unique, so either order is total and pages never overlap.
        match self.order {
            Order::Id => all.sort_by(|a, b| a.id.cmp(&b.id)),
            Order::Title => all.sort_by(|a, b| a.title.cmp(&b.title)),
        }
        if self.descending {
            all.reverse();
        }
        // Saturating: a huge page number is a page past the end, not an overflow.
        let skip = (self.page - 1).saturating_mul(self.per_page);
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        all.into_iter()
            .skip(skip)
            .take(self.per_page as usize)
            .collect()
    }
}

/// `GET /?page=&per_page=&order=&direction=`: one page of the namespaces, paged as Cloudflare
/// pages them.
///
/// `result_info` describes the page returned: `page` and `per_page` as applied, `count` the
/// namespaces on this page, `total_count` all of them, `total_pages` how many pages of
/// `per_page` hold them (0 when there are none). A page past the end is answered with an empty
/// `result`, which is where Cloudflare's own SDKs (and so wrangler) stop paging; clients that
/// stop at a short page or at `total_pages` stop correctly too. Bad values are 400:
/// `per_page` outside 1..=1000 with [`codes::INVALID_LIMIT`], a bad `page`, `order` or
/// `direction` with [`codes::BAD_REQUEST`].
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiPath(_): ApiPath<AccountPath>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult {
    // Checked before the store is asked, so a bad query costs nothing.
    let paging = Paging::from_query(&query)?;
    let all = state.store.list_namespaces().await?;
    let total = all.len() as u64;
    let page: Vec<NamespaceResult> = paging.apply(all).into_iter().map(Into::into).collect();
    Ok(ok_with_info(
        &page,
        Some(json!({
            "page": paging.page,
            "per_page": paging.per_page,
            "count": page.len(),
            "total_count": total,
            "total_pages": total.div_ceil(paging.per_page),
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
