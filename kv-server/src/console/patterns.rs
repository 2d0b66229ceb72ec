//! Sessions, rate limits and the HTTP cache, read from the namespaces those layers use, in
//! their documented stored forms; every view reads at most one listing page.
//!
//! - **Sessions** (`SessionLayer`): one entry per session under the hex SHA-256 of its ID. The
//!   console counts them (up to one page) and shows one session's data after a search by its
//!   ID; it never lists IDs (the store does not hold them). The ID travels in a `POST` body,
//!   never a URL, so it stays out of access logs.
//! - **Rate limits** (`RateLimitLayer`): one entry `{quota}:{key}` per key, the GCRA
//!   theoretical arrival time in nanoseconds. For a quota name and its rate (`60/min`), the
//!   console lists the keys with state and their remaining allowance, computed with the
//!   layer's own [`gcra::decide`] at cost 0; `limited` when nothing remains.
//! - **Cache** (`CacheLayer`): entries keyed `{path}[?{query}]#{METHOD}[@{host}]` with list
//!   metadata `{"stored_at": ms, "bytes": n, "fresh_until": ms, "revalidate_until": ms,
//!   "error_until": ms}`. The console lists the entries of a URL prefix with their age, size,
//!   state (fresh, stale-while-revalidate, stale-if-error, expired) and store expiry, and purges a prefix through
//!   [`CacheLayer::purge_prefix`].

use std::time::Duration;

use axum::extract::State;
use kv_core::{ListOptions, Namespace};
use kv_middleware::cache::CacheLayer;
use kv_middleware::rate_limit::{gcra, Quota};
use kv_middleware::session::SessionId;
use serde::Deserialize;
use serde_json::{json, Value};

use super::ConsoleState;
use crate::error::{codes, ok, ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};

/// Keys per page of the rate-limit and cache views.
const PAGE: usize = 100;

async fn open(state: &ConsoleState, title: &str) -> ApiResult<Option<Namespace>> {
    match state.app.store.find_namespace(title).await? {
        Some(info) => Ok(Some(state.app.namespace(&info.id).await?)),
        None => Ok(None),
    }
}

fn missing(title: &str) -> ApiResult {
    Ok(ok(json!({"namespace": title, "exists": false})))
}

/// `GET sessions`: how many sessions are stored (counted up to one listing page).
pub(crate) async fn sessions(State(state): State<ConsoleState>) -> ApiResult {
    let title = state.config.namespaces.sessions.clone();
    let Some(ns) = open(&state, &title).await? else {
        return missing(&title);
    };
    let limit = super::namespaces::COUNT_PAGE.min(ns.limits().max_list_limit);
    let page = ns.list(&ListOptions::new().limit(limit)).await?;
    Ok(ok(json!({
        "namespace": title,
        "exists": true,
        "count": page.keys.len(),
        "more": !page.list_complete,
    })))
}

#[derive(Deserialize)]
pub(crate) struct SessionLookup {
    id: String,
}

/// `POST sessions/lookup` `{id}`: one session's stored document, found by its ID.
pub(crate) async fn session(
    State(state): State<ConsoleState>,
    ApiJson(body): ApiJson<SessionLookup>,
) -> ApiResult {
    let title = state.config.namespaces.sessions.clone();
    let Some(ns) = open(&state, &title).await? else {
        return Err(ApiError::namespace_not_found(&title));
    };
    let id: SessionId = body.id.trim().parse().map_err(|_| {
        ApiError::bad_request(
            codes::BAD_REQUEST,
            "that is not a session ID (43 characters of base64url)",
        )
    })?;
    let Some(entry) = ns.get_entry(&id.store_key()).await? else {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            codes::KEY_NOT_FOUND,
            "no session with that ID (it may have expired or been signed out)",
        ));
    };
    let document: Value = serde_json::from_slice(&entry.value).unwrap_or(Value::Null);
    Ok(ok(json!({
        "expires_at": document.get("expires_at"),
        "data": document.get("data"),
        "expiration": entry.expiration,
        "now": ns.clock().unix_secs(),
    })))
}

#[derive(Deserialize)]
pub(crate) struct RateQuery {
    /// The quota's name, as given to the layer.
    quota: String,
    /// Its rate, as the layer's quota text (`60/min`, `5 per 15 minutes`).
    rate: String,
    cursor: Option<String>,
    /// Only keys with nothing left.
    #[serde(default)]
    limited: bool,
}

/// `GET rate-limits?quota=&rate=&cursor=&limited=`: the keys with state under a quota, with
/// their remaining allowance, one page at a time.
pub(crate) async fn rate_limits(
    State(state): State<ConsoleState>,
    ApiQuery(query): ApiQuery<RateQuery>,
) -> ApiResult {
    let title = state.config.namespaces.rate_limits.clone();
    let quota: Quota = query
        .rate
        .parse()
        .map_err(|e: kv_middleware::rate_limit::QuotaError| {
            ApiError::bad_request(codes::BAD_REQUEST, format!("rate {:?}: {e}", query.rate))
        })?;
    if query.quota.is_empty() || query.quota.contains(':') {
        return Err(ApiError::bad_request(
            codes::BAD_REQUEST,
            "a quota name, without `:`",
        ));
    }
    let Some(ns) = open(&state, &title).await? else {
        return missing(&title);
    };
    let prefix = format!("{}:", query.quota);
    let mut options = ListOptions::new()
        .prefix(&prefix)
        .limit(PAGE.min(ns.limits().max_list_limit));
    if let Some(cursor) = query.cursor.filter(|c| !c.is_empty()) {
        options = options.cursor(cursor);
    }
    let page = ns.list(&options).await?;
    let names: Vec<&str> = page.keys.iter().map(|k| k.name.as_str()).collect();
    let now = ns.clock().now();
    let now_nanos = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let mut keys = Vec::new();
    for chunk in names.chunks(ns.limits().max_bulk_get.max(1)) {
        for (name, entry) in chunk.iter().zip(ns.get_many(chunk).await?) {
            let Some(entry) = entry else { continue };
            let Some(tat) = std::str::from_utf8(&entry.value)
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
            else {
                continue;
            };
            let decision = gcra::decide(Some(tat), now_nanos, &quota, 0);
            let limited = decision.remaining == 0;
            if query.limited && !limited {
                continue;
            }
            keys.push(json!({
                "key": &name[prefix.len()..],
                "remaining": decision.remaining,
                "limit": quota.burst(),
                "reset_secs": decision.reset.as_secs_f64(),
                "limited": limited,
            }));
        }
    }
    Ok(ok(json!({
        "namespace": title,
        "exists": true,
        "quota": query.quota,
        "rate": quota.to_string(),
        "keys": keys,
        "cursor": page.cursor.unwrap_or_default(),
    })))
}

#[derive(Deserialize)]
pub(crate) struct CacheQuery {
    /// The URL path prefix (`/api/`).
    prefix: String,
    cursor: Option<String>,
}

fn check_prefix(prefix: &str) -> ApiResult<()> {
    if prefix.starts_with('/') {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            codes::BAD_REQUEST,
            "a URL path prefix starts with `/`",
        ))
    }
}

/// `GET cache?prefix=&cursor=`: the cached entries under a URL prefix, with age, size and
/// state (`fresh`, `stale-while-revalidate`, `stale-if-error`, `expired`; `null` for an entry
/// whose list metadata does not say, such as a `Vary` marker), all from the listing.
pub(crate) async fn cache(
    State(state): State<ConsoleState>,
    ApiQuery(query): ApiQuery<CacheQuery>,
) -> ApiResult {
    check_prefix(&query.prefix)?;
    let title = state.config.namespaces.cache.clone();
    let Some(ns) = open(&state, &title).await? else {
        return missing(&title);
    };
    let mut options = ListOptions::new()
        .prefix(&query.prefix)
        .limit(PAGE.min(ns.limits().max_list_limit));
    if let Some(cursor) = query.cursor.filter(|c| !c.is_empty()) {
        options = options.cursor(cursor);
    }
    let page = ns.list(&options).await?;
    let now_ms = ns
        .clock()
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let entries: Vec<Value> = page
        .keys
        .iter()
        .map(|key| {
            let stored_at = key.metadata.as_ref().and_then(|m| m.get("stored_at")).and_then(Value::as_u64);
            let bytes = key.metadata.as_ref().and_then(|m| m.get("bytes")).and_then(Value::as_u64);
            let until = |field: &str| {
                key.metadata.as_ref().and_then(|m| m.get(field)).and_then(Value::as_u64)
            };
            let state = until("fresh_until").map(|fresh_until| {
                if now_ms < fresh_until {
                    "fresh"
                } else if until("revalidate_until").is_some_and(|at| now_ms < at) {
                    "stale-while-revalidate"
                } else if until("error_until").is_some_and(|at| now_ms < at) {
                    "stale-if-error"
                } else {
                    "expired"
                }
            });
            let (url, rest) = key.name.split_once('#').unwrap_or((&key.name, ""));
            json!({
                "key": key.name,
                "url": url,
                "method": rest.split(['@', '~']).next().unwrap_or(""),
                "variant": key.name.contains('~'),
                "age_secs": stored_at.map(|at| Duration::from_millis(now_ms.saturating_sub(at)).as_secs()),
                "bytes": bytes,
                "state": state,
                "expiration": key.expiration,
            })
        })
        .collect();
    Ok(ok(json!({
        "namespace": title,
        "exists": true,
        "entries": entries,
        "cursor": page.cursor.unwrap_or_default(),
        "now": now_ms / 1000,
    })))
}

#[derive(Deserialize)]
pub(crate) struct PurgeBody {
    prefix: String,
}

/// `POST cache/purge` `{prefix}`: deletes every cached entry under a URL prefix, as the cache
/// layer's own purge does; answers how many.
pub(crate) async fn purge(
    State(state): State<ConsoleState>,
    ApiJson(body): ApiJson<PurgeBody>,
) -> ApiResult {
    check_prefix(&body.prefix)?;
    let title = state.config.namespaces.cache.clone();
    let Some(ns) = open(&state, &title).await? else {
        return Err(ApiError::namespace_not_found(&title));
    };
    let deleted = CacheLayer::new(ns).purge_prefix(&body.prefix).await?;
    tracing::info!(prefix = %body.prefix, deleted, "console: cache purged");
    Ok(ok(json!({"prefix": body.prefix, "deleted": deleted})))
}
