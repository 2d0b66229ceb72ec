//! Server settings.

use std::time::Duration;

use kv_core::Limits;
use kv_middleware::flags::FlagStore;

use crate::console::ConsoleConfig;

/// How long a client may take to send a request's header, by default.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request body may go without sending anything, by default.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The room above the store's value limit in the default bound of a bulk get's answer, in
/// bytes: enough for 100 keys with their metadata and the JSON around them.
const BULK_GET_RESPONSE_ROOM: usize = 1024 * 1024;

/// How a kv-server behaves beyond the store it serves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// When set, every request must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Largest request body of a bulk write or bulk delete, in bytes (100 MiB, as Cloudflare).
    /// A body declaring a larger `Content-Length` is answered 413 before any of it is read; a
    /// chunked body is refused as soon as it passes the limit.
    pub max_bulk_body_bytes: usize,
    /// Largest request body of a bulk get, in bytes (default 1 MiB: 100 keys of 512 bytes
    /// fit even with every byte escaped as `\uXXXX`). Refused as bulk write bodies are.
    pub max_bulk_get_body_bytes: usize,
    /// Largest answer of a bulk get, in bytes of JSON as sent (escapes, metadata and the
    /// envelope included); a larger one is refused with 413 and code
    /// [`BULK_GET_TOO_LARGE`](crate::error::codes::BULK_GET_TOO_LARGE) before it is built.
    /// `None` (the default) is the store's value limit plus 1 MiB, so any one value the store
    /// accepts can be read in a bulk get; see [`bulk_get_response_limit`](Self::bulk_get_response_limit).
    ///
    /// This bounds the memory a bulk get takes: a key asked for more than once is read and
    /// answered once, and the store is read 10 keys at a time, stopping as soon as what was read
    /// is larger than this bound.
    pub max_bulk_get_response_bytes: Option<usize>,
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
    /// The flags served over OFREP (`POST /ofrep/v1/evaluate/flags[/{key}]`, see
    /// [`ofrep`](crate::ofrep)); `None` (the default): no OFREP routes. `kv serve
    /// --flags-namespace NAME` loads the store's namespace `NAME` into one.
    pub flags: Option<FlagStore>,
    /// The web console at `/console` (and `/` redirecting there); `None` (the default): no
    /// console. `kv serve` serves it unless given `--no-console`. See [`console`](crate::console).
    pub console: Option<ConsoleConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            token: None,
            max_bulk_body_bytes: 100 * 1024 * 1024,
            max_bulk_get_body_bytes: 1024 * 1024,
            max_bulk_get_response_bytes: None,
            multipart_overhead_bytes: 64 * 1024,
            header_read_timeout: Some(DEFAULT_HEADER_READ_TIMEOUT),
            body_read_timeout: Some(DEFAULT_BODY_READ_TIMEOUT),
            flags: None,
            console: None,
        }
    }
}

impl ServerConfig {
    /// The same settings requiring this bearer token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The same settings with another bound on a bulk get's answer (`None`: the store's value
    /// limit plus 1 MiB); see [`max_bulk_get_response_bytes`](Self::max_bulk_get_response_bytes).
    pub fn with_max_bulk_get_response_bytes(mut self, bytes: impl Into<Option<usize>>) -> Self {
        self.max_bulk_get_response_bytes = bytes.into();
        self
    }

    /// The largest bulk get answer, in bytes, for a store with these `limits`: the configured
    /// [`max_bulk_get_response_bytes`](Self::max_bulk_get_response_bytes), or the value limit
    /// plus 1 MiB.
    pub fn bulk_get_response_limit(&self, limits: &Limits) -> usize {
        self.max_bulk_get_response_bytes.unwrap_or_else(|| {
            limits
                .max_value_bytes
                .saturating_add(BULK_GET_RESPONSE_ROOM)
        })
    }

    /// The same settings with another header read timeout (`None`: none); see
    /// [`header_read_timeout`](Self::header_read_timeout).
    pub fn with_header_read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.header_read_timeout = timeout.into();
        self
    }

    /// The same settings serving these flags over OFREP; see [`flags`](Self::flags).
    pub fn with_flags(mut self, flags: FlagStore) -> Self {
        self.flags = Some(flags);
        self
    }

    /// The same settings serving the web console; see [`console`](Self::console).
    pub fn with_console(mut self, console: ConsoleConfig) -> Self {
        self.console = Some(console);
        self
    }

    /// The same settings with another body read timeout (`None`: none); see
    /// [`body_read_timeout`](Self::body_read_timeout).
    pub fn with_body_read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.body_read_timeout = timeout.into();
        self
    }
}
