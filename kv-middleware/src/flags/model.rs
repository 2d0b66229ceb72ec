//! The stored JSON form of flags and segments (what an operator writes with the `kv` tool).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Whether a flag is evaluated (`"ENABLED"`) or switched off for everyone (`"DISABLED"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum FlagState {
    /// The flag is evaluated: targets, rules, then the default variant.
    #[default]
    Enabled,
    /// Every evaluation answers the caller's default with reason `DISABLED`.
    Disabled,
}

/// One flag as stored: flagd's `state`, `variants`, `defaultVariant`, `targeting` and
/// `metadata`, or our native `targets` and `rules` instead of `targeting`.
///
/// `{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"}` is a complete
/// flag that is off for everyone. A flagd flag is stored as flagd writes it (`targeting` is
/// JSON Logic with flagd's operators). Unknown fields are rejected, so a typo is an error
/// rather than a silently ignored setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagDefinition {
    /// `ENABLED` or `DISABLED`.
    pub state: FlagState,
    /// Variant name to value; every value has the same type: all booleans, all strings, all
    /// numbers, or all JSON objects / arrays.
    pub variants: BTreeMap<String, Value>,
    /// The variant served when no target or rule matches. Absent or `null` (flagd allows
    /// both): the caller's default is served instead, with reason `DEFAULT`.
    #[serde(default)]
    pub default_variant: Option<String>,
    /// Allow-lists: variant name to the targeting keys that always get it (checked before the
    /// rules).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub targets: BTreeMap<String, Vec<String>>,
    /// Ordered rules; the first whose conditions all hold decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// flagd targeting: a JSON Logic rule (with `fractional`, `sem_ver`, `starts_with`,
    /// `ends_with` and `$ref`) returning a variant name, or `null` for the default variant.
    /// Not together with `targets` or `rules`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targeting: Option<Value>,
    /// Free-form facts about the flag, returned with every evaluation (by convention `owner`,
    /// `expiry` as an ISO date, `description`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

impl FlagDefinition {
    /// An enabled boolean flag with variants `on` (true) and `off` (false), serving `on` to
    /// everyone when `on` is true and `off` otherwise.
    ///
    /// ```
    /// use kv_middleware::flags::FlagDefinition;
    ///
    /// let json = serde_json::to_value(FlagDefinition::boolean(false)).unwrap();
    /// assert_eq!(
    ///     json,
    ///     serde_json::json!({"state":"ENABLED","variants":{"off":false,"on":true},"defaultVariant":"off"})
    /// );
    /// ```
    pub fn boolean(on: bool) -> Self {
        FlagDefinition {
            state: FlagState::Enabled,
            variants: BTreeMap::from([
                ("on".to_owned(), Value::Bool(true)),
                ("off".to_owned(), Value::Bool(false)),
            ]),
            default_variant: Some(if on { "on" } else { "off" }.to_owned()),
            targets: BTreeMap::new(),
            rules: Vec::new(),
            targeting: None,
            metadata: Map::new(),
        }
    }

    /// The same flag with this rule appended.
    pub fn with_rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// The same flag with these targeting keys always served `variant`.
    pub fn with_targets<I, K>(mut self, variant: impl Into<String>, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.targets
            .entry(variant.into())
            .or_default()
            .extend(keys.into_iter().map(Into::into));
        self
    }

    /// The same flag with this flagd targeting rule (JSON Logic).
    pub fn with_targeting(mut self, targeting: Value) -> Self {
        self.targeting = Some(targeting);
        self
    }

    /// The same flag in this state.
    pub fn with_state(mut self, state: FlagState) -> Self {
        self.state = state;
        self
    }

    /// The same flag with this metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// A flagd flag-definition document: `{"$schema"?, "flags": {...}, "$evaluators"?: {...},
/// "metadata"?: {...}}`.
///
/// Flags are kept as raw JSON so that one invalid flag can be reported (and answer
/// `PARSE_ERROR`) while the others compile: see
/// [`FlagSnapshot::from_document`](super::FlagSnapshot::from_document).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagDocument {
    /// The schema URL flagd's documents carry (kept on export).
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Flag key to flag definition (raw).
    pub flags: BTreeMap<String, Value>,
    /// Shared targeting fragments, referred to as `{"$ref": "name"}`.
    #[serde(rename = "$evaluators", default, skip_serializing_if = "Map::is_empty")]
    pub evaluators: Map<String, Value>,
    /// The flag set's metadata, merged under every flag's own metadata in evaluations.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

impl FlagDocument {
    /// The schema flagd documents name.
    pub const SCHEMA: &'static str = "https://flagd.dev/schema/v0/flags.json";

    /// Parses a document, naming the offending field when it is not one.
    pub fn parse(json: &str) -> Result<FlagDocument, super::ValidationError> {
        super::compile::decode(super::ItemKind::Document, "document", json.as_bytes())
    }
}

/// One rule: when all `conditions` hold (an empty list always holds), serve `variant`, or a
/// percentage `split` of the matching users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// A label for logs and the admin; not used in evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conditions, ANDed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The variant served when the rule matches (exactly one of `variant` and `split`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// A weighted split, flagd's `fractional`: `[["on", 10], ["off", 90]]`. Weights are
    /// relative integers (their sum need not be 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Vec<(String, u32)>>,
    /// The attribute whose value buckets users (default: the targeting key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_by: Option<String>,
    /// Hashed before the bucketing key (default: the flag's key, so flags are independent and
    /// assignments match flagd's; give two flags the same salt to split them alike).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
}

impl Rule {
    /// A rule serving `variant` when all its conditions hold.
    pub fn serve(variant: impl Into<String>) -> Self {
        Rule {
            variant: Some(variant.into()),
            ..Rule::default()
        }
    }

    /// A rule splitting matching users by weight.
    pub fn split<I, V>(weights: I) -> Self
    where
        I: IntoIterator<Item = (V, u32)>,
        V: Into<String>,
    {
        Rule {
            split: Some(weights.into_iter().map(|(v, w)| (v.into(), w)).collect()),
            ..Rule::default()
        }
    }

    /// The same rule with one more condition.
    pub fn when(mut self, condition: Condition) -> Self {
        self.conditions.push(condition);
        self
    }

    /// The same rule with a name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// A comparison of an attribute of the evaluation context with a value, or membership of a
/// named segment; `negate` inverts the result.
///
/// `{"attribute": "email", "op": "ends_with", "value": "@example.com"}`,
/// `{"segment": "beta-testers"}`, `{"attribute": "country", "op": "in", "value": ["FR", "DE"],
/// "negate": true}`.
///
/// Attributes are the context's own (`email`, `plan`, ...), `targetingKey`, `ip`, and request
/// headers as `header.<name>`. A condition on an attribute the context lacks is false, so its
/// negation is true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// The attribute compared (exactly one of `attribute` and `segment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// The operator (with `attribute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<Operator>,
    /// The operand (with `attribute`): a string, number or boolean, or an array for `in`,
    /// `not_in` and `in_cidr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// A named segment whose conditions must all hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// Invert the result.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negate: bool,
}

impl Condition {
    /// `attribute op value`.
    pub fn new(attribute: impl Into<String>, op: Operator, value: impl Into<Value>) -> Self {
        Condition {
            attribute: Some(attribute.into()),
            op: Some(op),
            value: Some(value.into()),
            ..Condition::default()
        }
    }

    /// Membership of a named segment.
    pub fn segment(name: impl Into<String>) -> Self {
        Condition {
            segment: Some(name.into()),
            ..Condition::default()
        }
    }

    /// The same condition, inverted.
    pub fn negated(mut self) -> Self {
        self.negate = !self.negate;
        self
    }
}

/// A named, reusable list of conditions (ANDed), stored beside the flags.
///
/// `{"conditions": [{"attribute": "email", "op": "ends_with", "value": "@example.com"}]}`.
/// A segment's conditions may not refer to other segments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Segment {
    /// Conditions, ANDed.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// What the segment is, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Segment {
    /// A segment of these conditions.
    pub fn new(conditions: impl IntoIterator<Item = Condition>) -> Self {
        Segment {
            conditions: conditions.into_iter().collect(),
            description: None,
        }
    }
}

/// The operators of a [`Condition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// Equal (numbers compare as numbers, a numeric string attribute included).
    Eq,
    /// Present and not equal.
    Neq,
    /// Equal to one of an array.
    In,
    /// Present and equal to none of an array.
    NotIn,
    /// The string starts with the value.
    StartsWith,
    /// The string ends with the value.
    EndsWith,
    /// The string contains the value, or the array attribute holds it.
    Contains,
    /// The string matches the regular expression (unanchored: use `^` and `$`).
    Regex,
    /// Less than (numbers, or strings in byte order when the value is a string).
    Lt,
    /// Less than or equal.
    Lte,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Semantic version less than (an optional leading `v` is ignored; build metadata too).
    SemverLt,
    /// Semantic version less than or equal.
    SemverLte,
    /// Semantic version greater than.
    SemverGt,
    /// Semantic version greater than or equal.
    SemverGte,
    /// Semantic version equal.
    SemverEq,
    /// The IP address lies in the CIDR block (or one of an array of blocks).
    InCidr,
}

impl Operator {
    /// The operator's name in the JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "eq",
            Operator::Neq => "neq",
            Operator::In => "in",
            Operator::NotIn => "not_in",
            Operator::StartsWith => "starts_with",
            Operator::EndsWith => "ends_with",
            Operator::Contains => "contains",
            Operator::Regex => "regex",
            Operator::Lt => "lt",
            Operator::Lte => "lte",
            Operator::Gt => "gt",
            Operator::Gte => "gte",
            Operator::SemverLt => "semver_lt",
            Operator::SemverLte => "semver_lte",
            Operator::SemverGt => "semver_gt",
            Operator::SemverGte => "semver_gte",
            Operator::SemverEq => "semver_eq",
            Operator::InCidr => "in_cidr",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
