//! The Redis backend: the scale-out store that several app processes share.
//!
//! - **One round trip** for a get (a record is one hash: value, metadata, expiration, version),
//!   for a put or a conditional put (a Lua script), and for a bulk get of 100 keys (pipelined).
//! - **Atomic compare-and-swap**: only-if-absent, only-if-version and conditional deletes are
//!   checked and applied inside Redis by Lua scripts, so two processes racing on one key never
//!   lose an update.
//! - **Ordered listing**: each namespace keeps a sorted set of its key names, read with
//!   `ZRANGEBYLEX` from the cursor; names whose records Redis has expired are pruned as listings
//!   meet them (only if the record is still gone, so a concurrent re-create is kept).
//! - **Expiry** uses Redis's own: a record with an expiration gets a `PEXPIRE` of its remaining
//!   lifetime on the backend's [`Clock`](kv_core::Clock) (with the system clock this is the same
//!   instant a `PEXPIREAT` would name; with a manual clock in tests it stays consistent). Reads
//!   also check the expiration against the clock, so an entry is gone at exactly its expiration.
//! - **Isolation**: every key of a namespace starts with the hash tag `{PREFIX:ID}`, so a
//!   namespace lives in one hash slot and every script stays within one slot, as Redis Cluster
//!   requires. The catalog (`PREFIX:catalog`, id to title) is one hash. Several apps share one
//!   Redis with different prefixes (`redis://host:6379/0?prefix=app1`, default `kv`).
//! - **Connection loss**: one multiplexed connection that reconnects by itself. While Redis is
//!   down, operations fail fast with [`KvError::Unavailable`] (bounded by the connection and
//!   response timeouts); once it is back, they work again without restarting the app.
//!
//! ```no_run
//! # async fn example() -> kv_core::Result<()> {
//! use kv_backends::redis::RedisBackend;
//! use kv_core::Store;
//!
//! let backend = RedisBackend::builder("redis://127.0.0.1:6379/0")
//!     .prefix("myapp")
//!     .connect()
//!     .await?;
//! let sessions = Store::new(backend).namespace("SESSIONS").await?;
//! sessions.put_text("s:1", "{}").await?;
//! # Ok(()) }
//! ```

#[cfg(test)]
mod script_tests;
mod scripts;
mod store;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{AsyncCommands, RedisError};
use kv_core::{
    async_trait, new_namespace_id, redact_store_url, Backend, Capabilities, KvError, NamespaceInfo,
    NamespaceStore, Result, SharedClock, SystemClock,
};

use scripts::Scripts;
use store::{NamespaceKeys, RedisNamespace};

const KIND: &str = "redis";

/// The latest expiration this backend can apply, in seconds since the Unix epoch
/// (9 007 199 254 740, about the year 287 396).
///
/// A record's expiry is a Redis `PEXPIRE` in milliseconds, computed inside Lua scripts whose only
/// number type is a double: 2^53 - 1 ms is the last instant both hold exactly. It is far beyond
/// the contract's default [`Limits::max_expiration_secs`](kv_core::Limits::max_expiration_secs);
/// limits relaxed past it are refused here with
/// [`LimitError::ExpirationTooLate`](kv_core::LimitError::ExpirationTooLate), before anything
/// is sent to Redis.
pub const MAX_EXPIRATION_SECS: u64 = 9_007_199_254_740;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "kv";

/// Configures and connects a [`RedisBackend`].
#[derive(Debug, Clone)]
pub struct RedisBackendBuilder {
    url: String,
    prefix: Option<String>,
    clock: Option<SharedClock>,
    connection_timeout: Duration,
    response_timeout: Duration,
}

impl RedisBackendBuilder {
    /// Prefix every key with this (default `kv`, or the URL's `prefix` query parameter).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Decide expiry with this clock instead of the system clock.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// How long one connection attempt may take (1 s by default).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long Redis may take to answer a command (2 s by default).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Connects; [`KvError::Unavailable`] when Redis cannot be reached,
    /// [`KvError::InvalidStoreUrl`] when the URL is not a Redis URL.
    pub async fn connect(self) -> Result<RedisBackend> {
        let (url, url_prefix) = split_prefix(&self.url)?;
        let prefix = self
            .prefix
            .or(url_prefix)
            .unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            return Err(KvError::InvalidStoreUrl {
                url: redact_store_url(&self.url),
                reason: "the key prefix must be non-empty and free of `{` and `}`".into(),
            });
        }
        let client = ::redis::Client::open(url.as_str()).map_err(|e| KvError::InvalidStoreUrl {
            url: redact_store_url(&self.url),
            reason: e.to_string(),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connection_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(redis_error)?;
        tracing::debug!(url = %redact_store_url(&url), prefix, "connected to redis");
        Ok(RedisBackend {
            shared: Arc::new(Shared {
                conn,
                catalog: format!("{prefix}:catalog"),
                prefix,
                clock: self.clock.unwrap_or_else(SystemClock::shared),
                scripts: Scripts::new(),
            }),
        })
    }
}

/// The Redis backend. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RedisBackend {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) conn: ConnectionManager,
    pub(crate) prefix: String,
    pub(crate) catalog: String,
    pub(crate) clock: SharedClock,
    pub(crate) scripts: Scripts,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("prefix", &self.shared.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// A builder for the Redis at `url` (`redis://HOST:PORT/DB`, `rediss://...`).
    pub fn builder(url: impl Into<String>) -> RedisBackendBuilder {
        RedisBackendBuilder {
            url: url.into(),
            prefix: None,
            clock: None,
            connection_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(2),
        }
    }

    /// Connects to `url` with the defaults.
    pub async fn connect(url: &str) -> Result<RedisBackend> {
        Self::builder(url).connect().await
    }

    fn keys(&self, id: &str) -> NamespaceKeys {
        NamespaceKeys::new(&self.shared.prefix, id)
    }
}

#[async_trait]
impl Backend for RedisBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn clock(&self) -> SharedClock {
        self.shared.clock.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::atomic()
    }

    async fn create_namespace(&self, title: &str) -> Result<NamespaceInfo> {
        let id = new_namespace_id();
        let keys = self.keys(&id);
        let mut conn = self.shared.conn.clone();
        let created: i64 = self
            .shared
            .scripts
            .create_namespace
            .key(&self.shared.catalog)
            .key(&keys.live)
            .arg(&id)
            .arg(title)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        if created == 0 {
            return Err(KvError::NamespaceExists {
                title: title.to_owned(),
            });
        }
        Ok(NamespaceInfo {
            id,
            title: title.to_owned(),
        })
    }

    async fn list_namespaces(&self) -> Result<Vec<NamespaceInfo>> {
        let mut conn = self.shared.conn.clone();
        let all: Vec<(String, String)> = conn
            .hgetall(&self.shared.catalog)
            .await
            .map_err(redis_error)?;
        let mut all: Vec<NamespaceInfo> = all
            .into_iter()
            .map(|(id, title)| NamespaceInfo { id, title })
            .collect();
        all.sort_by(|a, b| a.title.cmp(&b.title));
        Ok(all)
    }

    async fn rename_namespace(&self, id: &str, title: &str) -> Result<()> {
        let mut conn = self.shared.conn.clone();
        let outcome: i64 = self
            .shared
            .scripts
            .rename_namespace
            .key(&self.shared.catalog)
            .arg(id)
            .arg(title)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        match outcome {
            1 => Ok(()),
            0 => Err(KvError::NamespaceExists {
                title: title.to_owned(),
            }),
            _ => Err(KvError::NamespaceNotFound {
                name: id.to_owned(),
            }),
        }
    }

    async fn delete_namespace(&self, id: &str) -> Result<bool> {
        let mut conn = self.shared.conn.clone();
        let existed: i64 = conn
            .hdel(&self.shared.catalog, id)
            .await
            .map_err(redis_error)?;
        if existed == 0 {
            return Ok(false);
        }
        // Retire first so stale handles stop writing, then remove the entries in batches.
        let keys = self.keys(id);
        let _: i64 = conn.del(&keys.live).await.map_err(redis_error)?;
        loop {
            let names: Vec<Vec<u8>> = conn
                .zrange(&keys.index, 0, 999)
                .await
                .map_err(redis_error)?;
            if names.is_empty() {
                break;
            }
            let mut pipe = ::redis::pipe();
            for name in &names {
                pipe.del(keys.record(name)).ignore();
            }
            pipe.zrem(&keys.index, &names).ignore();
            let _: () = pipe.query_async(&mut conn).await.map_err(redis_error)?;
        }
        let _: i64 = conn
            .del(&[&keys.index, &keys.versions])
            .await
            .map_err(redis_error)?;
        tracing::debug!(id, "deleted namespace");
        Ok(true)
    }

    async fn open_namespace(&self, id: &str) -> Result<Arc<dyn NamespaceStore>> {
        let mut conn = self.shared.conn.clone();
        let listed: bool = conn
            .hexists(&self.shared.catalog, id)
            .await
            .map_err(redis_error)?;
        if !listed {
            return Err(KvError::NamespaceNotFound {
                name: id.to_owned(),
            });
        }
        Ok(Arc::new(RedisNamespace::new(
            self.shared.clone(),
            id,
            self.keys(id),
        )))
    }
}

/// Maps a Redis failure: connection trouble is [`KvError::Unavailable`], the rest
/// [`KvError::Backend`].
pub(crate) fn redis_error(error: RedisError) -> KvError {
    if error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
    {
        KvError::Unavailable {
            backend: KIND,
            source: Box::new(error),
        }
    } else {
        KvError::backend(KIND, error)
    }
}

/// Takes the `prefix` query parameter off a store URL (the Redis client does not know it).
fn split_prefix(url: &str) -> Result<(String, Option<String>)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let mut prefix = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("prefix", value)) => prefix = Some(value.to_owned()),
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_comes_off_the_url() {
        assert_eq!(
            split_prefix("redis://h:1/0?prefix=app").unwrap(),
            ("redis://h:1/0".to_owned(), Some("app".to_owned()))
        );
        assert_eq!(
            split_prefix("redis://h:1/0?protocol=resp3&prefix=a").unwrap(),
            (
                "redis://h:1/0?protocol=resp3".to_owned(),
                Some("a".to_owned())
            )
        );
        assert_eq!(
            split_prefix("redis://h").unwrap(),
            ("redis://h".to_owned(), None)
        );
    }
}
