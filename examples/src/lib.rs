//! Runnable example programs of the toolkit; each binary's source is its documentation.
//!
//! - `kv-demo`: one app with every layer on one store (the README's main command).
//! - `kv-quickstart`: writes, reads, lists, counts and expires keys on the default file store.
//! - `kv-sessions`: login, greeting and logout with the sessions layer, on any store URL.
//! - `kv-rate-limit`: a strict login limit and a lenient API limit with the draft headers.
//! - `kv-swr`: a slow origin behind the stale-while-revalidate cache layer.
//! - `kv-flags-config`: a page that changes with a flag and limits that come from config.
//! - `kv-soak`: a bounded mixed load on a kv-server and the demo, with latency and memory.
//!
//! This library holds the little the programs share.

/// Opens the store at `url` (any store URL); an error names the store without its password.
pub async fn open_store(url: &str) -> anyhow::Result<kv_core::Store> {
    use anyhow::Context as _;
    kv_backends::open(url)
        .await
        .with_context(|| format!("opening store {}", kv_core::redact_store_url(url)))
}

/// Serves `app` on `listener` until SIGINT or SIGTERM with the connection protections of
/// `kv serve` (see [`kv_server::serve_with_config`]): a connection that does not send a whole
/// request header within `timeouts`' header read timeout (a slow or idle one) is closed, a
/// request body that stalls fails with 400, and handlers see the peer's address
/// (`ConnectInfo<SocketAddr>`) for client-IP rate limits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    timeouts: &kv_server::TimeoutArgs,
) -> anyhow::Result<()> {
    let config = timeouts.apply(kv_server::ServerConfig::default());
    kv_server::serve_with_config(listener, app, &config, kv_server::shutdown_signal()).await?;
    Ok(())
}

/// Logs to stderr at `default` (`info`, `warn`, ...) unless `RUST_LOG` says otherwise.
pub fn init_tracing(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Escapes text for HTML element content and quoted attribute values.
///
/// ```
/// assert_eq!(kv_examples::escape_html("<a href=\"x\">Tom & 'Jerry'</a>"),
///            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;");
/// ```
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}
