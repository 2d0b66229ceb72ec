//! Validation and compilation of flag documents into the form evaluation reads.
//!
//! Everything that can be decided when a flag is loaded is decided here: regular expressions
//! are compiled, versions and CIDR blocks parsed, segments resolved, variant names turned into
//! indices. A flag that passes cannot fail to evaluate.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use regex::Regex;
use serde_json::{Map, Value};

use super::context::AttributeName;
use super::model::{Condition, FlagDefinition, FlagState, Operator, Rule, Segment};
use crate::shared::cidr::{Cidr, CidrError, CidrErrorKind};

/// Largest compiled regular expression, in bytes of the regex engine's program.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// What a validation error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    /// A flag.
    Flag,
    /// A segment.
    Segment,
    /// A shared targeting fragment of a flagd document (`$evaluators`).
    Evaluator,
    /// A flagd document as a whole.
    Document,
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ItemKind::Flag => "flag",
            ItemKind::Segment => "segment",
            ItemKind::Evaluator => "evaluator",
            ItemKind::Document => "document",
        })
    }
}

/// A flag or segment that cannot be used, naming it and the offending field.
///
/// Displays as `flag "new-ui": rules[1].conditions[0].value: invalid regex ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// A flag or a segment.
    pub kind: ItemKind,
    /// The flag's key or the segment's name.
    pub key: String,
    /// The path of the offending field (`rules[1].conditions[0].value`), `.` for the document.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ValidationError {
    fn new(
        kind: ItemKind,
        key: &str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ValidationError {
            kind,
            key: key.to_owned(),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?}: {}: {}",
            self.kind, self.key, self.field, self.message
        )
    }
}

impl std::error::Error for ValidationError {}

/// The JSON type shared by a flag's variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// `true` / `false`.
    Bool,
    /// Strings.
    String,
    /// Numbers.
    Number,
    /// Objects or arrays.
    Json,
}

impl ValueKind {
    fn of(value: &Value) -> Option<Self> {
        match value {
            Value::Null => None,
            Value::Bool(_) => Some(ValueKind::Bool),
            Value::String(_) => Some(ValueKind::String),
            Value::Number(_) => Some(ValueKind::Number),
            Value::Array(_) | Value::Object(_) => Some(ValueKind::Json),
        }
    }

    /// The type's name, as in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueKind::Bool => "boolean",
            ValueKind::String => "string",
            ValueKind::Number => "number",
            ValueKind::Json => "JSON object or array",
        }
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---- compiled form ----

#[derive(Debug)]
pub(crate) struct CompiledFlag {
    pub(crate) enabled: bool,
    /// By name, in name order.
    pub(crate) variants: Vec<(String, Value)>,
    /// `None`: no default variant (the caller's default is served).
    pub(crate) default: Option<usize>,
    pub(crate) kind: ValueKind,
    pub(crate) targets: HashMap<String, usize>,
    pub(crate) rules: Vec<CompiledRule>,
    /// flagd targeting, compiled (`None` also for `{}`, which flagd treats as none).
    pub(crate) targeting: Option<super::logic::Node>,
    /// The document's metadata with the flag's own over it.
    pub(crate) metadata: Map<String, Value>,
    pub(crate) definition: Arc<FlagDefinition>,
}

/// Adds the headers `conditions` read to `out`.
pub(crate) fn referenced_headers(
    conditions: &[CompiledCondition],
    out: &mut Vec<http::HeaderName>,
) {
    for condition in conditions {
        if let Test::Attribute {
            name: AttributeName::Header(header),
            ..
        } = &condition.test
        {
            if !out.contains(header) {
                out.push(header.clone());
            }
        }
    }
}

impl CompiledFlag {
    /// Adds the headers this flag's rules read (segments aside) to `out`.
    pub(crate) fn referenced_headers(&self, out: &mut Vec<http::HeaderName>) {
        for rule in &self.rules {
            referenced_headers(&rule.conditions, out);
            if let Serve::Split(Split {
                bucket_by: AttributeName::Header(header),
                ..
            }) = &rule.serve
            {
                if !out.contains(header) {
                    out.push(header.clone());
                }
            }
        }
    }

    /// Whether anything can serve another variant than the default.
    pub(crate) fn has_targeting(&self) -> bool {
        !self.targets.is_empty() || !self.rules.is_empty() || self.targeting.is_some()
    }

    /// The index of the variant named `name` (variants are sorted by name).
    pub(crate) fn variant_index(&self, name: &str) -> Option<usize> {
        self.variants
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
    }
}

#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub(crate) conditions: Vec<CompiledCondition>,
    pub(crate) serve: Serve,
}

#[derive(Debug)]
pub(crate) enum Serve {
    Variant(usize),
    Split(Split),
}

#[derive(Debug)]
pub(crate) struct Split {
    /// Variant index and weight, in the listed order.
    pub(crate) weights: Vec<(usize, u32)>,
    pub(crate) total: u64,
    pub(crate) salt: String,
    pub(crate) bucket_by: AttributeName,
}

#[derive(Debug)]
pub(crate) struct CompiledSegment {
    pub(crate) conditions: Vec<CompiledCondition>,
}

#[derive(Debug)]
pub(crate) struct CompiledCondition {
    pub(crate) test: Test,
    pub(crate) negate: bool,
}

#[derive(Debug)]
pub(crate) enum Test {
    Segment(Arc<CompiledSegment>),
    Attribute { name: AttributeName, check: Check },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Str(String),
    Num(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Lt,
    Lte,
    Gt,
    Gte,
    Eq,
}

impl Cmp {
    pub(crate) fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Cmp::Lt => ordering == Less,
            Cmp::Lte => ordering != Greater,
            Cmp::Gt => ordering == Greater,
            Cmp::Gte => ordering != Less,
            Cmp::Eq => ordering == Equal,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Check {
    Eq(Scalar),
    Neq(Scalar),
    In(ScalarSet),
    NotIn(ScalarSet),
    StartsWith(String),
    EndsWith(String),
    Contains(Scalar),
    Regex(Regex),
    Order(Cmp, Scalar),
    Semver(Cmp, semver::Version),
    InCidr(Vec<Cidr>),
}

/// The operand of `in` / `not_in`: strings hashed when there are many.
#[derive(Debug)]
pub(crate) struct ScalarSet {
    pub(crate) strings: HashSet<String>,
    pub(crate) others: Vec<Scalar>,
}

/// Parses a CIDR block of an `in_cidr` condition (the crate's one network type), with the
/// flags' wording of what is wrong.
pub(crate) fn parse_cidr(text: &str) -> Result<Cidr, String> {
    text.parse().map_err(|error: CidrError| match error.kind() {
        CidrErrorKind::NotAnAddress => {
            format!("{text:?} is not a CIDR block (like 10.0.0.0/8 or 2001:db8::/32)")
        }
        CidrErrorKind::PrefixNotANumber { max } | CidrErrorKind::PrefixTooLong { max } => {
            format!("{text:?} has a prefix length outside 0..={max}")
        }
    })
}

/// Parses a semantic version as the semver operators accept it: an optional leading `v`.
pub(crate) fn parse_semver(text: &str) -> Option<semver::Version> {
    let text = text.trim();
    let text = text
        .strip_prefix('v')
        .or_else(|| text.strip_prefix('V'))
        .unwrap_or(text);
    semver::Version::parse(text).ok()
}

/// Semver precedence: build metadata does not count.
pub(crate) fn semver_cmp(a: &semver::Version, b: &semver::Version) -> std::cmp::Ordering {
    (a.major, a.minor, a.patch, &a.pre).cmp(&(b.major, b.minor, b.patch, &b.pre))
}

// ---- parsing ----

/// Decodes a flag document, naming the offending field on failure.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    kind: ItemKind,
    key: &str,
    bytes: &[u8],
) -> Result<T, ValidationError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let mut path = e.path().to_string();
        if path.is_empty() {
            // An unknown field with an empty name: the error is in the document itself.
            path.push('.');
        }
        ValidationError::new(kind, key, path, e.into_inner().to_string())
    })?;
    deserializer
        .end()
        .map_err(|e| ValidationError::new(kind, key, ".", e.to_string()))?;
    Ok(value)
}

/// Decodes a flag (or any item) from JSON already parsed, naming the offending field.
pub(crate) fn decode_value<T: serde::de::DeserializeOwned>(
    kind: ItemKind,
    key: &str,
    value: &Value,
) -> Result<T, ValidationError> {
    serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let mut path = e.path().to_string();
        if path.is_empty() {
            path.push('.');
        }
        ValidationError::new(kind, key, path, e.into_inner().to_string())
    })
}

// ---- compilation ----

/// Compiles segments (which may not refer to other segments).
pub(crate) fn compile_segment(
    name: &str,
    segment: Segment,
) -> Result<CompiledSegment, ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::new(
            ItemKind::Segment,
            name,
            ".",
            "segment name must not be empty",
        ));
    }
    let mut conditions = Vec::with_capacity(segment.conditions.len());
    for (i, condition) in segment.conditions.iter().enumerate() {
        let field = format!("conditions[{i}]");
        if condition.segment.is_some() {
            return Err(ValidationError::new(
                ItemKind::Segment,
                name,
                format!("{field}.segment"),
                "a segment cannot refer to another segment",
            ));
        }
        conditions.push(
            compile_condition(condition, &HashMap::new()).map_err(|(sub, msg)| {
                ValidationError::new(ItemKind::Segment, name, join(&field, &sub), msg)
            })?,
        );
    }
    Ok(CompiledSegment { conditions })
}

fn join(prefix: &str, field: &str) -> String {
    if field.is_empty() {
        prefix.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

/// What a flag is compiled against besides segments: the document's `$evaluators` and
/// metadata (empty for flags stored one by one without them).
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) evaluators: Map<String, Value>,
    pub(crate) metadata: Map<String, Value>,
}

/// Compiles one flag against the segments it may refer to.
pub(crate) fn compile_flag(
    key: &str,
    flag: FlagDefinition,
    segments: &HashMap<String, Arc<CompiledSegment>>,
    shared: &Shared,
) -> Result<CompiledFlag, ValidationError> {
    let err =
        |field: &str, message: String| ValidationError::new(ItemKind::Flag, key, field, message);
    if key.is_empty() {
        return Err(err(".", "flag key must not be empty".to_owned()));
    }
    if flag.variants.is_empty() {
        return Err(err(
            "variants",
            "at least one variant is required".to_owned(),
        ));
    }
    let mut kind = None;
    for (name, value) in &flag.variants {
        let field = format!("variants.{name}");
        let Some(this) = ValueKind::of(value) else {
            return Err(err(&field, "a variant's value must not be null".to_owned()));
        };
        match kind {
            None => kind = Some((this, name)),
            Some((first, first_name)) if first != this => {
                return Err(err(
                    &field,
                    format!(
                        "mixed variant types: {name:?} is a {this} but {first_name:?} is a {first}"
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    let kind = kind.map(|(k, _)| k).unwrap_or(ValueKind::Bool);
    let variants: Vec<(String, Value)> = flag
        .variants
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let index: BTreeMap<&str, usize> = variants
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name.as_str(), i))
        .collect();
    let variant = |field: &str, name: &str| {
        index.get(name).copied().ok_or_else(|| {
            err(
                field,
                format!(
                    "unknown variant {name:?} (variants: {})",
                    variants
                        .iter()
                        .map(|(n, _)| format!("{n:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    };

    let default = match &flag.default_variant {
        Some(name) => Some(variant("defaultVariant", name)?),
        None => None,
    };

    let mut targets = HashMap::new();
    for (name, keys) in &flag.targets {
        let field = format!("targets.{name}");
        let i = variant(&field, name)?;
        for (j, target) in keys.iter().enumerate() {
            if let Some(previous) = targets.insert(target.clone(), i) {
                if previous != i {
                    return Err(err(
                        &format!("{field}[{j}]"),
                        format!(
                            "{target:?} is also a target of variant {:?}",
                            variants[previous].0
                        ),
                    ));
                }
            }
        }
    }

    let mut rules = Vec::with_capacity(flag.rules.len());
    for (r, rule) in flag.rules.iter().enumerate() {
        let field = format!("rules[{r}]");
        rules.push(compile_rule(key, rule, &field, &variant, segments)?);
    }

    let targeting = match &flag.targeting {
        None => None,
        Some(Value::Object(map)) if map.is_empty() => None,
        Some(rule) => {
            if !flag.targets.is_empty() || !flag.rules.is_empty() {
                return Err(err(
                    "targeting",
                    "a flag has either flagd targeting or targets and rules, not both".to_owned(),
                ));
            }
            Some(
                super::logic::compile(rule, &shared.evaluators)
                    .map_err(|(field, message)| err(&field, message))?,
            )
        }
    };

    let mut metadata = shared.metadata.clone();
    for (k, v) in &flag.metadata {
        // flagd skips null flag metadata, leaving the document's value.
        if !v.is_null() {
            metadata.insert(k.clone(), v.clone());
        }
    }
    Ok(CompiledFlag {
        enabled: flag.state == FlagState::Enabled,
        variants,
        default,
        kind,
        targets,
        rules,
        targeting,
        metadata,
        definition: Arc::new(flag),
    })
}

fn compile_rule(
    key: &str,
    rule: &Rule,
    field: &str,
    variant: &dyn Fn(&str, &str) -> Result<usize, ValidationError>,
    segments: &HashMap<String, Arc<CompiledSegment>>,
) -> Result<CompiledRule, ValidationError> {
    let err = |sub: &str, message: String| {
        ValidationError::new(ItemKind::Flag, key, join(field, sub), message)
    };
    let mut conditions = Vec::with_capacity(rule.conditions.len());
    for (c, condition) in rule.conditions.iter().enumerate() {
        let cfield = format!("conditions[{c}]");
        conditions.push(
            compile_condition(condition, segments)
                .map_err(|(sub, msg)| err(&join(&cfield, &sub), msg))?,
        );
    }
    let serve = match (&rule.variant, &rule.split) {
        (Some(_), Some(_)) => {
            return Err(err(
                "",
                "a rule serves either a variant or a split, not both".to_owned(),
            ))
        }
        (None, None) => return Err(err("", "a rule needs a variant or a split".to_owned())),
        (Some(name), None) => {
            if rule.bucket_by.is_some() || rule.salt.is_some() {
                return Err(err(
                    "bucketBy",
                    "bucketBy and salt apply only to a split".to_owned(),
                ));
            }
            Serve::Variant(variant(&join(field, "variant"), name)?)
        }
        (None, Some(weights)) => {
            if weights.is_empty() {
                return Err(err(
                    "split",
                    "a split needs at least one variant".to_owned(),
                ));
            }
            let mut seen = HashSet::new();
            let mut compiled = Vec::with_capacity(weights.len());
            let mut total: u64 = 0;
            for (w, (name, weight)) in weights.iter().enumerate() {
                let i = variant(&join(field, &format!("split[{w}][0]")), name)?;
                if !seen.insert(i) {
                    return Err(err(
                        &format!("split[{w}][0]"),
                        format!("variant {name:?} appears twice in the split"),
                    ));
                }
                total += u64::from(*weight);
                compiled.push((i, *weight));
            }
            if total == 0 || total > u64::from(u32::MAX) {
                return Err(err(
                    "split",
                    format!(
                        "weights must add up to between 1 and {} (they add up to {total})",
                        u32::MAX
                    ),
                ));
            }
            let bucket_by = match &rule.bucket_by {
                None => AttributeName::TargetingKey,
                Some(name) => AttributeName::parse(name).map_err(|m| err("bucketBy", m))?,
            };
            Serve::Split(Split {
                weights: compiled,
                total,
                salt: rule.salt.clone().unwrap_or_else(|| key.to_owned()),
                bucket_by,
            })
        }
    };
    Ok(CompiledRule { conditions, serve })
}

/// Compiles one condition; on error, the sub-field and the message.
fn compile_condition(
    condition: &Condition,
    segments: &HashMap<String, Arc<CompiledSegment>>,
) -> Result<CompiledCondition, (String, String)> {
    let e = |field: &str, message: String| (field.to_owned(), message);
    let test = match (&condition.attribute, &condition.segment) {
        (Some(_), Some(_)) => {
            return Err(e(
                "",
                "a condition has either an attribute or a segment, not both".to_owned(),
            ))
        }
        (None, None) => {
            return Err(e(
                "",
                "a condition needs an attribute or a segment".to_owned(),
            ))
        }
        (None, Some(name)) => {
            if condition.op.is_some() || condition.value.is_some() {
                return Err(e(
                    "op",
                    "a segment condition takes no op or value".to_owned(),
                ));
            }
            let segment = segments
                .get(name)
                .ok_or_else(|| e("segment", format!("unknown segment {name:?}")))?;
            Test::Segment(segment.clone())
        }
        (Some(attribute), None) => {
            let name = AttributeName::parse(attribute).map_err(|m| e("attribute", m))?;
            let op = condition
                .op
                .ok_or_else(|| e("op", "missing operator".to_owned()))?;
            let value = condition
                .value
                .as_ref()
                .ok_or_else(|| e("value", format!("missing value for {op}")))?;
            let check = compile_check(op, value).map_err(|m| e("value", m))?;
            Test::Attribute { name, check }
        }
    };
    Ok(CompiledCondition {
        test,
        negate: condition.negate,
    })
}

fn scalar(op: Operator, value: &Value) -> Result<Scalar, String> {
    match value {
        Value::String(s) => Ok(Scalar::Str(s.clone())),
        Value::Number(n) => n
            .as_f64()
            .map(Scalar::Num)
            .ok_or_else(|| format!("{n} is not a usable number")),
        Value::Bool(b) => Ok(Scalar::Bool(*b)),
        _ => Err(format!(
            "{op} needs a string, number or boolean, not {value}"
        )),
    }
}

fn string(op: Operator, value: &Value) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{op} needs a string, not {value}"))
}

fn scalar_set(op: Operator, value: &Value) -> Result<ScalarSet, String> {
    let Value::Array(items) = value else {
        return Err(format!("{op} needs an array, not {value}"));
    };
    let mut set = ScalarSet {
        strings: HashSet::new(),
        others: Vec::new(),
    };
    for (i, item) in items.iter().enumerate() {
        match scalar(op, item).map_err(|m| format!("[{i}]: {m}"))? {
            Scalar::Str(s) => {
                set.strings.insert(s);
            }
            other => set.others.push(other),
        }
    }
    Ok(set)
}

fn compile_check(op: Operator, value: &Value) -> Result<Check, String> {
    Ok(match op {
        Operator::Eq => Check::Eq(scalar(op, value)?),
        Operator::Neq => Check::Neq(scalar(op, value)?),
        Operator::In => Check::In(scalar_set(op, value)?),
        Operator::NotIn => Check::NotIn(scalar_set(op, value)?),
        Operator::StartsWith => Check::StartsWith(string(op, value)?),
        Operator::EndsWith => Check::EndsWith(string(op, value)?),
        Operator::Contains => Check::Contains(scalar(op, value)?),
        Operator::Regex => {
            let pattern = string(op, value)?;
            let regex = regex::RegexBuilder::new(&pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| format!("invalid regex {pattern:?}: {e}"))?;
            Check::Regex(regex)
        }
        Operator::Lt | Operator::Lte | Operator::Gt | Operator::Gte => {
            let cmp = match op {
                Operator::Lt => Cmp::Lt,
                Operator::Lte => Cmp::Lte,
                Operator::Gt => Cmp::Gt,
                _ => Cmp::Gte,
            };
            match value {
                Value::Number(_) | Value::String(_) => Check::Order(cmp, scalar(op, value)?),
                _ => return Err(format!("{op} needs a number or a string, not {value}")),
            }
        }
        Operator::SemverLt
        | Operator::SemverLte
        | Operator::SemverGt
        | Operator::SemverGte
        | Operator::SemverEq => {
            let cmp = match op {
                Operator::SemverLt => Cmp::Lt,
                Operator::SemverLte => Cmp::Lte,
                Operator::SemverGt => Cmp::Gt,
                Operator::SemverGte => Cmp::Gte,
                _ => Cmp::Eq,
            };
            let text = string(op, value)?;
            let version = parse_semver(&text)
                .ok_or_else(|| format!("{text:?} is not a semantic version (like 1.4.0)"))?;
            Check::Semver(cmp, version)
        }
        Operator::InCidr => {
            let blocks = match value {
                Value::String(s) => vec![parse_cidr(s)?],
                Value::Array(items) if !items.is_empty() => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        item.as_str()
                            .ok_or_else(|| format!("[{i}]: a CIDR block must be a string"))
                            .and_then(|s| parse_cidr(s).map_err(|m| format!("[{i}]: {m}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => {
                    return Err(format!(
                        "in_cidr needs a CIDR block or a non-empty array of them, not {value}"
                    ))
                }
            };
            Check::InCidr(blocks)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_blocks() {
        let block = parse_cidr("10.1.0.0/16").unwrap();
        assert!(block.contains("10.1.200.3".parse().unwrap()));
        assert!(!block.contains("10.2.0.1".parse().unwrap()));
        assert!(block.contains("::ffff:10.1.0.1".parse().unwrap()));
        let all = parse_cidr("0.0.0.0/0").unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        assert!(!all.contains("2001:db8::1".parse().unwrap()));
        let v6 = parse_cidr("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        let host = parse_cidr("192.168.1.7").unwrap();
        assert!(host.contains("192.168.1.7".parse().unwrap()));
        assert!(!host.contains("192.168.1.8".parse().unwrap()));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("10.0.0/8").is_err());
        assert!(parse_cidr("::/129").is_err());
        assert!(parse_cidr("::/128").is_ok());
        assert!(parse_cidr(" 10.0.0.0 / 8 ").is_ok());
        assert_eq!(
            parse_cidr("10.0.0.0/40").unwrap_err(),
            r#""10.0.0.0/40" has a prefix length outside 0..=32"#
        );
        assert_eq!(
            parse_cidr("::/x").unwrap_err(),
            r#""::/x" has a prefix length outside 0..=128"#
        );
        assert_eq!(
            parse_cidr("nope").unwrap_err(),
            r#""nope" is not a CIDR block (like 10.0.0.0/8 or 2001:db8::/32)"#
        );
    }

    #[test]
    fn semver_ignores_build_metadata_and_accepts_v() {
        let a = parse_semver("v1.2.3+build.7").unwrap();
        let b = parse_semver("1.2.3").unwrap();
        assert_eq!(semver_cmp(&a, &b), std::cmp::Ordering::Equal);
        let pre = parse_semver("1.2.3-rc.1").unwrap();
        assert_eq!(semver_cmp(&pre, &b), std::cmp::Ordering::Less);
        assert!(parse_semver("1.2").is_none());
    }
}
