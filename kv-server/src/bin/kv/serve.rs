//! `kv serve`.

use std::net::SocketAddr;

use clap::Args;
use kv_server::{router, serve_with_config, shutdown_signal, ServerConfig};

use crate::{Failure, Outcome};

/// Options of `kv serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Require `Authorization: Bearer <token>` on every request.
    #[arg(long, env = "KV_TOKEN")]
    token: Option<String>,
    /// Close a connection that takes longer than this many seconds to send a request's header
    /// (also how long an idle keep-alive connection stays open); 0 disables it.
    #[arg(long, value_name = "SECS", default_value_t = kv_server::DEFAULT_HEADER_READ_TIMEOUT.as_secs())]
    header_read_timeout: u64,
    /// Answer 400 and close a connection whose request body sends nothing for this many
    /// seconds; 0 disables it.
    #[arg(long, value_name = "SECS", default_value_t = kv_server::DEFAULT_BODY_READ_TIMEOUT.as_secs())]
    body_read_timeout: u64,
}

/// Serves `store_url` (the global `--store`) until SIGINT or SIGTERM.
pub async fn run(store_url: &str, args: ServeArgs) -> Outcome {
    let store = crate::open(store_url).await?;
    let seconds = |secs: u64| (secs > 0).then(|| std::time::Duration::from_secs(secs));
    let mut config = ServerConfig::default()
        .with_header_read_timeout(seconds(args.header_read_timeout))
        .with_body_read_timeout(seconds(args.body_read_timeout));
    if let Some(token) = args.token.filter(|t| !t.is_empty()) {
        config = config.with_token(token);
    }
    let auth = if config.token.is_some() {
        "bearer token required"
    } else {
        "no auth"
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::Error(anyhow::anyhow!("cannot listen on {}: {e}", args.listen)))?;
    let address = listener.local_addr()?;
    println!("kv-server listening on http://{address} (store {store_url}, {auth})");
    let app = router(store, config.clone());
    serve_with_config(listener, app, &config, shutdown_signal()).await?;
    println!("kv-server stopped");
    Ok(())
}
