//! Security properties of sessions: unpredictable IDs, tamper-proof signed cookies, and a
//! store that holds hashes of IDs and never the IDs. (Logs: `session_log_redaction.rs`.)
#![cfg(all(feature = "session", feature = "axum"))]

use std::collections::HashSet;

use axum::body::Body;
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use http::header::{COOKIE, SET_COOKIE};
use http::{Request, StatusCode};
use kv_core::{ListOptions, Namespace, Store};
use kv_middleware::session::{Key, Session, SessionError, SessionId, SessionLayer};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// ---- IDs ----

#[test]
fn one_hundred_thousand_ids_are_well_formed_distinct_and_uniform() {
    const N: usize = 100_000;
    let mut seen = HashSet::with_capacity(N);
    // Character counts over the 42 positions that carry 6 random bits each.
    let mut counts = [0u64; 64];
    let mut per_position = vec![[0u32; 64]; 42];
    let mut last = HashSet::new();
    for _ in 0..N {
        let text = SessionId::generate().unwrap().to_string();
        assert_eq!(text.len(), 43, "{text}");
        for (i, b) in text.bytes().enumerate() {
            let value = ALPHABET
                .iter()
                .position(|&c| c == b)
                .unwrap_or_else(|| panic!("{text:?} has {:?}", char::from(b)));
            if i < 42 {
                counts[value] += 1;
                per_position[i][value] += 1;
            }
        }
        last.insert(text.as_bytes()[42]);
        assert!(seen.insert(text), "a duplicate ID");
    }
    assert_eq!(seen.len(), N);
    // The 43rd character carries the last 4 bits: 16 possible characters, all of them seen.
    let expected_last: HashSet<u8> = b"AEIMQUYcgkosw048".iter().copied().collect();
    assert_eq!(last, expected_last);

    // Chi-squared with 63 degrees of freedom: mean 63, sd about 11; 150 is p < 1e-8.
    let chi2 = |observed: &mut dyn Iterator<Item = u64>, total: u64| -> f64 {
        let expected = total as f64 / 64.0;
        observed
            .map(|o| (o as f64 - expected).powi(2) / expected)
            .sum()
    };
    let all = chi2(&mut counts.iter().copied(), (N * 42) as u64);
    assert!(all < 150.0, "characters are not uniform: chi2 = {all}");
    for (i, position) in per_position.iter().enumerate() {
        let value = chi2(&mut position.iter().map(|&c| u64::from(c)), N as u64);
        assert!(value < 150.0, "position {i} is not uniform: chi2 = {value}");
    }
}

// ---- an app ----

async fn whoami(session: Session) -> Result<String, SessionError> {
    tracing::info!("whoami handler ran");
    Ok(session
        .get::<String>("user")
        .await?
        .unwrap_or_else(|| "anonymous".to_owned()))
}

async fn login(session: Session) -> Result<String, SessionError> {
    tracing::info!("login handler ran");
    session.cycle_id().await?;
    session.insert("user", "ada").await?;
    session.insert("role", "admin").await?;
    Ok(session.id().await?.to_string())
}

async fn rotate(session: Session) -> Result<String, SessionError> {
    Ok(session.cycle_id().await?.to_string())
}

async fn logout(session: Session) -> Result<&'static str, SessionError> {
    tracing::info!("logout handler ran");
    session.destroy().await?;
    Ok("bye")
}

struct App {
    router: Router,
    namespace: Namespace,
}

async fn app(signing_key: Option<Key>) -> App {
    let store = Store::new(kv_backends::memory::MemoryBackend::new());
    let namespace = store.namespace("SESSIONS").await.unwrap();
    let mut layer = SessionLayer::new(namespace.clone());
    if let Some(key) = signing_key {
        layer = layer.with_signing_key(key);
    }
    let router = Router::new()
        .route("/whoami", get(whoami))
        .route("/login", post(login))
        .route("/rotate", post(rotate))
        .route("/logout", post(logout))
        .layer(layer);
    App { router, namespace }
}

struct Reply {
    status: StatusCode,
    body: String,
    /// The value of our cookie in `Set-Cookie` (empty for a removal).
    cookie: Option<String>,
}

async fn send(app: &App, method: &str, path: &str, cookie: Option<&str>) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    if let Some(value) = cookie {
        request
            .headers_mut()
            .insert(COOKIE, format!("session={value}").parse().unwrap());
    }
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let cookie = response.headers().get(SET_COOKIE).map(|v| {
        let text = v.to_str().unwrap();
        let pair = text.split(';').next().unwrap();
        pair.strip_prefix("session=").unwrap().to_owned()
    });
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    Reply {
        status,
        body: String::from_utf8(body.to_vec()).unwrap(),
        cookie,
    }
}

/// Every key and value stored in the namespace, as text.
async fn stored(namespace: &Namespace) -> Vec<(String, String)> {
    let page = namespace.list(&ListOptions::new()).await.unwrap();
    let mut all = Vec::new();
    for key in page.keys {
        let value = namespace.get(&key.name).await.unwrap().unwrap_or_default();
        all.push((key.name, String::from_utf8_lossy(&value).into_owned()));
    }
    all
}

/// The lowercase hex SHA-256 of the ID's 32 bytes.
fn sha256_hex(id: &str) -> String {
    let bytes = URL_SAFE_NO_PAD.decode(id).unwrap();
    assert_eq!(bytes.len(), 32);
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Forms an ID could leak in: its text, its bytes as hex and as standard base64.
fn forms_of(id: &str) -> Vec<String> {
    let bytes = URL_SAFE_NO_PAD.decode(id).unwrap();
    vec![
        id.to_owned(),
        bytes.iter().map(|b| format!("{b:02x}")).collect(),
        STANDARD.encode(&bytes),
        id[..16].to_owned(),
    ]
}

/// Checks that the namespace holds exactly the sessions of `live` IDs, each under the hash of
/// its ID, and that no ID (live or `dead`) appears in any key or value.
async fn assert_store_holds_only_hashes(namespace: &Namespace, live: &[&str], dead: &[&str]) {
    let entries = stored(namespace).await;
    let mut keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
    let mut expected: Vec<String> = live.iter().map(|id| sha256_hex(id)).collect();
    keys.sort();
    expected.sort();
    assert_eq!(
        keys, expected,
        "one entry per live session, under the ID's hash"
    );
    for id in live.iter().chain(dead) {
        assert_ne!(&sha256_hex(id), id);
        let parsed: SessionId = id.parse().unwrap();
        assert_eq!(parsed.store_key(), sha256_hex(id));
        for form in forms_of(id) {
            for (key, value) in &entries {
                assert!(!key.contains(&form), "an ID in a store key: {key}");
                assert!(!value.contains(&form), "an ID in a stored value: {value}");
            }
        }
    }
}

#[tokio::test]
async fn the_store_holds_hashes_of_ids_never_the_ids() {
    for signed in [false, true] {
        let app = app(signed.then(Key::generate)).await;
        let first = send(&app, "POST", "/login", None).await;
        assert_eq!(first.status, StatusCode::OK);
        let id1 = first.body.clone();
        let cookie1 = first.cookie.clone().unwrap();
        assert_eq!(cookie1 == id1, !signed);
        assert_store_holds_only_hashes(&app.namespace, &[&id1], &[]).await;
        let value = &stored(&app.namespace).await[0].1;
        assert!(value.contains("ada") && value.contains("admin"), "{value}");
        if signed {
            for (key, value) in stored(&app.namespace).await {
                assert!(!key.contains(&cookie1) && !value.contains(&cookie1));
            }
        }

        let second = send(&app, "POST", "/login", None).await;
        let id2 = second.body.clone();
        assert_ne!(id1, id2);
        assert_store_holds_only_hashes(&app.namespace, &[&id1, &id2], &[]).await;

        let me = send(&app, "GET", "/whoami", Some(&cookie1)).await;
        assert_eq!(me.body, "ada");

        // A new ID (login against fixation): the old record is gone, the new one hashed.
        let rotated = send(&app, "POST", "/rotate", Some(&cookie1)).await;
        let id3 = rotated.body.clone();
        let cookie3 = rotated.cookie.clone().unwrap();
        assert_store_holds_only_hashes(&app.namespace, &[&id3, &id2], &[&id1]).await;
        assert_eq!(
            send(&app, "GET", "/whoami", Some(&cookie1)).await.body,
            "anonymous"
        );
        assert_eq!(
            send(&app, "GET", "/whoami", Some(&cookie3)).await.body,
            "ada"
        );

        let out = send(&app, "POST", "/logout", Some(&cookie3)).await;
        assert_eq!(out.status, StatusCode::OK);
        assert_eq!(out.cookie.as_deref(), Some(""), "the cookie is removed");
        assert_store_holds_only_hashes(&app.namespace, &[&id2], &[&id1, &id3]).await;
        assert_eq!(
            send(&app, "GET", "/whoami", Some(&cookie3)).await.body,
            "anonymous"
        );
    }
}

// ---- signed cookies ----

#[tokio::test]
async fn every_tampered_signed_cookie_is_no_session() {
    let key = Key::generate();
    let app = app(Some(key.clone())).await;
    let login = send(&app, "POST", "/login", None).await;
    let id = login.body.clone();
    let cookie = login.cookie.clone().unwrap();
    assert_eq!(
        send(&app, "GET", "/whoami", Some(&cookie)).await.body,
        "ada"
    );
    // The cookie crate's form: base64 of the HMAC-SHA256 (44 characters), then the value.
    assert_eq!(cookie.len(), 44 + 43);
    assert!(cookie.ends_with(&id));

    let mut tampered: Vec<String> = Vec::new();
    let bytes = cookie.as_bytes();
    for at in 0..bytes.len() {
        for with in [b'A', b'B', b'z', b'0', b'9', b'-', b'_', b'+', b'/', b'='] {
            if bytes[at] != with {
                let mut changed = bytes.to_vec();
                changed[at] = with;
                tampered.push(String::from_utf8(changed).unwrap());
            }
        }
        // Every bit of the byte flipped, where the result can be sent in a cookie.
        for bit in 0..7 {
            let flipped = bytes[at] ^ (1 << bit);
            if flipped.is_ascii_graphic() && !matches!(flipped, b';' | b',' | b'"' | b'\\') {
                let mut changed = bytes.to_vec();
                changed[at] = flipped;
                tampered.push(String::from_utf8(changed).unwrap());
            }
        }
        tampered.push(cookie[..at].to_owned());
    }
    // The bare ID (unsigned), the signature of another ID, a signature from another key.
    tampered.push(id.clone());
    let other = send(&app, "POST", "/login", None).await;
    let other_cookie = other.cookie.unwrap();
    tampered.push(format!("{}{}", &other_cookie[..44], id));
    tampered.push(format!("{}{}", &cookie[..44], other.body));
    let foreign = app_with_foreign_key_cookie().await;
    tampered.push(foreign);
    tampered.push(format!("{cookie}{cookie}"));

    let mut tried = 0;
    for value in tampered.iter().filter(|v| !v.is_empty()) {
        let reply = send(&app, "GET", "/whoami", Some(value)).await;
        assert_eq!(reply.status, StatusCode::OK, "{value}");
        assert_eq!(reply.body, "anonymous", "{value} was accepted");
        assert!(
            reply.cookie.as_deref().unwrap_or_default().is_empty(),
            "{value}: {:?}",
            reply.cookie
        );
        tried += 1;
    }
    assert!(tried > 1000, "{tried}");
    eprintln!("{tried} tampered signed cookies were no session");
    // Still logged in with the real cookie.
    assert_eq!(
        send(&app, "GET", "/whoami", Some(&cookie)).await.body,
        "ada"
    );
}

/// A valid cookie of another app (another signing key).
async fn app_with_foreign_key_cookie() -> String {
    let other = app(Some(Key::generate())).await;
    send(&other, "POST", "/login", None).await.cookie.unwrap()
}
