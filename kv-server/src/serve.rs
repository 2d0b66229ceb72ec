//! Serving a router over HTTP/1.1 with the connection protections every app needs: a header
//! read timeout (which is also the idle keep-alive timeout), a body read timeout, the peer's
//! address for the app, and a graceful shutdown. `kv serve` uses it, and so can any axum app
//! built on the toolkit's layers (the demo does).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::Router;
use tokio::net::TcpListener;
use tower::ServiceExt as _;
use tower_http::timeout::TimeoutBody;

use crate::ServerConfig;

/// The connection timeouts as command-line options, for every program that serves (`kv serve`,
/// the demo and the examples), so they are spelt and defaulted the same everywhere.
///
/// ```
/// use clap::Parser;
///
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     timeouts: kv_server::TimeoutArgs,
/// }
///
/// let cli = Cli::parse_from(["app", "--header-read-timeout", "5", "--body-read-timeout", "0"]);
/// let config = cli.timeouts.apply(kv_server::ServerConfig::default());
/// assert_eq!(config.header_read_timeout, Some(std::time::Duration::from_secs(5)));
/// assert_eq!(config.body_read_timeout, None);
/// ```
///
/// With the `cli` feature (a default one): it is the only part of the library that needs clap.
#[cfg(feature = "cli")]
#[derive(Debug, Clone, clap::Args)]
pub struct TimeoutArgs {
    /// Close a connection that takes longer than this many seconds to send a request's header
    /// (also how long an idle keep-alive connection stays open); 0 disables it.
    #[arg(long, value_name = "SECS", default_value_t = crate::DEFAULT_HEADER_READ_TIMEOUT.as_secs())]
    pub header_read_timeout: u64,
    /// Answer 400 and close a connection whose request body sends nothing for this many
    /// seconds; 0 disables it.
    #[arg(long, value_name = "SECS", default_value_t = crate::DEFAULT_BODY_READ_TIMEOUT.as_secs())]
    pub body_read_timeout: u64,
}

#[cfg(feature = "cli")]
impl TimeoutArgs {
    /// `config` with these timeouts (0 seconds: none).
    pub fn apply(&self, config: ServerConfig) -> ServerConfig {
        let seconds = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
        config
            .with_header_read_timeout(seconds(self.header_read_timeout))
            .with_body_read_timeout(seconds(self.body_read_timeout))
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then finishes in-flight requests.
///
/// Uses the default [`ServerConfig`] timeouts (header 10 s, body 30 s); see
/// [`serve_with_config`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_config(listener, app, &ServerConfig::default(), shutdown).await
}

/// Serves `app` on `listener` with the connection settings of `config` until `shutdown`
/// completes, then finishes in-flight requests: it stops accepting, lets every connection
/// finish the request it is serving, closes idle ones, and returns once all are closed.
///
/// Any axum [`Router`] can be served this way, not only kv-server's. What it adds:
///
/// - [`header_read_timeout`](ServerConfig::header_read_timeout): a connection that does not
///   send a request's whole header in time (a partial header, or an idle keep-alive
///   connection) is closed without an answer;
/// - [`body_read_timeout`](ServerConfig::body_read_timeout): a request body that sends nothing
///   for that long fails its read (axum answers 400) and the connection is closed;
/// - a header larger than about 400 KiB (or with more than 100 fields) is answered
///   `431 Request Header Fields Too Large`;
/// - every request carries axum's [`ConnectInfo<SocketAddr>`] with the peer's address, as with
///   `into_make_service_with_connect_info`, so client-IP rate limits work unchanged.
///
/// Only the connection settings of `config` are used here (the token and body limits belong to
/// [`router`](crate::router)). HTTP/1.1 only.
///
/// ```no_run
/// # async fn run(store: kv_core::Store) -> std::io::Result<()> {
/// use std::time::Duration;
/// let config = kv_server::ServerConfig::default().with_header_read_timeout(Duration::from_secs(5));
/// let app = kv_server::router(store, config.clone());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8787").await?;
/// kv_server::serve_with_config(listener, app, &config, kv_server::shutdown_signal()).await
/// # }
/// ```
pub async fn serve_with_config(
    listener: TcpListener,
    app: Router,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let body_read_timeout = config.body_read_timeout;
    // Tells connections to finish: a value is sent (or the sender dropped) at shutdown.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    // Every connection task holds a receiver; `closed()` completes when all are gone.
    let (done_tx, done_rx) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_error(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small answers should not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |request| prepare(request, peer, body_read_timeout));
        let connection =
            builder.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service));
        let mut stop = stop_rx.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                }
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                }
            }
            drop(done);
        });
    }
    drop(listener);
    drop(done_rx);
    let _ = stop_tx.send(());
    done_tx.closed().await;
    Ok(())
}

/// Gives a request its peer address and, when it has a body, the body read timeout. Requests
/// without a body (reads, the hot path) keep their body as it is: nothing to time, no box.
fn prepare<B>(request: Request<B>, peer: SocketAddr, body_read_timeout: Option<Duration>) -> Request
where
    B: HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(ConnectInfo(peer));
    let body = match body_read_timeout {
        Some(timeout) if !body.is_end_stream() => Body::new(TimeoutBody::new(timeout, body)),
        _ => Body::new(body),
    };
    Request::from_parts(parts, body)
}

/// Waits out a failed `accept`: at once for errors of one connection, a second for others
/// (such as running out of file descriptors) so that the loop does not spin.
async fn accept_error(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
