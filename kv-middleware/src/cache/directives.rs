//! The cache directives of a response, from `Cache-Control` or from a targeted field
//! (`CDN-Cache-Control` and the like, RFC 9213).
//!
//! The two are parsed differently, as their specifications say:
//!
//! - `Cache-Control` (RFC 9111 §5.2) is a comma-separated list of `name[=token|"quoted"]`.
//!   Names are case-insensitive; unknown directives are ignored. RFC 9111 §4.2.1 says that when
//!   a directive appears more than once with different values the response should be taken as
//!   stale, and that invalid freshness information (e.g. `max-age=abc`) should too: both give
//!   0 here. Identical repetitions are harmless.
//! - A targeted field is a Structured Fields Dictionary (RFC 8941 §3.2): a field that does not
//!   parse, or is empty, is ignored as a whole and the next field on the target list (in the
//!   end `Cache-Control`) applies (RFC 9213 §2.1–2.2). A repeated key keeps its last value, as
//!   in every Dictionary. Values of the wrong type (a decimal or negative `max-age`, a
//!   `no-store=?0`) are not consumed as the directive's value (RFC 9213 §2.1): a numeric one
//!   counts as invalid (0), a flag is ignored.
//!
//! Conflicting directives are resolved to the most restrictive (RFC 9111 §4.2.1) by the
//! policy: `no-store` over everything, `private` over `public`, `no-cache` over `max-age`.

use http::header::{self, HeaderMap, HeaderName};

/// The cache directives of one response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub no_store: bool,
    /// Unqualified `no-cache`: revalidate before every use.
    pub no_cache: bool,
    /// The fields named by `no-cache="..."`: never sent from storage without revalidation.
    pub no_cache_fields: Vec<String>,
    /// Unqualified `private`: not for a shared cache.
    pub private: bool,
    /// The fields named by `private="..."`: a shared cache may store the rest.
    pub private_fields: Vec<String>,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
}

/// Where a response's directives came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// `Cache-Control` (and `Expires` may give the freshness).
    CacheControl,
    /// A targeted field: `Cache-Control` and `Expires` are ignored (RFC 9213 §2.1).
    Targeted,
}

/// A directive argument as the caller sees it.
enum Arg<'a> {
    /// No argument (a bare name; Boolean true in a Dictionary).
    None,
    /// A non-negative integer.
    Seconds(u64),
    /// A list of field names (a quoted string, or a token).
    Text(&'a str),
    /// Anything else: invalid for every directive this cache knows.
    Invalid,
}

impl Directives {
    /// The directives this cache obeys for a response: those of the first field on `targets`
    /// that is present and valid, else `Cache-Control`'s.
    pub fn for_response(headers: &HeaderMap, targets: &[HeaderName]) -> (Directives, Source) {
        for name in targets {
            if let Some(directives) = Directives::targeted(headers, name) {
                return (directives, Source::Targeted);
            }
        }
        (Directives::cache_control(headers), Source::CacheControl)
    }

    /// Parses every `Cache-Control` field line of `headers`.
    pub fn cache_control(headers: &HeaderMap) -> Directives {
        let mut directives = Directives::default();
        let mut seen = Seen::default();
        for value in headers.get_all(header::CACHE_CONTROL) {
            // A field line that is not visible ASCII is ignored as a whole.
            let Ok(text) = value.to_str() else { continue };
            for (name, argument) in split_directives(text) {
                let arg = match &argument {
                    None => Arg::None,
                    Some(text) => match parse_delta_seconds(text) {
                        Some(seconds) => Arg::Seconds(seconds),
                        None => Arg::Text(text),
                    },
                };
                directives.apply(&name, arg, &mut seen);
            }
        }
        directives
    }

    /// Parses the targeted field `name`; `None` when it is absent, empty or not a valid
    /// Dictionary.
    fn targeted(headers: &HeaderMap, name: &HeaderName) -> Option<Directives> {
        let mut combined = String::new();
        for value in headers.get_all(name) {
            // RFC 8941 §4.2: field lines are combined with commas before parsing.
            let text = value.to_str().ok()?;
            if !combined.is_empty() {
                combined.push_str(", ");
            }
            combined.push_str(text);
        }
        let dictionary = sf::parse_dictionary(&combined)?;
        if dictionary.is_empty() {
            return None;
        }
        let mut directives = Directives::default();
        for (key, value) in &dictionary {
            let arg = match value {
                sf::Value::Boolean(true) => Arg::None,
                sf::Value::Integer(n) if *n >= 0 => Arg::Seconds(*n as u64),
                sf::Value::String(text) | sf::Value::Token(text) => Arg::Text(text),
                _ => Arg::Invalid,
            };
            // A Dictionary has one value per key: no repetition to judge.
            directives.apply(key, arg, &mut Seen::default());
        }
        Some(directives)
    }

    fn apply(&mut self, name: &str, arg: Arg<'_>, seen: &mut Seen) {
        // A numeric directive without a valid number is invalid freshness information: 0.
        let seconds = |arg: &Arg<'_>| match arg {
            Arg::Seconds(seconds) => *seconds,
            _ => 0,
        };
        match name {
            "no-store" => self.no_store |= flag(&arg),
            // A qualified form names fields; one that names none, or has a number, is read as
            // the more restrictive unqualified form.
            "no-cache" => match arg {
                Arg::Text(fields) if field_names(fields).next().is_some() => {
                    self.no_cache_fields.extend(field_names(fields))
                }
                Arg::Invalid => {}
                _ => self.no_cache = true,
            },
            "private" => match arg {
                Arg::Text(fields) if field_names(fields).next().is_some() => {
                    self.private_fields.extend(field_names(fields))
                }
                Arg::Invalid => {}
                _ => self.private = true,
            },
            "public" => self.public |= flag(&arg),
            "must-revalidate" => self.must_revalidate |= flag(&arg),
            "proxy-revalidate" => self.proxy_revalidate |= flag(&arg),
            "max-age" => seen.set(0, &mut self.max_age, seconds(&arg)),
            "s-maxage" => seen.set(1, &mut self.s_maxage, seconds(&arg)),
            "stale-while-revalidate" => {
                seen.set(2, &mut self.stale_while_revalidate, seconds(&arg))
            }
            "stale-if-error" => seen.set(3, &mut self.stale_if_error, seconds(&arg)),
            _ => {}
        }
    }

    /// The fields a shared cache must not store (`private="..."`) or must not serve without
    /// revalidation (`no-cache="..."`), lowercase; stripping both from what is stored honours
    /// both.
    pub fn withheld_fields(&self) -> impl Iterator<Item = &str> {
        self.private_fields
            .iter()
            .chain(&self.no_cache_fields)
            .map(String::as_str)
    }
}

/// Whether a flag directive is set: bare, or any argument but a Dictionary's non-true value.
fn flag(arg: &Arg<'_>) -> bool {
    !matches!(arg, Arg::Invalid)
}

/// Tracks which numeric directives were already seen, so a repetition with another value makes
/// the directive 0 (RFC 9111 §4.2.1: treat as stale).
#[derive(Default)]
struct Seen([bool; 4]);

impl Seen {
    fn set(&mut self, index: usize, slot: &mut Option<u64>, value: u64) {
        *slot = match (self.0[index], *slot) {
            (true, Some(old)) if old != value => Some(0),
            (true, Some(old)) => Some(old),
            _ => Some(value),
        };
        self.0[index] = true;
    }
}

/// The field names of a qualified `private` or `no-cache`, lowercase.
fn field_names(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_ascii_lowercase)
}

/// Splits a `Cache-Control` value into lowercase directive names and their unquoted arguments;
/// commas inside quoted strings do not split.
fn split_directives(text: &str) -> Vec<(String, Option<String>)> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_quotes {
            current.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_quotes = true;
                current.push(c);
            }
            ',' => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .filter_map(|part| {
            let part = part.trim();
            if part.is_empty() {
                return None;
            }
            let (name, argument) = match part.split_once('=') {
                Some((name, argument)) => (name.trim(), Some(unquote(argument.trim()))),
                None => (part, None),
            };
            Some((name.to_ascii_lowercase(), argument))
        })
        .collect()
}

fn unquote(text: &str) -> String {
    match text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => text.to_owned(),
    }
}

/// A `delta-seconds` value: digits only; values too large for a `u64` saturate (RFC 9111 §1.2.2
/// says to use 2^31 or more for them).
pub(crate) fn parse_delta_seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().unwrap_or(u64::MAX))
}

/// Just enough of RFC 8941 to read a Dictionary of cache directives: every syntax is
/// checked, so that an invalid field is ignored as the RFC says, and only the value types a
/// cache directive can have are kept.
mod sf {
    /// A member's value, reduced to what cache directives use.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) enum Value {
        Integer(i64),
        String(String),
        Token(String),
        Boolean(bool),
        /// A decimal, a byte sequence or an inner list.
        Other,
    }

    /// Parses a Dictionary (RFC 8941 §4.2.2); `None` when the text is not one. Later
    /// duplicates of a key replace earlier ones; parameters are parsed and dropped (RFC 9213
    /// §2.1 says to ignore them).
    pub(crate) fn parse_dictionary(text: &str) -> Option<Vec<(String, Value)>> {
        let mut p = Parser {
            input: text.as_bytes(),
            at: 0,
        };
        p.skip_sp();
        let mut members: Vec<(String, Value)> = Vec::new();
        if p.done() {
            return Some(members);
        }
        loop {
            let key = p.key()?;
            let value = if p.eat(b'=') {
                if p.peek() == Some(b'(') {
                    p.inner_list()?;
                    Value::Other
                } else {
                    let value = p.bare_item()?;
                    p.parameters()?;
                    value
                }
            } else {
                p.parameters()?;
                Value::Boolean(true)
            };
            members.retain(|(k, _)| *k != key);
            members.push((key, value));
            p.skip_ows();
            if p.done() {
                return Some(members);
            }
            if !p.eat(b',') {
                return None;
            }
            p.skip_ows();
            if p.done() {
                // A trailing comma.
                return None;
            }
        }
    }

    struct Parser<'a> {
        input: &'a [u8],
        at: usize,
    }

    impl Parser<'_> {
        fn peek(&self) -> Option<u8> {
            self.input.get(self.at).copied()
        }

        fn done(&self) -> bool {
            self.at >= self.input.len()
        }

        fn eat(&mut self, byte: u8) -> bool {
            if self.peek() == Some(byte) {
                self.at += 1;
                true
            } else {
                false
            }
        }

        fn skip_sp(&mut self) {
            while self.peek() == Some(b' ') {
                self.at += 1;
            }
        }

        fn skip_ows(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t')) {
                self.at += 1;
            }
        }

        fn key(&mut self) -> Option<String> {
            let start = self.at;
            match self.peek() {
                Some(b'a'..=b'z' | b'*') => self.at += 1,
                _ => return None,
            }
            while matches!(
                self.peek(),
                Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*')
            ) {
                self.at += 1;
            }
            Some(String::from_utf8_lossy(&self.input[start..self.at]).into_owned())
        }

        fn parameters(&mut self) -> Option<()> {
            while self.eat(b';') {
                self.skip_sp();
                self.key()?;
                if self.eat(b'=') {
                    self.bare_item()?;
                }
            }
            Some(())
        }

        fn inner_list(&mut self) -> Option<()> {
            if !self.eat(b'(') {
                return None;
            }
            loop {
                self.skip_sp();
                if self.eat(b')') {
                    return self.parameters();
                }
                self.bare_item()?;
                self.parameters()?;
                if !matches!(self.peek(), Some(b' ' | b')')) {
                    return None;
                }
            }
        }

        fn bare_item(&mut self) -> Option<Value> {
            match self.peek()? {
                b'-' | b'0'..=b'9' => self.number(),
                b'"' => self.string(),
                b'*' | b'a'..=b'z' | b'A'..=b'Z' => Some(self.token()),
                b':' => self.binary(),
                b'?' => self.boolean(),
                _ => None,
            }
        }

        fn number(&mut self) -> Option<Value> {
            let negative = self.eat(b'-');
            let start = self.at;
            let mut dot = None;
            while let Some(byte) = self.peek() {
                match byte {
                    b'0'..=b'9' => {}
                    b'.' if dot.is_none() => dot = Some(self.at),
                    _ => break,
                }
                self.at += 1;
                let len = self.at - start;
                if (dot.is_none() && len > 15) || len > 16 {
                    return None;
                }
            }
            let digits = std::str::from_utf8(&self.input[start..self.at]).ok()?;
            match dot {
                None => {
                    let value: i64 = digits.parse().ok()?;
                    Some(Value::Integer(if negative { -value } else { value }))
                }
                Some(dot) => {
                    let (whole, fraction) = (dot - start, self.at - dot - 1);
                    if whole == 0 || whole > 12 || fraction == 0 || fraction > 3 {
                        return None;
                    }
                    Some(Value::Other)
                }
            }
        }

        fn string(&mut self) -> Option<Value> {
            self.at += 1;
            let mut out = String::new();
            loop {
                match self.peek()? {
                    b'\\' => {
                        self.at += 1;
                        match self.peek()? {
                            byte @ (b'"' | b'\\') => out.push(byte as char),
                            _ => return None,
                        }
                    }
                    b'"' => {
                        self.at += 1;
                        return Some(Value::String(out));
                    }
                    byte @ 0x20..=0x7e => out.push(byte as char),
                    _ => return None,
                }
                self.at += 1;
            }
        }

        fn token(&mut self) -> Value {
            let start = self.at;
            self.at += 1;
            while let Some(byte) = self.peek() {
                let tchar = byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&byte);
                if !tchar {
                    break;
                }
                self.at += 1;
            }
            Value::Token(String::from_utf8_lossy(&self.input[start..self.at]).into_owned())
        }

        fn binary(&mut self) -> Option<Value> {
            self.at += 1;
            loop {
                match self.peek()? {
                    b':' => {
                        self.at += 1;
                        return Some(Value::Other);
                    }
                    byte if byte.is_ascii_alphanumeric() || b"+/=".contains(&byte) => self.at += 1,
                    _ => return None,
                }
            }
        }

        fn boolean(&mut self) -> Option<Value> {
            self.at += 1;
            let value = match self.peek()? {
                b'0' => false,
                b'1' => true,
                _ => return None,
            };
            self.at += 1;
            Some(Value::Boolean(value))
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn dictionaries() {
            assert_eq!(
                parse_dictionary("max-age=60, no-cache=\"set-cookie\", private;x=1, a=?0"),
                Some(vec![
                    ("max-age".into(), Value::Integer(60)),
                    ("no-cache".into(), Value::String("set-cookie".into())),
                    ("private".into(), Value::Boolean(true)),
                    ("a".into(), Value::Boolean(false)),
                ])
            );
            assert_eq!(
                parse_dictionary("max-age=1, max-age=2"),
                Some(vec![("max-age".into(), Value::Integer(2))]),
                "the last duplicate wins"
            );
            assert_eq!(
                parse_dictionary("a=1.5, b=:AQID:, c=(1 2);p, d=tok/en, e=-3"),
                Some(vec![
                    ("a".into(), Value::Other),
                    ("b".into(), Value::Other),
                    ("c".into(), Value::Other),
                    ("d".into(), Value::Token("tok/en".into())),
                    ("e".into(), Value::Integer(-3)),
                ])
            );
            assert_eq!(parse_dictionary("  "), Some(vec![]));
            assert_eq!(
                parse_dictionary("none"),
                Some(vec![("none".into(), Value::Boolean(true))])
            );
            for invalid in [
                "Max-Age=60",
                "max-age=60,",
                "max-age=60 no-store",
                "max-age=\"60",
                "a=\"\\x\"",
                "a=1.",
                "a=1.2345",
                "a=1234567890123456",
                "a=?2",
                "a=(1,2)",
                "=1",
                "a=é",
                "a=@1",
            ] {
                assert_eq!(parse_dictionary(invalid), None, "{invalid:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn cdn() -> Vec<HeaderName> {
        vec![HeaderName::from_static("cdn-cache-control")]
    }

    #[test]
    fn parses_cache_control() {
        let d = Directives::cache_control(&headers(&[
            ("cache-control", "Public, MAX-AGE=30, s-maxage=\"60\""),
            (
                "cache-control",
                "stale-while-revalidate=10, stale-if-error=abc, x-unknown=1",
            ),
        ]));
        assert!(d.public);
        assert_eq!(d.max_age, Some(30));
        assert_eq!(d.s_maxage, Some(60));
        assert_eq!(d.stale_while_revalidate, Some(10));
        assert_eq!(d.stale_if_error, Some(0), "invalid values count as 0");
        assert_eq!(
            Directives::cache_control(&headers(&[(
                "cache-control",
                "max-age=99999999999999999999999"
            )]))
            .max_age,
            Some(u64::MAX)
        );
        assert_eq!(
            Directives::cache_control(&headers(&[("cache-control", ",, ,=,max-age")])).max_age,
            Some(0)
        );
    }

    #[test]
    fn repeated_directives() {
        let parse =
            |text: &'static str| Directives::cache_control(&headers(&[("cache-control", text)]));
        assert_eq!(
            parse("max-age=5, max-age=3").max_age,
            Some(0),
            "conflict: stale"
        );
        assert_eq!(
            parse("max-age=5, max-age=5").max_age,
            Some(5),
            "agreeing repeats"
        );
        assert_eq!(parse("max-age=5, max-age=7, max-age=5").max_age, Some(0));
        let lines = Directives::cache_control(&headers(&[
            ("cache-control", "s-maxage=10"),
            ("cache-control", "s-maxage=20"),
        ]));
        assert_eq!(lines.s_maxage, Some(0), "across field lines too");
    }

    #[test]
    fn qualified_forms() {
        let d = Directives::cache_control(&headers(&[(
            "cache-control",
            "private=\"Set-Cookie, X-User\", no-cache=x-debug, max-age=5",
        )]));
        assert!(!d.private && !d.no_cache);
        assert_eq!(d.private_fields, ["set-cookie", "x-user"]);
        assert_eq!(d.no_cache_fields, ["x-debug"]);
        assert_eq!(
            d.withheld_fields().collect::<Vec<_>>(),
            ["set-cookie", "x-user", "x-debug"]
        );
        let both =
            Directives::cache_control(&headers(&[("cache-control", "private=\"x\", private")]));
        assert!(both.private, "the unqualified form wins");
        let empty = Directives::cache_control(&headers(&[(
            "cache-control",
            "private=\"\", no-cache=\" , \"",
        )]));
        assert!(
            empty.private && empty.no_cache,
            "an empty list is no qualification"
        );
    }

    #[test]
    fn any_short_input_parses_without_panicking() {
        // Every string of up to four characters over the characters the grammars care about.
        let alphabet: Vec<char> = "a=,\"\\ ;-1.:?(*)\té".chars().collect();
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = inputs
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            for text in &longer {
                let _ = sf::parse_dictionary(text);
                let _ = split_directives(text);
                let _ = super::super::http_date::parse(text, std::time::SystemTime::now());
            }
            inputs = longer;
        }
    }

    #[test]
    fn targeted_fields() {
        let h = headers(&[
            ("cache-control", "no-store"),
            (
                "cdn-cache-control",
                "max-age=600, stale-while-revalidate=30",
            ),
        ]);
        let (d, source) = Directives::for_response(&h, &cdn());
        assert_eq!(source, Source::Targeted);
        assert!(!d.no_store);
        assert_eq!(d.max_age, Some(600));
        assert_eq!(d.stale_while_revalidate, Some(30));

        // Invalid or empty: ignored, Cache-Control applies.
        for value in ["Max-Age=600", "max-age=600,", ""] {
            let h = headers(&[("cache-control", "max-age=5"), ("cdn-cache-control", value)]);
            let (d, source) = Directives::for_response(&h, &cdn());
            assert_eq!(
                (source, d.max_age),
                (Source::CacheControl, Some(5)),
                "{value:?}"
            );
        }
        // Valid without freshness: still the targeted field.
        let h = headers(&[
            ("cache-control", "max-age=5"),
            ("cdn-cache-control", "none"),
        ]);
        let (d, source) = Directives::for_response(&h, &cdn());
        assert_eq!((source, d.max_age), (Source::Targeted, None));

        // Wrong value types are not consumed.
        let h = headers(&[(
            "cdn-cache-control",
            "max-age=1.5, s-maxage=-4, no-store=?0, private=\"set-cookie\"",
        )]);
        let (d, _) = Directives::for_response(&h, &cdn());
        assert_eq!((d.max_age, d.s_maxage), (Some(0), Some(0)));
        assert!(!d.no_store && !d.private);
        assert_eq!(d.private_fields, ["set-cookie"]);

        // The first valid field of the target list wins; field lines are combined.
        let targets = [HeaderName::from_static("kv-cache-control"), cdn().remove(0)];
        let h = headers(&[
            ("cdn-cache-control", "max-age=600"),
            ("kv-cache-control", "max-age=60"),
            ("kv-cache-control", "must-revalidate"),
        ]);
        let (d, _) = Directives::for_response(&h, &targets);
        assert_eq!(d.max_age, Some(60));
        assert!(d.must_revalidate);
    }
}
