//! Starts each example binary on a port of its own choosing and makes the requests its docs
//! promise, over plain TCP, so the examples cannot rot into programs that build but do not
//! serve.
//!
//! The binaries are the ones cargo builds beside this test (`target/<profile>/examples/`); when
//! the test runs alone (`cargo test -p tower-kv --test examples`), cargo has not built them (or
//! an example changed since), so the test builds them first with the same cargo.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Once;
use std::time::Duration;

/// A running example, killed when dropped (a failed assertion included).
struct Example {
    child: Child,
    addr: String,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn examples_dir() -> PathBuf {
    // target/<profile>/deps/examples-<hash> -> target/<profile>/examples
    let exe = std::env::current_exe().expect("the test's path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps")
        .join("examples")
}

fn build_examples() {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let names = ["counter", "rate_limited", "cached", "flagged"];
        let dir = examples_dir();
        let exe = |name: &str| dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        // Built and no older than its source (a run of this test alone after an edit).
        let fresh = |name: &&str| {
            let source =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.rs"));
            let modified = |path: &PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
            matches!((modified(&exe(name)), modified(&source)), (Some(b), Some(s)) if b >= s)
        };
        if names.iter().all(fresh) {
            return;
        }
        let mut command = Command::new(env!("CARGO"));
        command.args(["build", "-p", "tower-kv", "--examples"]);
        if !cfg!(debug_assertions) {
            command.arg("--release");
        }
        let status = command.status().expect("cargo runs");
        assert!(status.success(), "building the examples failed");
    });
}

/// Starts `name` on 127.0.0.1:0 with a memory store and waits for its address.
fn start(name: &str) -> Example {
    build_examples();
    let exe = examples_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let mut child = Command::new(&exe)
        .arg("127.0.0.1:0")
        .env("KV_STORE", "memory:")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
    let stdout = child.stdout.take().expect("piped stdout");
    // The address comes from the child's own line, so the test talks to this child and no
    // other process; a child that dies first closes the pipe and the wait ends at once.
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    let mut example = Example {
        child,
        addr: String::new(),
    };
    let line = receiver
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{name} printed no address within 60 s"));
    example.addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{name} printed {line:?}, not its address"))
        .to_owned();
    example
}

/// One HTTP/1.1 request; the status, the lower-cased headers and the body.
fn request(
    example: &Example,
    method: &str,
    path: &str,
    cookie: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(&example.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{cookie}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("a complete response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn counter_counts_per_session() {
    let example = start("counter");
    let (status, headers, body) = request(&example, "GET", "/", None);
    assert_eq!((status, body.as_str()), (200, "visit 1\n"));
    let set_cookie = header(&headers, "set-cookie").expect("a session cookie");
    let cookie = set_cookie.split(';').next().expect("name=value");
    let (status, _, body) = request(&example, "GET", "/", Some(cookie));
    assert_eq!((status, body.as_str()), (200, "visit 2\n"));
    // Another browser has its own count.
    let (_, _, body) = request(&example, "GET", "/", None);
    assert_eq!(body, "visit 1\n");
}

#[test]
fn rate_limited_admits_five_a_minute() {
    let example = start("rate_limited");
    for remaining in (0..5).rev() {
        let (status, headers, _) = request(&example, "GET", "/api/items", None);
        assert_eq!(status, 200);
        let ratelimit = header(&headers, "ratelimit").expect("ratelimit header");
        assert!(
            ratelimit.starts_with(&format!("\"api\";r={remaining};")),
            "{ratelimit}"
        );
    }
    let (status, headers, _) = request(&example, "GET", "/api/items", None);
    assert_eq!(status, 429);
    assert_eq!(header(&headers, "retry-after"), Some("12"));
    // The home page is outside the limit.
    assert_eq!(request(&example, "GET", "/", None).0, 200);
}

#[test]
fn cached_serves_the_second_request_from_the_store() {
    let example = start("cached");
    let (status, headers, first) = request(&example, "GET", "/report", None);
    assert_eq!(status, 200);
    let cache_status = header(&headers, "cache-status").expect("cache-status");
    assert!(cache_status.contains("stored"), "{cache_status}");
    let started = std::time::Instant::now();
    let (status, headers, second) = request(&example, "GET", "/report", None);
    assert_eq!(status, 200);
    let cache_status = header(&headers, "cache-status").expect("cache-status");
    assert!(cache_status.contains("hit"), "{cache_status}");
    assert_eq!(second, first, "the same report, not a new one");
    // The handler sleeps 1 s; a hit does not wait for it.
    assert!(started.elapsed() < Duration::from_millis(900));
}

#[test]
fn flagged_route_appears_when_the_flag_is_on() {
    let example = start("flagged");
    assert_eq!(request(&example, "GET", "/beta", None).0, 404);
    assert_eq!(request(&example, "GET", "/", None).2, "home\n");
    assert_eq!(request(&example, "PUT", "/admin/beta/on", None).0, 204);
    let (status, _, body) = request(&example, "GET", "/beta", None);
    assert_eq!((status, body.as_str()), (200, "the new thing\n"));
    assert_eq!(request(&example, "PUT", "/admin/beta/off", None).0, 204);
    assert_eq!(request(&example, "GET", "/beta", None).0, 404);
}
