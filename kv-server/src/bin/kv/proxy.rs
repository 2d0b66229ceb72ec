//! `kv proxy`: a caching reverse proxy whose cache lives in the store (see
//! [`kv_server::proxy`] for what it does).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use kv_core::redact_store_url;
use kv_server::proxy::{self, ProxyConfig};
use kv_server::{serve_with_config, shutdown_signal, ServerConfig, TimeoutArgs};

use crate::{Failure, Outcome};

/// Options of `kv proxy`. The cache's store is the global `--store`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where requests go: `http(s)://HOST[:PORT][/BASE/PATH]`.
    #[arg(long, value_name = "URL")]
    upstream: String,
    /// Answer 504 when the upstream sends no response head within this many seconds (decimals
    /// allowed); also the longest pause within its response body.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_seconds)]
    upstream_timeout: Duration,
    /// Enable `PURGE <url>` and `POST /.kv/purge?prefix=PATH` for requests with
    /// `Authorization: Bearer <token>` (refused with 403 without it).
    #[arg(long, env = "KV_PURGE_TOKEN", value_name = "TOKEN")]
    purge_token: Option<String>,
    /// Store responses that say nothing about their freshness for this many seconds (by
    /// default they are stored only as RFC 9111 allows).
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    default_ttl: Option<Duration>,
    /// The namespace that holds the cache (created when missing); proxies that share the
    /// store and this namespace share the cache.
    #[arg(long, value_name = "TITLE", default_value = "HTTP_CACHE")]
    cache_namespace: String,
    #[command(flatten)]
    timeouts: TimeoutArgs,
}

/// A positive number of seconds, decimals allowed.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds <= 365.0 * 86_400.0) {
        return Err(format!("{text:?} must be above 0 and at most a year"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Runs the proxy until SIGINT or SIGTERM.
pub async fn run(store_url: &str, args: ProxyArgs) -> Outcome {
    let mut config = ProxyConfig::new(&args.upstream)?.with_upstream_timeout(args.upstream_timeout);
    if let Some(token) = args.purge_token {
        config = config.with_purge_token(token);
    }
    let store = crate::open(store_url).await?;
    let namespace = crate::namespace_or_create(&store, &args.cache_namespace).await?;
    let cache = proxy::cache_layer(namespace, args.default_ttl);
    let server = args.timeouts.apply(ServerConfig::default());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::Error(anyhow::anyhow!("cannot listen on {}: {e}", args.listen)))?;
    let address = listener.local_addr()?;
    println!(
        "kv proxy listening on http://{address} (upstream {}, store {}, purging {})",
        config.upstream(),
        redact_store_url(store_url),
        if config.purging() {
            "enabled"
        } else {
            "disabled"
        }
    );
    let app = proxy::router(cache, config);
    serve_with_config(listener, app, &server, shutdown_signal()).await?;
    println!("kv proxy stopped");
    Ok(())
}
