//! A real browser against the real `kv-demo`: headless Chromium, driven through chromedriver,
//! signs in through the form, reloads, presses the counter and signs out.
//!
//! Chromium and chromedriver must be installed (`.ci/run` installs Debian's `chromium` and
//! `chromium-driver`); without them this test fails, it is never skipped.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use support::DemoProcess;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free loopback port; killed when dropped.
struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    /// Starts chromedriver on `--port=0` (the system picks a free port, so no other process can
    /// hold it) and reads the port from its "started successfully on port N" line. If it exits
    /// first, its output ends and the start fails with what it said.
    fn start() -> ChromeDriver {
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "{CHROMEDRIVER} must be installed for this test (apt-get install chromium \
                     chromium-driver; .ci/run does it): {error}"
                )
            });
        let stdout = child.stdout.take().expect("piped stdout");
        let (port_sender, port) = mpsc::channel();
        // Reads to the end so chromedriver never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut said = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let port = line
                    .split("started successfully on port ")
                    .nth(1)
                    .and_then(|rest| rest.trim().trim_end_matches('.').parse::<u16>().ok());
                if let Some(port) = port {
                    let _ = port_sender.send(Ok(port));
                }
                said.push(line);
            }
            let _ = port_sender.send(Err(said.join("\n")));
        });
        match port.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(port)) => ChromeDriver { child, port },
            Ok(Err(said)) => {
                let _ = child.wait();
                panic!("chromedriver exited without a port: {said}")
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromedriver did not start within 20 s")
            }
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &ChromeDriver, profile: &std::path::Path) -> Client {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} must be installed for this test (.ci/run installs it)"
    );
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                // This machine has no network beyond loopback: no background fetches.
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1000,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session with headless Chromium")
}

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
    let browser = browser(&driver, &dir.path().join("chromium-profile")).await;
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
