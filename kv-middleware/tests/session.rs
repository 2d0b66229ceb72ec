//! The session layer's behaviour through axum, on every backend (memory, file, and memory
//! without compare-and-swap), each check on a fresh store with a manual clock.
#![cfg(all(feature = "session", feature = "axum"))]

#[macro_use]
mod session_support;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use http::StatusCode;
use kv_middleware::session::{Expiry, Key, LoadErrorPolicy, SameSite, Session, SessionError};
use serde_json::json;
use session_support::{send, Browser, Counts, Fixture, START};

const DAY: u64 = 24 * 3600;

backend_tests! {
    all: [
        untouched_requests_set_no_cookie_and_touch_no_store,
        first_write_creates_a_session_with_the_default_cookie,
        bogus_and_malformed_cookies_are_no_session,
        get_insert_remove_clear,
        cleared_session_is_deleted_with_its_cookie,
        a_new_session_that_stays_empty_is_not_stored,
        cycle_id_keeps_data_and_invalidates_the_old_id,
        destroy_removes_the_cookie_and_the_record,
        destroy_then_write_starts_a_new_session,
        reload_discards_unsaved_changes,
        cookie_max_age_follows_each_expiry_kind,
        changing_the_expiry_kind_inside_a_request,
        expired_sessions_load_as_empty,
        short_sessions_are_stored_with_the_minimum_ttl_and_end_on_time,
        fixed_expiry_is_never_refreshed,
        no_save_on_server_errors,
        explicit_save_keeps_its_cookie_on_server_errors,
        writes_are_made_only_when_needed,
        read_only_traffic_with_rolling_expiry_rarely_writes,
        is_modified_reports_changes,
        layer_applied_twice_inner_wins,
        per_route_layers_with_different_cookie_names,
        store_failure_on_save_answers_500,
        store_failure_on_load_fails_closed_by_default,
        load_failure_policy_empty_fails_open,
        signed_cookies_with_key_rotation,
        host_prefix_cookie,
        configured_cookie_attributes_and_the_removal_cookie,
        manager_creates_loads_updates_and_destroys,
        a_save_after_a_concurrent_destroy_does_not_resurrect,
    ],
    cas: [
        concurrent_requests_changing_different_keys_both_persist,
        concurrent_writes_to_the_same_key_last_writer_wins,
    ],
}

async fn untouched_requests_set_no_cookie_and_touch_no_store(fx: Fixture) {
    let app = fx.app(fx.layer());
    let reply = send(&app, "/untouched", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.set_cookies.is_empty());
    let reply = send(&app, "/untouched", Some("session=whatever; other=1")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.set_cookies.is_empty());
    assert_eq!(fx.counts(), Counts::default());
}

async fn first_write_creates_a_session_with_the_default_cookie(fx: Fixture) {
    let app = fx.app(fx.layer());
    let reply = send(&app, "/insert/user/ada", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let id = reply.cookie_value().expect("a cookie for the new session");
    assert_eq!(id.len(), 43);
    assert_eq!(
        reply.set_cookie(),
        Some(
            format!("session={id}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=86400")
                .as_str()
        )
    );

    // Stored under the hash of the ID, as a JSON record, with the TTL of the session.
    let (record, entry) = fx.record(&id).await.expect("stored");
    assert_eq!(
        record,
        json!({"data": {"user": "ada"}, "expires_at": START + DAY})
    );
    assert_eq!(entry.expiration, Some(START + DAY));
    assert!(
        fx.ns.raw().get(&id).await.unwrap().is_none(),
        "not under the raw ID"
    );

    // The next request reads it back and writes nothing.
    let writes = fx.writes();
    let reply = send(&app, "/get/user", Some(&format!("session={id}"))).await;
    assert_eq!(reply.body, "\"ada\"");
    assert!(reply.set_cookies.is_empty());
    assert_eq!(fx.writes(), writes);
}

async fn bogus_and_malformed_cookies_are_no_session(fx: Fixture) {
    let app = fx.app(fx.layer());
    // A real session that has ended.
    let ended = send(&app, "/insert/user/old", None)
        .await
        .cookie_value()
        .unwrap();
    fx.advance(DAY + 1);
    let unknown = kv_middleware::session::SessionId::generate()
        .unwrap()
        .to_string();
    let padded = format!("{}=", &unknown[..42]);
    let bad_alphabet = format!("{}+/", &unknown[..41]);
    let bogus = [
        "garbage",
        "",
        "\"\"",
        unknown.as_str(),
        padded.as_str(),
        bad_alphabet.as_str(),
        ended.as_str(),
        "../../etc/passwd",
    ];
    for bad in bogus {
        let cookie = format!("session={bad}");
        let reply = send(&app, "/get/user", Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::OK, "{bad:?}");
        assert_eq!(reply.body, "none", "{bad:?}");
        assert!(reply.set_cookies.is_empty(), "{bad:?}");

        let reply = send(&app, "/insert/user/eve", Some(&cookie)).await;
        let fresh = reply.cookie_value().expect("a fresh session when written");
        assert_ne!(fresh, bad);
        if !bad.is_empty() {
            assert!(!reply.set_cookie().unwrap().contains(bad), "{bad:?} echoed");
        }
        assert!(fx.record(&fresh).await.is_some());
    }
    // A cookie header that is not even valid UTF-8 text is ignored too.
    let reply = send(&app, "/get/user", Some("session")).await;
    assert_eq!(reply.body, "none");
}

async fn get_insert_remove_clear(fx: Fixture) {
    let mut browser = Browser::new(fx.app(fx.layer()));
    assert_eq!(browser.get("/get/a").await.body, "none");
    assert_eq!(browser.get("/insert/a/1").await.body, "none");
    assert_eq!(browser.get("/insert/b/{\"x\":[1,2]}").await.body, "none");
    assert_eq!(browser.get("/insert/a/2").await.body, "1");
    assert_eq!(browser.get("/get/a").await.body, "2");
    assert_eq!(browser.get("/get/b").await.body, "{\"x\":[1,2]}");
    assert_eq!(browser.get("/remove/a").await.body, "2");
    assert_eq!(browser.get("/remove/a").await.body, "none");
    assert_eq!(browser.get("/get/a").await.body, "none");
    assert_eq!(browser.get("/get/b").await.body, "{\"x\":[1,2]}");
    let id = browser.cookie("session").unwrap().to_owned();
    assert_eq!(
        fx.record(&id).await.unwrap().0["data"],
        json!({"b": {"x": [1, 2]}})
    );
    browser.get("/insert/c/3").await;
    assert_eq!(browser.get("/clear").await.body, "cleared");
    assert_eq!(browser.get("/get/b").await.body, "none");
    assert_eq!(browser.get("/get/c").await.body, "none");
}

async fn cleared_session_is_deleted_with_its_cookie(fx: Fixture) {
    let mut browser = Browser::new(fx.app(fx.layer()));
    browser.get("/insert/a/1").await;
    let id = browser.cookie("session").unwrap().to_owned();
    let reply = browser.get("/clear").await;
    assert!(reply.is_removal(), "{:?}", reply.set_cookies);
    assert!(fx.record(&id).await.is_none());
    // Clearing a session that has no data is nothing.
    let writes = fx.writes();
    let reply = browser.get("/clear").await;
    assert!(reply.set_cookies.is_empty());
    assert_eq!(fx.writes(), writes);
}

async fn a_new_session_that_stays_empty_is_not_stored(fx: Fixture) {
    let app = fx.app(fx.layer());
    for path in [
        "/get/a",
        "/insert-then-remove/a",
        "/id",
        "/clear",
        "/remove/a",
    ] {
        let reply = send(&app, path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(reply.set_cookies.is_empty(), "{path}");
    }
    assert_eq!(fx.writes(), 0);
    // The ID is known before the first save and is the one saved.
    let reply = send(&app, "/expiry/inactivity/600", None).await;
    assert!(reply.set_cookies.is_empty(), "an expiry alone is no data");
    assert_eq!(fx.writes(), 0);
}

async fn cycle_id_keeps_data_and_invalidates_the_old_id(fx: Fixture) {
    let app = fx.app(fx.layer());
    let old = send(&app, "/insert/user/ada", None)
        .await
        .cookie_value()
        .unwrap();
    let reply = send(&app, "/cycle", Some(&format!("session={old}"))).await;
    let new = reply.cookie_value().expect("the new ID's cookie");
    assert_eq!(reply.body, new, "cycle_id returns the new ID");
    assert_ne!(new, old);
    assert!(fx.record(&old).await.is_none(), "old record deleted");
    assert_eq!(
        send(&app, "/get/user", Some(&format!("session={new}")))
            .await
            .body,
        "\"ada\""
    );
    assert_eq!(
        send(&app, "/get/user", Some(&format!("session={old}")))
            .await
            .body,
        "none"
    );
    // Cycling a new session just picks another ID for it.
    let reply = send(&app, "/cycle", None).await;
    assert!(reply.set_cookies.is_empty());
}

async fn destroy_removes_the_cookie_and_the_record(fx: Fixture) {
    let app = fx.app(fx.layer());
    let id = send(&app, "/insert/user/ada", None)
        .await
        .cookie_value()
        .unwrap();
    let gets = fx.counts().gets;
    let reply = send(&app, "/destroy", Some(&format!("session={id}"))).await;
    assert_eq!(reply.body, "destroyed");
    assert_eq!(
        reply.set_cookie(),
        Some(
            "session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0; \
             Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        )
    );
    assert_eq!(fx.counts().gets, gets, "destroy needs no read");
    assert!(fx.record(&id).await.is_none());
    assert_eq!(
        send(&app, "/get/user", Some(&format!("session={id}")))
            .await
            .body,
        "none"
    );
    // Destroying without a session sets no cookie.
    assert!(send(&app, "/destroy", None).await.set_cookies.is_empty());
}

async fn destroy_then_write_starts_a_new_session(fx: Fixture) {
    let app = fx.app(fx.layer());
    let id = send(&app, "/insert/user/ada", None)
        .await
        .cookie_value()
        .unwrap();
    let reply = send(
        &app,
        "/destroy-then-insert/k",
        Some(&format!("session={id}")),
    )
    .await;
    let fresh = reply.cookie_value().expect("a new session");
    assert_ne!(fresh, id);
    assert!(fx.record(&id).await.is_none());
    assert_eq!(
        fx.record(&fresh).await.unwrap().0["data"],
        json!({"k": "fresh"})
    );
}

async fn reload_discards_unsaved_changes(fx: Fixture) {
    let mut browser = Browser::new(fx.app(fx.layer()));
    browser.get("/insert/scratch/saved").await;
    let writes = fx.writes();
    assert_eq!(browser.get("/reload").await.body, "\"saved\"");
    assert_eq!(fx.writes(), writes);
    // A new session reloads as empty.
    let app = fx.app(fx.layer());
    assert_eq!(send(&app, "/reload", None).await.body, "none");
}

async fn cookie_max_age_follows_each_expiry_kind(fx: Fixture) {
    // Rolling.
    let app = fx.app(
        fx.layer()
            .with_expiry(Expiry::OnInactivity(Duration::from_secs(3600))),
    );
    let reply = send(&app, "/insert/a/1", None).await;
    assert_eq!(reply.max_age(), Some(3600));
    let (record, entry) = fx.record(&reply.cookie_value().unwrap()).await.unwrap();
    assert_eq!(record["expires_at"], json!(START + 3600));
    assert_eq!(entry.expiration, Some(START + 3600));

    // At a date-time: Max-Age is the time left.
    let at = std::time::UNIX_EPOCH + Duration::from_secs(START + 7200);
    let app = fx.app(fx.layer().with_expiry(Expiry::AtDateTime(at)));
    let reply = send(&app, "/insert/a/1", None).await;
    assert_eq!(reply.max_age(), Some(7200));
    let id = reply.cookie_value().unwrap();
    assert_eq!(
        fx.record(&id).await.unwrap().1.expiration,
        Some(START + 7200)
    );
    fx.advance(3600);
    let reply = send(&app, "/insert/a/2", Some(&format!("session={id}"))).await;
    assert_eq!(reply.max_age(), Some(3600));

    // On browser close: no Max-Age, but the server side still ends.
    let app = fx.app(
        fx.layer()
            .with_expiry(Expiry::OnSessionEnd(Duration::from_secs(8 * 3600))),
    );
    let reply = send(&app, "/insert/a/1", None).await;
    let cookie = reply.set_cookie().unwrap();
    assert!(!cookie.contains("Max-Age"), "{cookie}");
    assert!(!cookie.contains("Expires"), "{cookie}");
    let (_, entry) = fx.record(&reply.cookie_value().unwrap()).await.unwrap();
    assert_eq!(entry.expiration, Some(fx.now() + 8 * 3600));
}

async fn changing_the_expiry_kind_inside_a_request(fx: Fixture) {
    let mut browser = Browser::new(fx.app(fx.layer()));
    let reply = browser.get("/insert/a/1").await;
    assert_eq!(reply.max_age(), Some(DAY));
    let id = browser.cookie("session").unwrap().to_owned();

    // To a browser-session cookie with a 10-minute server side.
    let reply = browser.get("/expiry/end/600").await;
    let cookie = reply.set_cookie().expect("the expiry change is saved");
    assert!(!cookie.contains("Max-Age"), "{cookie}");
    let (record, entry) = fx.record(&id).await.unwrap();
    assert_eq!(record["expiry"], json!({"session_end": 600}));
    assert_eq!(entry.expiration, Some(START + 600));
    assert_eq!(browser.get("/expiry").await.body, "OnSessionEnd(600s)");

    // The session keeps its own kind on later writes.
    let reply = browser.get("/insert/b/2").await;
    assert!(!reply.set_cookie().unwrap().contains("Max-Age"));

    // To a fixed date-time.
    let reply = browser.get(&format!("/expiry/at/{}", START + 5000)).await;
    assert_eq!(reply.max_age(), Some(5000));
    assert_eq!(
        fx.record(&id).await.unwrap().0["expires_at"],
        json!(START + 5000)
    );

    // Setting the same expiry again is not a change.
    let writes = fx.writes();
    let reply = browser.get(&format!("/expiry/at/{}", START + 5000)).await;
    assert!(reply.set_cookies.is_empty());
    assert_eq!(fx.writes(), writes);

    // A date-time already past ends the session.
    let reply = browser.get(&format!("/expiry/at/{}", START - 1)).await;
    assert!(reply.is_removal(), "{:?}", reply.set_cookies);
    assert!(fx.record(&id).await.is_none());
}

async fn expired_sessions_load_as_empty(fx: Fixture) {
    let app = fx.app(fx.layer());
    let id = send(&app, "/insert/user/ada", None)
        .await
        .cookie_value()
        .unwrap();
    let cookie = format!("session={id}");
    fx.advance(DAY / 2 - 1);
    assert_eq!(send(&app, "/get/user", Some(&cookie)).await.body, "\"ada\"");
    fx.advance(DAY / 2 + 1);
    let reply = send(&app, "/get/user", Some(&cookie)).await;
    assert_eq!(reply.body, "none");
    assert!(reply.set_cookies.is_empty());
    let fresh = send(&app, "/insert/user/bob", Some(&cookie))
        .await
        .cookie_value()
        .unwrap();
    assert_ne!(fresh, id);
}

async fn short_sessions_are_stored_with_the_minimum_ttl_and_end_on_time(fx: Fixture) {
    let app = fx.app(
        fx.layer()
            .with_expiry(Expiry::OnInactivity(Duration::from_secs(10))),
    );
    let reply = send(&app, "/insert/user/ada", None).await;
    assert_eq!(reply.max_age(), Some(10));
    let id = reply.cookie_value().unwrap();
    let (record, entry) = fx.record(&id).await.unwrap();
    assert_eq!(record["expires_at"], json!(START + 10));
    assert_eq!(
        entry.expiration,
        Some(START + 60),
        "the store's minimum TTL"
    );
    fx.advance(10);
    assert!(fx.record(&id).await.is_some(), "still in the store");
    let reply = send(&app, "/get/user", Some(&format!("session={id}"))).await;
    assert_eq!(reply.body, "none", "but the session has ended");
}

async fn fixed_expiry_is_never_refreshed(fx: Fixture) {
    let at = std::time::UNIX_EPOCH + Duration::from_secs(START + 1000);
    let app = fx.app(fx.layer().with_expiry(Expiry::AtDateTime(at)));
    let id = send(&app, "/insert/a/1", None)
        .await
        .cookie_value()
        .unwrap();
    let writes = fx.writes();
    fx.advance(990);
    let reply = send(&app, "/get/a", Some(&format!("session={id}"))).await;
    assert_eq!(reply.body, "1");
    assert!(reply.set_cookies.is_empty());
    assert_eq!(fx.writes(), writes);
    fx.advance(10);
    let reply = send(&app, "/get/a", Some(&format!("session={id}"))).await;
    assert_eq!(reply.body, "none");
}

async fn no_save_on_server_errors(fx: Fixture) {
    let app = fx.app(fx.layer());
    let reply = send(&app, "/insert-then-fail/a", None).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.set_cookies.is_empty());
    assert_eq!(fx.writes(), 0);

    let id = send(&app, "/insert/a/1", None)
        .await
        .cookie_value()
        .unwrap();
    let cookie = format!("session={id}");
    let writes = fx.writes();
    let reply = send(&app, "/insert-then-fail/a", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.set_cookies.is_empty());
    assert_eq!(fx.writes(), writes);
    assert_eq!(send(&app, "/get/a", Some(&cookie)).await.body, "1");
}

async fn explicit_save_keeps_its_cookie_on_server_errors(fx: Fixture) {
    let app = fx.app(fx.layer());
    let reply = send(&app, "/save-then-fail/a", None).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let id = reply.cookie_value().expect("the saved session's cookie");
    assert_eq!(
        fx.record(&id).await.unwrap().0["data"],
        json!({"a": "saved"})
    );
}

async fn writes_are_made_only_when_needed(fx: Fixture) {
    let app = fx.app(fx.layer());
    let id = send(&app, "/insert/a/1", None)
        .await
        .cookie_value()
        .unwrap();
    let cookie = format!("session={id}");
    assert_eq!(fx.writes(), 1, "one write creates the session");

    // Untouched, read-only, equal insert, absent remove: no writes, no cookie.
    for path in ["/untouched", "/get/a", "/insert/a/1", "/remove/b", "/id"] {
        let reply = send(&app, path, Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(reply.set_cookies.is_empty(), "{path}");
    }
    assert_eq!(fx.writes(), 1);

    // A rolling refresh not yet due: still nothing (just over 12 h of 24 h remain).
    fx.advance(DAY / 2 - 1);
    let reply = send(&app, "/get/a", Some(&cookie)).await;
    assert!(reply.set_cookies.is_empty());
    assert_eq!(fx.writes(), 1);

    // Due once half or less remains: one write, and the cookie's Max-Age starts over.
    fx.advance(1);
    let reply = send(&app, "/get/a", Some(&cookie)).await;
    assert_eq!(reply.max_age(), Some(DAY));
    assert_eq!(fx.writes(), 2);
    assert_eq!(
        fx.record(&id).await.unwrap().0["expires_at"],
        json!(fx.now() + DAY)
    );
    let reply = send(&app, "/get/a", Some(&cookie)).await;
    assert!(reply.set_cookies.is_empty());
    assert_eq!(fx.writes(), 2);

    // A real change writes.
    send(&app, "/insert/a/2", Some(&cookie)).await;
    assert_eq!(fx.writes(), 3);
}

async fn read_only_traffic_with_rolling_expiry_rarely_writes(fx: Fixture) {
    let app = fx.app(fx.layer());
    let id = send(&app, "/insert/a/1", None)
        .await
        .cookie_value()
        .unwrap();
    let cookie = format!("session={id}");
    let before = fx.writes();
    // 1 000 reads, one every 100 s (about 28 hours).
    for _ in 0..1000 {
        fx.advance(100);
        assert_eq!(send(&app, "/get/a", Some(&cookie)).await.body, "1");
    }
    // A refresh at most every 12 hours: 2 writes.
    assert_eq!(fx.writes() - before, 2);

    // With a refresh fraction of 1.0 every request writes (tower-sessions' always_save).
    let app = fx.app(fx.layer().with_refresh_fraction(1.0));
    let before = fx.writes();
    for _ in 0..10 {
        send(&app, "/get/a", Some(&cookie)).await;
    }
    assert_eq!(fx.writes() - before, 10);
}

async fn is_modified_reports_changes(fx: Fixture) {
    let mut browser = Browser::new(fx.app(fx.layer()));
    assert_eq!(browser.get("/modified/a/1").await.body, "false true");
    assert_eq!(browser.get("/modified/a/1").await.body, "false false");
    assert_eq!(browser.get("/modified/a/2").await.body, "false true");
}

async fn layer_applied_twice_inner_wins(fx: Fixture) {
    let outer = fx.layer().with_cookie_name("outer");
    let inner = fx.layer().with_cookie_name("inner");
    let app = session_support::app()
        .layer(inner.clone())
        .layer(outer.clone());
    let mut browser = Browser::new(app);
    let reply = browser.get("/insert/a/1").await;
    assert_eq!(reply.set_cookies.len(), 1, "{:?}", reply.set_cookies);
    assert!(reply.set_cookies[0].starts_with("inner="));
    assert_eq!(fx.counts().puts, 1, "saved once");
    assert_eq!(browser.get("/get/a").await.body, "1");
    assert_eq!(inner.stats().writes, 1);
    assert_eq!(
        outer.stats(),
        Default::default(),
        "the outer layer did nothing"
    );

    // The same cookie name on both: still one save and one cookie.
    let same = fx.layer();
    let app = session_support::app()
        .layer(same.clone())
        .layer(same.clone());
    let reply = send(&app, "/insert/a/1", None).await;
    assert_eq!(reply.set_cookies.len(), 1);
    assert_eq!(same.stats().writes, 1);
}

async fn per_route_layers_with_different_cookie_names(fx: Fixture) {
    async fn write(session: Session) -> Result<&'static str, SessionError> {
        session.insert("n", 1).await?;
        Ok("ok")
    }
    let app = Router::new()
        .route("/admin", get(write))
        .route_layer(
            fx.layer()
                .with_cookie_name("admin_session")
                .with_path("/admin"),
        )
        .route(
            "/shop",
            get(write).layer(fx.layer().with_cookie_name("shop_session")),
        );
    // (route_layer applies to the routes above it; /shop has its own layer.)
    let admin = send(&app, "/admin", None).await;
    assert!(admin.set_cookie().unwrap().starts_with("admin_session="));
    assert!(admin.set_cookie().unwrap().contains("Path=/admin;"));
    let shop = send(&app, "/shop", None).await;
    assert!(shop.set_cookie().unwrap().starts_with("shop_session="));
    assert!(shop.set_cookie().unwrap().contains("Path=/;"));
    // Each route reads only its own cookie.
    let both = format!(
        "{}; {}",
        admin.cookie_pair().unwrap(),
        shop.cookie_pair().unwrap()
    );
    let writes = fx.writes();
    assert!(send(&app, "/admin", Some(&both))
        .await
        .set_cookies
        .is_empty());
    assert!(send(&app, "/shop", Some(&both))
        .await
        .set_cookies
        .is_empty());
    assert_eq!(fx.writes(), writes, "each found its session, unchanged");
}

async fn store_failure_on_save_answers_500(fx: Fixture) {
    let layer = fx.layer();
    let app = fx.app(layer.clone());
    fx.fail_writes(true);
    let reply = send(&app, "/insert/a/1", None).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.set_cookies.is_empty());
    assert!(reply.body.is_empty());
    assert_eq!(layer.stats().save_errors, 1);
    fx.fail_writes(false);
    assert!(send(&app, "/insert/a/1", None).await.set_cookie().is_some());
}

async fn store_failure_on_load_fails_closed_by_default(fx: Fixture) {
    let layer = fx.layer();
    let app = fx.app(layer.clone());
    let id = send(&app, "/insert/a/1", None)
        .await
        .cookie_value()
        .unwrap();
    let cookie = format!("session={id}");
    fx.fail_reads(true);
    let reply = send(&app, "/get/a", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.set_cookies.is_empty());
    assert!(
        !reply.body.contains("injected"),
        "no details leak: {}",
        reply.body
    );
    // Even a handler that ignores the error gets a 500, and nothing is written.
    let writes = fx.writes();
    let reply = send(&app, "/insert-then-fail/a", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(fx.writes(), writes);
    assert_eq!(layer.stats().load_errors, 2);
    // Routes that never touch the session are unaffected.
    assert_eq!(
        send(&app, "/untouched", Some(&cookie)).await.status,
        StatusCode::OK
    );
    fx.fail_reads(false);
    assert_eq!(send(&app, "/get/a", Some(&cookie)).await.body, "1");
}

async fn load_failure_policy_empty_fails_open(fx: Fixture) {
    let app = fx.app(fx.layer().with_load_error_policy(LoadErrorPolicy::Empty));
    let id = send(&app, "/insert/a/1", None)
        .await
        .cookie_value()
        .unwrap();
    let cookie = format!("session={id}");
    fx.fail_reads(true);
    let reply = send(&app, "/get/a", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "none");
    assert!(reply.set_cookies.is_empty());
    // A write goes to a new session; the stored one is untouched.
    let reply = send(&app, "/insert/b/2", Some(&cookie)).await;
    let fresh = reply.cookie_value().expect("a new session");
    assert_ne!(fresh, id);
    fx.fail_reads(false);
    assert_eq!(fx.record(&id).await.unwrap().0["data"], json!({"a": 1}));
}

async fn signed_cookies_with_key_rotation(fx: Fixture) {
    let old_key = Key::generate();
    let app = fx.app(fx.layer().with_signing_key(old_key.clone()));
    let reply = send(&app, "/insert/user/ada", None).await;
    let signed = reply.cookie_value().unwrap();
    assert_eq!(signed.len(), 44 + 43, "HMAC then ID");
    let id = &signed[44..];
    assert!(fx.record(id).await.is_some());
    assert_eq!(
        send(&app, "/get/user", Some(&format!("session={signed}")))
            .await
            .body,
        "\"ada\""
    );
    // The bare ID, or a tampered signature, is no session; nothing is read for them.
    let gets = fx.counts().gets;
    let mut tampered = signed.clone().into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [id, tampered.as_str()] {
        let reply = send(&app, "/get/user", Some(&format!("session={bad}"))).await;
        assert_eq!(reply.body, "none");
        assert!(reply.set_cookies.is_empty());
    }
    assert_eq!(fx.counts().gets, gets);

    // Rotation: a new signing key, the old one still verifies.
    let rotated = fx.app(
        fx.layer()
            .with_signing_key(Key::generate())
            .with_old_signing_key(old_key),
    );
    let reply = send(
        &rotated,
        "/insert/role/admin",
        Some(&format!("session={signed}")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        fx.record(id).await.unwrap().0["data"]["role"],
        json!("admin")
    );
    // Without the old key, the old cookie is no session.
    let strict = fx.app(fx.layer().with_signing_key(Key::generate()));
    assert_eq!(
        send(&strict, "/get/user", Some(&format!("session={signed}")))
            .await
            .body,
        "none"
    );
}

async fn host_prefix_cookie(fx: Fixture) {
    let app = fx.app(
        fx.layer()
            .with_host_prefix(true)
            .with_secure(false)
            .with_path("/app"),
    );
    let mut browser = Browser::new(app);
    let reply = browser.get("/insert/a/1").await;
    let cookie = reply.set_cookie().unwrap();
    assert!(cookie.starts_with("__Host-session="), "{cookie}");
    assert!(
        cookie.contains("; Path=/;") && cookie.contains("; Secure"),
        "{cookie}"
    );
    assert_eq!(browser.get("/get/a").await.body, "1");
    // The unprefixed name is not ours.
    let pair = reply.cookie_pair().unwrap().replace("__Host-", "");
    assert_eq!(send(&browser.app, "/get/a", Some(&pair)).await.body, "none");
}

async fn configured_cookie_attributes_and_the_removal_cookie(fx: Fixture) {
    let layer = fx
        .layer()
        .with_cookie_name("sid")
        .with_path("/app")
        .with_domain("example.com")
        .with_secure(false)
        .with_http_only(false)
        .with_same_site(SameSite::Lax);
    let mut browser = Browser::new(fx.app(layer));
    let reply = browser.get("/insert/a/1").await;
    let id = browser.cookie("sid").unwrap().to_owned();
    assert_eq!(
        reply.set_cookie(),
        Some(
            format!("sid={id}; Path=/app; Domain=example.com; SameSite=Lax; Max-Age=86400")
                .as_str()
        )
    );
    let reply = browser.get("/destroy").await;
    assert_eq!(
        reply.set_cookie(),
        Some(
            "sid=; Path=/app; Domain=example.com; SameSite=Lax; Max-Age=0; \
             Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        )
    );
}

async fn manager_creates_loads_updates_and_destroys(fx: Fixture) {
    let layer = fx.layer();
    let manager = layer.manager();
    let app = fx.app(layer);

    let session = manager.create();
    let id = session.id().await.unwrap();
    session.insert("user", "ada").await.unwrap();
    assert!(manager.set_cookie_header(&session).await.unwrap().is_none());
    session.save().await.unwrap();
    assert_eq!(session.id().await.unwrap(), id, "saved under the ID it had");
    let header = manager.set_cookie_header(&session).await.unwrap().unwrap();
    assert!(header
        .to_str()
        .unwrap()
        .starts_with(&format!("session={id};")));

    let cookie = format!("session={id}");
    assert_eq!(send(&app, "/get/user", Some(&cookie)).await.body, "\"ada\"");

    let loaded = manager.load(&id).await.unwrap().expect("stored");
    loaded.insert("role", "admin").await.unwrap();
    loaded.save().await.unwrap();
    assert_eq!(
        send(&app, "/get/role", Some(&cookie)).await.body,
        "\"admin\""
    );

    assert!(manager.destroy(&id).await.unwrap());
    assert!(!manager.destroy(&id).await.unwrap());
    assert!(manager.load(&id).await.unwrap().is_none());
    assert_eq!(send(&app, "/get/user", Some(&cookie)).await.body, "none");

    // An empty session is never stored.
    let empty = manager.create();
    empty.save().await.unwrap();
    assert!(manager
        .load(&empty.id().await.unwrap())
        .await
        .unwrap()
        .is_none());
}

async fn a_save_after_a_concurrent_destroy_does_not_resurrect(fx: Fixture) {
    let manager = fx.layer().manager();
    let created = manager.create();
    created.insert("user", "ada").await.unwrap();
    created.save().await.unwrap();
    let id = created.id().await.unwrap();

    let request = manager.load(&id).await.unwrap().unwrap();
    assert!(manager.destroy(&id).await.unwrap(), "a concurrent logout");
    request.insert("cart", json!([1])).await.unwrap();
    request.save().await.unwrap();
    if fx.has_cas() {
        assert!(
            manager.load(&id).await.unwrap().is_none(),
            "not resurrected"
        );
    } else {
        // Without compare-and-swap the last writer wins, even over a destroy.
        assert!(manager.load(&id).await.unwrap().is_some());
    }
}

async fn concurrent_requests_changing_different_keys_both_persist(fx: Fixture) {
    let layer = fx.layer();
    let app = fx.app(layer.clone());
    let id = send(&app, "/insert/base/0", None)
        .await
        .cookie_value()
        .unwrap();
    let cookie = format!("session={id}");
    let race = session_support::race_app(layer.clone(), 2);

    for round in 0..5 {
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        let (ra, rb) = tokio::join!(
            tokio::spawn({
                let (race, cookie) = (race.clone(), cookie.clone());
                async move { send(&race, &format!("/race/{a}"), Some(&cookie)).await }
            }),
            tokio::spawn({
                let (race, cookie) = (race.clone(), cookie.clone());
                async move { send(&race, &format!("/race/{b}"), Some(&cookie)).await }
            }),
        );
        assert_eq!(ra.unwrap().status, StatusCode::OK);
        assert_eq!(rb.unwrap().status, StatusCode::OK);
    }
    let data = fx.record(&id).await.unwrap().0["data"].clone();
    for round in 0..5 {
        assert_eq!(data[format!("a{round}")], json!(true), "{data}");
        assert_eq!(data[format!("b{round}")], json!(true), "{data}");
    }
    assert_eq!(data["base"], json!(0));
    assert!(layer.stats().conflicts >= 5, "{:?}", layer.stats());
}

async fn concurrent_writes_to_the_same_key_last_writer_wins(fx: Fixture) {
    let manager = fx.layer().manager();
    let created = manager.create();
    created.insert("color", "red").await.unwrap();
    created.insert("size", 1).await.unwrap();
    created.save().await.unwrap();
    let id = created.id().await.unwrap();

    let first = manager.load(&id).await.unwrap().unwrap();
    let second = manager.load(&id).await.unwrap().unwrap();
    first.insert("color", "green").await.unwrap();
    second.insert("color", "blue").await.unwrap();
    second.remove_value("size").await.unwrap();
    first.save().await.unwrap();
    second.save().await.unwrap();
    let last = manager.load(&id).await.unwrap().unwrap();
    assert_eq!(
        last.get::<String>("color").await.unwrap().as_deref(),
        Some("blue")
    );
    assert_eq!(last.get_value("size").await.unwrap(), None);
    // The first writer's view was brought up to date by nothing: it keeps its own copy.
    assert_eq!(
        first.get::<String>("color").await.unwrap().as_deref(),
        Some("green")
    );
}

// ---- checks that need no particular backend ----

#[tokio::test]
async fn without_compare_and_swap_the_last_writer_wins() {
    let fx = Fixture::plain().await;
    let layer = fx.layer();
    let app = fx.app(layer.clone());
    let id = send(&app, "/insert/base/0", None)
        .await
        .cookie_value()
        .unwrap();
    let cookie = format!("session={id}");
    let race = session_support::race_app(layer.clone(), 2);
    let (ra, rb) = tokio::join!(
        send(&race, "/race/a", Some(&cookie)),
        send(&race, "/race/b", Some(&cookie)),
    );
    assert_eq!((ra.status, rb.status), (StatusCode::OK, StatusCode::OK));
    let data = fx.record(&id).await.unwrap().0["data"].clone();
    let landed = [&data["a"], &data["b"]]
        .iter()
        .filter(|v| **v == &json!(true))
        .count();
    assert_eq!(
        landed, 1,
        "one whole-record overwrite lost the other: {data}"
    );
    assert_eq!(layer.stats().conflicts, 0);
}

#[tokio::test]
async fn missing_layer_answers_500_naming_it() {
    async fn handler(_session: Session) -> &'static str {
        "unreachable"
    }
    async fn optional(session: Option<Session>) -> &'static str {
        if session.is_some() {
            "some"
        } else {
            "none"
        }
    }
    let app = Router::new()
        .route("/", get(handler))
        .route("/optional", get(optional));
    let reply = send(&app, "/", None).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.body.contains("SessionLayer"), "{}", reply.body);
    assert_eq!(send(&app, "/optional", None).await.body, "none");
}

#[tokio::test]
async fn session_error_response_reveals_nothing() {
    use axum::response::IntoResponse;
    let error = SessionError::Conflict { attempts: 8 };
    let response = error.into_response();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(&body[..], b"session error");
}
