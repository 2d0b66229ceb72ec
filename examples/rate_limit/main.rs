//! Rate limits on any store: an API with a strict limit on login attempts and a lenient limit
//! on everything else.
//!
//! ```text
//! cargo run -p kv-examples --bin kv-rate-limit                        # file:./kv-data, 127.0.0.1:3002
//! cargo run -p kv-examples --bin kv-rate-limit -- --store memory: --listen 127.0.0.1:8080
//! KV_STORE=file:/tmp/limits cargo run -p kv-examples --bin kv-rate-limit
//! ```
//!
//! Then watch the headers:
//!
//! ```text
//! curl -i http://127.0.0.1:3002/api/items
//! for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{http_code}\n' -X POST http://127.0.0.1:3002/login; done
//! curl -i -X POST http://127.0.0.1:3002/login
//! ```
//!
//! What it shows:
//!
//! - `POST /login` allows 5 attempts per 15 minutes per client address (a burst of 5, then one
//!   every 3 minutes), and fails closed: if the store is unreachable, logins get 503.
//! - `/api/...` allows 10 requests per second and 1000 per hour per client address (both must
//!   allow), and fails open: if the store is unreachable, the API keeps answering.
//! - Every limited response carries `RateLimit-Policy` and `RateLimit`; a 429 adds
//!   `Retry-After` and an `application/problem+json` body naming the exhausted quota.
//! - The state is one entry per client and quota in the `RATE_LIMITS` namespace, updated with
//!   compare-and-swap: several copies of this program on one shared store enforce one limit.
//! - `--trust-proxy 10.0.0.0/8` keys clients by `X-Forwarded-For` behind such proxies.

use std::net::SocketAddr;

use anyhow::Context;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use kv_core::DEFAULT_STORE_URL;
use kv_middleware::rate_limit::{ClientIp, PeerIp, RateLimitLayer, RateLimiter, StoreErrorPolicy};
use serde_json::{json, Value};

/// An API with a strict login limit and a lenient API limit, kept in a KV namespace.
#[derive(Debug, Parser)]
struct Args {
    /// The store URL (`file:PATH`, `memory:`, ...).
    #[arg(long, env = "KV_STORE", default_value = DEFAULT_STORE_URL)]
    store: String,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:3002")]
    listen: SocketAddr,
    /// The namespace holding the limits' state.
    #[arg(long, default_value = "RATE_LIMITS")]
    namespace: String,
    /// The login quota.
    #[arg(long, default_value = "5/15min")]
    login_quota: String,
    /// The API's per-second quota.
    #[arg(long, default_value = "10/s")]
    api_burst_quota: String,
    /// The API's hourly quota.
    #[arg(long, default_value = "1000/h")]
    api_hourly_quota: String,
    /// A network of trusted reverse proxies (repeatable): clients are then keyed by the
    /// address those proxies forward in `X-Forwarded-For`.
    #[arg(long = "trust-proxy")]
    trusted_proxies: Vec<String>,
    /// Connection timeouts (header, idle and body reads), as `kv serve` takes them.
    #[command(flatten)]
    timeouts: kv_server::TimeoutArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kv_examples::init_tracing("info");
    let args = Args::parse();
    let store = kv_examples::open_store(&args.store).await?;
    let limits = store.namespace(&args.namespace).await?;

    let login = RateLimiter::builder(limits.clone())
        .with_quota("login", args.login_quota.parse().context("--login-quota")?)
        .build()?;
    let api = RateLimiter::builder(limits)
        .with_quota(
            "api",
            args.api_burst_quota.parse().context("--api-burst-quota")?,
        )
        .with_quota(
            "api-hourly",
            args.api_hourly_quota
                .parse()
                .context("--api-hourly-quota")?,
        )
        .build()?;

    let login_layer = with_key(RateLimitLayer::new(login), &args.trusted_proxies)?
        .with_store_error_policy(StoreErrorPolicy::FailClosed);
    let api_layer = with_key(RateLimitLayer::new(api), &args.trusted_proxies)?;

    let app = Router::new()
        .route("/login", post(login_handler))
        .route_layer(login_layer)
        .merge(
            Router::new()
                .route("/api/items", get(items))
                .route("/api/items/{id}", get(item))
                .route_layer(api_layer),
        )
        .route("/", get(index));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    println!(
        "kv-rate-limit listening on http://{} (limits in namespace {:?} of the {} store {})",
        listener.local_addr()?,
        args.namespace,
        store.kind(),
        kv_core::redact_store_url(&args.store)
    );
    kv_examples::serve(listener, app, &args.timeouts).await?;
    Ok(())
}

/// Keys by peer address, or by the forwarded client address behind trusted proxies.
fn with_key(layer: RateLimitLayer, trusted: &[String]) -> anyhow::Result<RateLimitLayer> {
    if trusted.is_empty() {
        return Ok(layer.with_key(PeerIp::new()));
    }
    let key = ClientIp::trusting(trusted).context("--trust-proxy")?;
    Ok(layer.with_key(key))
}

async fn index() -> &'static str {
    "POST /login (5 per 15 minutes), GET /api/items and /api/items/{id} (10/s, 1000/h)\n"
}

/// A JSON response.
fn json(value: Value) -> impl IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
}

async fn login_handler() -> impl IntoResponse {
    json(json!({"welcome": true}))
}

async fn items() -> impl IntoResponse {
    json(json!([{"id": 1, "name": "tea"}, {"id": 2, "name": "biscuits"}]))
}

async fn item(axum::extract::Path(id): axum::extract::Path<u64>) -> impl IntoResponse {
    json(json!({"id": id}))
}
