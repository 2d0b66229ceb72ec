//! Server settings.

use std::time::Duration;

/// How long a client may take to send a request's header, by default.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request body may go without sending anything, by default.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How a kv-server behaves beyond the store it serves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// When set, every request must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Largest request body for bulk endpoints, in bytes (100 MiB, as Cloudflare).
    pub max_bulk_body_bytes: usize,
    /// Extra room above the value limit for a value upload's multipart framing, in bytes.
    pub multipart_overhead_bytes: usize,
    /// How long a connection may take to send a request's whole header, counted from when the
    /// server starts waiting for it, before it is closed without an answer (default 10 s;
    /// `None`: wait forever). This bounds what a slow client (one that opens connections and
    /// trickles or stalls its headers, "slowloris") can hold, and since the server waits for the
    /// next request's header as soon as it has answered one, it is also how long an idle
    /// keep-alive connection stays open. Applied by
    /// [`serve_with_config`](crate::serve_with_config); [`serve`](crate::serve) uses the default.
    pub header_read_timeout: Option<Duration>,
    /// How long a request body may go without sending any data (default 30 s; `None`: wait
    /// forever). The clock restarts with every piece received, so a large upload over a slow
    /// link is fine; a client that sends its header and then stalls its body gets 400 and its
    /// connection closed instead of holding it. Applied by [`router`](crate::router).
    pub body_read_timeout: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            token: None,
            max_bulk_body_bytes: 100 * 1024 * 1024,
            multipart_overhead_bytes: 64 * 1024,
            header_read_timeout: Some(DEFAULT_HEADER_READ_TIMEOUT),
            body_read_timeout: Some(DEFAULT_BODY_READ_TIMEOUT),
        }
    }
}

impl ServerConfig {
    /// The same settings requiring this bearer token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The same settings with another header read timeout (`None`: none); see
    /// [`header_read_timeout`](Self::header_read_timeout).
    pub fn with_header_read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.header_read_timeout = timeout.into();
        self
    }

    /// The same settings with another body read timeout (`None`: none); see
    /// [`body_read_timeout`](Self::body_read_timeout).
    pub fn with_body_read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.body_read_timeout = timeout.into();
        self
    }
}
