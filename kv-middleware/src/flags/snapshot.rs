//! [`FlagSnapshot`]: a compiled set of flags, from the store or from a flagd document, and
//! the one place snapshots are built (so that a bad flag fails alone everywhere).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use kv_core::Version;
use serde_json::{Map, Value};

use super::compile::{
    compile_flag, compile_segment, decode_value, referenced_headers, ItemKind, Shared,
    ValidationError,
};
use super::context::EvaluationContext;
use super::error::FlagsError;
use super::eval::{Evaluation, EvaluationDetails, FlagType, Snapshot};
use super::handle::Flags;
use super::model::{FlagDefinition, FlagDocument, Segment};

/// Builds a snapshot from decoded items. Every item that does not validate is reported in
/// `errors`; a flag among them keeps its definition from `previous` when it had one there, and
/// otherwise answers `PARSE_ERROR`. Nothing here rejects the snapshot as a whole.
pub(crate) fn build(
    segments: Vec<(String, Result<Segment, ValidationError>)>,
    flags: Vec<(String, Result<FlagDefinition, ValidationError>)>,
    shared: Shared,
    mut errors: Vec<ValidationError>,
    previous: Option<&Snapshot>,
    versions: HashMap<String, Version>,
) -> Snapshot {
    let mut compiled_segments = HashMap::new();
    for (name, segment) in segments {
        match segment.and_then(|s| compile_segment(&name, s)) {
            Ok(segment) => {
                compiled_segments.insert(name, Arc::new(segment));
            }
            Err(error) => errors.push(error),
        }
    }
    let mut compiled = HashMap::new();
    let mut invalid = HashMap::new();
    for (key, flag) in flags {
        match flag.and_then(|f| compile_flag(&key, f, &compiled_segments, &shared)) {
            Ok(flag) => {
                compiled.insert(key, Arc::new(flag));
            }
            Err(error) => {
                match previous.and_then(|p| p.flags.get(&key)) {
                    // Keep serving the last good definition of this one flag.
                    Some(good) => {
                        compiled.insert(key, good.clone());
                    }
                    None => {
                        invalid.insert(key, error.clone());
                    }
                }
                errors.push(error);
            }
        }
    }
    let mut headers = Vec::new();
    for segment in compiled_segments.values() {
        referenced_headers(&segment.conditions, &mut headers);
    }
    for flag in compiled.values() {
        flag.referenced_headers(&mut headers);
    }
    Snapshot {
        ready: true,
        flags: compiled,
        invalid,
        errors,
        shared: Arc::new(shared),
        segments: compiled_segments,
        versions,
        headers,
    }
}

/// Decodes the shared part of a document (`$evaluators`, `metadata`); errors are reported and
/// the part left empty (flags referring to an evaluator then answer `PARSE_ERROR`).
pub(crate) fn shared_from(
    evaluators: Map<String, Value>,
    metadata: Map<String, Value>,
    errors: &mut Vec<ValidationError>,
) -> Shared {
    let mut usable = Map::new();
    for (name, evaluator) in evaluators {
        if evaluator.as_object().is_some_and(|o| !o.is_empty()) {
            usable.insert(name, evaluator);
        } else {
            errors.push(ValidationError {
                kind: ItemKind::Evaluator,
                key: name,
                field: ".".to_owned(),
                message: "an evaluator is a non-empty JSON Logic object".to_owned(),
            });
        }
    }
    Shared {
        evaluators: usable,
        metadata,
    }
}

/// A compiled set of flags that evaluates without a store: from a flagd document
/// ([`from_document`](FlagSnapshot::from_document), for `kv flags eval --file`), or the
/// current snapshot of a [`FlagStore`](super::FlagStore) ([`snapshot`](super::FlagStore::snapshot)).
///
/// Cheap to clone. A flag that does not validate answers `PARSE_ERROR` and is listed by
/// [`errors`](FlagSnapshot::errors); the others evaluate.
///
/// ```
/// use kv_middleware::flags::{EvaluationContext, FlagSnapshot, FlagType, Reason};
///
/// let snapshot = FlagSnapshot::from_document(r#"{
///   "flags": {
///     "new-ui": {
///       "state": "ENABLED",
///       "variants": {"on": true, "off": false},
///       "defaultVariant": "off",
///       "targeting": {"if": [{"sem_ver": [{"var": "version"}, ">=", "2.0.0"]}, "on"]}
///     },
///     "broken": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "b"}
///   }
/// }"#).unwrap();
/// let context = EvaluationContext::new().with_attribute("version", "v2.1");
/// let evaluation = snapshot.evaluate("new-ui", &context).typed(FlagType::Boolean);
/// assert_eq!(evaluation.value, Some(&serde_json::json!(true)));
/// assert_eq!(evaluation.reason, Reason::TargetingMatch);
/// assert_eq!(snapshot.errors()[0].key, "broken");
/// ```
#[derive(Clone)]
pub struct FlagSnapshot {
    pub(crate) inner: Arc<Snapshot>,
    pub(crate) stale: bool,
}

impl fmt::Debug for FlagSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlagSnapshot")
            .field("flags", &self.inner.flags.len())
            .field("invalid", &self.inner.invalid.len())
            .field("stale", &self.stale)
            .finish()
    }
}

impl FlagSnapshot {
    /// Compiles a flagd flag-definition document (JSON text). Fails only when the text is not
    /// such a document; flags that do not validate answer `PARSE_ERROR` (see
    /// [`errors`](FlagSnapshot::errors)).
    pub fn from_document(json: &str) -> Result<FlagSnapshot, FlagsError> {
        let document = FlagDocument::parse(json)?;
        Ok(Self::from_flagd_document(&document))
    }

    /// Compiles a parsed flagd document (see [`from_document`](FlagSnapshot::from_document)).
    pub fn from_flagd_document(document: &FlagDocument) -> FlagSnapshot {
        FlagSnapshot {
            inner: Arc::new(compile_document(document, None)),
            stale: false,
        }
    }

    /// Evaluates `key` for `context`, borrowing from the snapshot (no allocation for a
    /// boolean flag).
    pub fn evaluate(&self, key: &str, context: &EvaluationContext) -> Evaluation<'_> {
        self.inner.evaluate(key, context, self.stale)
    }

    /// [`evaluate`](FlagSnapshot::evaluate), owned, read as `ty` when given
    /// ([`Evaluation::typed`]), with a specific error message (which field of an invalid
    /// flag, and why). `value` is `None` when the caller's default applies.
    pub fn details(
        &self,
        key: &str,
        context: &EvaluationContext,
        ty: Option<FlagType>,
    ) -> EvaluationDetails<Option<Value>> {
        let mut evaluation = self.evaluate(key, context);
        if let Some(ty) = ty {
            evaluation = evaluation.typed(ty);
        }
        let error_message =
            evaluation
                .error_code
                .map(|code| match (code, self.inner.invalid.get(key)) {
                    (super::ErrorCode::ParseError, Some(error)) => error.to_string(),
                    (super::ErrorCode::TypeMismatch, _) => format!(
                        "flag {key:?} does not serve a {}",
                        ty.map_or("value of the requested type", FlagType::as_str)
                    ),
                    (super::ErrorCode::FlagNotFound, _) => format!("no flag {key:?}"),
                    _ => evaluation.error_message().unwrap_or_default().to_owned(),
                });
        EvaluationDetails {
            flag_key: key.to_owned(),
            value: evaluation.value.cloned(),
            variant: evaluation.variant.map(str::to_owned),
            reason: evaluation.reason,
            error_code: evaluation.error_code,
            error_message,
            flag_metadata: evaluation.flag_metadata.cloned().unwrap_or_default(),
        }
    }

    /// A [`Flags`] handle on this snapshot for `context`.
    pub fn flags(&self, context: EvaluationContext) -> Flags {
        Flags::new(self.inner.clone(), Arc::new(context), self.stale)
    }

    /// The keys of every flag, valid or not, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .inner
            .flags
            .keys()
            .chain(self.inner.invalid.keys())
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// What did not validate: which flag (or segment, evaluator), which field, why.
    pub fn errors(&self) -> &[ValidationError] {
        &self.inner.errors
    }

    /// A flag's definition, when it validates.
    pub fn definition(&self, key: &str) -> Option<Arc<FlagDefinition>> {
        self.inner.flags.get(key).map(|f| f.definition.clone())
    }

    /// The valid flags as a flagd document (with the `$evaluators` and metadata loaded).
    pub fn to_document(&self) -> FlagDocument {
        let mut flags = std::collections::BTreeMap::new();
        for (key, flag) in &self.inner.flags {
            if let Ok(value) = serde_json::to_value(&*flag.definition) {
                flags.insert(key.clone(), value);
            }
        }
        FlagDocument {
            schema: Some(FlagDocument::SCHEMA.to_owned()),
            flags,
            evaluators: self.inner.shared.evaluators.clone(),
            metadata: self.inner.shared.metadata.clone(),
        }
    }
}

/// Compiles a document (flags failing alone, as everywhere).
pub(crate) fn compile_document(document: &FlagDocument, previous: Option<&Snapshot>) -> Snapshot {
    let mut errors = Vec::new();
    let shared = shared_from(
        document.evaluators.clone(),
        document.metadata.clone(),
        &mut errors,
    );
    let flags = document
        .flags
        .iter()
        .map(|(key, value)| (key.clone(), decode_value(ItemKind::Flag, key, value)))
        .collect();
    build(Vec::new(), flags, shared, errors, previous, HashMap::new())
}
