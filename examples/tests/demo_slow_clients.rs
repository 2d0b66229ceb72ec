//! Slow and silent clients against the real `kv-demo`: a partial header, a connection that
//! sends nothing, and a body that stalls are each closed at the read timeouts, so they cannot
//! hold the demo's file descriptors; under a 128-file limit, 200 of them at once do not keep a
//! real request from being answered. (The same protection as `kv serve`, from the one server
//! helper both use: `kv_server::serve_with_config`.)

mod support;

use std::time::{Duration, Instant};

use support::{client, DemoProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The timeouts the demo runs with here (the defaults are 10 s and 30 s).
const TIMEOUT_ARGS: [&str; 4] = ["--header-read-timeout", "1", "--body-read-timeout", "1"];

/// How long a closed connection may take to be noticed, well above the 1 s timeouts.
const CLOSED_WITHIN: Duration = Duration::from_secs(6);

#[derive(Debug, Clone, Copy)]
enum Slow {
    /// Sends half a request header and stops.
    PartialHeader,
    /// Connects and sends nothing.
    Silent,
    /// Sends a whole header announcing 1 000 body bytes, then 10 of them, and stops.
    StalledBody,
}

async fn open(addr: &str, kind: Slow) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let bytes: &[u8] = match kind {
        Slow::PartialHeader => b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow:",
        Slow::Silent => b"",
        Slow::StalledBody => {
            b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nuser=mall"
        }
    };
    stream.write_all(bytes).await.expect("write");
    stream
}

/// Reads until the server closes the connection; what it answered, or `None` if it was still
/// open after `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&answer).into_owned())
}

fn start() -> (tempfile::TempDir, DemoProcess) {
    let dir = tempfile::tempdir().unwrap();
    let demo = DemoProcess::start(dir.path(), "memory:", &TIMEOUT_ARGS);
    (dir, demo)
}

fn addr(demo: &DemoProcess) -> String {
    demo.url.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn each_kind_of_slow_client_is_closed_at_its_timeout() {
    let (_dir, demo) = start();
    for kind in [Slow::PartialHeader, Slow::Silent, Slow::StalledBody] {
        let started = Instant::now();
        let mut stream = open(&addr(&demo), kind).await;
        let answer = read_until_closed(&mut stream, CLOSED_WITHIN)
            .await
            .unwrap_or_else(|| panic!("{kind:?}: still open after {CLOSED_WITHIN:?}"));
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900),
            "{kind:?}: closed after {took:?}, before the 1 s timeout"
        );
        match kind {
            // Closed without an answer: no request was ever complete.
            Slow::PartialHeader | Slow::Silent => assert_eq!(answer, "", "{kind:?}"),
            // The handler's body read failed: 400, and the connection closed.
            Slow::StalledBody => assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}"),
        }
    }
    // The demo is still serving.
    let page = client().get(demo.at("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn two_hundred_slow_clients_under_a_128_file_limit_do_not_lock_out_real_requests() {
    let (_dir, demo) = start();
    let limited = std::process::Command::new("prlimit")
        .args(["--pid", &demo.pid().to_string(), "--nofile=128:128"])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(limited.success(), "prlimit failed");

    let kinds = [Slow::PartialHeader, Slow::Silent, Slow::StalledBody];
    let mut slow = Vec::new();
    for i in 0..200 {
        slow.push(open(&addr(&demo), kinds[i % kinds.len()]).await);
    }
    let opened = Instant::now();

    // While they hold every descriptor, a real request waits; once the timeouts close them it
    // is answered. Without the timeouts it would never be (the attack this guards against).
    let answered = client()
        .get(demo.at("/api/ping"))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("a real request is answered while 200 slow clients are connected");
    assert_eq!(answered.status(), 200);
    let waited = opened.elapsed();

    // Every slow connection was closed by the server, none is still held.
    let mut still_open = 0;
    for stream in &mut slow {
        if read_until_closed(stream, Duration::from_secs(10))
            .await
            .is_none()
        {
            still_open += 1;
        }
    }
    assert_eq!(
        still_open, 0,
        "slow connections still open after the timeouts"
    );
    eprintln!("real request answered {waited:?} after 200 slow clients connected");
}
