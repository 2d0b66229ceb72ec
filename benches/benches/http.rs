//! The HTTP backend and the read-through cache.
//!
//! - `http-get`: one read of a 32-byte value with small metadata from a kv-server (memory
//!   backend) over loopback, in the same process and runtime (2 worker threads):
//!   - `plain-hyper`: hyper-util's pooled client (the client library the backend is built on,
//!     with the same settings: TCP_NODELAY, keep-alive) sends `GET .../values/{key}` to the
//!     same URL and reads the body to its end; the URI is parsed once, outside the loop;
//!   - `backend`: `Namespace::get_entry` through `HttpBackend` (URL built and percent-encoded
//!     per call, auth and user-agent headers, ETag, expiration and metadata headers parsed).
//! - `read-cache-get`: one read of the same entry from memory:
//!   - `memory`: `Namespace::get_entry` on the memory backend;
//!   - `cache-hit-over-memory`: the same through `ReadCache` (always a hit);
//!   - `cache-hit-over-http`: `ReadCache` over the `HttpBackend` above (always a hit).
//!
//!
//! Both sides of each comparison share the machine with the loopback server, so a criterion
//! benchmark run after another can drift with whatever else the machine does (on a loaded
//! machine, a fresh process is also faster for its first seconds: a 3 s burn-in with both
//! clients comes before the criterion groups). After the
//! criterion groups, a **paired** run alternates the contenders in short batches (rotating
//! which goes first) and reports the median per-operation time of each and the median of the
//! per-round ratios (`backend / plain-hyper`, `cache-hit-over-memory / memory`); it prints a
//! table and writes `target/tmp/kv-benches-http-paired.json` (`KV_BENCH_PAIRED_ROUNDS` sets
//! the rounds, 0 skips it).
//!
//! `cargo bench -p kv-benches --bench http`

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kv_backends::http::{HttpBackend, DEFAULT_API_PATH};
use kv_backends::memory::MemoryBackend;
use kv_backends::ReadCache;
use kv_benches::{
    bench_mode, multi_thread_runtime, paired, paired_rounds, value, write_paired, Batch, Timing,
};
use kv_core::{Namespace, PutOptions, Store};
use kv_server::ServerConfig;

const KEY: &str = "key:0000042";
const VALUE_LEN: usize = 32;

struct Setup {
    /// The HTTP backend's namespace.
    http: Namespace,
    /// A read-through cache over another HTTP backend on the same server.
    cached_http: Namespace,
    /// The memory backend's namespace, and the same behind a read-through cache.
    memory: Namespace,
    cached_memory: Namespace,
    /// The plain client and the value's URL.
    plain: Client<HttpConnector, Full<Bytes>>,
    uri: http::Uri,
}

async fn setup() -> Setup {
    let options = || PutOptions::new().metadata(serde_json::json!({"v": 1}));

    let served = Store::new(MemoryBackend::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("address");
    let app = kv_server::router(served, ServerConfig::default());
    tokio::spawn(kv_server::serve(listener, app, std::future::pending()));

    let base = format!("http://{addr}{DEFAULT_API_PATH}");
    let http = Store::new(HttpBackend::builder(&base).build().expect("client"));
    let http = http.namespace("BENCH").await.expect("namespace");
    let _ = http
        .put_with(KEY, value(VALUE_LEN, 42), options())
        .await
        .expect("put");
    // An hour, so every read in the run is a hit whatever the measurement time.
    let hour = Duration::from_secs(3600);
    let cached = ReadCache::builder(HttpBackend::builder(&base).build().expect("client"))
        .cache_ttl(hour)
        .build();
    let cached_http = Store::new(cached)
        .namespace("BENCH")
        .await
        .expect("namespace");

    let memory = Store::new(MemoryBackend::new())
        .namespace("BENCH")
        .await
        .expect("namespace");
    let _ = memory
        .put_with(KEY, value(VALUE_LEN, 42), options())
        .await
        .expect("put");
    let cached_memory = {
        let backend = MemoryBackend::new();
        let ns = Store::new(backend.clone())
            .namespace("BENCH")
            .await
            .expect("namespace");
        let _ = ns
            .put_with(KEY, value(VALUE_LEN, 42), options())
            .await
            .expect("put");
        Store::new(ReadCache::builder(backend).cache_ttl(hour).build())
            .namespace("BENCH")
            .await
            .expect("namespace")
    };

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    let plain = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector);
    let uri = format!("{base}/{}/values/key%3A0000042", http.id())
        .parse()
        .expect("uri");

    Setup {
        http,
        cached_http,
        memory,
        cached_memory,
        plain,
        uri,
    }
}

async fn plain_get(client: &Client<HttpConnector, Full<Bytes>>, uri: &http::Uri) -> Bytes {
    let request = http::Request::get(uri.clone())
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = client.request(request).await.expect("response");
    assert!(response.status().is_success());
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

/// `batch` reads of the entry through `ns`, for a paired run.
fn get_batch<'a>(rt: &'a tokio::runtime::Runtime, ns: &'a Namespace) -> Batch<'a> {
    Box::new(move |batch| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..batch {
                std::hint::black_box(ns.get_entry(KEY).await.expect("get"));
            }
            start.elapsed()
        })
    })
}

fn benches(criterion: &mut Criterion) {
    let timing = Timing::from_env(1.0, 3.0, 20);
    let rt = multi_thread_runtime(2);
    let s = rt.block_on(setup());
    // Every contender reads the same bytes.
    let expected = rt.block_on(plain_get(&s.plain, &s.uri));
    for ns in [&s.http, &s.cached_http, &s.memory, &s.cached_memory] {
        let entry = rt
            .block_on(ns.get_entry(KEY))
            .expect("get")
            .expect("present");
        assert_eq!(entry.value, expected);
        assert_eq!(entry.metadata, Some(serde_json::json!({"v": 1})));
    }

    // A fresh process runs faster for its first seconds on a busy machine (its threads have
    // little CPU time on record), which would favour whichever benchmark goes first; burn
    // that off with both clients before measuring.
    if bench_mode() {
        rt.block_on(async {
            let until = Instant::now() + Duration::from_secs(3);
            while Instant::now() < until {
                plain_get(&s.plain, &s.uri).await;
                s.http.get_entry(KEY).await.expect("get");
            }
        });
    }

    let configure = |group: &mut criterion::BenchmarkGroup<'_, _>| {
        group
            .warm_up_time(timing.warm_up)
            .measurement_time(timing.measurement)
            .sample_size(timing.samples);
    };

    let mut group = criterion.benchmark_group("http-get");
    configure(&mut group);
    group.bench_function("plain-hyper", |b| {
        b.to_async(&rt).iter(|| plain_get(&s.plain, &s.uri));
    });
    group.bench_function("backend", |b| {
        b.to_async(&rt)
            .iter(|| async { s.http.get_entry(KEY).await.expect("get").expect("present") });
    });
    group.finish();

    let mut group = criterion.benchmark_group("read-cache-get");
    configure(&mut group);
    for (name, ns) in [
        ("memory", &s.memory),
        ("cache-hit-over-memory", &s.cached_memory),
        ("cache-hit-over-http", &s.cached_http),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { ns.get_entry(KEY).await.expect("get").expect("present") });
        });
    }
    group.finish();

    let rounds = paired_rounds(40);
    if rounds > 0 {
        let (http_batch, memory_batch) = if bench_mode() {
            (400, 100_000)
        } else {
            (2, 10)
        };
        let get = |ns| get_batch(&rt, ns);
        let plain: Batch<'_> = Box::new(|batch| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..batch {
                    std::hint::black_box(plain_get(&s.plain, &s.uri).await);
                }
                start.elapsed()
            })
        });
        let http = paired(
            "http-get",
            rounds,
            http_batch,
            vec![("backend", get(&s.http)), ("plain-hyper", plain)],
        );
        let cache = paired(
            "read-cache-get",
            rounds,
            memory_batch,
            vec![
                ("cache-hit-over-memory", get(&s.cached_memory)),
                ("memory", get(&s.memory)),
            ],
        );
        let results = serde_json::json!({ "http-get": http, "read-cache-get": cache });
        write_paired(env!("CARGO_TARGET_TMPDIR"), "http", &results);
    }
}

criterion_group!(http, benches);
criterion_main!(http);
