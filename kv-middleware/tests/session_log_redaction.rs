//! No session ID or cookie value in the logs: `tracing` output captured at TRACE and at the
//! default INFO level during login / logout flows (rotations, tampered, stale and conflicting
//! cookies, signed and unsigned), then searched for every 16-character piece of every ID and cookie.
//!
//! One test in its own binary: `tracing` caches per-callsite interest across threads, so
//! captures with different filters must not run in parallel.
#![cfg(all(feature = "session", feature = "axum"))]

use axum::body::Body;
use axum::routing::{get, post};
use axum::Router;
use http::header::{COOKIE, SET_COOKIE};
use http::Request;
use kv_core::Store;
use kv_middleware::session::{Key, Session, SessionError, SessionLayer};
use tower::ServiceExt;

async fn whoami(session: Session) -> Result<String, SessionError> {
    tracing::info!("whoami handler ran");
    Ok(session
        .get::<String>("user")
        .await?
        .unwrap_or_else(|| "anonymous".to_owned()))
}

async fn login(session: Session) -> Result<String, SessionError> {
    session.cycle_id().await?;
    session.insert("user", "ada").await?;
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

/// The body and our `Set-Cookie` value of one request.
async fn send(app: &Router, method: &str, path: &str, cookie: Option<&str>) -> (String, String) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    if let Some(value) = cookie {
        let header = format!("session={value}").parse().unwrap();
        request.headers_mut().insert(COOKIE, header);
    }
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response
        .headers()
        .get(SET_COOKIE)
        .map(|v| {
            let pair = v.to_str().unwrap().split(';').next().unwrap();
            pair.strip_prefix("session=").unwrap().to_owned()
        })
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (String::from_utf8(body.to_vec()).unwrap(), cookie)
}

/// A login / logout flow; the IDs and cookie values it saw.
async fn flow(signed: bool) -> Vec<String> {
    let store = Store::new(kv_backends::memory::MemoryBackend::new());
    let mut layer = SessionLayer::new(store.namespace("SESSIONS").await.unwrap());
    if signed {
        layer = layer.with_signing_key(Key::generate());
    }
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/login", post(login))
        .route("/rotate", post(rotate))
        .route("/logout", post(logout))
        .layer(layer);

    let mut secrets = Vec::new();
    let (id, cookie) = send(&app, "POST", "/login", None).await;
    secrets.extend([id, cookie.clone()]);
    assert_eq!(send(&app, "GET", "/whoami", Some(&cookie)).await.0, "ada");
    // Tampered (unknown ID, or a bad signature), and malformed.
    let mut tampered = cookie.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    secrets.push(tampered.clone());
    assert_eq!(
        send(&app, "GET", "/whoami", Some(&tampered)).await.0,
        "anonymous"
    );
    let malformed = format!("{cookie}x");
    assert_eq!(
        send(&app, "GET", "/whoami", Some(&malformed)).await.0,
        "anonymous"
    );
    let (new_id, new_cookie) = send(&app, "POST", "/rotate", Some(&cookie)).await;
    secrets.extend([new_id, new_cookie.clone()]);
    // Two cookies naming different sessions (cookie tossing): neither is used.
    let tossed = format!("{cookie}; session={new_cookie}");
    assert_eq!(
        send(&app, "GET", "/whoami", Some(&tossed)).await.0,
        "anonymous"
    );
    assert_eq!(
        send(&app, "POST", "/logout", Some(&new_cookie)).await.0,
        "bye"
    );
    // Stale cookies after the rotation and the logout.
    assert_eq!(
        send(&app, "GET", "/whoami", Some(&new_cookie)).await.0,
        "anonymous"
    );
    assert_eq!(
        send(&app, "GET", "/whoami", Some(&cookie)).await.0,
        "anonymous"
    );
    secrets
}

/// The logs of both flows (unsigned and signed) under `filter`, and their secrets.
fn captured_flows(filter: &str) -> (String, Vec<String>) {
    kv_core::testing::capture_logs(filter, async {
        let mut secrets = flow(false).await;
        secrets.extend(flow(true).await);
        secrets
    })
}

fn assert_no_secrets(logs: &str, secrets: &[String]) {
    assert_eq!(secrets.len(), 10);
    for secret in secrets {
        assert!(secret.len() >= 43, "{secret:?}");
        // A 16-character piece of an ID is 96 bits of it: none may show.
        for piece in secret.as_bytes().windows(16) {
            let piece = std::str::from_utf8(piece).unwrap();
            assert!(
                !logs.contains(piece),
                "{piece:?} of {secret:?} is in the logs:\n{logs}"
            );
        }
    }
}

#[test]
fn ids_and_cookie_values_are_not_logged() {
    let (logs, secrets) = captured_flows("trace");
    assert!(
        logs.contains("ignoring a malformed or badly signed session cookie"),
        "the session layer's debug logs are captured: {logs}"
    );
    assert!(
        logs.contains("the request names more than one session"),
        "the conflicting cookies are logged: {logs}"
    );
    assert_no_secrets(&logs, &secrets);

    let (logs, secrets) = captured_flows("info");
    assert!(
        logs.contains("logout handler ran"),
        "the capture works: {logs}"
    );
    assert!(!logs.contains("DEBUG"), "INFO and above only: {logs}");
    assert_no_secrets(&logs, &secrets);
}
