//! Evaluation: reasons, error codes, and the evaluator over a snapshot.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use kv_core::Version;
use serde_json::{Map, Value};

use super::bucket::bucket;
use super::compile::{
    parse_semver, semver_cmp, Check, CompiledCondition, CompiledFlag, CompiledSegment, Scalar,
    ScalarSet, Serve, Test,
};
use super::compile::{Shared, ValidationError};
use super::context::{Attr, EvaluationContext};
use super::logic::{self, Env, Node, Val};

/// Why an evaluation gave its value, as OpenFeature names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The flag has no targets and no rules: the default variant, for everyone.
    Static,
    /// The flag has targeting, but no target or rule matched: the default variant.
    Default,
    /// A target or a rule serving one variant matched.
    TargetingMatch,
    /// A rule's percentage split chose the variant.
    Split,
    /// The flag is `DISABLED`: the caller's default.
    Disabled,
    /// The evaluation failed (see the error code): the caller's default.
    Error,
    /// The value comes from a snapshot older than the maximum staleness (refreshes have been
    /// failing).
    Stale,
}

impl Reason {
    /// OpenFeature's name: `STATIC`, `DEFAULT`, `TARGETING_MATCH`, `SPLIT`, `DISABLED`,
    /// `ERROR`, `STALE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::Default => "DEFAULT",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Split => "SPLIT",
            Reason::Disabled => "DISABLED",
            Reason::Error => "ERROR",
            Reason::Stale => "STALE",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong in an evaluation, as OpenFeature names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// No snapshot was ever loaded.
    ProviderNotReady,
    /// No flag has this key.
    FlagNotFound,
    /// The variant's value could not be read as the requested type.
    TypeMismatch,
    /// A split needed a bucketing key (the targeting key, or its `bucketBy` attribute) that the
    /// context lacks: the default variant was served.
    TargetingKeyMissing,
    /// The flag does not validate (unknown operator, `$ref` to a missing evaluator, unknown
    /// variant, ...) and has no earlier good definition: the caller's default.
    ParseError,
    /// The flag's targeting returned something that is not one of its variants.
    General,
}

impl ErrorCode {
    /// OpenFeature's name: `PROVIDER_NOT_READY`, `FLAG_NOT_FOUND`, `TYPE_MISMATCH`,
    /// `TARGETING_KEY_MISSING`, `PARSE_ERROR`, `GENERAL`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ProviderNotReady => "PROVIDER_NOT_READY",
            ErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorCode::TypeMismatch => "TYPE_MISMATCH",
            ErrorCode::TargetingKeyMissing => "TARGETING_KEY_MISSING",
            ErrorCode::ParseError => "PARSE_ERROR",
            ErrorCode::General => "GENERAL",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One evaluation, borrowed from the snapshot: no allocation.
///
/// `value` is `None` when the caller's default applies (reason `DISABLED` or `ERROR`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation<'a> {
    /// The variant's value.
    pub value: Option<&'a Value>,
    /// The variant's name.
    pub variant: Option<&'a str>,
    /// Why.
    pub reason: Reason,
    /// What went wrong, if anything.
    pub error_code: Option<ErrorCode>,
    /// The flag's metadata (owner, expiry, ...), when the flag exists.
    pub flag_metadata: Option<&'a Map<String, Value>>,
}

impl<'a> Evaluation<'a> {
    fn error(code: ErrorCode) -> Self {
        Evaluation {
            value: None,
            variant: None,
            reason: Reason::Error,
            error_code: Some(code),
            flag_metadata: None,
        }
    }

    /// The same evaluation read as `ty`: a value that is not of that type becomes the
    /// caller's default with `ERROR` / `TYPE_MISMATCH` (metadata kept). An integer reads as a
    /// float; a float reads as an integer only when it has no fraction (`10.0`), as flagd's
    /// lossless coercion allows.
    pub fn typed(self, ty: FlagType) -> Self {
        match self.value {
            Some(value) if !ty.fits(value) => Evaluation {
                value: None,
                variant: None,
                reason: Reason::Error,
                error_code: Some(ErrorCode::TypeMismatch),
                flag_metadata: self.flag_metadata,
            },
            _ => self,
        }
    }

    /// A short, general explanation of the error code, when there is one (the store's
    /// [`details`](super::FlagSnapshot::details) gives the specific one).
    pub fn error_message(&self) -> Option<&'static str> {
        self.error_code.map(|code| match code {
            ErrorCode::ProviderNotReady => "no flags snapshot has been loaded yet",
            ErrorCode::FlagNotFound => "no flag has this key",
            ErrorCode::TypeMismatch => "the flag's value is not of the requested type",
            ErrorCode::TargetingKeyMissing => {
                "the split needs a bucketing key the context lacks; served the default variant"
            }
            ErrorCode::ParseError => "the flag's definition does not validate",
            ErrorCode::General => "the flag's targeting returned a name that is not a variant",
        })
    }
}

/// The type an evaluation is read as (OpenFeature's five).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlagType {
    /// `true` / `false`.
    Boolean,
    /// A string.
    String,
    /// A number without fraction.
    Integer,
    /// Any number.
    Float,
    /// A JSON object (or array, which OpenFeature's structures also hold).
    Object,
}

impl FlagType {
    /// `boolean`, `string`, `integer`, `float` or `object`.
    pub fn parse(text: &str) -> Option<FlagType> {
        Some(match text {
            "boolean" | "bool" => FlagType::Boolean,
            "string" => FlagType::String,
            "integer" | "int" => FlagType::Integer,
            "float" | "number" => FlagType::Float,
            "object" | "json" => FlagType::Object,
            _ => return None,
        })
    }

    /// The type's name, as [`parse`](FlagType::parse) reads it.
    pub fn as_str(self) -> &'static str {
        match self {
            FlagType::Boolean => "boolean",
            FlagType::String => "string",
            FlagType::Integer => "integer",
            FlagType::Float => "float",
            FlagType::Object => "object",
        }
    }

    /// Whether `value` can be read as this type without loss.
    pub fn fits(self, value: &Value) -> bool {
        match (self, value) {
            (FlagType::Boolean, Value::Bool(_)) | (FlagType::String, Value::String(_)) => true,
            (FlagType::Float, Value::Number(_)) => true,
            (FlagType::Integer, Value::Number(n)) => {
                n.is_i64()
                    || n.is_u64()
                    || n.as_f64()
                        .is_some_and(|f| f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0)
            }
            (FlagType::Object, Value::Object(_) | Value::Array(_)) => true,
            _ => false,
        }
    }
}

impl fmt::Display for FlagType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An evaluation read as a type, in OpenFeature's shape: the value (the caller's default when
/// the flag could not give one), the variant, the reason and the error.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationDetails<T> {
    /// The flag's key.
    pub flag_key: String,
    /// The value: the variant's, or the caller's default.
    pub value: T,
    /// The variant's name, when one was served.
    pub variant: Option<String>,
    /// Why.
    pub reason: Reason,
    /// What went wrong, if anything.
    pub error_code: Option<ErrorCode>,
    /// A human explanation of the error.
    pub error_message: Option<String>,
    /// The flag's metadata.
    pub flag_metadata: Map<String, Value>,
}

/// An immutable, compiled set of flags and segments: what every evaluation reads.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) ready: bool,
    pub(crate) flags: HashMap<String, Arc<CompiledFlag>>,
    /// Flags that do not validate and had no earlier good definition: they answer
    /// `PARSE_ERROR` with this error.
    pub(crate) invalid: HashMap<String, ValidationError>,
    /// Everything that did not validate (flags, segments, the document part), for reports.
    pub(crate) errors: Vec<ValidationError>,
    /// The document's `$evaluators` and metadata, as loaded (for export).
    pub(crate) shared: Arc<Shared>,
    pub(crate) segments: HashMap<String, Arc<CompiledSegment>>,
    /// Store key to version, for change detection.
    pub(crate) versions: HashMap<String, Version>,
    /// The request headers some flag or segment reads (`header.<name>`): all the default
    /// context needs to copy.
    pub(crate) headers: Vec<http::HeaderName>,
}

impl Snapshot {
    pub(crate) fn evaluate<'a>(
        &'a self,
        key: &str,
        context: &EvaluationContext,
        stale: bool,
    ) -> Evaluation<'a> {
        if !self.ready {
            return Evaluation::error(ErrorCode::ProviderNotReady);
        }
        let Some(flag) = self.flags.get(key) else {
            if self.invalid.contains_key(key) {
                return Evaluation::error(ErrorCode::ParseError);
            }
            return Evaluation::error(ErrorCode::FlagNotFound);
        };
        let mut result = evaluate_flag(key, flag, context);
        if stale && result.error_code.is_none() && result.reason != Reason::Disabled {
            result.reason = Reason::Stale;
        }
        result
    }
}

/// The default variant, or the caller's default when the flag has none (reason `DEFAULT`).
fn default_served(flag: &CompiledFlag, reason: Reason) -> Evaluation<'_> {
    match flag.default {
        Some(index) => served(flag, index, reason),
        None => Evaluation {
            value: None,
            variant: None,
            reason: Reason::Default,
            error_code: None,
            flag_metadata: Some(&flag.metadata),
        },
    }
}

fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// flagd targeting: a variant name (or a boolean / number naming one), `null` for the
/// default, anything else `GENERAL`.
fn evaluate_targeting<'a>(
    key: &str,
    flag: &'a CompiledFlag,
    node: &Node,
    context: &EvaluationContext,
) -> Evaluation<'a> {
    let env = Env {
        context,
        flag_key: key,
        timestamp: unix_seconds(),
    };
    let result = logic::evaluate(node, &env);
    let mut buffer = StackText::new();
    let name: Option<&str> = match &result {
        Err(_) | Ok(Val::Null) => return default_served(flag, Reason::Default),
        Ok(Val::Str(s)) => Some(s),
        Ok(Val::Bool(b)) => Some(if *b { "true" } else { "false" }),
        Ok(Val::Num(n)) => {
            let text = if n.fract() == 0.0 && n.abs() < 1e15 {
                buffer.format(*n as i64)
            } else {
                buffer.format(n)
            };
            text.and_then(|t| std::str::from_utf8(t).ok())
        }
        Ok(_) => None,
    };
    match name.and_then(|n| flag.variant_index(n)) {
        Some(index) => served(flag, index, Reason::TargetingMatch),
        None => Evaluation {
            flag_metadata: Some(&flag.metadata),
            ..Evaluation::error(ErrorCode::General)
        },
    }
}

fn served(flag: &CompiledFlag, index: usize, reason: Reason) -> Evaluation<'_> {
    let (name, value) = &flag.variants[index];
    Evaluation {
        value: Some(value),
        variant: Some(name),
        reason,
        error_code: None,
        flag_metadata: Some(&flag.metadata),
    }
}

fn evaluate_flag<'a>(
    key: &str,
    flag: &'a CompiledFlag,
    context: &EvaluationContext,
) -> Evaluation<'a> {
    if !flag.enabled {
        return Evaluation {
            value: None,
            variant: None,
            reason: Reason::Disabled,
            error_code: None,
            flag_metadata: Some(&flag.metadata),
        };
    }
    if let Some(node) = &flag.targeting {
        return evaluate_targeting(key, flag, node, context);
    }
    if let Some(key) = context.targeting_key() {
        if let Some(&index) = flag.targets.get(key) {
            return served(flag, index, Reason::TargetingMatch);
        }
    }
    for rule in &flag.rules {
        if !rule.conditions.iter().all(|c| condition_holds(c, context)) {
            continue;
        }
        return match &rule.serve {
            Serve::Variant(index) => served(flag, *index, Reason::TargetingMatch),
            Serve::Split(split) => {
                let mut buffer = StackText::new();
                let bucket_key = match context.lookup(&split.bucket_by) {
                    Some(Attr::Str(s)) => Some(s.as_bytes()),
                    Some(Attr::Num(n)) => buffer.format(n),
                    Some(Attr::Bool(b)) => Some(if b { &b"true"[..] } else { &b"false"[..] }),
                    Some(Attr::Ip(ip)) => buffer.format(ip),
                    Some(Attr::Json(_)) | None => None,
                };
                let Some(bucket_key) = bucket_key else {
                    let mut result = default_served(flag, Reason::Default);
                    result.error_code = Some(ErrorCode::TargetingKeyMissing);
                    return result;
                };
                let bucket = bucket(split.salt.as_bytes(), bucket_key, split.total);
                let mut running = 0u64;
                let mut chosen = split.weights.last().map_or(0, |(i, _)| *i);
                for (index, weight) in &split.weights {
                    running += u64::from(*weight);
                    if running > bucket {
                        chosen = *index;
                        break;
                    }
                }
                served(flag, chosen, Reason::Split)
            }
        };
    }
    let reason = if flag.has_targeting() {
        Reason::Default
    } else {
        Reason::Static
    };
    default_served(flag, reason)
}

fn condition_holds(condition: &CompiledCondition, context: &EvaluationContext) -> bool {
    let holds = match &condition.test {
        Test::Segment(segment) => segment
            .conditions
            .iter()
            .all(|c| condition_holds(c, context)),
        Test::Attribute { name, check } => match context.lookup(name) {
            None => false,
            Some(attr) => check_holds(check, attr),
        },
    };
    holds != condition.negate
}

fn check_holds(check: &Check, attr: Attr<'_>) -> bool {
    match check {
        Check::Eq(value) => equals(attr, value),
        Check::Neq(value) => !equals(attr, value),
        Check::In(set) => in_set(attr, set),
        Check::NotIn(set) => !in_set(attr, set),
        Check::StartsWith(prefix) => matches!(attr, Attr::Str(s) if s.starts_with(prefix.as_str())),
        Check::EndsWith(suffix) => matches!(attr, Attr::Str(s) if s.ends_with(suffix.as_str())),
        Check::Contains(value) => match (attr, value) {
            (Attr::Str(s), Scalar::Str(needle)) => s.contains(needle.as_str()),
            (Attr::Json(Value::Array(items)), value) => items
                .iter()
                .any(|item| super::context::value_attr(item).is_some_and(|a| equals(a, value))),
            _ => false,
        },
        Check::Regex(regex) => matches!(attr, Attr::Str(s) if regex.is_match(s)),
        Check::Order(cmp, value) => match (attr, value) {
            (Attr::Str(s), Scalar::Str(v)) => cmp.holds(s.cmp(v.as_str())),
            (attr, Scalar::Num(v)) => number(attr)
                .and_then(|n| n.partial_cmp(v))
                .is_some_and(|o| cmp.holds(o)),
            _ => false,
        },
        Check::Semver(cmp, version) => match attr {
            Attr::Str(s) => parse_semver(s).is_some_and(|v| cmp.holds(semver_cmp(&v, version))),
            _ => false,
        },
        Check::InCidr(blocks) => {
            let ip = match attr {
                Attr::Ip(ip) => Some(ip),
                Attr::Str(s) => s.trim().parse().ok(),
                _ => None,
            };
            ip.is_some_and(|ip| blocks.iter().any(|b| b.contains(ip)))
        }
    }
}

fn number(attr: Attr<'_>) -> Option<f64> {
    match attr {
        Attr::Num(n) => Some(n),
        Attr::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn equals(attr: Attr<'_>, value: &Scalar) -> bool {
    match (attr, value) {
        (Attr::Str(a), Scalar::Str(b)) => a == b,
        (Attr::Num(a), Scalar::Num(b)) => a == *b,
        (Attr::Str(a), Scalar::Num(b)) => a.trim().parse::<f64>().is_ok_and(|a| a == *b),
        (Attr::Num(a), Scalar::Str(b)) => b.trim().parse::<f64>().is_ok_and(|b| a == b),
        (Attr::Bool(a), Scalar::Bool(b)) => a == *b,
        (Attr::Str(a), Scalar::Bool(b)) => a == if *b { "true" } else { "false" },
        (Attr::Ip(a), Scalar::Str(b)) => b
            .trim()
            .parse::<std::net::IpAddr>()
            .is_ok_and(|b| canonical(a) == canonical(b)),
        _ => false,
    }
}

fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn in_set(attr: Attr<'_>, set: &ScalarSet) -> bool {
    if let Attr::Str(s) = attr {
        if set.strings.contains(s) {
            return true;
        }
    }
    if !set.strings.is_empty() && !matches!(attr, Attr::Str(_)) {
        // A number or an IP address against string members ("42", "10.0.0.1").
        let mut buffer = StackText::new();
        let text = match attr {
            Attr::Num(n) => buffer.format(n),
            Attr::Ip(ip) => buffer.format(ip),
            Attr::Bool(b) => Some(if b { &b"true"[..] } else { &b"false"[..] }),
            _ => None,
        };
        if let Some(text) = text.and_then(|t| std::str::from_utf8(t).ok()) {
            if set.strings.contains(text) {
                return true;
            }
        }
    }
    set.others.iter().any(|value| equals(attr, value))
}

/// Formats short values (numbers, IP addresses) without allocating.
struct StackText {
    buf: [u8; 64],
    len: usize,
    overflow: bool,
}

impl StackText {
    fn new() -> Self {
        StackText {
            buf: [0; 64],
            len: 0,
            overflow: false,
        }
    }

    fn format(&mut self, value: impl fmt::Display) -> Option<&[u8]> {
        self.len = 0;
        self.overflow = false;
        write!(self, "{value}").ok()?;
        if self.overflow {
            None
        } else {
            Some(&self.buf[..self.len])
        }
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            self.overflow = true;
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
