//! A bounded mixed load on a kv-server and on the demo, each in its own process on its own file
//! store, reporting throughput, p50/p99 latency, unexpected errors and the resident memory of
//! both processes (first window against last window).
//!
//! ```text
//! cargo build --release -p kv-examples
//! target/release/kv-soak --seconds 60                 # the figures in RELIABILITY.md
//! target/release/kv-soak --seconds 10 --json out.json  # what the CI test runs (shorter)
//! ```
//!
//! Load on the kv-server (through the HTTP backend): gets, puts, lists and deletes over 1 000
//! keys. Load on the demo: page views and `/me` of 50 signed-in sessions, the session counter,
//! re-logins (ID cycling), `/api/ping` (rate limited, so 429s are expected), `/api/slow`
//! (cached), `/api/flags` and `/api/config`. Requests are paced at `--rate` per second per
//! target, so the servers are loaded, not drowned, and latencies mean something.
//!
//! Exits 1 when any request failed unexpectedly (a 5xx, a transport error, a status the route
//! does not promise) or when a process's memory grew by more than 25 % + 8 MiB between the
//! first and the last window.

mod report;
mod targets;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::report::{Recorder, Report};

/// Mixed load on a kv-server and on kv-demo; prints a Markdown report.
#[derive(Debug, Parser)]
#[command(name = "kv-soak")]
struct Args {
    #[command(subcommand)]
    command: Option<Internal>,
    /// How long to load, in seconds (after the warm-up).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Load before measuring starts, in seconds.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// The length of the first and last windows compared for memory growth, in seconds.
    #[arg(long, default_value_t = 10)]
    window: u64,
    /// Requests per second per target.
    #[arg(long, default_value_t = 400)]
    rate: u32,
    /// Concurrent clients per target.
    #[arg(long, default_value_t = 16)]
    concurrency: u32,
    /// Where to put the stores (default: a new directory under the system's temp dir, removed
    /// afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Internal {
    /// (internal) Runs a kv-server on `--store`, printing its URL.
    #[command(hide = true)]
    ServeKv {
        #[arg(long)]
        store: String,
    },
}

/// A child process that prints its URL first; killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(mut command: Command) -> anyhow::Result<Server> {
        use std::io::{BufRead, BufReader};
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env("RUST_LOG", "warn")
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .with_context(|| format!("no URL in {line:?}"))?
            .to_owned();
        Ok(Server { child, url })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The resident set of `pid` in bytes (Linux: `/proc/PID/status`).
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Internal::ServeKv { store }) = args.command {
        return serve_kv(&store).await;
    }
    let temp;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new().prefix("kv-soak-").tempdir()?;
            temp.path().to_owned()
        }
    };
    let exe = std::env::current_exe()?;
    let demo_exe = exe.with_file_name(format!("kv-demo{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        demo_exe.exists(),
        "{} not found: build it first (cargo build --release -p kv-examples)",
        demo_exe.display()
    );

    let mut kv = Command::new(&exe);
    kv.args(["serve-kv", "--store"])
        .arg(format!("file:{}", dir.join("kv-server").display()));
    let kv = Server::start(kv)?;
    let mut demo = Command::new(&demo_exe);
    demo.args(["--listen", "127.0.0.1:0", "--store"])
        .arg(format!("file:{}", dir.join("demo").display()))
        .args(["--admin-token", "soak", "--login-quota", "1000000/min"])
        .args(["--api-quota", "100/s"]);
    let demo = Server::start(demo)?;
    println!(
        "kv-server {} (pid {}), kv-demo {} (pid {}); {} s warm-up, {} s measured, {} req/s and {} clients per target",
        kv.url,
        kv.pid(),
        demo.url,
        demo.pid(),
        args.warmup,
        args.seconds,
        args.rate,
        args.concurrency
    );

    let kv_target = targets::KvServerTarget::connect(&kv.url).await?;
    let demo_target = targets::DemoTarget::connect(&demo.url).await?;
    let recorder = Recorder::new(&["kv-server", "kv-demo"]);
    let stop = Arc::new(AtomicBool::new(false));
    let interval =
        Duration::from_secs_f64(f64::from(args.concurrency) / f64::from(args.rate.max(1)));
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        workers.push(tokio::spawn(targets::drive(
            kv_target.clone(),
            recorder.target(0),
            stop.clone(),
            interval,
            u64::from(worker),
        )));
        workers.push(tokio::spawn(targets::drive(
            demo_target.clone(),
            recorder.target(1),
            stop.clone(),
            interval,
            u64::from(worker) + 1000,
        )));
    }

    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    recorder.reset();
    let started = Instant::now();
    let total = Duration::from_secs(args.seconds);
    let mut memory: Vec<(f64, Option<u64>, Option<u64>)> = Vec::new();
    while started.elapsed() < total {
        tokio::time::sleep(Duration::from_millis(500)).await;
        memory.push((
            started.elapsed().as_secs_f64(),
            rss_bytes(kv.pid()),
            rss_bytes(demo.pid()),
        ));
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await?;
    }
    let report = Report::new(&recorder, elapsed, &memory, args.window as f64);
    println!("{}", report.markdown());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report.json())?)?;
    }
    let problems = report.problems();
    if problems.is_empty() {
        println!("OK: no unexpected errors, memory stable");
        Ok(())
    } else {
        for problem in &problems {
            eprintln!("FAILED: {problem}");
        }
        std::process::exit(1);
    }
}

/// The `serve-kv` child: kv-server over `store` on a free loopback port.
async fn serve_kv(store_url: &str) -> anyhow::Result<()> {
    let store = kv_backends::open(store_url).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("kv-server listening on http://{}", listener.local_addr()?);
    let config = kv_server::ServerConfig::default();
    kv_server::serve(
        listener,
        kv_server::router(store, config),
        kv_server::shutdown_signal(),
    )
    .await?;
    Ok(())
}
