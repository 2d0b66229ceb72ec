//! The session cookie: attributes, signing, reading the request's `Cookie` headers and writing
//! `Set-Cookie`.

use std::fmt::{self, Write as _};
use std::ops::Range;

use cookie::{CookieJar, Key, SameSite};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

use super::error::SessionError;
use super::id::SessionId;

/// At most this many cookies of our name are read per request (each may cost an HMAC). A
/// request with more is a conflict (see [`Presented::Conflicting`]): otherwise an attacker's
/// padding could push the victim's cookie out of view and leave only the attacker's.
const MAX_CANDIDATES: usize = 4;
/// Longer values cannot be ours (an ID is 43 bytes, a signed one 87); they are ignored unread.
const MAX_VALUE_LEN: usize = 128;

/// The values of the request's cookies of our name: the first kept as its header and a range
/// (a reference count, no copy), any others copied.
#[derive(Debug, Default)]
pub(crate) struct RawCookies {
    first: Option<(HeaderValue, Range<usize>)>,
    more: Vec<Box<str>>,
    /// More than [`MAX_CANDIDATES`] values were present; the rest were not kept.
    overflow: bool,
}

impl RawCookies {
    fn push(&mut self, header: &HeaderValue, range: Range<usize>) {
        if self.first.is_none() {
            self.first = Some((header.clone(), range));
        } else if let Some(value) = header.to_str().ok().and_then(|text| text.get(range)) {
            self.more.push(Box::from(value));
        }
    }

    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// The values, in request order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        let first = self.first.as_ref().and_then(|(header, range)| {
            std::str::from_utf8(header.as_bytes())
                .ok()
                .and_then(|text| text.get(range.clone()))
        });
        first
            .into_iter()
            .chain(self.more.iter().map(|value| &**value))
    }
}

/// What the request's cookies of our name present, after verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Presented {
    /// No valid session ID (no cookie, or only malformed or badly signed ones).
    None,
    /// Exactly one session ID (perhaps in several cookies).
    One(SessionId),
    /// Several different session IDs, or more cookies than are read.
    Conflicting,
}

/// The cookie's name, attributes and signing keys.
#[derive(Clone)]
pub(crate) struct CookieConfig {
    /// The name as configured, without the `__Host-` prefix.
    name: String,
    /// The name on the wire (with the prefix when enabled).
    wire_name: String,
    path: String,
    domain: Option<String>,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    host_prefix: bool,
    /// Signs new cookies and verifies; `None`: cookies are not signed.
    signing_key: Option<Key>,
    /// Also verify (key rotation); used only with a signing key.
    old_keys: Vec<Key>,
    /// What follows the value in `Set-Cookie` (`; Path=/; Secure; ...`), kept up to date.
    suffix: String,
}

impl fmt::Debug for CookieConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieConfig")
            .field("name", &self.wire_name)
            .field("path", &self.path)
            .field("domain", &self.domain)
            .field("secure", &self.secure)
            .field("http_only", &self.http_only)
            .field("same_site", &self.same_site)
            .field("signed", &self.signing_key.is_some())
            .field("old_keys", &self.old_keys.len())
            .finish()
    }
}

impl Default for CookieConfig {
    fn default() -> Self {
        let mut config = CookieConfig {
            name: "session".to_owned(),
            wire_name: "session".to_owned(),
            path: "/".to_owned(),
            domain: None,
            secure: true,
            http_only: true,
            same_site: SameSite::Strict,
            host_prefix: false,
            signing_key: None,
            old_keys: Vec::new(),
            suffix: String::new(),
        };
        config.update_derived();
        config
    }
}

impl CookieConfig {
    pub(crate) fn set_name(&mut self, name: String) {
        assert!(
            is_token(&name),
            "session cookie name {name:?} is not a valid cookie name (RFC 6265 token)"
        );
        self.name = name;
        self.update_derived();
    }

    pub(crate) fn set_path(&mut self, path: String) {
        assert!(
            path.starts_with('/') && is_attribute_value(&path),
            "session cookie path {path:?} must start with '/' and hold no ';' or control characters"
        );
        self.path = path;
        self.update_derived();
    }

    pub(crate) fn set_domain(&mut self, domain: Option<String>) {
        if let Some(domain) = &domain {
            assert!(
                !domain.is_empty()
                    && domain
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'),
                "session cookie domain {domain:?} must be a host name (letters, digits, '.', '-')"
            );
        }
        self.domain = domain;
        self.update_derived();
    }

    pub(crate) fn set_secure(&mut self, secure: bool) {
        self.secure = secure;
        self.update_derived();
    }

    pub(crate) fn set_http_only(&mut self, http_only: bool) {
        self.http_only = http_only;
        self.update_derived();
    }

    pub(crate) fn set_same_site(&mut self, same_site: SameSite) {
        self.same_site = same_site;
        self.update_derived();
    }

    pub(crate) fn set_host_prefix(&mut self, host_prefix: bool) {
        self.host_prefix = host_prefix;
        self.update_derived();
    }

    pub(crate) fn set_signing_key(&mut self, key: Key) {
        self.signing_key = Some(key);
    }

    pub(crate) fn add_old_signing_key(&mut self, key: Key) {
        self.old_keys.push(key);
    }

    /// Recomputes the wire name and the attribute suffix after a setting changed.
    fn update_derived(&mut self) {
        self.wire_name = if self.host_prefix {
            format!("__Host-{}", self.name)
        } else {
            self.name.clone()
        };
        let mut suffix = String::with_capacity(64);
        if self.host_prefix {
            // `__Host-` cookies must be Secure, have Path=/ and no Domain.
            suffix.push_str("; Path=/");
        } else {
            suffix.push_str("; Path=");
            suffix.push_str(&self.path);
            if let Some(domain) = &self.domain {
                suffix.push_str("; Domain=");
                suffix.push_str(domain);
            }
        }
        if self.secure || self.host_prefix {
            suffix.push_str("; Secure");
        }
        if self.http_only {
            suffix.push_str("; HttpOnly");
        }
        let _ = write!(suffix, "; SameSite={}", self.same_site);
        self.suffix = suffix;
    }

    /// The cookie's name on the wire.
    pub(crate) fn wire_name(&self) -> &str {
        &self.wire_name
    }

    /// The raw values of the cookies of our name in the request, unverified, in order.
    ///
    /// Allocates nothing for a request with at most one of them.
    pub(crate) fn candidates(&self, headers: &HeaderMap) -> RawCookies {
        let mut found = RawCookies::default();
        for header in headers.get_all(COOKIE) {
            let Ok(text) = header.to_str() else {
                continue;
            };
            for pair in text.split(';') {
                let Some((name, value)) = pair.split_once('=') else {
                    continue;
                };
                if name.trim_matches(is_cookie_space) != self.wire_name {
                    continue;
                }
                let value = value.trim_matches(is_cookie_space);
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                if value.is_empty() || value.len() > MAX_VALUE_LEN {
                    continue;
                }
                if found.len() == MAX_CANDIDATES {
                    found.overflow = true;
                    return found;
                }
                // `value` is a slice of `text`: keep the header and the range, not a copy.
                let start = value.as_ptr() as usize - text.as_ptr() as usize;
                found.push(header, start..start + value.len());
            }
        }
        found
    }

    /// Which session the request's cookies of our name present.
    ///
    /// Values that are not a well-formed (with signing: correctly signed) ID are ignored, and
    /// one ID presented twice (the same value twice, or signed by an old and the current key)
    /// is one session. Two different IDs are a conflict, and so is a request with more values
    /// than are read: the request cannot tell its own session from one planted by another
    /// site (cookie tossing), so it uses neither.
    pub(crate) fn resolve(&self, cookies: &RawCookies) -> Presented {
        if cookies.overflow {
            return Presented::Conflicting;
        }
        let mut found: Option<SessionId> = None;
        for raw in cookies.iter() {
            let Some(id) = self.decode(raw) else {
                continue;
            };
            match &found {
                None => found = Some(id),
                Some(first) if *first == id => {}
                Some(_) => return Presented::Conflicting,
            }
        }
        match found {
            Some(id) => Presented::One(id),
            None => Presented::None,
        }
    }

    /// The different session IDs the request's cookies of our name carry, in request order
    /// (only the values that are read).
    pub(crate) fn ids(&self, cookies: &RawCookies) -> Vec<SessionId> {
        let mut ids: Vec<SessionId> = Vec::new();
        for id in cookies.iter().filter_map(|raw| self.decode(raw)) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    /// The session ID a raw cookie value carries, when it is well formed and (with signing)
    /// its signature verifies under one of the keys.
    pub(crate) fn decode(&self, raw: &str) -> Option<SessionId> {
        let Some(signing_key) = &self.signing_key else {
            return raw.parse().ok();
        };
        let jar = CookieJar::new();
        std::iter::once(signing_key)
            .chain(&self.old_keys)
            .find_map(|key| {
                let cookie = cookie::Cookie::new(self.wire_name.clone(), raw.to_owned());
                jar.signed(key)
                    .verify(cookie)
                    .and_then(|verified| verified.value().parse().ok())
            })
    }

    /// The `Set-Cookie` value carrying `id`; `max_age` in seconds, `None` for a browser-session
    /// cookie.
    pub(crate) fn set_cookie(
        &self,
        id: &SessionId,
        max_age: Option<u64>,
    ) -> Result<HeaderValue, SessionError> {
        let mut header = String::with_capacity(self.wire_name.len() + self.suffix.len() + 128);
        header.push_str(&self.wire_name);
        header.push('=');
        self.encode_into(id, &mut header);
        header.push_str(&self.suffix);
        if let Some(max_age) = max_age {
            // Browsers cap Max-Age anyway; keep the number within an i64 for old parsers.
            header.push_str("; Max-Age=");
            push_decimal(&mut header, max_age.min(i64::MAX as u64));
        }
        HeaderValue::try_from(header).map_err(|e| SessionError::InvalidCookie(e.to_string()))
    }

    /// The `Set-Cookie` value that removes the cookie: same Path, Domain, Secure, HttpOnly and
    /// SameSite, an empty value, `Max-Age=0` and an expiry in the past.
    pub(crate) fn removal_cookie(&self) -> Result<HeaderValue, SessionError> {
        let header = format!(
            "{}={}; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            self.wire_name, self.suffix
        );
        HeaderValue::try_from(header).map_err(|e| SessionError::InvalidCookie(e.to_string()))
    }

    /// Appends the cookie value for `id`: the ID, signed when a key is configured.
    fn encode_into(&self, id: &SessionId, out: &mut String) {
        match &self.signing_key {
            None => id.encode_into(out),
            Some(key) => {
                let mut jar = CookieJar::new();
                jar.signed_mut(key)
                    .add(cookie::Cookie::new(self.wire_name.clone(), id.to_string()));
                if let Some(cookie) = jar.get(&self.wire_name) {
                    out.push_str(cookie.value());
                }
            }
        }
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &digit in &digits[start..] {
        out.push(char::from(digit));
    }
}

fn is_cookie_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// An RFC 6265 cookie name: a non-empty token of visible ASCII without separators.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'(' | b')'
                        | b'<'
                        | b'>'
                        | b'@'
                        | b','
                        | b';'
                        | b':'
                        | b'\\'
                        | b'"'
                        | b'/'
                        | b'['
                        | b']'
                        | b'?'
                        | b'='
                        | b'{'
                        | b'}'
                )
        })
}

/// A cookie attribute value: visible ASCII or space, no `;`.
fn is_attribute_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (b.is_ascii_graphic() || b == b' ') && b != b';')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(COOKIE, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn finds_our_cookie_among_others() {
        let config = CookieConfig::default();
        let found = config.candidates(&headers(&[
            "theme=dark; session=abc; sessionx=no",
            "session=\"quoted\"",
            "session=; other=1",
        ]));
        assert_eq!(found.iter().collect::<Vec<_>>(), vec!["abc", "quoted"]);
        assert!(config.candidates(&HeaderMap::new()).is_empty());
        let long = format!("session={}", "a".repeat(500));
        assert!(config.candidates(&headers(&[&long])).is_empty());
        let many = "session=1; session=2; session=3; session=4; session=5";
        let found = config.candidates(&headers(&[many]));
        assert_eq!(found.iter().collect::<Vec<_>>(), vec!["1", "2", "3", "4"]);
        assert!(found.overflow);
        let four = "session=1; session=2; session=3; session=4; other=5";
        assert!(!config.candidates(&headers(&[four])).overflow);
    }

    #[test]
    fn resolves_one_session_or_a_conflict() {
        let config = CookieConfig::default();
        let (a, b) = (
            SessionId::generate().unwrap(),
            SessionId::generate().unwrap(),
        );
        let resolve = |values: &[&str]| config.resolve(&config.candidates(&headers(values)));
        assert_eq!(resolve(&[]), Presented::None);
        assert_eq!(resolve(&["session=bad; session=x"]), Presented::None);
        assert_eq!(
            resolve(&[&format!("session={a}")]),
            Presented::One(a.clone())
        );
        assert_eq!(
            resolve(&[&format!("session=bad; session={a}; session={a}")]),
            Presented::One(a.clone())
        );
        assert_eq!(
            resolve(&[&format!("session={a}; session={b}")]),
            Presented::Conflicting
        );
        assert_eq!(
            resolve(&[&format!("session={b}"), &format!("session={a}")]),
            Presented::Conflicting
        );
        let padded = format!("session=1; session=2; session=3; session={a}; session={b}");
        assert_eq!(resolve(&[&padded]), Presented::Conflicting);
        let text = format!("session={b}; session={a}; session={b}");
        assert_eq!(
            config.ids(&config.candidates(&headers(&[&text]))),
            vec![b, a]
        );
    }

    #[test]
    fn default_attributes() {
        let config = CookieConfig::default();
        let id = SessionId::generate().unwrap();
        let header = config.set_cookie(&id, Some(86400)).unwrap();
        assert_eq!(
            header.to_str().unwrap(),
            format!("session={id}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=86400")
        );
        assert_eq!(
            config.removal_cookie().unwrap().to_str().unwrap(),
            "session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0; \
             Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        );
    }

    #[test]
    fn host_prefix_forces_secure_root_path_and_no_domain() {
        let mut config = CookieConfig::default();
        config.set_name("sid".into());
        config.set_path("/app".into());
        config.set_domain(Some("example.com".into()));
        config.set_secure(false);
        config.set_host_prefix(true);
        let id = SessionId::generate().unwrap();
        let header = config.set_cookie(&id, None).unwrap();
        assert_eq!(
            header.to_str().unwrap(),
            format!("__Host-sid={id}; Path=/; Secure; HttpOnly; SameSite=Strict")
        );
        let found = config.candidates(&headers(&[&format!("sid=x; __Host-sid={id}")]));
        assert_eq!(found.len(), 1);
        assert_eq!(config.decode(found.iter().next().unwrap()), Some(id));
    }

    #[test]
    fn signed_cookies_verify_with_current_and_old_keys() {
        let old = Key::generate();
        let new = Key::generate();
        let id = SessionId::generate().unwrap();

        let mut before = CookieConfig::default();
        before.set_signing_key(old.clone());
        let signed_by_old = cookie_value(&before.set_cookie(&id, None).unwrap());
        assert_ne!(signed_by_old, id.to_string());
        assert_eq!(before.decode(&signed_by_old), Some(id.clone()));
        assert_eq!(before.decode(&id.to_string()), None, "unsigned is rejected");

        let mut after = CookieConfig::default();
        after.add_old_signing_key(old); // in either order
        after.set_signing_key(new);
        assert_eq!(after.decode(&signed_by_old), Some(id.clone()));
        let signed_by_new = cookie_value(&after.set_cookie(&id, None).unwrap());
        assert_eq!(after.decode(&signed_by_new), Some(id.clone()));
        assert_eq!(
            before.decode(&signed_by_new),
            None,
            "old config lacks the new key"
        );

        let mut tampered = signed_by_new.into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(after.decode(std::str::from_utf8(&tampered).unwrap()), None);
    }

    fn cookie_value(header: &HeaderValue) -> String {
        let text = header.to_str().unwrap();
        let pair = text.split(';').next().unwrap();
        pair.split_once('=').unwrap().1.to_owned()
    }

    #[test]
    #[should_panic(expected = "not a valid cookie name")]
    fn bad_names_are_refused() {
        CookieConfig::default().set_name("a b".into());
    }
}
