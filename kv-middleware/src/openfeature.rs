//! An OpenFeature provider over a [`FlagStore`] (feature `openfeature`): the `open-feature`
//! crate's [`FeatureProvider`], so code written against the OpenFeature client reads our
//! flags (flagd documents or native rules) evaluated in process, from the store's snapshot.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use kv_middleware::flags::FlagStore;
//! use kv_middleware::openfeature::FlagStoreProvider;
//! use open_feature::{EvaluationContext, OpenFeature};
//!
//! let store = kv_backends::open("memory:").await?;
//! let flags = FlagStore::load(store.namespace("FLAGS").await?).await?;
//! flags.set_flag("new-ui", &serde_json::from_str(
//!     r#"{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off",
//!         "targeting":{"if":[{"==":[{"var":"plan"},"pro"]},"on","off"]}}"#)?).await?;
//!
//! let mut api = OpenFeature::singleton_mut().await;
//! api.set_provider(FlagStoreProvider::new(flags)).await;
//! let client = api.create_client();
//! let context = EvaluationContext::default()
//!     .with_targeting_key("user-1")
//!     .with_custom_field("plan", "pro");
//! assert!(client.get_bool_value("new-ui", Some(&context), None).await.unwrap_or(false));
//! # Ok(()) }
//! ```
//!
//! # Mapping
//!
//! - Context: the targeting key is the targeting key; custom fields become attributes (booleans,
//!   integers, floats and strings as such; a date-time as Unix seconds; a structure holding a
//!   `serde_json::Value` or an OpenFeature [`StructValue`] as that JSON). The other way,
//!   [`to_openfeature_context`] turns our context into OpenFeature's.
//! - Results: value, variant, reason (`STATIC`, `DEFAULT`, `TARGETING_MATCH`, `SPLIT`, `ERROR`,
//!   and `STALE` as a custom reason) and the flag's metadata (its boolean, number and string
//!   values, the only kinds OpenFeature's metadata holds).
//! - Errors: `FLAG_NOT_FOUND`, `TYPE_MISMATCH`, `PARSE_ERROR`, `PROVIDER_NOT_READY`,
//!   `TARGETING_KEY_MISSING` and `GENERAL` as OpenFeature's error codes, with our message. The
//!   client then answers the caller's default.
//! - A `DISABLED` flag: OpenFeature says the caller's default, and this SDK's provider trait is
//!   not told the default, so the provider answers an error whose code is
//!   `General("DISABLED")`; `get_*_value(..).unwrap_or(default)` gives the caller's default.

use std::sync::Arc;

use async_trait::async_trait;
use open_feature::provider::{
    FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails,
};
use open_feature::{
    EvaluationContextFieldValue, EvaluationError, EvaluationErrorCode, EvaluationReason,
    EvaluationResult, FlagMetadata, FlagMetadataValue, StructValue, Value as OfValue,
};
use serde_json::{Map, Number, Value};

use crate::flags::{ErrorCode, EvaluationContext, FlagStore, FlagType, Reason};

/// The name the provider gives OpenFeature.
pub const PROVIDER_NAME: &str = "tower-kv flags";

/// An OpenFeature provider evaluating the flags of a [`FlagStore`] in process.
///
/// Evaluations read the store's current snapshot: no store I/O, no lock. The status is
/// `Ready` once the store has loaded, `NotReady` before, and `STALE` while its snapshot is
/// older than its maximum staleness.
#[derive(Debug, Clone)]
pub struct FlagStoreProvider {
    flags: FlagStore,
    metadata: ProviderMetadata,
}

impl FlagStoreProvider {
    /// A provider over `flags`.
    pub fn new(flags: FlagStore) -> Self {
        FlagStoreProvider {
            flags,
            metadata: ProviderMetadata::new(PROVIDER_NAME),
        }
    }

    /// The flag store.
    pub fn store(&self) -> &FlagStore {
        &self.flags
    }

    fn resolve<T>(
        &self,
        key: &str,
        context: &open_feature::EvaluationContext,
        ty: FlagType,
        read: impl FnOnce(&Value) -> Option<T>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let context = from_openfeature_context(context);
        let details = self.flags.evaluate_as(key, &context, ty);
        if let Some(code) = details.error_code {
            return Err(EvaluationError {
                code: error_code(code),
                message: details.error_message,
            });
        }
        let Some(value) = details.value else {
            return Err(EvaluationError {
                code: EvaluationErrorCode::General(Reason::Disabled.as_str().to_owned()),
                message: Some(format!(
                    "flag {key:?} is disabled: the caller's default applies"
                )),
            });
        };
        let Some(value) = read(&value) else {
            return Err(EvaluationError {
                code: EvaluationErrorCode::TypeMismatch,
                message: Some(format!(
                    "flag {key:?} serves {value}, not a {}",
                    ty.as_str()
                )),
            });
        };
        Ok(ResolutionDetails {
            value,
            variant: details.variant,
            reason: Some(reason(details.reason)),
            flag_metadata: Some(flag_metadata(&details.flag_metadata)),
        })
    }
}

#[async_trait]
impl FeatureProvider for FlagStoreProvider {
    fn status(&self) -> ProviderStatus {
        if !self.flags.is_ready() {
            ProviderStatus::NotReady
        } else if self.flags.is_stale() {
            ProviderStatus::STALE
        } else {
            ProviderStatus::Ready
        }
    }

    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        evaluation_context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        self.resolve(
            flag_key,
            evaluation_context,
            FlagType::Boolean,
            Value::as_bool,
        )
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        evaluation_context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.resolve(
            flag_key,
            evaluation_context,
            FlagType::Integer,
            Value::as_i64,
        )
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        evaluation_context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.resolve(flag_key, evaluation_context, FlagType::Float, Value::as_f64)
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        evaluation_context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.resolve(flag_key, evaluation_context, FlagType::String, |v| {
            v.as_str().map(str::to_owned)
        })
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        evaluation_context: &open_feature::EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.resolve(
            flag_key,
            evaluation_context,
            FlagType::Object,
            |v| match json_to_openfeature(v) {
                OfValue::Struct(s) => Some(s),
                _ => None,
            },
        )
    }
}

/// Our evaluation context from OpenFeature's.
pub fn from_openfeature_context(context: &open_feature::EvaluationContext) -> EvaluationContext {
    let mut ours = EvaluationContext::new();
    ours.set_targeting_key(context.targeting_key.clone());
    for (name, value) in &context.custom_fields {
        if let Some(value) = field_to_json(value) {
            ours.set_attribute(name.clone(), value);
        }
    }
    ours
}

/// OpenFeature's evaluation context from ours: the targeting key and every attribute (objects
/// and arrays as a structure holding the `serde_json::Value`).
pub fn to_openfeature_context(context: &EvaluationContext) -> open_feature::EvaluationContext {
    let mut theirs = open_feature::EvaluationContext {
        targeting_key: context.targeting_key().map(str::to_owned),
        ..Default::default()
    };
    for (name, value) in context.attributes() {
        let field = match value {
            Value::Bool(b) => EvaluationContextFieldValue::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => EvaluationContextFieldValue::Int(i),
                None => EvaluationContextFieldValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => EvaluationContextFieldValue::String(s.clone()),
            Value::Null => continue,
            other => EvaluationContextFieldValue::Struct(Arc::new(other.clone())),
        };
        theirs.custom_fields.insert(name.to_owned(), field);
    }
    theirs
}

fn field_to_json(value: &EvaluationContextFieldValue) -> Option<Value> {
    Some(match value {
        EvaluationContextFieldValue::Bool(b) => Value::Bool(*b),
        EvaluationContextFieldValue::Int(i) => Value::from(*i),
        EvaluationContextFieldValue::Float(f) => Value::Number(Number::from_f64(*f)?),
        EvaluationContextFieldValue::String(s) => Value::String(s.clone()),
        EvaluationContextFieldValue::DateTime(t) => Value::from(t.unix_timestamp()),
        EvaluationContextFieldValue::Struct(any) => {
            if let Some(json) = any.downcast_ref::<Value>() {
                json.clone()
            } else if let Some(structure) = any.downcast_ref::<StructValue>() {
                openfeature_to_json(&OfValue::Struct(structure.clone()))
            } else {
                // A structure of a type we cannot see into: left out, not guessed.
                return None;
            }
        }
    })
}

fn json_to_openfeature(value: &Value) -> OfValue {
    match value {
        Value::Bool(b) => OfValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => OfValue::Int(i),
            None => OfValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => OfValue::String(s.clone()),
        Value::Array(items) => OfValue::Array(items.iter().map(json_to_openfeature).collect()),
        Value::Object(fields) => OfValue::Struct(StructValue {
            fields: fields
                .iter()
                .map(|(k, v)| (k.clone(), json_to_openfeature(v)))
                .collect(),
        }),
        // OpenFeature has no null: an empty structure is the nearest "nothing".
        Value::Null => OfValue::Struct(StructValue::default()),
    }
}

fn openfeature_to_json(value: &OfValue) -> Value {
    match value {
        OfValue::Bool(b) => Value::Bool(*b),
        OfValue::Int(i) => Value::from(*i),
        OfValue::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        OfValue::String(s) => Value::String(s.clone()),
        OfValue::Array(items) => Value::Array(items.iter().map(openfeature_to_json).collect()),
        OfValue::Struct(s) => Value::Object(
            s.fields
                .iter()
                .map(|(k, v)| (k.clone(), openfeature_to_json(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}

fn reason(reason: Reason) -> EvaluationReason {
    match reason.as_str() {
        "STATIC" => EvaluationReason::Static,
        "DEFAULT" => EvaluationReason::Default,
        "TARGETING_MATCH" => EvaluationReason::TargetingMatch,
        "SPLIT" => EvaluationReason::Split,
        "DISABLED" => EvaluationReason::Disabled,
        "ERROR" => EvaluationReason::Error,
        other => EvaluationReason::Other(other.to_owned()),
    }
}

fn error_code(code: ErrorCode) -> EvaluationErrorCode {
    match code.as_str() {
        "PROVIDER_NOT_READY" => EvaluationErrorCode::ProviderNotReady,
        "FLAG_NOT_FOUND" => EvaluationErrorCode::FlagNotFound,
        "PARSE_ERROR" => EvaluationErrorCode::ParseError,
        "TYPE_MISMATCH" => EvaluationErrorCode::TypeMismatch,
        "TARGETING_KEY_MISSING" => EvaluationErrorCode::TargetingKeyMissing,
        "INVALID_CONTEXT" => EvaluationErrorCode::InvalidContext,
        other => EvaluationErrorCode::General(other.to_owned()),
    }
}

fn flag_metadata(metadata: &Map<String, Value>) -> FlagMetadata {
    let mut out = FlagMetadata::default();
    for (key, value) in metadata {
        let value = match value {
            Value::Bool(b) => FlagMetadataValue::Bool(*b),
            Value::String(s) => FlagMetadataValue::String(s.clone()),
            Value::Number(n) => match n.as_i64() {
                Some(i) => FlagMetadataValue::Int(i),
                None => FlagMetadataValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            // OpenFeature's metadata holds booleans, numbers and strings only.
            _ => continue,
        };
        out.add_value(key.clone(), value);
    }
    out
}
