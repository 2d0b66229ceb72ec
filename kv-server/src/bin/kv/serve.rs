//! `kv serve`.

use std::net::SocketAddr;

use clap::Args;
use kv_core::redact_store_url;
use kv_middleware::flags::FlagStore;
use kv_server::console::{ConsoleConfig, PatternNamespaces};
use kv_server::{router, serve_with_config, shutdown_signal, ServerConfig, TimeoutArgs};

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
    /// Serve the flags of this namespace (by title or id) over OFREP, the OpenFeature Remote
    /// Evaluation Protocol: `POST /ofrep/v1/evaluate/flags/{key}` and
    /// `POST /ofrep/v1/evaluate/flags`. The namespace must exist.
    #[arg(long, value_name = "NAME")]
    flags_namespace: Option<String>,
    /// Do not serve the web console at `/console`.
    #[arg(long)]
    no_console: bool,
    /// Trust `X-Forwarded-Proto` / `Forwarded: proto=` from the peer, so the console's sign-in
    /// cookie is `Secure` behind a TLS-terminating proxy. Only behind a proxy that sets them.
    #[arg(long)]
    trust_forwarded_proto: bool,
    /// The namespace (by title) where the console looks for feature flags.
    #[arg(long, value_name = "NAME", default_value = "FLAGS")]
    console_flags_namespace: String,
    /// The namespace (by title) where the console looks for runtime config documents.
    #[arg(long, value_name = "NAME", default_value = "CONFIG")]
    console_config_namespace: String,
    /// The namespace (by title) where the console looks for sessions.
    #[arg(long, value_name = "NAME", default_value = "SESSIONS")]
    console_sessions_namespace: String,
    /// The namespace (by title) where the console looks for rate-limit state.
    #[arg(long, value_name = "NAME", default_value = "RATE_LIMITS")]
    console_rate_limits_namespace: String,
    /// The namespace (by title) where the console looks for cached HTTP responses.
    #[arg(long, value_name = "NAME", default_value = "HTTP_CACHE")]
    console_cache_namespace: String,
    #[command(flatten)]
    timeouts: TimeoutArgs,
}

/// Serves `store_url` (the global `--store`) until SIGINT or SIGTERM.
pub async fn run(store_url: &str, args: ServeArgs) -> Outcome {
    let store = crate::open(store_url).await?;
    let mut config = args.timeouts.apply(ServerConfig::default());
    if let Some(token) = args.token.filter(|t| !t.is_empty()) {
        config = config.with_token(token);
    }
    if let Some(name) = &args.flags_namespace {
        let namespace = crate::existing_namespace(&store, name).await?;
        // Refuses to start on a store it cannot read: OFREP would answer nothing but errors.
        let flags = FlagStore::load(namespace).await.map_err(|e| {
            Failure::Error(anyhow::Error::new(e).context(format!("loading the flags of {name:?}")))
        })?;
        config = config.with_flags(flags);
    }
    if !args.no_console {
        config = config.with_console(ConsoleConfig {
            trust_forwarded_proto: args.trust_forwarded_proto,
            namespaces: PatternNamespaces {
                flags: args.console_flags_namespace.clone(),
                config: args.console_config_namespace.clone(),
                sessions: args.console_sessions_namespace.clone(),
                rate_limits: args.console_rate_limits_namespace.clone(),
                cache: args.console_cache_namespace.clone(),
            },
            ..ConsoleConfig::default()
        });
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
    println!(
        "kv-server listening on http://{address} (store {}, {auth}{}{})",
        redact_store_url(store_url),
        if args.no_console {
            String::new()
        } else {
            format!(", console at http://{address}/console")
        },
        match &args.flags_namespace {
            Some(name) => format!(", OFREP over the flags of {name:?}"),
            None => String::new(),
        }
    );
    let app = router(store, config.clone());
    serve_with_config(listener, app, &config, shutdown_signal()).await?;
    println!("kv-server stopped");
    Ok(())
}
