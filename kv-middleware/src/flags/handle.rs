//! [`Flags`]: evaluations for one context, against one snapshot.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::context::EvaluationContext;
use super::eval::{ErrorCode, Evaluation, EvaluationDetails, Reason, Snapshot};

/// The flags as one request sees them: a snapshot (fixed for the request, so two checks of one
/// flag always agree) and the request's [`EvaluationContext`].
///
/// The flags layer puts one into every request's extensions; with the `axum` feature it is an
/// extractor. [`FlagStore::flags`](super::FlagStore::flags) makes one outside requests.
/// Cheap to clone. Evaluating never touches the store and, for a boolean flag, never
/// allocates.
///
/// Every method answers something: an unknown flag, a value of the wrong type or a snapshot
/// never loaded gives the caller's default (`false` for [`is_enabled`](Flags::is_enabled)), with
/// the reason in [`details`](Flags::details).
#[derive(Clone)]
pub struct Flags {
    snapshot: Arc<Snapshot>,
    context: Arc<EvaluationContext>,
    stale: bool,
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flags")
            .field("flags", &self.snapshot.flags.len())
            .field("context", &self.context)
            .field("stale", &self.stale)
            .finish()
    }
}

impl Flags {
    pub(crate) fn new(
        snapshot: Arc<Snapshot>,
        context: Arc<EvaluationContext>,
        stale: bool,
    ) -> Self {
        Flags {
            snapshot,
            context,
            stale,
        }
    }

    /// The full outcome of evaluating `key`: value, variant, reason, error code and the flag's
    /// metadata, borrowed from the snapshot.
    pub fn details(&self, key: &str) -> Evaluation<'_> {
        let evaluation = self.snapshot.evaluate(key, &self.context, self.stale);
        // The decision and why (trace: one per evaluation, many per request).
        tracing::trace!(
            target: "kv_middleware::flags",
            flag = key,
            variant = evaluation.variant,
            reason = evaluation.reason.as_str(),
            error = evaluation.error_code.map(|code| code.as_str()),
            "flags: evaluated"
        );
        evaluation
    }

    /// Whether a boolean flag is on for this context; `false` when it is off, disabled,
    /// unknown or not boolean.
    pub fn is_enabled(&self, key: &str) -> bool {
        self.details(key)
            .value
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    }

    /// The name of the variant served, when one is (not for a disabled or unknown flag).
    pub fn variant(&self, key: &str) -> Option<&str> {
        self.details(key).variant
    }

    /// The variant's value as `T` (a `bool`, `String`, number, or any serde type for JSON
    /// variants); `default` when the flag gives no value or not one of this type.
    pub fn value<T: DeserializeOwned>(&self, key: &str, default: T) -> T {
        self.details(key)
            .value
            .and_then(|value| T::deserialize(value).ok())
            .unwrap_or(default)
    }

    /// [`value`](Flags::value) with everything OpenFeature reports: the variant, the reason,
    /// and `TYPE_MISMATCH` when the variant is not a `T`.
    pub fn value_details<T: DeserializeOwned>(
        &self,
        key: &str,
        default: T,
    ) -> EvaluationDetails<T> {
        let evaluation = self.details(key);
        let mut details = EvaluationDetails {
            flag_key: key.to_owned(),
            value: default,
            variant: evaluation.variant.map(str::to_owned),
            reason: evaluation.reason,
            error_code: evaluation.error_code,
            error_message: evaluation.error_code.map(|code| message(code, key)),
            flag_metadata: evaluation.flag_metadata.cloned().unwrap_or_default(),
        };
        if let Some(value) = evaluation.value {
            match T::deserialize(value) {
                Ok(value) => details.value = value,
                Err(error) => {
                    details.variant = None;
                    details.reason = Reason::Error;
                    details.error_code = Some(ErrorCode::TypeMismatch);
                    details.error_message = Some(format!(
                        "flag {key:?} serves {value}, which is not the requested type: {error}"
                    ));
                }
            }
        }
        details
    }

    /// The context these flags are evaluated for.
    pub fn context(&self) -> &EvaluationContext {
        &self.context
    }

    /// The same snapshot, evaluated for another context.
    pub fn with_context(&self, context: EvaluationContext) -> Flags {
        Flags {
            snapshot: self.snapshot.clone(),
            context: Arc::new(context),
            stale: self.stale,
        }
    }

    /// The same snapshot and context, with another targeting key (for example the user a
    /// handler just read from its session).
    pub fn with_targeting_key(&self, key: impl Into<String>) -> Flags {
        self.with_context((*self.context).clone().with_targeting_key(key))
    }

    /// Whether the snapshot is older than the store's maximum staleness.
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// The keys of every flag in the snapshot (unsorted).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.snapshot.flags.keys().map(String::as_str)
    }
}

fn message(code: ErrorCode, key: &str) -> String {
    match code {
        ErrorCode::ProviderNotReady => "no flags snapshot has been loaded yet".to_owned(),
        ErrorCode::FlagNotFound => format!("no flag {key:?}"),
        ErrorCode::TypeMismatch => format!("flag {key:?} does not serve the requested type"),
        ErrorCode::TargetingKeyMissing => {
            format!("flag {key:?} splits by a bucketing key the context lacks; served the default variant")
        }
        ErrorCode::ParseError => format!("flag {key:?} does not validate"),
        ErrorCode::General => {
            format!("flag {key:?}: targeting returned a name that is not a variant")
        }
    }
}
