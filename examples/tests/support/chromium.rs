//! Headless Chromium through chromedriver, for the browser tests of the demo
//! (`examples/tests/browser.rs`) and of the console (`kv-server/tests/console_browser.rs`,
//! which includes this file by path).
//!
//! Chromium and chromedriver must be installed (`.ci/run` installs Debian's `chromium` and
//! `chromium-driver`); without them a test fails, it is never skipped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free loopback port; killed when dropped.
pub struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    /// Starts chromedriver on `--port=0` (the system picks a free port, so no other process can
    /// hold it) and reads the port from its "started successfully on port N" line. If it exits
    /// first, its output ends and the start fails with what it said.
    pub fn start() -> ChromeDriver {
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

/// A WebDriver session with headless Chromium through `driver`, with its profile in `profile`
/// and a window of `width` x `height`.
pub async fn browser(
    driver: &ChromeDriver,
    profile: &std::path::Path,
    (width, height): (u32, u32),
) -> Client {
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
                format!("--window-size={width},{height}"),
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
