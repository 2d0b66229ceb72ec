//! The demo: one app that composes every layer of the toolkit on one store.
//!
//! ```text
//! cargo run -p kv-examples --bin kv-demo                      # file:./kv-data, 127.0.0.1:3000
//! cargo run -p kv-examples --bin kv-demo -- --store redis://127.0.0.1:6379
//! cargo run -p kv-examples --bin kv-demo -- --store http://127.0.0.1:8787 --listen 127.0.0.1:3001
//! KV_ADMIN_TOKEN=secret cargo run -p kv-examples --bin kv-demo   # with the admin routes
//! ```
//!
//! What each route shows:
//!
//! | route | layer |
//! |---|---|
//! | `GET /`, `POST /login`, `POST /logout`, `GET /me`, `POST /counter` | cookie sessions (login limited per client IP) |
//! | `GET /api/ping` | rate limit per client IP, with the draft `RateLimit` headers |
//! | `GET /api/slow` | stale-while-revalidate cache in front of a 200 ms origin |
//! | `GET /api/flags` | feature flags for the signed-in user (or `X-User-ID`) |
//! | `GET /api/config` | the public part of the runtime config |
//! | `/admin/...` | flag and config administration behind a bearer token |
//!
//! Two processes on different ports pointed at the same Redis or kv-server store share
//! sessions, rate limits, cached responses, flags and config.

mod admin;
mod api;
mod app;
mod config;
mod page;
mod seed;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kv_core::DEFAULT_STORE_URL;
use kv_middleware::rate_limit::Quota;

/// The toolkit's demo app: sessions, rate limits, a stale-while-revalidate cache, feature
/// flags and runtime config on one store.
#[derive(Debug, Parser)]
#[command(name = "kv-demo", version)]
pub struct Args {
    /// The address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The store URL: `file:PATH`, `memory:`, `redis://HOST:PORT`, `http://HOST:PORT` (a `kv
    /// serve`).
    #[arg(long, env = "KV_STORE", default_value = DEFAULT_STORE_URL)]
    store: String,
    /// The per-client-IP quota of `GET /api/ping`.
    #[arg(long, default_value = "60/min")]
    api_quota: Quota,
    /// The per-client-IP quota of `POST /login`.
    #[arg(long, default_value = "5/min")]
    login_quota: Quota,
    /// The bearer token of the `/admin` routes; without it they are not served.
    #[arg(long, env = "KV_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// How often flags and config are re-read from the store, in seconds (changes made by
    /// another process show up within this time; this process's own admin changes at once).
    #[arg(long, default_value_t = 2)]
    refresh_secs: u64,
    /// Send the session cookie without `Secure` (for plain HTTP on a host other than
    /// localhost; browsers accept `Secure` cookies on `http://localhost` and `127.0.0.1`).
    #[arg(long)]
    insecure_cookie: bool,
    /// Where users reach the demo, as `scheme://host[:port]` (such as `https://shop.example`),
    /// when it runs behind a proxy. Requests from this origin may change state even when the
    /// proxy rewrites `Host`; with `https`, the session cookie is `__Host-session`, a name that
    /// only this exact host can set over HTTPS (no sibling subdomain can plant one).
    #[arg(long, env = "KV_PUBLIC_ORIGIN")]
    public_origin: Option<String>,
    /// Connection timeouts (header, idle and body reads), as `kv serve` takes them.
    #[command(flatten)]
    timeouts: kv_server::TimeoutArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kv_examples::init_tracing("info");
    let args = Args::parse();
    let store = kv_examples::open_store(&args.store).await?;
    let refresh = Duration::from_secs(args.refresh_secs.max(1));
    let demo = app::Demo::start(&store, &args, refresh).await?;
    seed::defaults(&demo)
        .await
        .context("seeding the defaults")?;
    let router = app::router(demo, &args)?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    println!(
        "kv-demo listening on http://{} (store: {}, {} backend; admin routes {})",
        listener.local_addr()?,
        kv_core::redact_store_url(&args.store),
        store.kind(),
        if args.admin_token.is_some() {
            "on"
        } else {
            "off: set --admin-token or KV_ADMIN_TOKEN"
        }
    );
    kv_examples::serve(listener, router, &args.timeouts).await?;
    println!("kv-demo stopped");
    Ok(())
}
