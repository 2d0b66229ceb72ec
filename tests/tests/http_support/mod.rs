//! Starting a kv-server (or a stub) on a free loopback port for the HTTP backend's tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use kv_backends::http::{HttpBackend, HttpBackendBuilder, RetryPolicy, DEFAULT_API_PATH};
use kv_core::{ManualClock, Store};
use kv_server::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server running in the test's runtime; shut down gracefully when dropped.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    _task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// kv-server over `store`.
    pub async fn start(store: Store, config: ServerConfig) -> Server {
        Self::serve(kv_server::router(store, config)).await
    }

    /// Any router (a stub imitating another server).
    pub async fn serve(router: axum::Router) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(kv_server::serve(listener, router, async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            shutdown: Some(shutdown),
            _task: task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The API base of a kv-server.
    pub fn base(&self) -> String {
        format!("{}{DEFAULT_API_PATH}", self.url())
    }

    /// A client of this server on `clock`, with quick retries.
    pub fn client(&self, clock: &ManualClock) -> HttpBackendBuilder {
        HttpBackend::builder(self.base())
            .clock(clock.shared())
            .retry(quick_retries())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Three retries with millisecond waits, so retry tests are fast.
pub fn quick_retries() -> RetryPolicy {
    RetryPolicy::default().backoff(Duration::from_millis(1), Duration::from_millis(5))
}

/// A loopback port where nothing listens, held for as long as the value lives.
#[path = "../../../kv-backends/tests/support/closed_port.rs"]
pub mod closed_port;
