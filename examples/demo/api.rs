//! The JSON routes and the session actions behind the page's forms.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use http::{header, StatusCode};
use kv_middleware::config::Config;
use kv_middleware::flags::Flags;
use kv_middleware::session::{Session, SessionError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::{Demo, SESSION_USER};
use crate::config::DemoConfig;

/// The session key of the per-session counter.
const SESSION_COUNT: &str = "count";

/// How long the `/api/slow` origin takes.
const ORIGIN_DELAY: Duration = Duration::from_millis(200);

/// An error answered as `{"error": MESSAGE}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error with `status` and a message for the client.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> Self {
        // The session layer logs store failures; the client learns only that the store is
        // unwell.
        tracing::debug!(%error, "session store error");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the session store is unavailable",
        )
    }
}

/// The login form: one field, `user`.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    user: String,
}

/// The longest user name accepted, in characters.
const MAX_USER_CHARS: usize = 64;

/// `POST /login`: a fresh session ID (against session fixation), then the user; 303 to `/`.
pub async fn login(
    session: Session,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let Form(form) = form.map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad login form: {rejection}"),
        )
    })?;
    let user = form.user.trim();
    let chars = user.chars().count();
    if chars == 0 || chars > MAX_USER_CHARS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("user must be 1 to {MAX_USER_CHARS} characters"),
        ));
    }
    session.cycle_id().await?;
    session.insert(SESSION_USER, user).await?;
    session.insert(SESSION_COUNT, 0_u64).await?;
    Ok(Redirect::to("/").into_response())
}

/// `POST /logout`: the session is deleted from the store and its cookie removed; 303 to `/`.
pub async fn logout(session: Session) -> Result<Redirect, ApiError> {
    session.destroy().await?;
    Ok(Redirect::to("/"))
}

/// `GET /me`: the signed-in user, or 401.
pub async fn me(session: Session) -> Result<Json<Value>, ApiError> {
    match session.get::<String>(SESSION_USER).await? {
        Some(user) => Ok(Json(json!({ "user": user }))),
        None => Err(ApiError::new(StatusCode::UNAUTHORIZED, "not signed in")),
    }
}

/// `POST /counter`: adds the configured step to the session's counter.
pub async fn counter(
    session: Session,
    config: Config<DemoConfig>,
) -> Result<Json<Value>, ApiError> {
    let step = u64::from(config.get().public.counter_step);
    let count = session.get::<u64>(SESSION_COUNT).await?.unwrap_or(0) + step;
    session.insert(SESSION_COUNT, count).await?;
    Ok(Json(json!({ "count": count })))
}

/// The session's counter, for the page.
pub async fn current_count(session: &Session) -> Result<u64, SessionError> {
    Ok(session.get::<u64>(SESSION_COUNT).await?.unwrap_or(0))
}

/// `GET /api/ping`, behind the API rate limit.
pub async fn ping() -> Json<Value> {
    Json(json!({ "ok": true }))
}

/// `GET /api/slow`: a 200 ms origin behind the cache layer.
pub async fn slow(State(demo): State<Demo>) -> Response {
    let calls = demo.origin_calls.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(ORIGIN_DELAY).await;
    let generated_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    (
        [(
            header::CACHE_CONTROL,
            "max-age=2, stale-while-revalidate=30, stale-if-error=300",
        )],
        Json(json!({ "origin_calls": calls, "generated_at": generated_at })),
    )
        .into_response()
}

/// Every flag evaluated with `flags`' context, by name.
pub fn evaluate_all(flags: &Flags) -> BTreeMap<String, Value> {
    flags
        .keys()
        .map(|key| {
            let details = flags.details(key);
            let value = json!({
                "value": details.value,
                "variant": details.variant,
                "reason": details.reason.as_str(),
            });
            (key.to_owned(), value)
        })
        .collect()
}

/// `GET /api/flags`: the flags for the signed-in user, or for `X-User-ID` when signed out.
pub async fn flags(flags: Flags) -> Json<Value> {
    Json(json!({
        "user": flags.context().targeting_key(),
        "flags": evaluate_all(&flags),
    }))
}

/// `GET /api/config`: the public part of the config in use, and its version.
pub async fn config(config: Config<DemoConfig>) -> Json<Value> {
    Json(json!({
        "version": config.version(),
        "config": config.get().public,
    }))
}

/// Any other path: 404 in the JSON envelope.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}
