//! flagd targeting: JSON Logic with flagd's operators, compiled once per snapshot.
//!
//! A targeting rule is parsed into a tree of [`Node`]s when the snapshot is built (unknown
//! operators and `$ref`s to missing evaluators are refused there, so the flag answers
//! `PARSE_ERROR`); evaluation walks the tree against the [`EvaluationContext`] and borrows
//! strings and JSON from the tree and the context, so a rule of comparisons, `if`, `sem_ver`,
//! `starts_with`, `ends_with` and `fractional` (without a `cat` bucket key) allocates nothing.
//!
//! Semantics follow flagd: a custom operator given bad arguments (an invalid version, an
//! unknown `sem_ver` operator, a missing bucketing key, weights adding up to zero, a
//! non-string to `starts_with`) makes the whole rule evaluate to `null`, so the default
//! variant is served with reason `DEFAULT`, as flagd's test bed requires.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

use super::bucket::bucket;
use super::context::EvaluationContext;

/// A compiled JSON Logic expression.
#[derive(Debug)]
pub(crate) enum Node {
    /// A literal: a scalar, or an array / object holding no operation.
    Lit(Value),
    /// An array holding operations.
    Array(Vec<Node>),
    /// `var` with a literal path.
    Var(VarPath, Option<Box<Node>>),
    /// `var` with a computed path.
    VarDyn(Box<Node>, Option<Box<Node>>),
    /// Any other operation.
    Op(Op, Vec<Node>),
    /// flagd's `fractional`.
    Fractional {
        /// The bucketing expression (`None`: flag key + targeting key).
        by: Option<Box<Node>>,
        /// Variant expression and weight expression (default 1).
        buckets: Vec<(Node, Option<Node>)>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    If,
    Eq,
    StrictEq,
    Ne,
    StrictNe,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Not,
    NotNot,
    In,
    Cat,
    Substr,
    Merge,
    Missing,
    MissingSome,
    Some,
    All,
    None,
    Map,
    Filter,
    Reduce,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Min,
    Max,
    SemVer,
    StartsWith,
    EndsWith,
}

impl Op {
    fn parse(name: &str) -> Option<Op> {
        Some(match name {
            "if" | "?:" => Op::If,
            "==" => Op::Eq,
            "===" => Op::StrictEq,
            "!=" => Op::Ne,
            "!==" => Op::StrictNe,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "and" => Op::And,
            "or" => Op::Or,
            "!" => Op::Not,
            "!!" => Op::NotNot,
            "in" => Op::In,
            "cat" => Op::Cat,
            "substr" => Op::Substr,
            "merge" => Op::Merge,
            "missing" => Op::Missing,
            "missing_some" => Op::MissingSome,
            "some" => Op::Some,
            "all" => Op::All,
            "none" => Op::None,
            "map" => Op::Map,
            "filter" => Op::Filter,
            "reduce" => Op::Reduce,
            "+" => Op::Add,
            "-" => Op::Sub,
            "*" => Op::Mul,
            "/" => Op::Div,
            "%" => Op::Mod,
            "min" => Op::Min,
            "max" => Op::Max,
            "sem_ver" => Op::SemVer,
            "starts_with" => Op::StartsWith,
            "ends_with" => Op::EndsWith,
            _ => return None,
        })
    }
}

/// A `var` path, split once.
#[derive(Debug)]
pub(crate) struct VarPath {
    /// Empty: the whole data.
    segments: Vec<String>,
}

impl VarPath {
    fn parse(path: &str) -> VarPath {
        VarPath {
            segments: if path.is_empty() {
                Vec::new()
            } else {
                path.split('.').map(str::to_owned).collect()
            },
        }
    }
}

// ---- compilation ----

/// Compiles a targeting rule; `evaluators` are the document's `$evaluators` (raw).
///
/// On error, the JSON path of the offending part and why.
pub(crate) fn compile(
    rule: &Value,
    evaluators: &Map<String, Value>,
) -> Result<Node, (String, String)> {
    compile_at(rule, evaluators, "targeting", 0)
}

/// Nested `$ref`s deeper than this are a cycle.
const MAX_REF_DEPTH: usize = 16;

fn compile_at(
    value: &Value,
    evaluators: &Map<String, Value>,
    path: &str,
    depth: usize,
) -> Result<Node, (String, String)> {
    match value {
        Value::Array(items) => {
            let nodes = items
                .iter()
                .enumerate()
                .map(|(i, v)| compile_at(v, evaluators, &format!("{path}[{i}]"), depth))
                .collect::<Result<Vec<_>, _>>()?;
            if nodes.iter().all(|n| matches!(n, Node::Lit(_))) {
                Ok(Node::Lit(value.clone()))
            } else {
                Ok(Node::Array(nodes))
            }
        }
        Value::Object(map) if map.len() == 1 => {
            let (name, args) = map.iter().next().expect("one entry");
            let here = format!("{path}.{name}");
            if name == "$ref" {
                let Some(target) = args.as_str() else {
                    return Err((here, "$ref needs the name of an evaluator".to_owned()));
                };
                let Some(evaluator) = evaluators.get(target) else {
                    return Err((here, format!("no evaluator {target:?} in $evaluators")));
                };
                if depth >= MAX_REF_DEPTH {
                    return Err((here, "$ref nests too deeply (a cycle?)".to_owned()));
                }
                return compile_at(
                    evaluator,
                    evaluators,
                    &format!("$evaluators.{target}"),
                    depth + 1,
                );
            }
            let list: Vec<&Value> = match args {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            let compile_args = |list: &[&Value]| {
                list.iter()
                    .enumerate()
                    .map(|(i, v)| compile_at(v, evaluators, &format!("{here}[{i}]"), depth))
                    .collect::<Result<Vec<_>, _>>()
            };
            if name == "var" {
                let default = match list.get(1) {
                    Some(v) => Some(Box::new(compile_at(v, evaluators, &here, depth)?)),
                    None => None,
                };
                return Ok(match list.first() {
                    None | Some(Value::Null) => Node::Var(VarPath::parse(""), default),
                    Some(Value::String(s)) => Node::Var(VarPath::parse(s), default),
                    Some(Value::Number(n)) => Node::Var(VarPath::parse(&n.to_string()), default),
                    Some(other) => Node::VarDyn(
                        Box::new(compile_at(other, evaluators, &here, depth)?),
                        default,
                    ),
                });
            }
            if name == "fractional" {
                return compile_fractional(&list, evaluators, &here, depth);
            }
            let Some(op) = Op::parse(name) else {
                return Err((here, format!("unknown operator {name:?}")));
            };
            Ok(Node::Op(op, compile_args(&list)?))
        }
        Value::Object(map) if map.is_empty() => Ok(Node::Lit(Value::Null)),
        Value::Object(map) => Err((
            path.to_owned(),
            format!(
                "an operation has exactly one operator, this object has {} keys",
                map.len()
            ),
        )),
        scalar => Ok(Node::Lit(scalar.clone())),
    }
}

fn compile_fractional(
    list: &[&Value],
    evaluators: &Map<String, Value>,
    here: &str,
    depth: usize,
) -> Result<Node, (String, String)> {
    let (by, rest) = match list.first() {
        Some(Value::Array(_)) | None => (None, list),
        Some(first) => (
            Some(Box::new(compile_at(
                first,
                evaluators,
                &format!("{here}[0]"),
                depth,
            )?)),
            &list[1..],
        ),
    };
    let offset = usize::from(by.is_some());
    let mut buckets = Vec::with_capacity(rest.len());
    for (i, bucket) in rest.iter().enumerate() {
        let at = format!("{here}[{}]", i + offset);
        let Value::Array(parts) = bucket else {
            return Err((at, "a fractional bucket is [variant, weight]".to_owned()));
        };
        if parts.is_empty() || parts.len() > 2 {
            return Err((at, "a fractional bucket is [variant, weight]".to_owned()));
        }
        let variant = compile_at(&parts[0], evaluators, &format!("{at}[0]"), depth)?;
        let weight = match parts.get(1) {
            Some(w) => Some(compile_at(w, evaluators, &format!("{at}[1]"), depth)?),
            None => None,
        };
        buckets.push((variant, weight));
    }
    Ok(Node::Fractional { by, buckets })
}

// ---- values ----

/// A value during evaluation, borrowing from the rule and the context where it can.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    Null,
    Bool(bool),
    Num(f64),
    Str(Cow<'a, str>),
    /// An array or object, borrowed.
    Json(&'a Value),
    /// An array made during evaluation.
    Arr(Vec<Val<'a>>),
    /// A JSON value made during evaluation (the whole context, for `{"var": ""}`).
    Owned(Box<Value>),
}

impl<'a> Val<'a> {
    fn from_json(value: &'a Value) -> Val<'a> {
        match value {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Num(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => Val::Str(Cow::Borrowed(s)),
            _ => Val::Json(value),
        }
    }

    fn from_owned(value: Value) -> Val<'a> {
        match value {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(b),
            Value::Number(n) => Val::Num(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => Val::Str(Cow::Owned(s)),
            other => Val::Owned(Box::new(other)),
        }
    }

    /// JSON Logic truthiness: `false`, `null`, `0`, `NaN`, `""` and `[]` are false.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => *b,
            Val::Num(n) => *n != 0.0 && !n.is_nan(),
            Val::Str(s) => !s.is_empty(),
            Val::Json(v) => json_truthy(v),
            Val::Owned(v) => json_truthy(v),
            Val::Arr(items) => !items.is_empty(),
        }
    }

    /// JavaScript's `Number(x)`, as JSON Logic's arithmetic and comparisons use it.
    fn number(&self) -> f64 {
        match self {
            Val::Null => 0.0,
            Val::Bool(b) => f64::from(u8::from(*b)),
            Val::Num(n) => *n,
            Val::Str(s) => str_number(s),
            _ => f64::NAN,
        }
    }

    fn items(&self) -> Option<Items<'_, 'a>> {
        match self {
            Val::Json(Value::Array(items)) => Some(Items::Json(items)),
            Val::Owned(v) => match &**v {
                Value::Array(items) => Some(Items::Owned(items)),
                _ => None,
            },
            Val::Arr(items) => Some(Items::Vals(items)),
            _ => None,
        }
    }

    /// Appends the value as JavaScript's `String(x)` would (arrays joined by commas, `null`
    /// as "" inside `cat`).
    fn write_text(&self, out: &mut String) {
        match self {
            Val::Null => {}
            Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Val::Num(n) => write_number(*n, out),
            Val::Str(s) => out.push_str(s),
            Val::Json(v) => write_json_text(v, out),
            Val::Owned(v) => write_json_text(v, out),
            Val::Arr(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_text(out);
                }
            }
        }
    }

    /// The value as a string: borrowed when it is one.
    pub(crate) fn text(&self) -> Cow<'_, str> {
        match self {
            Val::Str(s) => Cow::Borrowed(s),
            other => {
                let mut out = String::new();
                other.write_text(&mut out);
                Cow::Owned(out)
            }
        }
    }

    /// The value as JSON.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Num(n) => Number::from_f64(*n).map_or(Value::Null, |n| {
                if n.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                {
                    Value::from(n.as_f64().unwrap_or_default() as i64)
                } else {
                    Value::Number(n)
                }
            }),
            Val::Str(s) => Value::String(s.to_string()),
            Val::Json(v) => (*v).clone(),
            Val::Owned(v) => (**v).clone(),
            Val::Arr(items) => Value::Array(items.iter().map(Val::to_json).collect()),
        }
    }
}

fn json_truthy(value: &Value) -> bool {
    match value {
        Value::Array(items) => !items.is_empty(),
        other => Val::from_json(other).truthy(),
    }
}

fn str_number(s: &str) -> f64 {
    let t = s.trim();
    if t.is_empty() {
        0.0
    } else {
        t.parse().unwrap_or(f64::NAN)
    }
}

/// Formats a number as JavaScript does for integers and ordinary fractions.
fn write_number(n: f64, out: &mut String) {
    if n.is_nan() {
        out.push_str("NaN");
    } else if n.fract() == 0.0 && n.abs() < 1e21 {
        let _ = write!(out, "{}", n as i128);
    } else {
        let _ = write!(out, "{n}");
    }
}

fn write_json_text(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_text(item, out);
            }
        }
        Value::Object(_) => out.push_str("[object Object]"),
        other => Val::from_json(other).write_text(out),
    }
}

enum Items<'v, 'a> {
    Json(&'a [Value]),
    /// Items of a value made during evaluation: copied out one by one.
    Owned(&'v [Value]),
    Vals(&'v [Val<'a>]),
}

impl<'a> Items<'_, 'a> {
    fn len(&self) -> usize {
        match self {
            Items::Json(items) => items.len(),
            Items::Owned(items) => items.len(),
            Items::Vals(items) => items.len(),
        }
    }

    fn get(&self, i: usize) -> Val<'a> {
        match self {
            Items::Json(items) => Val::from_json(&items[i]),
            Items::Owned(items) => Val::from_owned(items[i].clone()),
            Items::Vals(items) => items[i].clone(),
        }
    }
}

// ---- equality and order ----

fn strict_eq(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(a), Val::Bool(b)) => a == b,
        (Val::Num(a), Val::Num(b)) => a == b,
        (Val::Str(a), Val::Str(b)) => a == b,
        (a, b) if a.items().is_some() || b.items().is_some() => a.to_json() == b.to_json(),
        (Val::Json(a), Val::Json(b)) => a == b,
        _ => false,
    }
}

/// JavaScript's `==` on JSON values.
fn loose_eq(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Null, _) | (_, Val::Null) => false,
        (Val::Num(_), Val::Str(_)) | (Val::Str(_), Val::Num(_)) => a.number() == b.number(),
        (Val::Bool(x), Val::Bool(y)) => x == y,
        // A boolean against a number or a string compares as a number (`true == 1`).
        (Val::Bool(_), Val::Num(_) | Val::Str(_)) | (Val::Num(_) | Val::Str(_), Val::Bool(_)) => {
            a.number() == b.number()
        }
        _ => strict_eq(a, b),
    }
}

/// JavaScript's `<` family: strings compare as strings, anything else as numbers.
fn order(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    match (a, b) {
        (Val::Str(a), Val::Str(b)) => Some(a.as_ref().cmp(b.as_ref())),
        _ => a.number().partial_cmp(&b.number()),
    }
}

// ---- evaluation ----

/// A custom operator was given arguments it cannot use: the rule evaluates to `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Abort;

/// What a rule is evaluated against.
pub(crate) struct Env<'a> {
    pub(crate) context: &'a EvaluationContext,
    pub(crate) flag_key: &'a str,
    pub(crate) timestamp: i64,
}

#[derive(Clone, Copy)]
enum Scope<'s, 'a> {
    Root,
    Item(&'s Val<'a>),
    Reduce {
        current: &'s Val<'a>,
        accumulator: &'s Val<'a>,
    },
}

/// Evaluates a compiled rule; `Err(Abort)` means "null" in flagd's sense.
pub(crate) fn evaluate<'a>(node: &'a Node, env: &Env<'a>) -> Result<Val<'a>, Abort> {
    eval(node, env, Scope::Root)
}

fn eval<'a>(node: &'a Node, env: &Env<'a>, scope: Scope<'_, 'a>) -> Result<Val<'a>, Abort> {
    match node {
        Node::Lit(value) => Ok(Val::from_json(value)),
        Node::Array(nodes) => Ok(Val::Arr(
            nodes
                .iter()
                .map(|n| eval(n, env, scope))
                .collect::<Result<_, _>>()?,
        )),
        Node::Var(path, default) => {
            let found = lookup(&path.segments, env, scope);
            match (found, default) {
                (Val::Null, Some(default)) => eval(default, env, scope),
                (found, _) => Ok(found),
            }
        }
        Node::VarDyn(path, default) => {
            let path = eval(path, env, scope)?;
            let text = path.text();
            let segments: Vec<String> = if text.is_empty() {
                Vec::new()
            } else {
                text.split('.').map(str::to_owned).collect()
            };
            // Borrowing `segments` past this frame is not possible; resolve to an owned value.
            let found = lookup(&segments, env, scope).to_json();
            match (found, default) {
                (Value::Null, Some(default)) => eval(default, env, scope),
                (found, _) => Ok(Val::from_owned(found)),
            }
        }
        Node::Op(op, args) => eval_op(*op, args, env, scope),
        Node::Fractional { by, buckets } => fractional(by.as_deref(), buckets, env, scope),
    }
}

/// Resolves a `var` path in the scope.
fn lookup<'a>(segments: &[String], env: &Env<'a>, scope: Scope<'_, 'a>) -> Val<'a> {
    match scope {
        Scope::Item(item) => descend_val(item, segments),
        Scope::Reduce {
            current,
            accumulator,
        } => match segments.split_first() {
            Some((first, rest)) if first == "current" => descend_val(current, rest),
            Some((first, rest)) if first == "accumulator" => descend_val(accumulator, rest),
            _ => Val::Null,
        },
        Scope::Root => {
            let Some((first, rest)) = segments.split_first() else {
                return Val::from_owned(whole_context(env));
            };
            match first.as_str() {
                "targetingKey" if rest.is_empty() => match env.context.targeting_key() {
                    Some(key) => Val::Str(Cow::Borrowed(key)),
                    None => attribute(env, first, rest),
                },
                "$flagd" => match rest {
                    [key] if key == "flagKey" => Val::Str(Cow::Borrowed(env.flag_key)),
                    [key] if key == "timestamp" => Val::Num(env.timestamp as f64),
                    [] => Val::from_owned(flagd_properties(env)),
                    _ => Val::Null,
                },
                "ip" if rest.is_empty() => match env.context.ip() {
                    Some(ip) => Val::Str(Cow::Owned(ip.to_string())),
                    None => attribute(env, first, rest),
                },
                _ => attribute(env, first, rest),
            }
        }
    }
}

fn attribute<'a>(env: &Env<'a>, first: &str, rest: &[String]) -> Val<'a> {
    match env.context.attribute(first) {
        Some(value) => descend(value, rest),
        None => Val::Null,
    }
}

fn descend<'a>(mut value: &'a Value, segments: &[String]) -> Val<'a> {
    for segment in segments {
        value = match value {
            Value::Object(map) => match map.get(segment.as_str()) {
                Some(v) => v,
                None => return Val::Null,
            },
            Value::Array(items) => match segment.parse::<usize>().ok().and_then(|i| items.get(i)) {
                Some(v) => v,
                None => return Val::Null,
            },
            _ => return Val::Null,
        };
    }
    Val::from_json(value)
}

fn descend_val<'a>(value: &Val<'a>, segments: &[String]) -> Val<'a> {
    let Some((first, rest)) = segments.split_first() else {
        return value.clone();
    };
    match value {
        Val::Json(json) => descend(json, segments),
        Val::Arr(items) => match first.parse::<usize>().ok().and_then(|i| items.get(i)) {
            Some(item) => descend_val(item, rest),
            None => Val::Null,
        },
        Val::Owned(json) => Val::from_owned(match descend(json, segments) {
            Val::Null => Value::Null,
            found => found.to_json(),
        }),
        _ => Val::Null,
    }
}

fn flagd_properties(env: &Env<'_>) -> Value {
    let mut map = Map::new();
    map.insert("flagKey".to_owned(), Value::from(env.flag_key));
    map.insert("timestamp".to_owned(), Value::from(env.timestamp));
    Value::Object(map)
}

/// The context as one JSON object, as flagd hands it to JSON Logic.
pub(crate) fn whole_context(env: &Env<'_>) -> Value {
    let mut map = Map::new();
    for (name, value) in env.context.attributes() {
        map.insert(name.to_owned(), value.clone());
    }
    if let Some(ip) = env.context.ip() {
        map.insert("ip".to_owned(), Value::from(ip.to_string()));
    }
    if let Some(key) = env.context.targeting_key() {
        map.insert("targetingKey".to_owned(), Value::from(key));
    }
    map.insert("$flagd".to_owned(), flagd_properties(env));
    Value::Object(map)
}

fn arg<'a>(
    args: &'a [Node],
    i: usize,
    env: &Env<'a>,
    scope: Scope<'_, 'a>,
) -> Result<Val<'a>, Abort> {
    match args.get(i) {
        Some(node) => eval(node, env, scope),
        None => Ok(Val::Null),
    }
}

fn eval_op<'a>(
    op: Op,
    args: &'a [Node],
    env: &Env<'a>,
    scope: Scope<'_, 'a>,
) -> Result<Val<'a>, Abort> {
    let a = |i: usize| arg(args, i, env, scope);
    Ok(match op {
        Op::If => {
            let mut i = 0;
            while i + 1 < args.len() {
                if a(i)?.truthy() {
                    return a(i + 1);
                }
                i += 2;
            }
            if i < args.len() {
                a(i)?
            } else {
                Val::Null
            }
        }
        Op::Eq => Val::Bool(loose_eq(&a(0)?, &a(1)?)),
        Op::Ne => Val::Bool(!loose_eq(&a(0)?, &a(1)?)),
        Op::StrictEq => Val::Bool(strict_eq(&a(0)?, &a(1)?)),
        Op::StrictNe => Val::Bool(!strict_eq(&a(0)?, &a(1)?)),
        Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            let holds = |o: Option<Ordering>| match (op, o) {
                (_, None) => false,
                (Op::Lt, Some(o)) => o == Ordering::Less,
                (Op::Le, Some(o)) => o != Ordering::Greater,
                (Op::Gt, Some(o)) => o == Ordering::Greater,
                (_, Some(o)) => o != Ordering::Less,
            };
            let (x, y) = (a(0)?, a(1)?);
            let first = holds(order(&x, &y));
            if args.len() >= 3 && matches!(op, Op::Lt | Op::Le) {
                // The between form: a < b < c.
                Val::Bool(first && holds(order(&y, &a(2)?)))
            } else {
                Val::Bool(first)
            }
        }
        Op::And => {
            let mut last = Val::Null;
            for i in 0..args.len() {
                last = a(i)?;
                if !last.truthy() {
                    return Ok(last);
                }
            }
            last
        }
        Op::Or => {
            let mut last = Val::Null;
            for i in 0..args.len() {
                last = a(i)?;
                if last.truthy() {
                    return Ok(last);
                }
            }
            last
        }
        Op::Not => Val::Bool(!a(0)?.truthy()),
        Op::NotNot => Val::Bool(a(0)?.truthy()),
        Op::In => {
            let (needle, hay) = (a(0)?, a(1)?);
            match &hay {
                Val::Str(s) => Val::Bool(s.contains(needle.text().as_ref())),
                other => match other.items() {
                    Some(items) => {
                        Val::Bool((0..items.len()).any(|i| strict_eq(&items.get(i), &needle)))
                    }
                    None => Val::Bool(false),
                },
            }
        }
        Op::Cat => {
            let mut out = String::new();
            for i in 0..args.len() {
                a(i)?.write_text(&mut out);
            }
            Val::Str(Cow::Owned(out))
        }
        Op::Substr => {
            let source = a(0)?;
            let text = source.text();
            let chars: Vec<char> = text.chars().collect();
            let len = chars.len() as i64;
            let start = a(1)?.number();
            let start = if start.is_nan() { 0 } else { start as i64 };
            let start = if start < 0 {
                (len + start).max(0)
            } else {
                start.min(len)
            };
            let end = match args.get(2) {
                None => len,
                Some(_) => {
                    let n = a(2)?.number();
                    let n = if n.is_nan() { 0 } else { n as i64 };
                    if n < 0 {
                        (len + n).max(start)
                    } else {
                        (start + n).min(len)
                    }
                }
            };
            Val::Str(Cow::Owned(
                chars[start as usize..end.max(start) as usize]
                    .iter()
                    .collect(),
            ))
        }
        Op::Merge => {
            let mut out = Vec::new();
            for i in 0..args.len() {
                let v = a(i)?;
                match v.items() {
                    Some(items) => out.extend((0..items.len()).map(|j| items.get(j))),
                    None => out.push(v),
                }
            }
            Val::Arr(out)
        }
        Op::Missing => Val::Arr(missing(args, env, scope)?),
        Op::MissingSome => {
            let need = a(0)?.number();
            let keys = a(1)?;
            let Some(items) = keys.items() else {
                return Ok(Val::Arr(Vec::new()));
            };
            let mut absent = Vec::new();
            for i in 0..items.len() {
                let key = items.get(i);
                if is_missing(&key, env, scope) {
                    absent.push(key);
                }
            }
            if (items.len() - absent.len()) as f64 >= need {
                Val::Arr(Vec::new())
            } else {
                Val::Arr(absent)
            }
        }
        Op::Some | Op::All | Op::None | Op::Map | Op::Filter | Op::Reduce => {
            let list = a(0)?;
            let Some(logic) = args.get(1) else {
                return Ok(Val::Null);
            };
            let items = list.items();
            let count = items.as_ref().map_or(0, Items::len);
            let item = |i: usize| items.as_ref().map(|it| it.get(i)).unwrap_or(Val::Null);
            match op {
                Op::Some | Op::None => {
                    let mut any = false;
                    for i in 0..count {
                        let it = item(i);
                        if eval(logic, env, Scope::Item(&it))?.truthy() {
                            any = true;
                            break;
                        }
                    }
                    Val::Bool(if op == Op::Some { any } else { !any })
                }
                Op::All => {
                    if count == 0 {
                        return Ok(Val::Bool(false));
                    }
                    for i in 0..count {
                        let it = item(i);
                        if !eval(logic, env, Scope::Item(&it))?.truthy() {
                            return Ok(Val::Bool(false));
                        }
                    }
                    Val::Bool(true)
                }
                Op::Map => {
                    let mut out = Vec::with_capacity(count);
                    for i in 0..count {
                        let it = item(i);
                        out.push(eval(logic, env, Scope::Item(&it))?);
                    }
                    Val::Arr(out)
                }
                Op::Filter => {
                    let mut out = Vec::new();
                    for i in 0..count {
                        let it = item(i);
                        if eval(logic, env, Scope::Item(&it))?.truthy() {
                            out.push(it);
                        }
                    }
                    Val::Arr(out)
                }
                _ => {
                    let mut accumulator = a(2)?;
                    for i in 0..count {
                        let current = item(i);
                        accumulator = eval(
                            logic,
                            env,
                            Scope::Reduce {
                                current: &current,
                                accumulator: &accumulator,
                            },
                        )?;
                    }
                    accumulator
                }
            }
        }
        Op::Add => {
            let mut sum = 0.0;
            for i in 0..args.len() {
                sum += a(i)?.number();
            }
            Val::Num(sum)
        }
        Op::Mul => {
            let mut product = 1.0;
            for i in 0..args.len() {
                product *= a(i)?.number();
            }
            Val::Num(product)
        }
        Op::Sub => match args.len() {
            1 => Val::Num(-a(0)?.number()),
            _ => Val::Num(a(0)?.number() - a(1)?.number()),
        },
        Op::Div => Val::Num(a(0)?.number() / a(1)?.number()),
        Op::Mod => Val::Num(a(0)?.number() % a(1)?.number()),
        Op::Min | Op::Max => {
            if args.is_empty() {
                return Ok(Val::Null);
            }
            let mut best: Option<f64> = None;
            for i in 0..args.len() {
                let n = a(i)?.number();
                if n.is_nan() {
                    return Ok(Val::Null);
                }
                best = Some(match best {
                    None => n,
                    Some(b) if op == Op::Min => b.min(n),
                    Some(b) => b.max(n),
                });
            }
            best.map_or(Val::Null, Val::Num)
        }
        Op::SemVer => {
            if args.len() != 3 {
                return Err(Abort);
            }
            let (value, operator, target) = (a(0)?, a(1)?, a(2)?);
            let value = version_text(&value).ok_or(Abort)?;
            let target = version_text(&target).ok_or(Abort)?;
            let Val::Str(operator) = operator else {
                return Err(Abort);
            };
            let v = SemVer::parse(&value).ok_or(Abort)?;
            let t = SemVer::parse(&target).ok_or(Abort)?;
            Val::Bool(match operator.as_ref() {
                "=" => v.cmp(&t) == Ordering::Equal,
                "!=" => v.cmp(&t) != Ordering::Equal,
                "<" => v.cmp(&t) == Ordering::Less,
                "<=" => v.cmp(&t) != Ordering::Greater,
                ">" => v.cmp(&t) == Ordering::Greater,
                ">=" => v.cmp(&t) != Ordering::Less,
                "^" => v.major == t.major,
                "~" => v.major == t.major && v.minor == t.minor,
                _ => return Err(Abort),
            })
        }
        Op::StartsWith | Op::EndsWith => {
            if args.len() != 2 {
                return Err(Abort);
            }
            let (Val::Str(s), Val::Str(affix)) = (a(0)?, a(1)?) else {
                return Err(Abort);
            };
            Val::Bool(if op == Op::StartsWith {
                s.starts_with(affix.as_ref())
            } else {
                s.ends_with(affix.as_ref())
            })
        }
    })
}

/// A version operand: a string, or a number (`1` is version 1.0.0, as flagd reads it).
fn version_text<'v>(value: &'v Val<'_>) -> Option<Cow<'v, str>> {
    match value {
        Val::Str(s) => Some(Cow::Borrowed(s.as_ref())),
        Val::Num(n) if n.is_finite() && *n >= 0.0 => {
            let mut out = String::new();
            write_number(*n, &mut out);
            Some(Cow::Owned(out))
        }
        _ => None,
    }
}

fn is_missing(key: &Val<'_>, env: &Env<'_>, scope: Scope<'_, '_>) -> bool {
    let text = key.text();
    let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
    match lookup(&segments, env, scope) {
        Val::Null => true,
        Val::Str(s) => s.is_empty(),
        _ => false,
    }
}

fn missing<'a>(
    args: &'a [Node],
    env: &Env<'a>,
    scope: Scope<'_, 'a>,
) -> Result<Vec<Val<'a>>, Abort> {
    let mut keys = Vec::new();
    for (i, node) in args.iter().enumerate() {
        let v = eval(node, env, scope)?;
        match v.items() {
            Some(items) if i == 0 => keys.extend((0..items.len()).map(|j| items.get(j))),
            _ => keys.push(v),
        }
    }
    Ok(keys
        .into_iter()
        .filter(|key| is_missing(key, env, scope))
        .collect())
}

fn fractional<'a>(
    by: Option<&'a Node>,
    buckets: &'a [(Node, Option<Node>)],
    env: &Env<'a>,
    scope: Scope<'_, 'a>,
) -> Result<Val<'a>, Abort> {
    if buckets.is_empty() {
        return Err(Abort);
    }
    let mut total: u64 = 0;
    let mut weights = [0u64; 16];
    let mut heap_weights = Vec::new();
    let many = buckets.len() > weights.len();
    for (i, (_, weight)) in buckets.iter().enumerate() {
        let w = match weight {
            None => 1.0,
            Some(node) => eval(node, env, scope)?.number(),
        };
        // Negative weights count as zero, as in flagd.
        let w = if w.is_nan() || w < 0.0 { 0 } else { w as u64 };
        total = total.saturating_add(w);
        if many {
            heap_weights.push(w);
        } else {
            weights[i] = w;
        }
    }
    if total == 0 || total > u64::from(u32::MAX) {
        return Err(Abort);
    }
    let point = match by {
        None => {
            let key = env.context.targeting_key().ok_or(Abort)?;
            bucket(env.flag_key.as_bytes(), key.as_bytes(), total)
        }
        Some(node) => {
            let value = eval(node, env, scope)?;
            match &value {
                Val::Str(s) => bucket(b"", s.as_bytes(), total),
                Val::Num(_) | Val::Bool(_) => bucket(b"", value.text().as_bytes(), total),
                _ => return Err(Abort),
            }
        }
    };
    let weights: &[u64] = if many {
        &heap_weights
    } else {
        &weights[..buckets.len()]
    };
    let mut running = 0u64;
    for (i, w) in weights.iter().enumerate() {
        running += w;
        if running > point {
            return eval(&buckets[i].0, env, scope);
        }
    }
    Err(Abort)
}

// ---- semantic versions ----

/// A semantic version as flagd's `sem_ver` reads it: a leading `v` or `V`, partial versions
/// (`1`, `1.2`), pre-release compared by the specification, build metadata ignored.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SemVer<'t> {
    major: u64,
    minor: u64,
    patch: u64,
    pre: &'t str,
}

impl<'t> SemVer<'t> {
    pub(crate) fn parse(text: &'t str) -> Option<SemVer<'t>> {
        let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
        let text = match text.split_once('+') {
            Some((version, build)) => {
                if !identifiers_ok(build, false) {
                    return None;
                }
                version
            }
            None => text,
        };
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) => {
                if !identifiers_ok(pre, true) {
                    return None;
                }
                (core, pre)
            }
            None => (text, ""),
        };
        let mut parts = core.split('.');
        let major = numeric(parts.next()?)?;
        let minor = match parts.next() {
            Some(p) => numeric(p)?,
            None => 0,
        };
        let patch = match parts.next() {
            Some(p) => numeric(p)?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        // Shorthands (`1`, `1.2`) take no pre-release, as in Go's semver.
        if !pre.is_empty() && core.matches('.').count() != 2 {
            return None;
        }
        Some(SemVer {
            major,
            minor,
            patch,
            pre,
        })
    }

    pub(crate) fn cmp(&self, other: &SemVer<'_>) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => cmp_pre(self.pre, other.pre),
            })
    }
}

fn numeric(part: &str) -> Option<u64> {
    if part.is_empty()
        || !part.bytes().all(|b| b.is_ascii_digit())
        || (part.len() > 1 && part.starts_with('0'))
    {
        return None;
    }
    part.parse().ok()
}

fn identifiers_ok(text: &str, no_leading_zero: bool) -> bool {
    text.split('.').all(|id| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !(no_leading_zero
                && id.len() > 1
                && id.starts_with('0')
                && id.bytes().all(|b| b.is_ascii_digit()))
    })
}

fn cmp_pre(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let xn = x.bytes().all(|c| c.is_ascii_digit());
                let yn = y.bytes().all(|c| c.is_ascii_digit());
                let o = match (xn, yn) {
                    (true, true) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(rule: Value, data: Value) -> Option<Value> {
        let node = compile(&rule, &Map::new()).expect("compiles");
        let mut context = EvaluationContext::new();
        if let Value::Object(map) = data {
            for (k, v) in map {
                if k == "targetingKey" {
                    context.set_targeting_key(v.as_str().map(str::to_owned));
                } else {
                    context.set_attribute(k, v);
                }
            }
        }
        let env = Env {
            context: &context,
            flag_key: "flag",
            timestamp: 1_700_000_000,
        };
        evaluate(&node, &env).ok().map(|v| v.to_json())
    }

    #[test]
    fn standard_operators() {
        let d =
            json!({"a": 1, "b": "x", "user": {"name": "ada", "tags": ["p", "q"]}, "n": [1, 2, 3]});
        let cases = [
            (json!({"var": "user.name"}), json!("ada")),
            (json!({"var": ["missing", 7]}), json!(7)),
            (json!({"var": "n.1"}), json!(2)),
            (json!({"==": [1, "1"]}), json!(true)),
            (json!({"===": [1, "1"]}), json!(false)),
            (json!({"!=": [1, "2"]}), json!(true)),
            (json!({"!==": [1, 1]}), json!(false)),
            (json!({"==": [null, 0]}), json!(false)),
            (json!({"==": [true, 1]}), json!(true)),
            (json!({"<": [1, 2, 3]}), json!(true)),
            (json!({"<": [1, 3, 3]}), json!(false)),
            (json!({"<=": [1, 3, 3]}), json!(true)),
            (json!({">": ["b", "a"]}), json!(true)),
            (json!({">=": [2, "2"]}), json!(true)),
            (json!({"and": [true, 0, 3]}), json!(0)),
            (json!({"or": [false, "", "z"]}), json!("z")),
            (json!({"!": [[]]}), json!(true)),
            (json!({"!!": ["0"]}), json!(true)),
            (json!({"in": ["d", "ada"]}), json!(true)),
            (json!({"in": ["q", {"var": "user.tags"}]}), json!(true)),
            (
                json!({"cat": ["a", 1, null, true, 1.5]}),
                json!("a1true1.5"),
            ),
            (json!({"substr": ["jsonlogic", 4]}), json!("logic")),
            (json!({"substr": ["jsonlogic", -5]}), json!("logic")),
            (json!({"substr": ["jsonlogic", 1, 3]}), json!("son")),
            (json!({"substr": ["jsonlogic", 4, -2]}), json!("log")),
            (json!({"merge": [[1, 2], 3, [4]]}), json!([1, 2, 3, 4])),
            (json!({"missing": ["a", "zz", "b"]}), json!(["zz"])),
            (json!({"missing_some": [1, ["zz", "b"]]}), json!([])),
            (json!({"missing_some": [2, ["zz", "b"]]}), json!(["zz"])),
            (
                json!({"some": [{"var": "n"}, {">": [{"var": ""}, 2]}]}),
                json!(true),
            ),
            (
                json!({"all": [{"var": "n"}, {">": [{"var": ""}, 0]}]}),
                json!(true),
            ),
            (json!({"all": [[], true]}), json!(false)),
            (
                json!({"none": [{"var": "n"}, {">": [{"var": ""}, 5]}]}),
                json!(true),
            ),
            (
                json!({"map": [{"var": "n"}, {"*": [{"var": ""}, 2]}]}),
                json!([2, 4, 6]),
            ),
            (
                json!({"filter": [{"var": "n"}, {"%": [{"var": ""}, 2]}]}),
                json!([1, 3]),
            ),
            (
                json!({"reduce": [{"var": "n"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, 0]}),
                json!(6),
            ),
            (json!({"+": [1, "2", 3]}), json!(6)),
            (json!({"-": [5]}), json!(-5)),
            (json!({"-": [5, 2]}), json!(3)),
            (json!({"/": [1, 4]}), json!(0.25)),
            (json!({"min": [3, 1, 2]}), json!(1)),
            (json!({"max": [3, 1, 2]}), json!(3)),
            (json!({"if": [false, 1, false, 2, 3]}), json!(3)),
            (json!({"if": [true, null, 1]}), json!(null)),
            (json!({"?:": [true, "y", "n"]}), json!("y")),
            (json!({"var": "$flagd.flagKey"}), json!("flag")),
            (json!({"var": "$flagd.timestamp"}), json!(1_700_000_000)),
        ];
        for (rule, expected) in cases {
            assert_eq!(run(rule.clone(), d.clone()), Some(expected), "{rule}");
        }
    }

    #[test]
    fn custom_operator_errors_abort() {
        for rule in [
            json!({"sem_ver": [{"var": "v"}, "=", "1.0.0"]}),
            json!({"sem_ver": ["1.0.0", "===", "1.0.0"]}),
            json!({"sem_ver": ["1.0.0", "="]}),
            json!({"starts_with": [1, "a"]}),
            json!({"ends_with": ["abc"]}),
            json!({"fractional": [["a", 1]]}),
            json!({"fractional": [{"var": "targetingKey"}, ["a", 0], ["b", 0]]}),
        ] {
            assert_eq!(
                run(rule.clone(), json!({"v": "not-a-version"})),
                None,
                "{rule}"
            );
        }
    }

    #[test]
    fn semantic_versions() {
        let yes = |a: &str, op: &str, b: &str| {
            run(json!({"sem_ver": [a, op, b]}), json!({})) == Some(json!(true))
        };
        assert!(yes("v1.0.0", "=", "1.0.0"));
        assert!(yes("V1.0.0", "=", "1.0.0+build"));
        assert!(yes("1", "=", "1.0.0"));
        assert!(yes("1.2", "<", "1.2.1"));
        assert!(yes("2.0.0-alpha", "<", "2.0.0"));
        assert!(yes("1.0.0-alpha.2", "<", "1.0.0-alpha.10"));
        assert!(yes("1.0.0-alpha", "<", "1.0.0-alpha.1"));
        assert!(yes("1.0.0-rc.1", ">", "1.0.0-beta.11"));
        assert!(yes("3.0.1", "~", "3.0.0"));
        assert!(!yes("3.1.0", "~", "3.0.0"));
        assert!(yes("3.1.0", "^", "3.0.0"));
        assert!(!yes("4.0.0", "^", "3.0.0"));
        assert!(yes("2.0.0", ">=", "2.0.0"));
        assert!(yes("2.0.0", "<=", "2.0.0"));
        assert!(yes("2.0.1", "!=", "2.0.0"));
        assert!(SemVer::parse("2.0.0.0").is_none());
        assert!(SemVer::parse("01.0.0").is_none());
        assert!(SemVer::parse("1.0-rc.1").is_none());
    }
}
