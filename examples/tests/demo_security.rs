//! The demo against the attacks of a security pass. Through a victim's browser: cross-site
//! state-changing requests are refused (login CSRF), every answer carries a strict
//! Content-Security-Policy, `X-Frame-Options` and `nosniff`, the page runs no inline code, two
//! session cookies (cookie tossing) sign nobody in, and behind an HTTPS origin the cookie is
//! `__Host-session`. Without signing in: long queries and hosts cannot fill the store through
//! the cache.

mod support;

use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, SET_COOKIE};
use support::{client, cookie_pair, login, DemoProcess};

fn start(args: &[&str]) -> (tempfile::TempDir, DemoProcess) {
    let dir = tempfile::tempdir().unwrap();
    let demo = DemoProcess::start(dir.path(), "memory:", args);
    (dir, demo)
}

/// `POST /login` as `user` with these extra headers: the status and the session cookie set.
async fn post_login(
    demo: &DemoProcess,
    user: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>) {
    let mut request = client().post(demo.at("/login")).form(&[("user", user)]);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let cookie = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("session="))
        .map(str::to_owned);
    (response.status().as_u16(), cookie)
}

#[tokio::test]
async fn a_cross_site_login_is_refused_and_sets_no_cookie() {
    let (_dir, demo) = start(&[]);
    // A form on evil.example posting to the demo, as a browser sends it.
    for headers in [
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ][..],
        &[("origin", "https://evil.example")][..],
        &[
            ("sec-fetch-site", "same-site"),
            ("origin", "http://sub.127.0.0.1"),
        ][..],
        &[("origin", "null")][..],
    ] {
        let (status, cookie) = post_login(&demo, "attacker", headers).await;
        assert_eq!(status, 403, "{headers:?}");
        assert_eq!(cookie, None, "{headers:?}: a refused login set a cookie");
    }
    // The same for the other state-changing routes.
    let forged = client()
        .post(demo.at("/logout"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    // The demo's own page, and a client that is not a browser, sign in as before.
    let own = demo.url.clone();
    let (status, cookie) = post_login(
        &demo,
        "ada",
        &[("sec-fetch-site", "same-origin"), ("origin", own.as_str())],
    )
    .await;
    assert_eq!(status, 303);
    assert!(cookie.is_some());
    login(&client(), &demo, "curl-user").await;
}

#[tokio::test]
async fn answers_carry_the_security_headers_and_the_page_has_no_inline_code() {
    let (_dir, demo) = start(&[]);
    for path in [
        "/",
        "/api/ping",
        "/api/flags",
        "/me",
        "/assets/demo.css",
        "/nope",
    ] {
        let response = client().get(demo.at(path)).send().await.unwrap();
        let headers = response.headers();
        let csp = headers
            .get(CONTENT_SECURITY_POLICY)
            .unwrap_or_else(|| panic!("{path}: no Content-Security-Policy"))
            .to_str()
            .unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    }
    let page = client()
        .get(demo.at("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Under `script-src 'self'` inline code would not run: the page has none.
    assert!(!page.contains("<style"), "{page}");
    assert!(!page.contains("<script>"), "{page}");
    let handler = page.split(" on").skip(1).find(|rest| {
        let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        name_len > 0 && rest[name_len..].starts_with('=')
    });
    assert_eq!(handler, None, "an inline event handler: {page}");
    assert!(page.contains("<script src=\"/assets/demo.js\">"), "{page}");
    for (path, kind) in [
        ("/assets/demo.js", "text/javascript"),
        ("/assets/demo.css", "text/css"),
    ] {
        let asset = client().get(demo.at(path)).send().await.unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        assert!(
            asset.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{path}"
        );
    }
}

#[tokio::test]
async fn two_session_cookies_sign_nobody_in() {
    let (_dir, demo) = start(&[]);
    let http = client();
    let victim = login(&http, &demo, "victim").await;
    let attacker = login(&http, &demo, "attacker").await;
    for cookies in [
        format!("{attacker}; {victim}"),
        format!("{victim}; {attacker}"),
    ] {
        let me = http
            .get(demo.at("/me"))
            .header(COOKIE, &cookies)
            .send()
            .await
            .unwrap();
        assert_eq!(
            me.status(),
            401,
            "{cookies}: a tossed cookie chose the user"
        );
    }
    // Each alone still works.
    for (cookie, user) in [(&victim, "victim"), (&attacker, "attacker")] {
        let me = http
            .get(demo.at("/me"))
            .header(COOKIE, cookie.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
        assert_eq!(me.json::<serde_json::Value>().await.unwrap()["user"], user);
    }
}

#[tokio::test]
async fn behind_an_https_origin_the_cookie_is_host_prefixed() {
    let (_dir, demo) = start(&["--public-origin", "https://shop.example"]);
    // The proxy rewrote Host to the demo's address; the browser's Origin is the public one.
    let (status, cookie) = post_login(
        &demo,
        "ada",
        &[
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://shop.example"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let cookie = cookie.expect("a session cookie");
    assert!(cookie.starts_with("__Host-session="), "{cookie}");
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
    let me = client()
        .get(demo.at("/me"))
        .header(COOKIE, cookie_pair(&cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    // A cookie without the prefix (what a sibling subdomain could plant) is not read.
    let planted = cookie_pair(&cookie).replacen("__Host-session=", "session=", 1);
    let me = client()
        .get(demo.at("/me"))
        .header(COOKIE, planted)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    // Another site is still refused.
    let (status, _) = post_login(
        &demo,
        "mallory",
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(status, 403);
}

#[test]
fn a_malformed_public_origin_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kv-demo"))
        .args(["--listen", "127.0.0.1:0", "--store", "memory:"])
        .args(["--public-origin", "https://shop.example/path"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--public-origin"), "{stderr}");
}

/// Directory size in bytes, all files under `dir`.
fn size_of(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                size_of(&entry.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

#[tokio::test]
async fn long_queries_and_hosts_do_not_fill_the_store_through_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file:{}", dir.path().join("kv-data").display());
    let demo = DemoProcess::start(dir.path(), &store, &[]);
    let http = client();
    let first = http.get(demo.at("/api/slow")).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let before = size_of(&dir.path().join("kv-data"));
    let long = "q".repeat(60 * 1024);
    for i in 0..100 {
        let url = demo.at(&format!("/api/slow?{i}={long}"));
        let response = http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let big_host = format!("{}.example", "h".repeat(30 * 1024));
    for i in 0..50 {
        let response = http
            .get(demo.at("/api/slow"))
            .header("host", format!("{i}{big_host}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        // One entry for every URL and host: all hits after the first miss.
        let status = response.headers()["cache-status"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(status.contains("hit"), "{status}");
    }
    let grown = size_of(&dir.path().join("kv-data")) - before;
    // Storing the 100 queries and 50 hosts once each would take over 7 MB.
    assert!(grown < 1024 * 1024, "the store grew by {grown} bytes");
}
