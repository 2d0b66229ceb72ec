//! Stale-while-revalidate caching in front of a slow origin, on any store.
//!
//! ```text
//! cargo run -p kv-examples --bin kv-swr                          # the tour, on file:./kv-data
//! cargo run -p kv-examples --bin kv-swr -- --store memory:
//! cargo run -p kv-examples --bin kv-swr -- --listen 127.0.0.1:3002   # the tour, then serve
//! ```
//!
//! The origin takes 200 ms to build a report and says `Cache-Control: max-age=2,
//! stale-while-revalidate=30, stale-if-error=300`. The tour sends requests through the
//! `CacheLayer` and prints what each one got:
//!
//! - `MISS`: the first request waits for the origin (about 200 ms) and stores the response;
//! - `HIT`: the next one is served from the store at once, with `Age`;
//! - `STALE`: after 2 s the stored report is stale but still served at once, while one
//!   background request refreshes it (the tour waits for the layer's `Refreshed` event);
//! - then `HIT` again with the new report;
//! - a herd of 100 concurrent requests for a cold URL makes one origin call (coalescing);
//! - the programmatic `Cache::get_or_fetch` fetches once, then answers from the store.
//!
//! With `--listen` it then serves the same app: `curl -i http://127.0.0.1:3002/report`
//! shows the `Cache-Status`, `X-Cache` and `Age` headers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::body::Body;
use axum::routing::get;
use axum::Router;
use clap::Parser;
use http::{header, Request};
use kv_core::DEFAULT_STORE_URL;
use kv_middleware::cache::{Cache, CacheEvent, CacheLayer, Ttl};
use tower::ServiceExt;

/// Stale-while-revalidate caching in front of a slow origin.
#[derive(Debug, Parser)]
struct Args {
    /// The store URL (`file:PATH`, `memory:`, ...).
    #[arg(long, env = "KV_STORE", default_value = DEFAULT_STORE_URL)]
    store: String,
    /// The namespace holding the cache.
    #[arg(long, default_value = "HTTP_CACHE")]
    namespace: String,
    /// How long the origin takes, in milliseconds.
    #[arg(long, default_value_t = 200)]
    origin_delay_ms: u64,
    /// After the tour, serve the app on this address.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Connection timeouts (header, idle and body reads), as `kv serve` takes them.
    #[command(flatten)]
    timeouts: kv_server::TimeoutArgs,
}

/// The slow origin: counts its calls.
#[derive(Clone)]
struct Origin {
    calls: Arc<AtomicUsize>,
    delay: Duration,
}

impl Origin {
    async fn report(&self) -> ([(header::HeaderName, &'static str); 1], String) {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(self.delay).await;
        (
            [(
                header::CACHE_CONTROL,
                "max-age=2, stale-while-revalidate=30, stale-if-error=300",
            )],
            format!("report #{n}, built at {}", clock()),
        )
    }
}

/// The wall clock as `HH:MM:SS.mmm` (UTC).
fn clock() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let secs = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        ms % 1000
    )
}

async fn show(app: &Router, label: &str, path: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    let request = Request::get(path)
        .header(header::HOST, "localhost")
        .body(Body::empty())?;
    let response = app.clone().oneshot(request).await?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let (x_cache, status, age) = (header("x-cache"), header("cache-status"), header("age"));
    let code = response.status();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await?;
    println!(
        "{label:<34} {code} {x_cache:<6} {:>7.1} ms  age={age:<3} cache-status: {status}\n{:<34} body: {}",
        start.elapsed().as_secs_f64() * 1000.0,
        "",
        String::from_utf8_lossy(&body)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kv_examples::init_tracing("warn");
    let args = Args::parse();
    let store = kv_examples::open_store(&args.store).await?;
    let namespace = store.namespace(&args.namespace).await?;
    let layer = CacheLayer::new(namespace.clone()).with_x_cache(true);
    let origin = Origin {
        calls: Arc::new(AtomicUsize::new(0)),
        delay: Duration::from_millis(args.origin_delay_ms),
    };
    let app = Router::new()
        .route(
            "/report",
            get({
                let origin = origin.clone();
                move || async move { origin.report().await }
            }),
        )
        .route(
            "/cold/{n}",
            get({
                let origin = origin.clone();
                move || async move { origin.report().await }
            }),
        )
        .route_layer(layer.clone());

    println!(
        "kv-swr: a {} ms origin behind CacheLayer, cached in namespace {:?} of the {} store {}\n",
        args.origin_delay_ms,
        args.namespace,
        store.kind(),
        kv_core::redact_store_url(&args.store)
    );
    // Start from a cold cache (a file store keeps entries from earlier runs).
    layer.purge("/report").await?;
    layer.purge_prefix("/cold/").await?;

    let mut events = layer.subscribe();
    show(&app, "1. first request", "/report").await?;
    show(&app, "2. again", "/report").await?;
    println!("\n   ... 2.5 s later the report is stale (max-age=2) ...\n");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    show(&app, "3. stale: served at once", "/report").await?;
    let start = Instant::now();
    match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
        Ok(Ok(CacheEvent::Refreshed { key })) => println!(
            "{:<34} background refresh of {key:?} done after {:.0} ms (origin calls so far: {})",
            "",
            start.elapsed().as_secs_f64() * 1000.0,
            origin.calls.load(Ordering::SeqCst)
        ),
        other => println!("{:<34} no refresh event: {other:?}", ""),
    }
    show(&app, "4. after the refresh", "/report").await?;

    // A thundering herd on a cold URL: one origin call.
    let before = origin.calls.load(Ordering::SeqCst);
    let start = Instant::now();
    let herd: Vec<_> = (0..100)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let request = Request::get("/cold/1")
                    .header(header::HOST, "localhost")
                    .body(Body::empty())?;
                anyhow::Ok(app.oneshot(request).await?.status())
            })
        })
        .collect();
    for request in herd {
        request.await??;
    }
    println!(
        "\n5. 100 concurrent requests for a cold URL: {} origin call(s), {:.0} ms",
        origin.calls.load(Ordering::SeqCst) - before,
        start.elapsed().as_secs_f64() * 1000.0
    );

    // The programmatic cache.
    let values = Cache::new(namespace).with_key_prefix("value:");
    values.invalidate("exchange-rate").await?;
    let ttl = Ttl::fresh(Duration::from_secs(60)).stale_while_revalidate(Duration::from_secs(600));
    for attempt in 1..=2 {
        let start = Instant::now();
        let delay = Duration::from_millis(args.origin_delay_ms);
        let rate = values
            .get_or_fetch_json_with_source("exchange-rate", ttl, move || async move {
                tokio::time::sleep(delay).await;
                Ok::<_, std::io::Error>(1.0842_f64)
            })
            .await?;
        println!(
            "6.{attempt} Cache::get_or_fetch_json: {} ({:?}) in {:.1} ms",
            rate.value,
            rate.source,
            start.elapsed().as_secs_f64() * 1000.0
        );
    }
    let stats = layer.stats();
    println!(
        "\nlayer stats: {} hits, {} stale, {} misses, {} coalesced, {} refreshes, {} store errors",
        stats.hits,
        stats.stale_hits,
        stats.misses,
        stats.coalesced,
        stats.refreshes,
        stats.store_errors
    );

    if let Some(listen) = args.listen {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        println!(
            "\nserving on http://{0}: try `curl -i http://{0}/report` a few times",
            listener.local_addr()?
        );
        kv_examples::serve(listener, app, &args.timeouts).await?;
    }
    Ok(())
}
