//! Cookie tossing: a sibling subdomain (or an attacker on the network path of a plain-HTTP
//! page of the site) can plant a cookie of the session's name in the victim's browser. The
//! browser then sends both, and a server that takes the first one signs the victim in as the
//! attacker: what the victim does next lands in the attacker's session.
//!
//! The rule checked here: when a request carries cookies for more than one session (or more
//! cookies of the name than the layer reads), it uses none of them.
#![cfg(all(feature = "session", feature = "axum"))]

#[allow(unused_macros)]
mod session_support;

use axum::body::Body;
use http::{header, Request, StatusCode};
use kv_middleware::session::Key;
use serde_json::json;
use session_support::{send, Fixture};
use tower::ServiceExt;

/// Signs `user` in (a fresh session holding `{"user": user}`); its cookie value.
async fn signed_in(app: &axum::Router, user: &str) -> String {
    let reply = send(app, &format!("/insert/user/{user}"), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.cookie_value().expect("a new session sets its cookie")
}

/// The `data` of the session stored for the cookie value `id`.
async fn data(fx: &Fixture, id: &str) -> serde_json::Value {
    let (record, _) = fx.record(id).await.expect("the session is stored");
    record["data"].clone()
}

#[tokio::test]
async fn two_sessions_in_one_request_use_neither() {
    let fx = Fixture::memory().await;
    let app = fx.app(fx.layer());
    let victim = signed_in(&app, "victim").await;
    let attacker = signed_in(&app, "attacker").await;

    // The attacker's cookie first (a longer Path, or created earlier), and the reverse.
    for header in [
        format!("session={attacker}; session={victim}"),
        format!("session={victim}; session={attacker}"),
        format!("theme=dark; session={attacker}; lang=en; session={victim}"),
    ] {
        let reply = send(&app, "/get/user", Some(&header)).await;
        assert_eq!(reply.status, StatusCode::OK, "{header}");
        assert_eq!(reply.body, "none", "{header}: no session may be used");
        assert!(reply.set_cookies.is_empty(), "a read sets no cookie");
    }

    // The same over two `Cookie` headers (HTTP/2 may send one per cookie).
    for (first, second) in [(&attacker, &victim), (&victim, &attacker)] {
        let request = Request::get("/get/user")
            .header(header::COOKIE, format!("session={first}"))
            .header(header::COOKIE, format!("session={second}"))
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"none");
    }
    assert_eq!(fx.layer().stats().conflicting_cookies, 0, "a new layer");
}

#[tokio::test]
async fn a_write_with_two_sessions_goes_to_a_fresh_one() {
    let fx = Fixture::memory().await;
    let layer = fx.layer();
    let app = fx.app(layer.clone());
    let victim = signed_in(&app, "victim").await;
    let attacker = signed_in(&app, "attacker").await;

    for header in [
        format!("session={attacker}; session={victim}"),
        format!("session={victim}; session={attacker}"),
    ] {
        let reply = send(&app, "/insert/card/4111", Some(&header)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "none", "the write saw an empty session");
        let fresh = reply.cookie_value().expect("a fresh cookie is set");
        assert_ne!(fresh, attacker);
        assert_ne!(fresh, victim);
        assert_eq!(data(&fx, &fresh).await, json!({"card": 4111}));
    }
    // Neither session saw the write: the victim's card is not in the attacker's session.
    assert_eq!(data(&fx, &attacker).await, json!({"user": "attacker"}));
    assert_eq!(data(&fx, &victim).await, json!({"user": "victim"}));
    assert_eq!(layer.stats().conflicting_cookies, 2);
}

#[tokio::test]
async fn logout_with_two_sessions_ends_both() {
    let fx = Fixture::memory().await;
    let app = fx.app(fx.layer());
    let victim = signed_in(&app, "victim").await;
    let attacker = signed_in(&app, "attacker").await;
    let bystander = signed_in(&app, "bystander").await;

    let reply = send(
        &app,
        "/destroy",
        Some(&format!("session={attacker}; session={victim}")),
    )
    .await;
    assert_eq!(reply.body, "destroyed");
    assert!(reply.is_removal(), "{:?}", reply.set_cookies);
    // The user's own session does not outlive the logout in the store.
    assert!(fx.record(&victim).await.is_none());
    assert!(fx.record(&attacker).await.is_none());
    assert_eq!(data(&fx, &bystander).await, json!({"user": "bystander"}));
}

#[tokio::test]
async fn one_session_cookie_works_as_before() {
    let fx = Fixture::memory().await;
    let layer = fx.layer();
    let app = fx.app(layer.clone());
    let victim = signed_in(&app, "victim").await;

    for header in [
        format!("session={victim}"),
        format!("theme=dark; session={victim}; lang=en"),
        // The same value twice is one session, not a conflict.
        format!("session={victim}; session={victim}"),
        // Values that cannot be a session (malformed, empty) do not hide the one that is.
        format!("session=not-an-id; session={victim}"),
        format!("session={victim}; session=; session=\"\""),
        format!("session={victim}x; session={victim}"),
    ] {
        let reply = send(&app, "/get/user", Some(&header)).await;
        assert_eq!(reply.body, "\"victim\"", "{header}");
    }
    assert_eq!(layer.stats().conflicting_cookies, 0);
}

#[tokio::test]
async fn padding_cannot_push_the_victims_cookie_out_of_view() {
    let fx = Fixture::memory().await;
    let layer = fx.layer();
    let app = fx.app(layer.clone());
    let victim = signed_in(&app, "victim").await;
    let attacker = signed_in(&app, "attacker").await;

    // The layer reads a few cookies of its name; the attacker's come first, the victim's
    // after them. More than the layer reads is a conflict, whatever the ones it read say.
    for header in [
        format!("session=a; session=b; session=c; session={attacker}; session={victim}"),
        format!(
            "session={attacker}; session={attacker}; session={attacker}; \
             session={attacker}; session={victim}"
        ),
    ] {
        let reply = send(&app, "/get/user", Some(&header)).await;
        assert_eq!(reply.body, "none", "{header}");
    }
    assert_eq!(layer.stats().conflicting_cookies, 2);
}

#[tokio::test]
async fn signed_cookies_follow_the_same_rule_across_key_rotation() {
    let fx = Fixture::memory().await;
    let (old, new) = (Key::generate(), Key::generate());
    let before = fx.app(fx.layer().with_signing_key(old.clone()));
    let after = fx.app(
        fx.layer()
            .with_signing_key(new)
            .with_old_signing_key(old.clone()),
    );
    let victim = signed_in(&before, "victim").await;
    let attacker = signed_in(&after, "attacker").await;

    let reply = send(
        &after,
        "/get/user",
        Some(&format!("session={attacker}; session={victim}")),
    )
    .await;
    assert_eq!(reply.body, "none");

    // One session under two signatures (the old key's and the new key's) is one session.
    let resigned = send(&after, "/insert/seen/1", Some(&format!("session={victim}")))
        .await
        .cookie_value()
        .expect("a changed session is re-sent, signed with the new key");
    assert_ne!(resigned, victim);
    let reply = send(
        &after,
        "/get/user",
        Some(&format!("session={victim}; session={resigned}")),
    )
    .await;
    assert_eq!(reply.body, "\"victim\"");
}

#[tokio::test]
async fn host_prefix_ignores_a_tossed_cookie_without_it() {
    let fx = Fixture::memory().await;
    let app = fx.app(fx.layer().with_host_prefix(true));
    let reply = send(&app, "/insert/user/victim", None).await;
    assert!(reply.set_cookie().unwrap().starts_with("__Host-session="));
    let victim = reply.cookie_value().unwrap();
    let attacker = signed_in(&fx.app(fx.layer()), "attacker").await;

    // A sibling subdomain cannot set a `__Host-` cookie (browsers refuse it with a Domain),
    // only one of the bare name, which the layer does not read.
    let reply = send(
        &app,
        "/get/user",
        Some(&format!("session={attacker}; __Host-session={victim}")),
    )
    .await;
    assert_eq!(reply.body, "\"victim\"");
}
