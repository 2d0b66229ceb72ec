//! End-to-end tests of the real `kv-demo` binary on its default (file) store: sessions, rate
//! limits, the cache, flags, config and the admin routes, over HTTP.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{client, get_json, login, session_set_cookie, with_cookie, DemoProcess};

const ADMIN: &str = "admin-secret";

fn start(dir: &tempfile::TempDir, args: &[&str]) -> DemoProcess {
    let store = format!("file:{}", dir.path().join("kv-data").display());
    DemoProcess::start(dir.path(), &store, args)
}

#[tokio::test]
async fn default_store_is_the_file_store_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kv-demo"));
    command.arg("--help");
    let help = String::from_utf8(command.output().unwrap().stdout).unwrap();
    assert!(help.contains("[default: file:./kv-data]"), "{help}");
    assert!(help.contains("[default: 127.0.0.1:3000]"), "{help}");
    assert!(help.contains("[default: 60/min]"), "{help}");
    assert!(help.contains("[default: 5/min]"), "{help}");

    let demo = DemoProcess::start(dir.path(), "file:./kv-data", &[]);
    assert!(
        demo.banner.contains("store: file:./kv-data"),
        "{}",
        demo.banner
    );
    assert!(demo.banner.contains("file backend"), "{}", demo.banner);
    assert!(dir.path().join("kv-data").is_dir());
    let page = client().get(demo.at("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let body = page.text().await.unwrap();
    assert!(body.contains("name=\"user\""), "sign-in form: {body}");
    assert!(body.contains("href=\"/api/slow\""), "{body}");
    assert!(demo.terminate(), "a clean exit on SIGTERM");
}

#[tokio::test]
async fn session_flow_cycles_the_id_at_login_and_logout_invalidates_the_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start(&dir, &[]);
    let http = client();

    // Reading pages as a visitor stores nothing and sets no cookie.
    let page = http.get(demo.at("/")).send().await.unwrap();
    assert!(session_set_cookie(page.headers()).is_none());
    let me = get_json(&http, &demo.at("/me"), None, 401).await;
    assert!(me["error"].is_string(), "{me}");

    // An anonymous session (the counter), then login: a new ID, the same session data.
    let counted = http.post(demo.at("/counter")).send().await.unwrap();
    let before_login = session_set_cookie(counted.headers()).expect("counter sets a cookie");
    assert_eq!(counted.json::<Value>().await.unwrap(), json!({"count": 1}));
    let before_login = support::cookie_pair(&before_login);

    let response = with_cookie(http.post(demo.at("/login")), &before_login)
        .form(&[("user", "Ada Lovelace")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/");
    let set_cookie = session_set_cookie(response.headers()).expect("login sets a cookie");
    let attributes: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(
            attributes.contains(&attribute),
            "{attribute} in {set_cookie}"
        );
    }
    assert!(
        attributes.iter().any(|a| a.starts_with("Max-Age=")),
        "{set_cookie}"
    );
    let session = support::cookie_pair(&set_cookie);
    assert_ne!(session, before_login, "login cycles the session ID");
    let id = session.trim_start_matches("session=");
    assert!(id.len() >= 43, "at least 256 bits of ID: {id}");

    assert_eq!(
        get_json(&http, &demo.at("/me"), Some(&session), 200).await,
        json!({"user": "Ada Lovelace"})
    );
    // The ID from before login no longer names a session.
    get_json(&http, &demo.at("/me"), Some(&before_login), 401).await;

    let page = with_cookie(http.get(demo.at("/")), &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Signed in as <strong>Ada Lovelace</strong>"),
        "{page}"
    );
    assert!(page.contains("id=\"sign-out\""), "{page}");

    // The counter starts again at login and counts per session.
    for expected in 1..=3 {
        let response = with_cookie(http.post(demo.at("/counter")), &session)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"count": expected})
        );
    }
    let other = login(&http, &demo, "grace").await;
    let response = with_cookie(http.post(demo.at("/counter")), &other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"count": 1}));

    // Logout: the cookie is removed and the old one is dead even if the browser keeps it.
    let response = with_cookie(http.post(demo.at("/logout")), &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/");
    let removal = session_set_cookie(response.headers()).expect("logout removes the cookie");
    assert!(
        removal.contains("Max-Age=0") || removal.contains("Expires=Thu, 01 Jan 1970"),
        "{removal}"
    );
    get_json(&http, &demo.at("/me"), Some(&session), 401).await;
    // The other user's session is untouched.
    assert_eq!(
        get_json(&http, &demo.at("/me"), Some(&other), 200).await,
        json!({"user": "grace"})
    );
}

#[tokio::test]
async fn login_rejects_names_outside_1_to_64_characters() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start(&dir, &["--login-quota", "100/min"]);
    let http = client();
    let long = "é".repeat(65);
    for user in ["", "   ", long.as_str()] {
        let response = http
            .post(demo.at("/login"))
            .form(&[("user", user)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "user {user:?}");
        assert!(session_set_cookie(response.headers()).is_none());
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("1 to 64"),
            "{body}"
        );
    }
    let response = http.post(demo.at("/login")).send().await.unwrap();
    assert_eq!(response.status(), 400, "no form at all");
    // 64 characters (128 bytes) is fine.
    let cookie = login(&http, &demo, &"é".repeat(64)).await;
    assert_eq!(
        get_json(&http, &demo.at("/me"), Some(&cookie), 200).await["user"],
        json!("é".repeat(64))
    );
}

#[tokio::test]
async fn api_and_login_quotas_answer_429_with_the_draft_headers() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start(&dir, &["--api-quota", "3/min", "--login-quota", "2/h"]);
    let http = client();
    for remaining in [2, 1, 0] {
        let response = http.get(demo.at("/api/ping")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["ratelimit-policy"], "\"api\";q=3;w=60");
        let ratelimit = response.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(
            ratelimit.starts_with(&format!("\"api\";r={remaining};t=")),
            "{ratelimit}"
        );
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.json::<Value>().await.unwrap(), json!({"ok": true}));
    }
    let denied = http.get(demo.at("/api/ping")).send().await.unwrap();
    assert_eq!(denied.status(), 429);
    let retry_after: u64 = denied.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // One request refills every 20 s.
    assert!((1..=20).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(denied.headers()["ratelimit-policy"], "\"api\";q=3;w=60");
    assert!(denied.headers()["ratelimit"]
        .to_str()
        .unwrap()
        .starts_with("\"api\";r=0;t="));
    assert_eq!(denied.headers()["content-type"], "application/problem+json");
    let problem: Value = denied.json().await.unwrap();
    assert_eq!(problem["status"], 429, "{problem}");

    // The login limit is its own quota: the API being exhausted does not touch it.
    login(&http, &demo, "ada").await;
    login(&http, &demo, "ada").await;
    let denied = http
        .post(demo.at("/login"))
        .form(&[("user", "ada")])
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 429);
    assert_eq!(denied.headers()["ratelimit-policy"], "\"login\";q=2;w=3600");
    assert!(
        session_set_cookie(denied.headers()).is_none(),
        "a denied login signs nobody in"
    );
}

async fn slow(
    http: &reqwest::Client,
    demo: &DemoProcess,
) -> (String, Option<u64>, Value, Duration) {
    let start = Instant::now();
    let response = http.get(demo.at("/api/slow")).send().await.unwrap();
    let elapsed = start.elapsed();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"],
        "max-age=2, stale-while-revalidate=30, stale-if-error=300"
    );
    let status = response.headers()["cache-status"]
        .to_str()
        .unwrap()
        .to_owned();
    let age = response
        .headers()
        .get("age")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, age, response.json().await.unwrap(), elapsed)
}

#[tokio::test]
async fn slow_origin_miss_then_hit_then_stale_with_a_background_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start(&dir, &[]);
    let http = client();

    let (status, age, miss, elapsed) = slow(&http, &demo).await;
    assert!(
        status.contains("fwd=uri-miss") && status.contains("stored"),
        "{status}"
    );
    assert_eq!(age, None);
    assert_eq!(miss["origin_calls"], 1);
    assert!(
        elapsed >= Duration::from_millis(200),
        "the origin takes 200 ms"
    );

    let (status, age, hit, _) = slow(&http, &demo).await;
    assert!(status.starts_with("kv; hit"), "{status}");
    assert!(age.is_some_and(|age| age <= 2), "Age {age:?}");
    assert_eq!(hit, miss, "the same stored response");

    // Past max-age=2: served stale at once while one refresh runs in the background. (The
    // binary runs on the system clock, so this waits; the layer's own tests use a manual one.)
    let generated_at = miss["generated_at"].as_u64().unwrap();
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let fresh_until = generated_at + 3_000;
    tokio::time::sleep(Duration::from_millis(fresh_until.saturating_sub(now_ms()))).await;
    let (status, age, stale, _) = slow(&http, &demo).await;
    assert!(
        status.contains("hit") && status.contains("detail=stale-while-revalidate"),
        "{status}"
    );
    assert!(age.is_some_and(|age| age >= 2), "Age {age:?}");
    assert_eq!(stale["origin_calls"], 1, "the stale copy, not the origin");

    // The refresh lands without another client waiting on the origin.
    let deadline = Instant::now() + Duration::from_secs(10);
    let refreshed = loop {
        let (status, _, body, _) = slow(&http, &demo).await;
        if body["origin_calls"] == 2 {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "no background refresh: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(refreshed.starts_with("kv; hit"), "{refreshed}");
    let (_, _, body, _) = slow(&http, &demo).await;
    assert_eq!(
        body["origin_calls"], 2,
        "one refresh, not one per stale request"
    );
}

async fn flags_for(http: &reqwest::Client, demo: &DemoProcess, user: &str) -> Value {
    let response = http
        .get(demo.at("/api/flags"))
        .header("x-user-id", user)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json::<Value>().await.unwrap()["flags"].clone()
}

#[tokio::test]
async fn flags_differ_by_user_and_are_stable_per_user() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start(&dir, &[]);
    let http = client();
    let mut on = 0;
    for n in 0..100 {
        let user = format!("user-{n}");
        let first = flags_for(&http, &demo, &user).await;
        let new_ui = &first["new-ui"];
        assert_eq!(new_ui["reason"], "SPLIT", "{first}");
        assert_eq!(
            new_ui["variant"],
            if new_ui["value"] == true { "on" } else { "off" }
        );
        assert_eq!(
            flags_for(&http, &demo, &user).await,
            first,
            "stable for {user}"
        );
        if new_ui["value"] == true {
            on += 1;
        }
    }
    // A 50 % split over 100 users: far from all or none (binomial, p < 1e-9 outside).
    assert!((20..=80).contains(&on), "{on} of 100 users see the new UI");

    // A signed-in user is evaluated as themselves, and the page shows the flag's look.
    let cookie = login(&http, &demo, "user-7").await;
    let response = with_cookie(http.get(demo.at("/api/flags")), &cookie)
        .header("x-user-id", "someone-else")
        .send()
        .await
        .unwrap();
    let signed_in: Value = response.json().await.unwrap();
    assert_eq!(signed_in["user"], "user-7");
    assert_eq!(signed_in["flags"], flags_for(&http, &demo, "user-7").await);
    let page = with_cookie(http.get(demo.at("/")), &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let class = if signed_in["flags"]["new-ui"]["value"] == true {
        "class=\"new-ui\""
    } else {
        "class=\"classic-ui\""
    };
    assert!(page.contains(class), "{class} in {page}");
}

#[tokio::test]
async fn admin_routes_are_off_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start(&dir, &[]);
    let response = client()
        .put(demo.at("/admin/flags/new-ui"))
        .bearer_auth("anything")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(demo.banner.contains("admin routes off"), "{}", demo.banner);
}

#[tokio::test]
async fn admin_flag_and_config_changes_are_validated_and_visible_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start(&dir, &["--admin-token", ADMIN]);
    let http = client();
    let admin = |request: reqwest::RequestBuilder| request.bearer_auth(ADMIN);

    // No token, a wrong token: 401 with the envelope.
    for token in [
        None,
        Some("wrong"),
        Some("admin-secre"),
        Some("admin-secret2"),
    ] {
        let mut request = http.get(demo.at("/admin/config/versions"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "token {token:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert!(response.json::<Value>().await.unwrap()["error"].is_string());
    }

    // Invalid flag documents: 400 with the reason.
    for (body, expect) in [
        ("not json", "invalid flag document"),
        (
            r#"{"state":"ENABLED","variants":{"on":true},"defaultVariant":"missing"}"#,
            "missing",
        ),
        (
            r#"{"state":"ENABLED","variants":{"on":true},"defaultVariant":"on","typo":1}"#,
            "typo",
        ),
    ] {
        let response = admin(http.put(demo.at("/admin/flags/new-ui")))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert!(error["error"].as_str().unwrap().contains(expect), "{error}");
    }
    assert_eq!(
        flags_for(&http, &demo, "u1").await["new-ui"]["reason"],
        "SPLIT"
    );

    // On for everyone: every user sees it at once.
    let response = admin(http.put(demo.at("/admin/flags/new-ui")))
        .json(&json!({"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for user in ["u1", "u2", "u3"] {
        let flags = flags_for(&http, &demo, user).await;
        assert_eq!(flags["new-ui"]["value"], true, "{flags}");
        assert_eq!(flags["new-ui"]["reason"], "STATIC", "{flags}");
    }
    // A new flag, then its deletion.
    let response = admin(http.put(demo.at("/admin/flags/dark-mode")))
        .json(&json!({"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        flags_for(&http, &demo, "u1").await["dark-mode"]["value"],
        false
    );
    let deleted = admin(http.delete(demo.at("/admin/flags/dark-mode")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(flags_for(&http, &demo, "u1")
        .await
        .get("dark-mode")
        .is_none());
    let again = admin(http.delete(demo.at("/admin/flags/dark-mode")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);

    // Config: invalid → 400 and nothing changes; valid → a new version, live at once.
    let original = get_json(&http, &demo.at("/api/config"), None, 200).await;
    assert_eq!(original["version"], 1);
    let bad = admin(http.put(demo.at("/admin/config")))
        .json(&json!({"public": {"title": "x", "counter_step": 0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("counter_step"));
    let good = admin(http.put(demo.at("/admin/config")))
        .json(&json!({"public": {"title": "Shop", "counter_step": 5}, "private": {"k": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 200);
    assert_eq!(good.json::<Value>().await.unwrap(), json!({"version": 2}));
    let public = get_json(&http, &demo.at("/api/config"), None, 200).await;
    assert_eq!(
        public,
        json!({"version": 2, "config": {"title": "Shop", "banner": null, "counter_step": 5}}),
        "the private part stays private"
    );
    let cookie = login(&http, &demo, "ada").await;
    let counted = with_cookie(http.post(demo.at("/counter")), &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(counted.json::<Value>().await.unwrap(), json!({"count": 5}));

    let versions = admin(http.get(demo.at("/admin/config/versions")))
        .send()
        .await
        .unwrap();
    let versions: Value = versions.json().await.unwrap();
    assert_eq!(versions["current"], 2);
    let numbers: Vec<u64> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2]);

    let rolled = admin(http.post(demo.at("/admin/config/rollback/1")))
        .send()
        .await
        .unwrap();
    assert_eq!(rolled.status(), 200);
    assert_eq!(rolled.json::<Value>().await.unwrap()["version"], 3);
    let public = get_json(&http, &demo.at("/api/config"), None, 200).await;
    assert_eq!(public["version"], 3);
    assert_eq!(public["config"], original["config"]);
    let missing = admin(http.post(demo.at("/admin/config/rollback/99")))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn sessions_flags_and_config_survive_a_restart_on_the_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let http = client();
    let demo = start(&dir, &["--admin-token", ADMIN]);
    let cookie = login(&http, &demo, "ada").await;
    let response = http
        .put(demo.at("/admin/config"))
        .bearer_auth(ADMIN)
        .json(&json!({"public": {"title": "Kept", "counter_step": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(demo.terminate());

    let demo = start(&dir, &[]);
    assert_eq!(
        get_json(&http, &demo.at("/me"), Some(&cookie), 200).await,
        json!({"user": "ada"})
    );
    let config = get_json(&http, &demo.at("/api/config"), None, 200).await;
    assert_eq!(
        config["version"], 2,
        "the restart did not re-seed: {config}"
    );
    assert_eq!(config["config"]["title"], "Kept");
}
