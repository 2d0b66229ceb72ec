//! Feature flags: each flag's state, variants and targeting from the flag store of the
//! configured namespace, "evaluate for this context" with the result and reason, and toggling
//! the state or changing the default variant with compare-and-swap.
//!
//! Everything goes through kv-middleware's [`FlagStore`]: the same validation, stored form and
//! evaluation as the flags layer, so what the console shows is what the layer serves.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use kv_middleware::flags::{EvaluationContext, FlagState, FlagStore, FlagsError};
use serde::Deserialize;
use serde_json::{json, Value};

use super::ConsoleState;
use crate::error::{codes, ok, ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};

fn flags_error(error: FlagsError) -> ApiError {
    match error {
        FlagsError::Store(kv) => super::store_error(kv),
        FlagsError::Conflict { key, .. } => ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            codes::PRECONDITION_FAILED,
            format!(
                "flag {key:?} changed since you opened it; nothing was saved. Reload to see \
                 the current definition."
            ),
        ),
        FlagsError::NotFound { key, .. } => ApiError::new(
            StatusCode::NOT_FOUND,
            codes::KEY_NOT_FOUND,
            format!("no flag {key:?}"),
        ),
        other => ApiError::bad_request(codes::INVALID_BODY, other.to_string()),
    }
}

/// The flag store over the configured namespace, or `None` when that namespace does not exist
/// (the console never creates it by looking).
async fn flag_store(state: &ConsoleState) -> ApiResult<Option<FlagStore>> {
    let title = &state.config.namespaces.flags;
    let Some(info) = state.app.store.find_namespace(title).await? else {
        return Ok(None);
    };
    let namespace = state.app.namespace(&info.id).await?;
    // Manual refresh: a console view reads the flags once, and runs no background task.
    let flags = FlagStore::builder(namespace).with_manual_refresh().build();
    flags.refresh().await.map_err(flags_error)?;
    Ok(Some(flags))
}

/// `GET flags`: every flag with its definition and version, and what did not validate.
pub(crate) async fn list(State(state): State<ConsoleState>) -> ApiResult {
    let namespace = state.config.namespaces.flags.clone();
    let Some(flags) = flag_store(&state).await? else {
        return Ok(ok(
            json!({"namespace": namespace, "exists": false, "flags": [], "errors": []}),
        ));
    };
    let stored = flags.list_flags().await.map_err(flags_error)?;
    let list: Vec<Value> = stored
        .iter()
        .map(|flag| {
            json!({
                "key": flag.key,
                "version": flag.version.to_string(),
                "definition": flag.definition,
            })
        })
        .collect();
    let errors: Vec<String> = flags
        .validation_errors()
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(ok(
        json!({"namespace": namespace, "exists": true, "flags": list, "errors": errors}),
    ))
}

/// A change from the page: the version it showed, and the new state or default variant.
#[derive(Deserialize)]
pub(crate) struct FlagChange {
    version: String,
    state: Option<FlagState>,
    default_variant: Option<String>,
}

/// `PUT flags/{key}`: sets the state and/or the default variant, only if the flag is still at
/// the version the page showed.
pub(crate) async fn update(
    State(state): State<ConsoleState>,
    ApiPath(key): ApiPath<String>,
    ApiJson(change): ApiJson<FlagChange>,
) -> ApiResult {
    let Some(flags) = flag_store(&state).await? else {
        return Err(ApiError::namespace_not_found(
            &state.config.namespaces.flags,
        ));
    };
    let expected: kv_core::Version =
        change
            .version
            .parse()
            .map_err(|e: kv_core::ParseVersionError| {
                ApiError::bad_request(codes::BAD_REQUEST, e.to_string())
            })?;
    let Some(current) = flags.get_flag(&key).await.map_err(flags_error)? else {
        return Err(flags_error(FlagsError::NotFound { kind: "flag", key }));
    };
    if current.version != expected {
        return Err(flags_error(FlagsError::Conflict { kind: "flag", key }));
    }
    let mut definition = current.definition;
    if let Some(new_state) = change.state {
        definition.state = new_state;
    }
    if let Some(variant) = change.default_variant {
        if !definition.variants.contains_key(&variant) {
            return Err(ApiError::bad_request(
                codes::INVALID_BODY,
                format!("flag {key:?} has no variant {variant:?}"),
            ));
        }
        definition.default_variant = Some(variant);
    }
    let version = flags
        .set_flag_if(&key, &definition, Some(expected))
        .await
        .map_err(flags_error)?;
    tracing::info!(flag = %key, "console: flag changed");
    Ok(ok(
        json!({"key": key, "version": version.to_string(), "definition": definition}),
    ))
}

/// The context to evaluate for.
#[derive(Deserialize)]
pub(crate) struct EvaluateBody {
    #[serde(default, rename = "targetingKey")]
    targeting_key: Option<String>,
    /// Further attributes (`email`, `country`, ...).
    #[serde(default)]
    attributes: BTreeMap<String, Value>,
}

/// `POST flags/{key}/evaluate`: the flag evaluated as the flags layer would for this context:
/// value, variant, reason and error.
pub(crate) async fn evaluate(
    State(state): State<ConsoleState>,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<EvaluateBody>,
) -> ApiResult {
    let Some(flags) = flag_store(&state).await? else {
        return Err(ApiError::namespace_not_found(
            &state.config.namespaces.flags,
        ));
    };
    let mut context = EvaluationContext::new();
    if let Some(targeting_key) = body.targeting_key.filter(|k| !k.is_empty()) {
        context = context.with_targeting_key(targeting_key);
    }
    for (name, value) in body.attributes {
        context = context.with_attribute(name, value);
    }
    let details = flags.evaluate(&key, &context);
    Ok(ok(json!({
        "key": key,
        "value": details.value,
        "variant": details.variant,
        "reason": details.reason.as_str(),
        "error_code": details.error_code.map(|c| c.as_str()),
        "error_message": details.error_message,
    })))
}
