//! A real browser against the real `kv-demo`: headless Chromium, driven through chromedriver,
//! signs in through the form, reloads, presses the counter and signs out.
//!
//! Chromium and chromedriver must be installed (`.ci/run` installs Debian's `chromium` and
//! `chromium-driver`); without them this test fails, it is never skipped.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::json;
use support::DemoProcess;

#[path = "support/chromium.rs"]
mod chromium;

use chromium::{browser, ChromeDriver};

/// Waits until the element's text is `expected`.
async fn wait_for_text(browser: &Client, css: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = match browser.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{css}: {text:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where the screenshot goes: this test's folder under Cargo's target tmp directory.
fn output_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_reload_count_and_sign_out_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let demo = DemoProcess::start(dir.path(), "file:./kv-data", &[]);
    let driver = ChromeDriver::start();
    let browser = browser(&driver, &dir.path().join("chromium-profile"), (1000, 900)).await;
    let result = drive(&browser, &demo).await;
    browser.close().await.expect("close the browser");
    result.expect("the browser session");
}

async fn drive(browser: &Client, demo: &DemoProcess) -> Result<(), fantoccini::error::CmdError> {
    browser.goto(&demo.at("/")).await?;
    assert_eq!(browser.title().await?, "kv-demo");
    let name = browser.find(Locator::Id("user")).await?;
    name.send_keys("Ada Lovelace").await?;
    browser.find(Locator::Id("sign-in")).await?.click().await?;
    wait_for_text(browser, "#greeting", "Signed in as Ada Lovelace").await;
    assert_eq!(
        browser.current_url().await?.path(),
        "/",
        "303 back to the page"
    );

    let screenshot = browser.screenshot().await?;
    assert!(screenshot.starts_with(b"\x89PNG"), "a PNG screenshot");
    let path = output_dir().join("signed-in.png");
    std::fs::write(&path, &screenshot).unwrap();
    eprintln!("screenshot of the signed-in page: {}", path.display());

    // The cookie is HttpOnly: page scripts cannot read it.
    let visible = browser.execute("return document.cookie", vec![]).await?;
    assert_eq!(visible, json!(""), "the session cookie is HttpOnly");

    browser.refresh().await?;
    wait_for_text(browser, "#greeting", "Signed in as Ada Lovelace").await;

    let counter = browser.find(Locator::Id("counter")).await?;
    counter.click().await?;
    wait_for_text(browser, "#count", "1").await;
    counter.click().await?;
    wait_for_text(browser, "#count", "2").await;
    browser.refresh().await?;
    wait_for_text(browser, "#count", "2").await;

    browser.find(Locator::Id("sign-out")).await?.click().await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while browser.find(Locator::Id("sign-in")).await.is_err() {
        assert!(Instant::now() < deadline, "no sign-in form after sign-out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        browser.find(Locator::Id("greeting")).await.is_err(),
        "signed out"
    );
    browser.refresh().await?;
    assert!(browser.find(Locator::Id("sign-in")).await.is_ok());
    Ok(())
}
