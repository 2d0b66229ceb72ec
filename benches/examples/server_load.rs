//! kv-server throughput and latency under 64 concurrent connections over loopback, against the
//! physical limit of the same machine: a bare axum hello-world served and loaded the same way.
//!
//! ```text
//! cargo run --release -p kv-benches --example server-load [-- SECONDS]
//! ```
//!
//! Each server runs on its own one-thread tokio runtime and the load generator on another, so
//! every contender gets the same share of this machine. Every connection sends its next request
//! as soon as the previous answer is read (closed loop). Prints a Markdown table.
//!
//! For instruction counts, which a busy machine does not disturb, it also serves requests
//! without sockets: `KV_SERVER_PROFILE=CONTENDER,REQUESTS` (`CONTENDER`: `hello` or `memory`)
//! sends `REQUESTS` GETs through the router itself (`oneshot`) and exits, e.g. under
//! `valgrind --tool=callgrind target/release/examples/server-load` with `memory,1000` and
//! `memory,11000`: the difference of the two totals / 10 000 is the
//! instructions the router spends per request, hyper and the sockets left out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use kv_core::{BulkPut, Store};
use kv_server::{router, ServerConfig};
use tower::ServiceExt;

const CONNECTIONS: usize = 64;
const KEYS: usize = 1000;

struct Outcome {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

fn start_server(app: Router) -> (SocketAddr, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, app).await });
    (addr, runtime)
}

/// Drives `CONNECTIONS` keep-alive connections for `duration`; `make` builds each request.
fn load(
    addr: SocketAddr,
    duration: Duration,
    make: impl Fn(usize, u64) -> Request<Full<Bytes>> + Send + Sync + Clone + 'static,
) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = Vec::new();
        for connection in 0..CONNECTIONS {
            let make = make.clone();
            tasks.push(tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .unwrap();
                tokio::spawn(conn);
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let request = make(connection, n);
                    n += 1;
                    let sent = Instant::now();
                    match sender.send_request(request).await {
                        Ok(response) => {
                            let ok = response.status().is_success();
                            let _ = response.into_body().collect().await;
                            latencies.push(sent.elapsed());
                            if !ok {
                                errors += 1;
                            }
                        }
                        Err(_) => errors += 1,
                    }
                }
                (latencies, errors)
            }));
        }
        let mut latencies = Vec::new();
        let mut errors = 0;
        for task in tasks {
            let (mut l, e) = task.await.unwrap();
            latencies.append(&mut l);
            errors += e;
        }
        let elapsed = started.elapsed();
        latencies.sort();
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        Outcome {
            requests: latencies.len() as u64,
            errors,
            elapsed,
            p50: at(0.50),
            p99: at(0.99),
        }
    })
}

fn get_request(addr: SocketAddr, path: String) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The hello-world app, the physical limit.
fn hello_world() -> Router {
    Router::new().route("/", get(|| async { "hello" }))
}

/// A store at `url` holding `KEYS` 100-byte values in namespace `BENCH`, and the namespace id.
async fn seeded_store(url: &str) -> (Store, String) {
    let store: Store = kv_backends::open(url).await.unwrap();
    let info = store.create_namespace("BENCH").await.unwrap();
    let ns = store.namespace_by_id(&info.id).await.unwrap();
    let items: Vec<BulkPut> = (0..KEYS)
        .map(|i| BulkPut::new(format!("key:{i:04}"), vec![b'v'; 100]))
        .collect();
    ns.put_many(items).await.unwrap();
    (store, info.id)
}

/// `KV_SERVER_PROFILE=CONTENDER,REQUESTS`: one contender's GETs through its router alone.
fn profile(spec: &str) {
    let usage = "KV_SERVER_PROFILE=hello|memory,REQUESTS";
    let (contender, requests) = spec.split_once(',').expect(usage);
    let requests: usize = requests.parse().expect(usage);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (app, paths): (Router, Vec<String>) = match contender {
            "hello" => (hello_world(), vec!["/".to_owned()]),
            "memory" => {
                let (store, id) = seeded_store("memory:").await;
                let base = format!("/client/v4/accounts/bench/storage/kv/namespaces/{id}/values");
                let paths = (0..KEYS).map(|k| format!("{base}/key:{k:04}")).collect();
                (router(store, ServerConfig::default()), paths)
            }
            _ => panic!("{usage}"),
        };
        let started = Instant::now();
        for n in 0..requests {
            let path = &paths[n % paths.len()];
            let request = hyper::Request::get(path.as_str())
                .header("host", "bench")
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert!(response.status().is_success());
            let _ = response.into_body().collect().await.unwrap();
        }
        let per_request = started.elapsed() / requests.max(1) as u32;
        println!("{contender}: {requests} GETs through the router, {per_request:?} per request");
    });
}

fn main() {
    if let Ok(spec) = std::env::var("KV_SERVER_PROFILE") {
        profile(&spec);
        return;
    }
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let duration = Duration::from_secs(seconds);
    let mut rows: Vec<(String, Outcome)> = Vec::new();

    // The physical limit: a bare hello-world.
    let (addr, _hello) = start_server(hello_world());
    let outcome = load(addr, duration, move |_, _| get_request(addr, "/".into()));
    rows.push(("axum hello-world GET".into(), outcome));

    let dir = tempfile::tempdir().unwrap();
    for (label, url) in [
        ("memory", "memory:".to_owned()),
        ("file", format!("file:{}", dir.path().display())),
    ] {
        let setup = tokio::runtime::Runtime::new().unwrap();
        let (store, id) = setup.block_on(seeded_store(&url));
        let (addr, _server) = start_server(router(store, ServerConfig::default()));
        let base = format!("/client/v4/accounts/bench/storage/kv/namespaces/{id}/values");

        let get_base = base.clone();
        let outcome = load(addr, duration, move |c, n| {
            let key = (c * 7919 + n as usize * 31) % KEYS;
            get_request(addr, format!("{get_base}/key:{key:04}"))
        });
        rows.push((format!("kv-server GET ({label})"), outcome));

        let put_base = base.clone();
        let outcome = load(addr, duration, move |c, n| {
            let key = (c * 7919 + n as usize * 31) % KEYS;
            Request::put(format!("{put_base}/key:{key:04}"))
                .header("host", addr.to_string())
                .body(Full::new(Bytes::from(vec![b'w'; 100])))
                .unwrap()
        });
        rows.push((format!("kv-server PUT ({label})"), outcome));
    }

    let hello_rps = rows[0].1.requests as f64 / rows[0].1.elapsed.as_secs_f64();
    println!("{CONNECTIONS} connections, {seconds} s per row, 100-byte values over {KEYS} keys\n");
    println!("| workload | requests/s | vs hello-world | p50 | p99 | errors |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (label, o) in &rows {
        let rps = o.requests as f64 / o.elapsed.as_secs_f64();
        println!(
            "| {label} | {rps:.0} | {:.2}x | {:.2} ms | {:.2} ms | {} |",
            rps / hello_rps,
            o.p50.as_secs_f64() * 1e3,
            o.p99.as_secs_f64() * 1e3,
            o.errors
        );
    }
}
