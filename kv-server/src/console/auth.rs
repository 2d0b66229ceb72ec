//! Sign-in, the session cookie and CSRF tokens.
//!
//! - **The token stays on the server.** The sign-in form sends the bearer token once (in a
//!   `POST` body, never a URL); the server compares it in constant time and answers with a
//!   cookie that proves the sign-in without containing the token: `v1.NONCE.EXPIRES.MAC`,
//!   where the MAC is HMAC-SHA-256 under a key derived from a per-process random secret and the
//!   token. A changed token or a restarted server invalidates every cookie; a cookie says
//!   nothing about the token, even to someone who steals it.
//! - **The cookie** is `HttpOnly` (page scripts cannot read it), `SameSite=Strict` (no other
//!   site's page can make the browser send it), `Path=/console`, with `Max-Age` the session
//!   lifetime, and `Secure` when the request came over TLS or, with
//!   [`trust_forwarded_proto`](super::ConsoleConfig::trust_forwarded_proto), through a proxy
//!   that says `https`.
//! - **CSRF**: every request that is not `GET`/`HEAD` must carry `X-CSRF-Token`, the MAC of the
//!   session's nonce (so a token is bound to one sign-in); without it the request is refused
//!   with 403 before its handler runs, so it changes nothing. The sign-in itself carries a
//!   token bound to a pre-sign-in cookie, so another site cannot sign a browser in either.
//!   The page gets its token from `GET /console/api/session` (same-origin only: a JSON answer
//!   other origins cannot read) and keeps it in memory.
//! - **Guessing** through the form is slow: after [`MAX_FAILED_SIGN_INS`] wrong tokens in a
//!   minute (per process), sign-in answers 429 with `Retry-After` until the minute is over.
//! - Without a configured token the REST API is open, and so is the console: the session
//!   answer signs the browser in at once (CSRF tokens are still required).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::auth::tokens_match;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::ConsoleState;
use crate::error::{codes, ok, ApiError, ApiResult};
use crate::extract::ApiJson;

/// The sign-in cookie's name.
pub const SESSION_COOKIE: &str = "kv_console";

/// The cookie binding a sign-in form's CSRF token, set before sign-in.
pub const PRE_SESSION_COOKIE: &str = "kv_console_pre";

/// The request header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long the pre-sign-in cookie lives, in seconds.
const PRE_SESSION_SECS: u64 = 3600;

/// Wrong tokens accepted per [`FAILURE_WINDOW_SECS`] (per process, from all clients) before
/// sign-in answers 429 until the window ends: guessing a token through the form stays slow.
pub const MAX_FAILED_SIGN_INS: u32 = 10;

/// The window of [`MAX_FAILED_SIGN_INS`], in seconds.
pub const FAILURE_WINDOW_SECS: u64 = 60;

/// HMAC-SHA-256 (RFC 2104) over length-prefixed parts, so that no two part lists share an
/// input. Written out because it is a dozen lines over `sha2`, which the server already has.
fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut inner_pad = [0x36u8; 64];
    let mut outer_pad = [0x5cu8; 64];
    for (i, byte) in key.iter().enumerate() {
        inner_pad[i] ^= byte;
        outer_pad[i] ^= byte;
    }
    let mut inner = Sha256::new();
    inner.update(inner_pad);
    for part in parts {
        inner.update((part.len() as u64).to_be_bytes());
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(outer_pad);
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Signs and checks the console's cookies and CSRF tokens.
pub struct Signer {
    key: [u8; 32],
    token_required: bool,
    /// Nonces of signed-out sessions, with their expiry, so a copied cookie dies at sign-out.
    revoked: Mutex<HashMap<String, u64>>,
    /// Failed sign-ins in the current window: (window start, count).
    failures: Mutex<(u64, u32)>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("token_required", &self.token_required)
            .finish_non_exhaustive()
    }
}

/// A session cookie that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCookie {
    /// The session's random nonce.
    pub nonce: String,
    /// When it expires, in Unix seconds.
    pub expires: u64,
}

impl Signer {
    /// A signer for a server with this bearer token (`None`: an open server). The key mixes a
    /// fresh random secret with the token.
    pub fn new(token: Option<&str>) -> Signer {
        // 128 random bits from the operating system, as namespace ids are made.
        let secret = kv_core::new_namespace_id();
        let mut digest = Sha256::new();
        digest.update(b"tower-kv console v1\0");
        digest.update(secret.as_bytes());
        digest.update([0]);
        digest.update(token.unwrap_or_default().as_bytes());
        Signer {
            key: digest.finalize().into(),
            token_required: token.is_some(),
            revoked: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// Whether sign-in is paused at `now` after too many wrong tokens; the seconds left.
    pub fn sign_in_paused(&self, now: u64) -> Option<u64> {
        let (start, count) = *self.failures.lock().expect("not poisoned");
        let end = start + FAILURE_WINDOW_SECS;
        (count >= MAX_FAILED_SIGN_INS && now < end).then(|| end - now)
    }

    /// Counts a wrong token at `now`.
    pub fn sign_in_failed(&self, now: u64) {
        let mut failures = self.failures.lock().expect("not poisoned");
        if now >= failures.0 + FAILURE_WINDOW_SECS {
            *failures = (now, 0);
        }
        failures.1 += 1;
    }

    /// Whether signing in needs the token.
    pub fn token_required(&self) -> bool {
        self.token_required
    }

    fn mac(&self, purpose: &str, nonce: &str, expires: u64) -> String {
        hex(&hmac(
            &self.key,
            &[purpose.as_bytes(), nonce.as_bytes(), &expires.to_be_bytes()],
        ))
    }

    /// A new session cookie value expiring at `expires`.
    pub fn issue(&self, expires: u64) -> (String, SessionCookie) {
        let nonce = kv_core::new_namespace_id();
        let value = format!(
            "v1.{nonce}.{expires}.{}",
            self.mac("session", &nonce, expires)
        );
        (value, SessionCookie { nonce, expires })
    }

    /// The session a cookie value proves, if it is genuine, unexpired at `now` and not signed
    /// out.
    pub fn verify(&self, value: &str, now: u64) -> Option<SessionCookie> {
        let mut parts = value.split('.');
        let (Some("v1"), Some(nonce), Some(expires), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let expires: u64 = expires.parse().ok()?;
        let expected = self.mac("session", nonce, expires);
        if !tokens_match(mac.as_bytes(), expected.as_bytes()) || expires <= now {
            return None;
        }
        if self
            .revoked
            .lock()
            .expect("not poisoned")
            .contains_key(nonce)
        {
            return None;
        }
        Some(SessionCookie {
            nonce: nonce.to_owned(),
            expires,
        })
    }

    /// The CSRF token of a session.
    pub fn csrf(&self, session: &SessionCookie) -> String {
        self.mac("csrf", &session.nonce, session.expires)
    }

    /// Whether `presented` is the CSRF token of `session`.
    pub fn csrf_matches(&self, session: &SessionCookie, presented: &str) -> bool {
        tokens_match(presented.as_bytes(), self.csrf(session).as_bytes())
    }

    /// The sign-in form's CSRF token for a pre-sign-in nonce.
    pub fn login_csrf(&self, pre_nonce: &str) -> String {
        self.mac("login", pre_nonce, 0)
    }

    /// Signs a session out: its cookie is refused from now on (until it would have expired).
    pub fn revoke(&self, session: &SessionCookie, now: u64) {
        let mut revoked = self.revoked.lock().expect("not poisoned");
        revoked.retain(|_, expires| *expires > now);
        revoked.insert(session.nonce.clone(), session.expires);
    }
}

/// A cookie's value in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Whether the request reached us over HTTPS: its URI says so (a TLS listener), or a trusted
/// proxy says so in `X-Forwarded-Proto` or `Forwarded: proto=` (the first, client-side hop).
pub fn is_https(uri: &axum::http::Uri, headers: &HeaderMap, trust_forwarded: bool) -> bool {
    if uri.scheme_str() == Some("https") {
        return true;
    }
    if !trust_forwarded {
        return false;
    }
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().eq_ignore_ascii_case("https"));
    if let Some(https) = forwarded_proto {
        return https;
    }
    headers
        .get("forwarded")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|first| {
            first.split(';').any(|pair| {
                pair.trim().split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("proto")
                        && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
                })
            })
        })
        .unwrap_or(false)
}

/// A `Set-Cookie` value with the console's attributes.
pub fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}",
        super::CONSOLE_PATH
    ))
    .expect("cookie values are hex, digits and dots")
}

fn forbidden(message: &str) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, codes::AUTHENTICATION, message).into_response()
}

fn unauthorized(message: &str) -> Response {
    // No `WWW-Authenticate: Bearer` here: the console signs in with a form.
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, codes::AUTHENTICATION, message).into_response();
    response
        .headers_mut()
        .remove(axum::http::header::WWW_AUTHENTICATE);
    response
}

fn now(state: &ConsoleState) -> u64 {
    state.app.store.clock().unix_secs()
}

fn session_of(state: &ConsoleState, headers: &HeaderMap) -> Option<SessionCookie> {
    cookie(headers, SESSION_COOKIE).and_then(|value| state.auth.verify(value, now(state)))
}

fn csrf_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())
}

/// Admits signed-in requests, and of those only reads or requests carrying the session's CSRF
/// token.
pub(crate) async fn require_session(
    State(state): State<ConsoleState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(session) = session_of(&state, request.headers()) else {
        return unauthorized("not signed in to the console");
    };
    let safe = matches!(*request.method(), Method::GET | Method::HEAD);
    if !safe {
        match csrf_header(request.headers()) {
            Some(token) if state.auth.csrf_matches(&session, token) => {}
            Some(_) => return forbidden("the CSRF token does not match this sign-in"),
            None => return forbidden("missing X-CSRF-Token header"),
        }
    }
    next.run(request).await
}

/// Every console API answer: never cached (it holds data, and CSRF tokens).
pub(crate) async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /console/api/session`: whether the browser is signed in, with its CSRF token; when it
/// is not, the sign-in form's CSRF token (and its cookie).
pub(crate) async fn session(
    State(state): State<ConsoleState>,
    request: Request,
) -> ApiResult<Response> {
    let headers = request.headers();
    let secure = is_https(request.uri(), headers, state.config.trust_forwarded_proto);
    if let Some(session) = session_of(&state, headers) {
        return Ok(ok(json!({
            "signed_in": true,
            "token_required": state.auth.token_required(),
            "csrf": state.auth.csrf(&session),
        })));
    }
    if !state.auth.token_required() {
        // An open server: the page needs a session only to bind its CSRF token.
        let (value, session) = new_session(&state);
        let mut response = ok(json!({
            "signed_in": true,
            "token_required": false,
            "csrf": state.auth.csrf(&session),
        }));
        let max_age = state.config.session_lifetime.as_secs();
        response.headers_mut().append(
            SET_COOKIE,
            set_cookie(SESSION_COOKIE, &value, max_age, secure),
        );
        return Ok(response);
    }
    let pre_nonce = kv_core::new_namespace_id();
    let mut response = ok(json!({
        "signed_in": false,
        "token_required": true,
        "csrf": state.auth.login_csrf(&pre_nonce),
    }));
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(PRE_SESSION_COOKIE, &pre_nonce, PRE_SESSION_SECS, secure),
    );
    Ok(response)
}

fn new_session(state: &ConsoleState) -> (String, SessionCookie) {
    let expires = now(state) + state.config.session_lifetime.as_secs();
    state.auth.issue(expires)
}

/// The sign-in form's body.
#[derive(Deserialize)]
pub(crate) struct LoginBody {
    token: String,
}

/// `POST /console/api/login` `{token}`: checks the token and sets the session cookie.
pub(crate) async fn login(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    ApiJson(body): ApiJson<LoginBody>,
) -> Response {
    let pre = cookie(&headers, PRE_SESSION_COOKIE);
    let csrf_ok = match (pre, csrf_header(&headers)) {
        (Some(pre), Some(token)) => {
            tokens_match(token.as_bytes(), state.auth.login_csrf(pre).as_bytes())
        }
        _ => false,
    };
    if !csrf_ok {
        return forbidden("missing or wrong X-CSRF-Token for the sign-in form; reload the page");
    }
    if let Some(wait) = state.auth.sign_in_paused(now(&state)) {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            codes::AUTHENTICATION,
            format!("too many wrong tokens; sign-in is paused for {wait} s"),
        )
        .into_response();
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(wait));
        return response;
    }
    let accepted = match state.app.config.token.as_deref() {
        Some(expected) => tokens_match(body.token.as_bytes(), expected.as_bytes()),
        None => true,
    };
    if !accepted {
        state.auth.sign_in_failed(now(&state));
        tracing::info!("console sign-in refused: wrong token");
        return unauthorized("wrong token");
    }
    let secure = is_https(&uri, &headers, state.config.trust_forwarded_proto);
    let (value, session) = new_session(&state);
    let mut response = ok(json!({ "signed_in": true, "csrf": state.auth.csrf(&session) }));
    let max_age = state.config.session_lifetime.as_secs();
    let cookies = response.headers_mut();
    cookies.append(
        SET_COOKIE,
        set_cookie(SESSION_COOKIE, &value, max_age, secure),
    );
    cookies.append(SET_COOKIE, set_cookie(PRE_SESSION_COOKIE, "", 0, secure));
    tracing::info!("console sign-in");
    response
}

/// `POST /console/api/logout`: forgets the session (its cookie no longer works, even copied).
pub(crate) async fn logout(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let Some(session) = session_of(&state, &headers) else {
        return unauthorized("not signed in to the console");
    };
    match csrf_header(&headers) {
        Some(token) if state.auth.csrf_matches(&session, token) => {}
        _ => return forbidden("missing or wrong X-CSRF-Token header"),
    }
    state.auth.revoke(&session, now(&state));
    let secure = is_https(&uri, &headers, state.config.trust_forwarded_proto);
    let mut response = ok(json!({ "signed_in": false }));
    response
        .headers_mut()
        .append(SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0, secure));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_shape() {
        // Different keys, purposes or parts give different MACs; equal inputs the same.
        let a = hmac(&[1; 32], &[b"x", b"y"]);
        assert_eq!(a, hmac(&[1; 32], &[b"x", b"y"]));
        assert_ne!(a, hmac(&[2; 32], &[b"x", b"y"]));
        assert_ne!(a, hmac(&[1; 32], &[b"xy"]));
        assert_ne!(a, hmac(&[1; 32], &[b"x", b"", b"y"]));
    }

    #[test]
    fn a_cookie_verifies_until_it_expires_and_only_unaltered() {
        let signer = Signer::new(Some("s3cret"));
        let (value, session) = signer.issue(1_000);
        assert_eq!(signer.verify(&value, 999), Some(session.clone()));
        assert_eq!(signer.verify(&value, 1_000), None, "expired at its time");
        assert!(!value.contains("s3cret"), "the token is not in the cookie");
        // Any change to the nonce, the expiry or the MAC is refused.
        let later = value.replace(".1000.", ".2000.");
        assert_eq!(signer.verify(&later, 999), None);
        let mut flipped = value.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        assert_eq!(signer.verify(&flipped, 999), None);
        assert_eq!(signer.verify("v1.a.b", 0), None);
        assert_eq!(signer.verify("", 0), None);
        // Another server (or another token) does not accept it.
        assert_eq!(Signer::new(Some("s3cret")).verify(&value, 999), None);
    }

    #[test]
    fn a_revoked_session_is_refused() {
        let signer = Signer::new(None);
        let (value, session) = signer.issue(1_000);
        signer.revoke(&session, 10);
        assert_eq!(signer.verify(&value, 11), None);
    }

    #[test]
    fn wrong_tokens_pause_sign_in_for_the_rest_of_the_window() {
        let signer = Signer::new(Some("t"));
        for _ in 0..MAX_FAILED_SIGN_INS - 1 {
            signer.sign_in_failed(100);
        }
        assert_eq!(signer.sign_in_paused(100), None);
        signer.sign_in_failed(110);
        assert_eq!(signer.sign_in_paused(110), Some(50));
        assert_eq!(signer.sign_in_paused(100 + FAILURE_WINDOW_SECS), None);
        // A new window starts counting again.
        signer.sign_in_failed(200);
        assert_eq!(signer.sign_in_paused(200), None);
    }

    #[test]
    fn csrf_tokens_are_bound_to_one_session() {
        let signer = Signer::new(Some("t"));
        let (_, one) = signer.issue(1_000);
        let (_, two) = signer.issue(1_000);
        let token = signer.csrf(&one);
        assert!(signer.csrf_matches(&one, &token));
        assert!(!signer.csrf_matches(&two, &token));
        assert!(!signer.csrf_matches(&one, ""));
        assert_ne!(signer.login_csrf(&one.nonce), token, "purposes differ");
    }

    #[test]
    fn cookie_attributes() {
        let plain = set_cookie(SESSION_COOKIE, "v", 60, false);
        let plain = plain.to_str().unwrap();
        assert_eq!(
            plain,
            "kv_console=v; Path=/console; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        let secure = set_cookie(SESSION_COOKIE, "v", 60, true);
        assert!(secure
            .to_str()
            .unwrap()
            .ends_with("; HttpOnly; SameSite=Strict; Secure"));
    }

    #[test]
    fn https_only_from_tls_or_a_trusted_proxy() {
        let http: axum::http::Uri = "/console".parse().unwrap();
        let tls: axum::http::Uri = "https://kv.example/console".parse().unwrap();
        let mut forwarded = HeaderMap::new();
        forwarded.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let mut standard = HeaderMap::new();
        standard.insert(
            "forwarded",
            HeaderValue::from_static("for=1.2.3.4;proto=https, for=10.0.0.1;proto=http"),
        );
        let mut plain = HeaderMap::new();
        plain.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        assert!(is_https(&tls, &HeaderMap::new(), false));
        assert!(!is_https(&http, &HeaderMap::new(), true));
        assert!(
            !is_https(&http, &forwarded, false),
            "untrusted proxy headers"
        );
        assert!(is_https(&http, &forwarded, true));
        assert!(is_https(&http, &standard, true));
        assert!(!is_https(&http, &plain, true));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; kv_console=v1.x; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("v1.x"));
        assert_eq!(cookie(&headers, "kv_console_pre"), None);
    }
}
