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

/// Opens the store a URL names (`memory:`, `file:PATH`, ...) with default options.
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
        other => return Err(unavailable(url, other)),
    };
    Ok(store.with_limits(options.limits))
}

fn unavailable(url: &StoreUrl, which: &StoreUrl) -> KvError {
    let backend = which.backend();
    let reason = match backend {
        "memory" => "is not compiled in (enable the `memory` feature of kv-backends)",
        "file" => "is not compiled in (enable the `file` feature of kv-backends)",
        _ => "is not available in this version of kv-backends",
    };
    KvError::BackendNotAvailable {
        url: url.to_string(),
        backend,
        reason,
    }
}
