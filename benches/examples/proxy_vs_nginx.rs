//! `kv proxy` (release build, memory store) against nginx with `proxy_cache`, in front of the
//! same origin: cached-hit throughput and p99 latency with `wrk`, and the origin requests a
//! herd of 1 000 concurrent cold requests makes (nginx with and without `proxy_cache_lock`).
//!
//! ```text
//! apt-get install -y nginx wrk
//! cargo build --release -p kv-server --bin kv
//! cargo run --release -p kv-benches --example proxy-vs-nginx [-- SECONDS [CONNECTIONS]]
//! ```
//!
//! The `kv` binary is looked up next to this example's directory (`target/release/kv`), or at
//! `$KV_BIN`. nginx is started by this program on free ports with its own configuration, cache
//! and logs in a temporary directory (no system service), and stopped at the end. The origin is
//! an axum server in this process on one tokio worker. Prints Markdown tables.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The size of every response body.
const BODY_BYTES: usize = 1024;
/// Concurrent cold requests per herd.
const HERD: usize = 1000;
/// Herds per contender.
const HERDS: usize = 3;
/// How long the origin takes for a cold URL, so the herd piles up behind it.
const ORIGIN_DELAY: Duration = Duration::from_millis(50);

type Counts = Arc<Mutex<HashMap<String, usize>>>;

fn main() {
    // `cargo bench` runs this with `--bench`: then a missing tool skips it instead of failing.
    let under_cargo_bench = std::env::args().any(|a| a == "--bench");
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let seconds: u64 = args.next().map_or(10, |s| s.parse().expect("SECONDS"));
    let connections: usize = args.next().map_or(64, |s| s.parse().expect("CONNECTIONS"));
    let missing = missing_tools();
    if !missing.is_empty() {
        eprintln!("proxy-vs-nginx: {}", missing.join("; "));
        std::process::exit(if under_cargo_bench { 0 } else { 2 });
    }
    let kv = kv_binary().expect("checked above");

    let counts: Counts = Arc::default();
    let (origin, _origin_runtime) = start_origin(counts.clone());
    let kv_proxy = KvProxy::start(&kv, origin);
    let nginx = Nginx::start(origin);

    println!("date: {}", now_utc());
    println!("load before: {}", load_average());
    println!(
        "{} | {} | {}",
        version(&kv, &["--version"]),
        version(Path::new("nginx"), &["-v"]),
        version(Path::new("wrk"), &["-v"])
    );
    println!();

    let contenders = [
        ("kv proxy (memory store)", kv_proxy.address),
        ("nginx proxy_cache", nginx.lock),
    ];
    println!("| cached hit, {BODY_BYTES} B, {connections} connections, {seconds} s | round | requests/s | p50 | p99 | errors |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for round in 1..=2 {
        for (name, address) in contenders {
            let cached = warm(address, "/hit");
            assert!(
                cached.to_ascii_lowercase().contains("hit"),
                "{name}: {cached}"
            );
            let run = wrk(address, "/hit", connections, seconds);
            println!(
                "| {name} | {round} | {:.0} | {} | {} | {} |",
                run.requests_per_second, run.p50, run.p99, run.errors
            );
        }
    }
    println!("origin requests for /hit: {}", count(&counts, "/hit"));
    println!();

    let herds = [
        ("kv proxy (memory store)", kv_proxy.address),
        ("nginx, proxy_cache_lock off", nginx.no_lock),
        ("nginx, proxy_cache_lock on", nginx.lock),
    ];
    println!("| herd of {HERD} cold requests, {} ms origin | origin requests per herd | 200 answers | herd time |", ORIGIN_DELAY.as_millis());
    println!("| --- | --- | ---: | ---: |");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (index, (name, address)) in herds.into_iter().enumerate() {
        let mut per_herd = Vec::new();
        let mut ok = 0;
        let mut times = Vec::new();
        for herd in 0..HERDS {
            let path = format!("/cold/{index}-{herd}");
            let (answers, elapsed) = runtime.block_on(herd_of(address, &path));
            per_herd.push(count(&counts, &path).to_string());
            ok += answers;
            times.push(format!("{} ms", elapsed.as_millis()));
        }
        println!(
            "| {name} | {} | {ok} / {} | {} |",
            per_herd.join(", "),
            HERD * HERDS,
            times.join(", ")
        );
    }
    println!();
    println!("load after: {}", load_average());
}

// ---------------------------------------------------------------- the origin

fn body() -> String {
    "x".repeat(BODY_BYTES)
}

fn start_origin(counts: Counts) -> (SocketAddr, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let app = Router::new()
        .route("/hit", get(hit))
        .route("/cold/{name}", get(cold))
        .with_state(counts);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, app).await });
    (address, runtime)
}

fn bump(counts: &Counts, path: String) {
    *counts.lock().unwrap().entry(path).or_default() += 1;
}

fn count(counts: &Counts, path: &str) -> usize {
    counts.lock().unwrap().get(path).copied().unwrap_or(0)
}

async fn hit(State(counts): State<Counts>) -> ([(&'static str, &'static str); 2], String) {
    bump(&counts, "/hit".into());
    (
        [
            ("cache-control", "max-age=3600"),
            ("content-type", "text/plain"),
        ],
        body(),
    )
}

async fn cold(
    State(counts): State<Counts>,
    UrlPath(name): UrlPath<String>,
) -> ([(&'static str, &'static str); 2], String) {
    bump(&counts, format!("/cold/{name}"));
    tokio::time::sleep(ORIGIN_DELAY).await;
    (
        [
            ("cache-control", "max-age=3600"),
            ("content-type", "text/plain"),
        ],
        body(),
    )
}

// ---------------------------------------------------------------- the contenders

/// The `kv` binary: `$KV_BIN`, else `kv` in this example's profile directory.
fn kv_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KV_BIN") {
        return Some(path.into());
    }
    // target/release/examples/proxy-vs-nginx -> target/release/kv
    let exe = std::env::current_exe().ok()?;
    let kv = exe.parent()?.parent()?.join("kv");
    kv.exists().then_some(kv)
}

/// What this benchmark needs and cannot find.
fn missing_tools() -> Vec<String> {
    let mut missing = Vec::new();
    if kv_binary().is_none() {
        missing.push(
            "target/release/kv is missing: cargo build --release -p kv-server --bin kv \
             (or set KV_BIN)"
                .to_owned(),
        );
    }
    for tool in ["nginx", "wrk"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            missing.push(format!("{tool} is missing: apt-get install -y nginx wrk"));
        }
    }
    missing
}

struct KvProxy {
    child: Child,
    address: SocketAddr,
}

impl KvProxy {
    fn start(kv: &Path, origin: SocketAddr) -> KvProxy {
        let mut child = Command::new(kv)
            .args(["--store", "memory:", "proxy", "--listen", "127.0.0.1:0"])
            .args(["--upstream", &format!("http://{origin}")])
            .env_remove("KV_PURGE_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("kv proxy starts");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .parse()
            .unwrap();
        KvProxy { child, address }
    }
}

impl Drop for KvProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Nginx {
    child: Child,
    lock: SocketAddr,
    no_lock: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(origin: SocketAddr) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        // Workers run as `nobody` when nginx starts as root: they must reach the directory.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let (lock, no_lock) = (free_port(), free_port());
        let d = dir.path().display();
        let location = |extra: &str| {
            format!(
                "location / {{ proxy_pass http://origin; proxy_http_version 1.1; \
                 proxy_set_header Connection \"\"; proxy_cache kv; \
                 add_header X-Cache-Status $upstream_cache_status; {extra} }}"
            )
        };
        let config = format!(
            "daemon off;\nworker_processes auto;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 8192; }}\n\
             http {{\n  access_log off;\n\
             client_body_temp_path {d}/client_body;\n  proxy_temp_path {d}/proxy_temp;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             proxy_cache_path {d}/cache levels=1:2 keys_zone=kv:10m max_size=256m inactive=1h use_temp_path=off;\n\
             upstream origin {{ server {origin}; keepalive 64; }}\n\
             server {{ listen {no_lock} backlog=4096; {} }}\n\
             server {{ listen {lock} backlog=4096; {} }}\n}}\n",
            location(""),
            location("proxy_cache_lock on; proxy_cache_lock_timeout 10s;"),
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, config).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts");
        for address in [lock, no_lock] {
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(address).is_err() {
                assert!(Instant::now() < deadline, "nginx did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Nginx {
            child,
            lock,
            no_lock,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master, which stops its workers (a SIGKILL would orphan them).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

// ---------------------------------------------------------------- the loads

/// Asks twice, so the second answer (and every later one) is a hit; says what the second was.
fn warm(address: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut answer = String::new();
    for _ in 0..2 {
        let mut tcp = std::net::TcpStream::connect(address).unwrap();
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        answer.clear();
        tcp.read_to_string(&mut answer).unwrap();
    }
    answer
        .lines()
        .find(|line| {
            let line = line.to_ascii_lowercase();
            line.starts_with("cache-status:") || line.starts_with("x-cache-status:")
        })
        .unwrap_or("no cache status")
        .to_owned()
}

struct WrkRun {
    requests_per_second: f64,
    p50: String,
    p99: String,
    errors: String,
}

fn wrk(address: SocketAddr, path: &str, connections: usize, seconds: u64) -> WrkRun {
    let output = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .arg("--latency")
        .arg(format!("http://{address}{path}"))
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(prefix))
            .map(|rest| rest.trim().to_owned())
    };
    let errors = [
        field("Non-2xx or 3xx responses:").map(|n| format!("{n} non-2xx")),
        field("Socket errors:"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    WrkRun {
        requests_per_second: field("Requests/sec:")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no Requests/sec in {text}")),
        p50: field("50%").unwrap_or_default(),
        p99: field("99%").unwrap_or_default(),
        errors: if errors.is_empty() {
            "0".into()
        } else {
            errors.join("; ")
        },
    }
}

/// `HERD` connections opened first, then one request on each at once; returns the number of
/// `200` answers and the time from the release to the last answer.
async fn herd_of(address: SocketAddr, path: &str) -> (usize, Duration) {
    let barrier = Arc::new(tokio::sync::Barrier::new(HERD + 1));
    let request = Arc::new(format!(
        "GET {path} HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n"
    ));
    let mut tasks = Vec::with_capacity(HERD);
    for _ in 0..HERD {
        let barrier = barrier.clone();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut tcp = tokio::net::TcpStream::connect(address).await.ok();
            barrier.wait().await;
            let tcp = tcp.as_mut()?;
            tcp.write_all(request.as_bytes()).await.ok()?;
            let mut answer = Vec::new();
            tcp.read_to_end(&mut answer).await.ok()?;
            Some(answer.starts_with(b"HTTP/1.1 200"))
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut ok = 0;
    for task in tasks {
        if let Ok(Some(true)) = task.await {
            ok += 1;
        }
    }
    (ok, started.elapsed())
}

// ---------------------------------------------------------------- the record

fn version(program: &Path, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let text = [o.stdout, o.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
