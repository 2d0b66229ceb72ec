//! Opening a store from a store URL.

use kv_core::{KvError, Limits, Result, SharedClock, Store, StoreUrl};

/// Options for [`open_url`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The clock the backend decides expiry with; the system clock when `None`.
    pub clock: Option<SharedClock>,
    /// The limits requests are checked against; Workers KV's by default.
    pub limits: Limits,
}

/// Opens the store a URL names (`memory:`, `file:PATH`, `http://HOST:PORT`, ...) with default
/// options.
///
/// `http://` and `https://` URLs (feature `http`) open the HTTP backend with the bearer token
/// from `KV_TOKEN` when it is set; a URL without a path gets kv-server's API path, a URL with
/// one is the API base itself. `cloudflare://ACCOUNT_ID` opens Cloudflare Workers KV with the
/// token from `CLOUDFLARE_API_TOKEN`. Opening an HTTP store asks the server what it can do (one
/// namespace listing), so it fails when the server is unreachable or refuses the token.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kv_core::Result<()> {
/// let store = kv_backends::open("memory:").await?;
/// let ns = store.namespace("demo").await?;
/// ns.put_text("k", "v").await?;
/// assert_eq!(ns.get_text("k").await?.as_deref(), Some("v"));
///
/// assert!(kv_backends::open("s3://bucket").await.is_err());
/// # Ok(()) }
/// ```
pub async fn open(url: &str) -> Result<Store> {
    open_url(&url.parse()?, OpenOptions::default()).await
}

/// Opens the store a parsed URL names.
pub async fn open_url(url: &StoreUrl, options: OpenOptions) -> Result<Store> {
    let clock = options.clock.unwrap_or_else(kv_core::SystemClock::shared);
    Ok(backend_store(url, clock).await?.with_limits(options.limits))
}

/// The store of the backend a URL names, when that backend is compiled in.
// With no backend feature, every arm but the last is compiled out and `clock` goes unused.
#[cfg_attr(
    not(any(
        feature = "memory",
        feature = "file",
        feature = "http",
        feature = "redis"
    )),
    allow(unused_variables)
)]
async fn backend_store(url: &StoreUrl, clock: SharedClock) -> Result<Store> {
    let store = match url {
        #[cfg(feature = "memory")]
        StoreUrl::Memory => {
            Store::new(crate::memory::MemoryBackend::builder().clock(clock).build())
        }
        #[cfg(feature = "file")]
        StoreUrl::File { path } => {
            let path = path.clone();
            let backend = tokio::task::spawn_blocking(move || {
                crate::file::FileBackend::builder(path).clock(clock).open()
            })
            .await
            .map_err(|e| KvError::backend("file", e))??;
            Store::new(backend)
        }
        #[cfg(feature = "http")]
        StoreUrl::Http { url } => {
            let mut builder = crate::http::HttpBackend::for_server(url)?.clock(clock);
            if let Some(token) = env_token(crate::http::TOKEN_ENV) {
                builder = builder.token(token);
            }
            Store::new(builder.connect().await?)
        }
        #[cfg(feature = "http")]
        StoreUrl::Cloudflare { account_id } => {
            let token = env_token(crate::http::CLOUDFLARE_TOKEN_ENV).ok_or_else(|| {
                KvError::BackendNotAvailable {
                    url: url.redacted(),
                    backend: "cloudflare",
                    reason: "needs an API token in the CLOUDFLARE_API_TOKEN environment variable",
                }
            })?;
            let backend = crate::http::HttpBackend::cloudflare(account_id)
                .token(token)
                .clock(clock)
                .connect()
                .await?;
            Store::new(backend)
        }
        #[cfg(feature = "redis")]
        StoreUrl::Redis { url } => Store::new(
            crate::redis::RedisBackend::builder(url.as_str())
                .clock(clock)
                .connect()
                .await?,
        ),
        other => return Err(unavailable(url, other)),
    };
    #[allow(unreachable_code)]
    Ok(store)
}

/// A token from the environment; unset or blank is none.
#[cfg(feature = "http")]
fn env_token(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
}

fn unavailable(url: &StoreUrl, which: &StoreUrl) -> KvError {
    let backend = which.backend();
    let reason = match backend {
        "memory" => "is not compiled in (enable the `memory` feature of tower-kv or kv-backends)",
        "file" => "is not compiled in (enable the `file` feature of tower-kv or kv-backends)",
        "http" | "cloudflare" => {
            "is not compiled in (enable the `http` feature of tower-kv or kv-backends)"
        }
        "redis" => "is not compiled in (enable the `redis` feature of tower-kv or kv-backends)",
        _ => "is not available in this version of kv-backends",
    };
    KvError::BackendNotAvailable {
        url: url.redacted(),
        backend,
        reason,
    }
}
