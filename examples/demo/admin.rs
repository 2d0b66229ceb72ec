//! The admin routes: flag and config administration behind a bearer token.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{header, StatusCode};
use kv_middleware::config::ConfigError;
use kv_middleware::flags::{FlagDefinition, FlagsError};
use serde_json::{json, Value};

use crate::api::ApiError;
use crate::app::Demo;
use crate::config::DemoConfig;

/// Checks `Authorization: Bearer <token>` against the admin token.
#[derive(Clone)]
pub struct BearerAuth {
    token: Arc<str>,
}

impl BearerAuth {
    /// Accepts requests that carry `token`.
    pub fn new(token: &str) -> Self {
        BearerAuth {
            token: token.into(),
        }
    }

    /// Compared as kv-server compares its token: in time that tells an attacker neither where
    /// a guess differs nor the token's length.
    fn accepts(&self, presented: &[u8]) -> bool {
        kv_server::tokens_match(presented, self.token.as_bytes())
    }
}

/// Middleware (with [`axum::middleware::from_fn_with_state`]): 401 with `WWW-Authenticate:
/// Bearer` unless the request carries the admin token.
pub async fn require_token(
    State(auth): State<BearerAuth>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
    match presented {
        Some(token) if auth.accepts(token) => next.run(request).await,
        _ => (
            [(header::WWW_AUTHENTICATE, "Bearer")],
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "a valid admin bearer token is required",
            ),
        )
            .into_response(),
    }
}

/// `PUT /admin/flags/{name}`: validates the flag document, stores it and makes it live here at
/// once (other processes pick it up at their next refresh).
pub async fn put_flag(
    State(demo): State<Demo>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let flag: FlagDefinition = serde_json::from_slice(&body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid flag document: {error}"),
        )
    })?;
    demo.flags
        .validate_flag(&name, &flag)
        .await
        .map_err(flags_error)?;
    let version = demo
        .flags
        .set_flag(&name, &flag)
        .await
        .map_err(flags_error)?;
    refresh_flags(&demo).await;
    Ok(Json(
        json!({ "name": name, "version": version.to_string() }),
    ))
}

/// `DELETE /admin/flags/{name}`: 204, or 404 when there is no such flag.
pub async fn delete_flag(
    State(demo): State<Demo>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !demo.flags.delete_flag(&name).await.map_err(flags_error)? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no flag {name:?}"),
        ));
    }
    refresh_flags(&demo).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /admin/config`: the whole config in use (public and private) and its version.
pub async fn get_config(State(demo): State<Demo>) -> Json<Value> {
    Json(json!({ "version": demo.config.version(), "config": *demo.config.get() }))
}

/// `PUT /admin/config`: validates and stores a new config version.
pub async fn put_config(State(demo): State<Demo>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let config: DemoConfig = serde_json::from_slice(&body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid config document: {error}"),
        )
    })?;
    let version = demo.config.set(&config).await.map_err(config_error)?;
    Ok(Json(json!({ "version": version })))
}

/// `GET /admin/config/versions`: every kept version, oldest first.
pub async fn config_versions(State(demo): State<Demo>) -> Result<Json<Value>, ApiError> {
    let versions = demo.config.versions().await.map_err(config_error)?;
    let versions: Vec<Value> = versions
        .into_iter()
        .map(|v| json!({ "version": v.version, "updated_at": v.updated_at, "note": v.note }))
        .collect();
    Ok(Json(
        json!({ "current": demo.config.version(), "versions": versions }),
    ))
}

/// `POST /admin/config/rollback/{version}`: writes a kept version back as a new version.
pub async fn rollback_config(
    State(demo): State<Demo>,
    Path(version): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    let new_version = demo.config.rollback(version).await.map_err(config_error)?;
    Ok(Json(json!({ "version": new_version, "restored": version })))
}

/// Re-reads the flags so this process serves the change at once.
async fn refresh_flags(demo: &Demo) {
    if let Err(error) = demo.flags.refresh().await {
        // The write is stored; the next scheduled refresh picks it up.
        tracing::warn!(%error, "flags: refresh after an admin change failed");
    }
}

fn flags_error(error: FlagsError) -> ApiError {
    match &error {
        FlagsError::Store(error) => {
            tracing::error!(%error, "flag store error");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the flag store is unavailable",
            )
        }
        FlagsError::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, error.to_string()),
        FlagsError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, error.to_string()),
        other => ApiError::new(StatusCode::BAD_REQUEST, other.to_string()),
    }
}

fn config_error(error: ConfigError) -> ApiError {
    match error {
        ConfigError::Store(error) => {
            tracing::error!(%error, "config store error");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the config store is unavailable",
            )
        }
        ConfigError::VersionNotFound { version, .. } => ApiError::new(
            StatusCode::NOT_FOUND,
            format!("config version {version} is not kept"),
        ),
        ConfigError::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, error.to_string()),
        other => ApiError::new(StatusCode::BAD_REQUEST, other.to_string()),
    }
}
