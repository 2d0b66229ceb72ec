//! The console in a real browser: headless Chromium, driven through chromedriver, signs in,
//! creates a namespace, adds a key with metadata and a TTL, finds it by prefix, edits it, sees
//! a conflicting edit refused, deletes it, and deletes a namespace with a typed confirmation.
//! A screenshot of each page lands in `target/tmp/console-screenshots/` (paths printed).
//!
//! Chromium and chromedriver must be installed (`.ci/run` installs Debian's `chromium` and
//! `chromium-driver`); without them this test fails, it is never skipped.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use kv_server::console::ConsoleConfig;
use kv_server::ServerConfig;
use serde_json::{json, Value};
use support::TestServer;

const TOKEN: &str = "browser-token-41b7e2c9d0-secret";

#[path = "../../examples/tests/support/chromium.rs"]
mod chromium;

use chromium::{browser, ChromeDriver};

/// Waits until the element exists and its text satisfies `check`; returns the text.
async fn wait_for(browser: &Client, css: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = match browser.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.ok(),
            Err(_) => None,
        };
        if let Some(text) = &text {
            if check(text) {
                return text.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{css}: {text:?}, expected {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_text(browser: &Client, css: &str, expected: &str) {
    wait_for(browser, css, expected, |text| text == expected).await;
}

async fn wait_contains(browser: &Client, css: &str, part: &str) -> String {
    wait_for(browser, css, &format!("text containing {part:?}"), |text| {
        text.contains(part)
    })
    .await
}

/// Where the screenshots go: this test's folder under Cargo's target tmp directory.
fn output_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &Client, name: &str) -> Result<(), fantoccini::error::CmdError> {
    let png = browser.screenshot().await?;
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let path = output_dir().join(format!("{name}.png"));
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {}", path.display());
    Ok(())
}

/// A folder for files the browser uploads.
fn server_dir() -> PathBuf {
    let dir = output_dir().join("uploads");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Replaces a field's text, once the field is on the page.
async fn fill(browser: &Client, css: &str, text: &str) -> Result<(), fantoccini::error::CmdError> {
    wait_for(browser, css, "the field", |_| true).await;
    let field = browser.find(Locator::Css(css)).await?;
    field.clear().await?;
    field.send_keys(text).await
}

async fn click(browser: &Client, css: &str) -> Result<(), fantoccini::error::CmdError> {
    browser.find(Locator::Css(css)).await?.click().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig::default()
        .with_token(TOKEN)
        .with_console(ConsoleConfig::default());
    let server = TestServer::start(config).await;
    let driver = ChromeDriver::start();
    let browser = browser(&driver, &dir.path().join("chromium-profile"), (1100, 900)).await;
    let result = drive(&browser, &server).await;
    browser.close().await.expect("close the browser");
    result.expect("the browser session");
}

async fn drive(browser: &Client, server: &TestServer) -> Result<(), fantoccini::error::CmdError> {
    let origin = format!("http://{}", server.addr);
    browser.goto(&format!("{origin}/")).await?;
    assert_eq!(
        browser.current_url().await?.path(),
        "/console",
        "/ redirects"
    );
    wait_text(browser, "#signin-view h1", "Sign in").await;
    screenshot(browser, "1-sign-in").await?;

    // A wrong token first: refused, still signed out.
    fill(browser, "#token", "not-the-token").await?;
    click(browser, "#sign-in").await?;
    wait_contains(browser, "#message", "wrong token").await;
    fill(browser, "#token", TOKEN).await?;
    click(browser, "#sign-in").await?;
    wait_text(browser, "#view h1", "Namespaces").await;

    // The sign-in cookie is HttpOnly: page scripts cannot read it.
    let visible = browser.execute("return document.cookie", vec![]).await?;
    assert_eq!(visible, json!(""), "the console cookie is HttpOnly");

    // Create a namespace: the page moves to its keys.
    fill(browser, "#new-namespace", "SHOP").await?;
    click(browser, "#create-namespace").await?;
    wait_text(browser, "#ns-title", "SHOP").await;
    screenshot(browser, "2-namespace").await?;
    let ns = server.store.namespace("SHOP").await.unwrap();
    ns.put_text("other", "not a product").await.unwrap();

    // Bulk upload a JSON file in the bulk format: sent in chunks, with a progress bar.
    let items: Vec<_> = (0..250)
        .map(|i| json!({"key": format!("bulk:{i:03}"), "value": format!("v{i}")}))
        .collect();
    let file = server_dir().join("bulk.json");
    std::fs::write(&file, serde_json::to_vec(&items).unwrap()).unwrap();
    browser
        .find(Locator::Css("#bulk-file"))
        .await?
        .send_keys(&file.display().to_string())
        .await?;
    click(browser, "#bulk-upload").await?;
    wait_contains(browser, "#message", "Uploaded 250 keys").await;
    wait_text(browser, "#bulk-status", "250 / 250").await;
    screenshot(browser, "2b-bulk-upload").await?;
    assert_eq!(
        ns.get_text("bulk:249").await.unwrap().as_deref(),
        Some("v249")
    );

    // Add a key with metadata and a TTL.
    fill(browser, "#new-key", "product:1").await?;
    fill(browser, "#new-value", r#"{"name":"lamp","price":12}"#).await?;
    fill(browser, "#new-metadata", r#"{"owner":"ops"}"#).await?;
    fill(browser, "#new-ttl", "7200").await?;
    click(browser, "#add-key").await?;
    wait_text(browser, "#key-name", "product:1").await;
    wait_contains(browser, "#expiry", "(in 2h)").await;
    wait_contains(browser, "#value", "\"price\": 12").await;
    wait_contains(browser, "#metadata", "\"owner\": \"ops\"").await;
    screenshot(browser, "3-key").await?;
    let stored = ns.get_entry("product:1").await.unwrap().expect("written");
    assert_eq!(stored.metadata, Some(json!({"owner": "ops"})));
    assert_eq!(stored.expiration, Some(1_700_000_000 + 7200));

    // Find it by prefix.
    click(browser, "#view h1 a").await?;
    wait_text(browser, "#ns-title", "SHOP").await;
    fill(browser, "#prefix", "product:").await?;
    click(browser, "#search-button").await?;
    wait_for(browser, "#keys tbody", "only product:1", |text| {
        text.contains("product:1") && !text.contains("other")
    })
    .await;
    screenshot(browser, "4-keys-by-prefix").await?;

    // Open and edit it.
    click(browser, ".key-link").await?;
    wait_text(browser, "#key-name", "product:1").await;
    fill(browser, "#edit-value", r#"{"name":"lamp","price":15}"#).await?;
    click(browser, "#save").await?;
    wait_contains(browser, "#message", "Saved product:1").await;
    wait_contains(browser, "#value", "\"price\": 15").await;
    assert_eq!(
        ns.get_text("product:1").await.unwrap().as_deref(),
        Some(r#"{"name":"lamp","price":15}"#)
    );
    let kept = ns.get_entry("product:1").await.unwrap().unwrap();
    assert_eq!(
        kept.expiration,
        Some(1_700_000_000 + 7200),
        "the expiry was kept"
    );

    // Someone else writes it while it is open: the edit is refused and says why.
    ns.put_text("product:1", "changed elsewhere").await.unwrap();
    fill(browser, "#edit-value", "my edit").await?;
    click(browser, "#save").await?;
    wait_contains(browser, "#message", "changed since you opened it").await;
    screenshot(browser, "5-conflict-refused").await?;
    assert_eq!(
        ns.get_text("product:1").await.unwrap().as_deref(),
        Some("changed elsewhere")
    );

    // Reload it, then delete it.
    browser.refresh().await?;
    wait_contains(browser, "#value", "changed elsewhere").await;
    click(browser, "#delete-key").await?;
    wait_contains(browser, "#message", "Deleted product:1").await;
    wait_text(browser, "#ns-title", "SHOP").await;
    assert_eq!(ns.get("product:1").await.unwrap(), None);

    // Delete a namespace: the button stays disabled until its title is typed.
    server.store.create_namespace("SCRATCH").await.unwrap();
    click(browser, "#nav-namespaces").await?;
    wait_contains(browser, "#namespaces", "SCRATCH").await;
    click(browser, "tr[data-title='SCRATCH'] .delete").await?;
    fill(browser, "#confirm-delete", "SCRATC").await?;
    let confirm = browser.find(Locator::Css("#confirm-delete-button")).await?;
    assert_eq!(confirm.attr("disabled").await?, Some("true".to_owned()));
    browser
        .find(Locator::Css("#confirm-delete"))
        .await?
        .send_keys("H")
        .await?;
    screenshot(browser, "6-delete-namespace").await?;
    click(browser, "#confirm-delete-button").await?;
    wait_contains(browser, "#message", "Deleted SCRATCH").await;
    let titles: Vec<String> = server
        .store
        .list_namespaces()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.title)
        .collect();
    assert_eq!(titles, ["SHOP"]);

    flags_and_config(browser, server).await?;
    sessions_rate_limits_and_cache(browser, server).await?;

    // The token is nowhere in the page or its URL.
    let source = browser.source().await?;
    assert!(!source.contains(TOKEN), "the token is not in the page");
    assert!(!browser.current_url().await?.as_str().contains(TOKEN));

    // Signing out returns to the form; a reload stays signed out.
    click(browser, "#sign-out").await?;
    wait_text(browser, "#signin-view h1", "Sign in").await;
    browser.refresh().await?;
    wait_text(browser, "#signin-view h1", "Sign in").await;
    Ok(())
}

/// Selects the option with this value in a `<select>`.
async fn choose(
    browser: &Client,
    select: &str,
    value: &str,
) -> Result<(), fantoccini::error::CmdError> {
    click(browser, &format!("{select} option[value='{value}']")).await
}

/// Toggles a flag and sees its evaluation change; diffs two config versions and rolls back.
async fn flags_and_config(
    browser: &Client,
    server: &TestServer,
) -> Result<(), fantoccini::error::CmdError> {
    let flags =
        kv_middleware::flags::FlagStore::builder(server.store.namespace("FLAGS").await.unwrap())
            .with_manual_refresh()
            .build();
    let definition = serde_json::from_value(json!({
        "state": "ENABLED",
        "variants": {"on": true, "off": false},
        "defaultVariant": "on",
        "targets": {"off": ["bob"]},
    }))
    .unwrap();
    flags.set_flag("new-ui", &definition).await.unwrap();
    let site = kv_middleware::config::Config::<Value>::builder(
        server.store.namespace("CONFIG").await.unwrap(),
        "site",
    )
    .with_default_value(Value::Null)
    .with_manual_refresh()
    .load()
    .await
    .unwrap();
    site.set(&json!({"title": "Spring sale", "banner": true}))
        .await
        .unwrap();
    site.set(&json!({"title": "Summer sale", "banner": true}))
        .await
        .unwrap();

    let card = ".flag[data-flag='new-ui']";
    click(browser, "#nav-flags").await?;
    wait_contains(browser, &format!("{card} h2"), "ENABLED").await;
    fill(browser, &format!("{card} .eval-key"), "ada").await?;
    click(browser, &format!("{card} .evaluate-button")).await?;
    wait_contains(
        browser,
        &format!("{card} .eval-result"),
        "value true · variant on",
    )
    .await;
    screenshot(browser, "7-flags").await?;

    // Toggle it off: the same evaluation now answers DISABLED.
    click(browser, &format!("{card} .toggle")).await?;
    wait_contains(browser, "#message", "new-ui disabled").await;
    wait_contains(browser, &format!("{card} h2"), "DISABLED").await;
    fill(browser, &format!("{card} .eval-key"), "ada").await?;
    click(browser, &format!("{card} .evaluate-button")).await?;
    wait_contains(browser, &format!("{card} .eval-result"), "reason DISABLED").await;
    screenshot(browser, "8-flag-toggled").await?;
    let stored = flags.get_flag("new-ui").await.unwrap().unwrap();
    assert_eq!(
        stored.definition.state,
        kv_middleware::flags::FlagState::Disabled
    );

    // Back on, with `off` as the default variant: ada now gets false.
    click(browser, &format!("{card} .toggle")).await?;
    wait_contains(browser, &format!("{card} h2"), "ENABLED").await;
    choose(browser, &format!("{card} .default-variant"), "off").await?;
    click(browser, &format!("{card} .set-default")).await?;
    wait_contains(browser, "#message", "default variant off").await;
    fill(browser, &format!("{card} .eval-key"), "ada").await?;
    click(browser, &format!("{card} .evaluate-button")).await?;
    wait_contains(
        browser,
        &format!("{card} .eval-result"),
        "value false · variant off",
    )
    .await;

    // Config: the live version, a diff of the two versions, and a rollback to the first.
    click(browser, "#nav-config").await?;
    click_when_there(browser, ".config-link").await?;
    wait_text(browser, "#live-version", "v2").await;
    wait_contains(browser, "#live", "Summer sale").await;
    click(browser, "#diff-button").await?;
    wait_contains(browser, "#diff", "- ").await;
    let diff = wait_contains(browser, "#diff", "+   \"title\": \"Summer sale\"").await;
    assert!(diff.contains("-   \"title\": \"Spring sale\""), "{diff}");
    screenshot(browser, "9-config-diff").await?;
    choose(browser, "#rollback-version", "1").await?;
    click(browser, "#rollback").await?;
    wait_contains(browser, "#message", "Rolled back to v1: live is now v3").await;
    wait_contains(browser, "#live", "Spring sale").await;
    wait_text(browser, "#live-version", "v3").await;
    screenshot(browser, "10-config-rolled-back").await?;
    site.refresh().await.unwrap();
    assert_eq!(site.get()["title"], "Spring sale");
    Ok(())
}

/// Clicks an element once it is on the page.
async fn click_when_there(browser: &Client, css: &str) -> Result<(), fantoccini::error::CmdError> {
    wait_for(browser, css, "an element", |_| true).await;
    click(browser, css).await
}

/// A session found by its ID, the keys limited under a quota, and a cache purge.
async fn sessions_rate_limits_and_cache(
    browser: &Client,
    server: &TestServer,
) -> Result<(), fantoccini::error::CmdError> {
    let manager = kv_middleware::session::SessionManager::new(
        server.store.namespace("SESSIONS").await.unwrap(),
    );
    let session = manager.create();
    session.insert("user", "ada").await.unwrap();
    session.save().await.unwrap();
    let id = session.id().await.unwrap().to_string();
    click(browser, "#nav-sessions").await?;
    wait_text(browser, "#session-count", "1").await;
    fill(browser, "#session-id", &id).await?;
    click(browser, "#session-find").await?;
    wait_contains(browser, "#session-data", "\"user\": \"ada\"").await;
    screenshot(browser, "11-session").await?;
    assert!(
        !browser.current_url().await?.as_str().contains(&id),
        "the ID is not in the URL"
    );

    let limiter = kv_middleware::rate_limit::RateLimiter::builder(
        server.store.namespace("RATE_LIMITS").await.unwrap(),
    )
    .with_quota("login", "2/min".parse().unwrap())
    .build()
    .unwrap();
    for _ in 0..2 {
        limiter.check("203.0.113.9", 1).await.unwrap();
    }
    limiter.check("198.51.100.7", 1).await.unwrap();
    click(browser, "#nav-rate-limits").await?;
    fill(browser, "#quota-name", "login").await?;
    fill(browser, "#quota-rate", "2/min").await?;
    click(browser, "#quota-show").await?;
    wait_contains(browser, "#rate-keys tr.limited", "203.0.113.9").await;
    wait_contains(browser, "#rate-keys", "198.51.100.7").await;
    screenshot(browser, "12-rate-limits").await?;

    let cache = server.store.namespace("HTTP_CACHE").await.unwrap();
    for key in ["/api/slow#GET@shop", "/about#GET@shop"] {
        let options = kv_core::PutOptions::new()
            .ttl(Duration::from_secs(600))
            .metadata(json!({"stored_at": 1_700_000_000_000u64 - 5_000, "bytes": 120}));
        let _ = cache.put_with(key, "entry", options).await.unwrap();
    }
    click(browser, "#nav-cache").await?;
    fill(browser, "#cache-prefix", "/api/").await?;
    click(browser, "#cache-show").await?;
    wait_contains(browser, "#cache-entries", "/api/slow").await;
    screenshot(browser, "13-cache").await?;
    click(browser, "#cache-purge").await?;
    wait_contains(browser, "#message", "Purged 1 entries under /api/").await;
    assert_eq!(cache.get("/api/slow#GET@shop").await.unwrap(), None);
    assert!(cache.get("/about#GET@shop").await.unwrap().is_some());
    Ok(())
}
