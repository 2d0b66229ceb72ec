//! The evaluation context: who is asking, and what is known about them.

use std::fmt;
use std::net::IpAddr;

use http::HeaderMap;
use serde_json::Value;

/// What a flag is evaluated for: a targeting key (the user), their IP address, the request's
/// headers and any attributes the application adds.
///
/// Rules name attributes: `targetingKey`, `ip`, `header.<name>` (a request header, lowercase)
/// and the context's own attributes by name. Building a context is the only allocation of an
/// evaluation; evaluating borrows it.
///
/// ```
/// use kv_middleware::flags::EvaluationContext;
///
/// let context = EvaluationContext::new()
///     .with_targeting_key("user-42")
///     .with_attribute("plan", "pro")
///     .with_attribute("age", 31);
/// assert_eq!(context.targeting_key(), Some("user-42"));
/// ```
#[derive(Clone, Default)]
pub struct EvaluationContext {
    targeting_key: Option<String>,
    ip: Option<IpAddr>,
    headers: HeaderMap,
    attributes: Vec<(String, Value)>,
}

impl fmt::Debug for EvaluationContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may be credentials: names only.
        f.debug_struct("EvaluationContext")
            .field("targeting_key", &self.targeting_key)
            .field("ip", &self.ip)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("attributes", &self.attributes)
            .finish()
    }
}

impl EvaluationContext {
    /// An empty context: no targeting key, no attributes.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same context with this targeting key (the user a split buckets, and targets name).
    pub fn with_targeting_key(mut self, key: impl Into<String>) -> Self {
        self.targeting_key = Some(key.into());
        self
    }

    /// The same context with this IP address (attribute `ip`).
    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// The same context with these request headers (attributes `header.<name>`).
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// The same context with an attribute set (replacing one of the same name). `null` removes
    /// it.
    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.set_attribute(name, value);
        self
    }

    /// Sets the targeting key.
    pub fn set_targeting_key(&mut self, key: Option<String>) {
        self.targeting_key = key;
    }

    /// Sets the IP address.
    pub fn set_ip(&mut self, ip: Option<IpAddr>) {
        self.ip = ip;
    }

    /// Sets an attribute (replacing one of the same name); `null` removes it.
    pub fn set_attribute(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        let name = name.into();
        let value = value.into();
        self.attributes.retain(|(n, _)| *n != name);
        if !value.is_null() {
            self.attributes.push((name, value));
        }
    }

    /// The targeting key.
    pub fn targeting_key(&self) -> Option<&str> {
        self.targeting_key.as_deref()
    }

    /// The IP address.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// An attribute the application set, by name.
    pub fn attribute(&self, name: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Every attribute the application set.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.attributes.iter().map(|(n, v)| (n.as_str(), v))
    }
}

/// Which attribute a condition reads, resolved when the flag is loaded.
#[derive(Debug, Clone)]
pub(crate) enum AttributeName {
    TargetingKey,
    Ip,
    Header(http::HeaderName),
    Custom(String),
}

impl AttributeName {
    /// Parses an attribute name; `Err` for a `header.` name that is no valid header name.
    pub(crate) fn parse(name: &str) -> Result<Self, String> {
        match name {
            "" => Err("attribute name must not be empty".to_owned()),
            "targetingKey" => Ok(AttributeName::TargetingKey),
            "ip" => Ok(AttributeName::Ip),
            _ => match name.strip_prefix("header.") {
                Some(header) => {
                    http::HeaderName::from_bytes(header.to_ascii_lowercase().as_bytes())
                        .map(AttributeName::Header)
                        .map_err(|_| format!("{header:?} is not a valid header name"))
                }
                None => Ok(AttributeName::Custom(name.to_owned())),
            },
        }
    }
}

/// A borrowed attribute value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Attr<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
    Ip(IpAddr),
    /// An array or object.
    Json(&'a Value),
}

impl EvaluationContext {
    pub(crate) fn lookup(&self, name: &AttributeName) -> Option<Attr<'_>> {
        match name {
            AttributeName::TargetingKey => self.targeting_key.as_deref().map(Attr::Str),
            AttributeName::Ip => match self.ip {
                Some(ip) => Some(Attr::Ip(ip)),
                None => self.attribute("ip").and_then(value_attr),
            },
            AttributeName::Header(header) => self
                .headers
                .get(header)
                .and_then(|v| v.to_str().ok())
                .map(Attr::Str),
            AttributeName::Custom(name) => self.attribute(name).and_then(value_attr),
        }
    }
}

pub(crate) fn value_attr(value: &Value) -> Option<Attr<'_>> {
    match value {
        Value::Null => None,
        Value::Bool(b) => Some(Attr::Bool(*b)),
        Value::Number(n) => n.as_f64().map(Attr::Num),
        Value::String(s) => Some(Attr::Str(s)),
        Value::Array(_) | Value::Object(_) => Some(Attr::Json(value)),
    }
}
