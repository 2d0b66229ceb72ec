//! Server settings.

/// How a kv-server behaves beyond the store it serves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// When set, every request must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Largest request body for bulk endpoints, in bytes (100 MiB, as Cloudflare).
    pub max_bulk_body_bytes: usize,
    /// Extra room above the value limit for a value upload's multipart framing, in bytes.
    pub multipart_overhead_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            token: None,
            max_bulk_body_bytes: 100 * 1024 * 1024,
            multipart_overhead_bytes: 64 * 1024,
        }
    }
}

impl ServerConfig {
    /// The same settings requiring this bearer token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
}
