//! The Redis backend: the scale-out store that several app processes share, on one Redis
//! node (`redis://`, `rediss://`) or a Redis Cluster (`redis+cluster://`, `rediss+cluster://`).
//!
//! # Layout
//!
//! | Redis key | type | holds |
//! | --- | --- | --- |
//! | `PREFIX:catalog` | hash | namespace id to title |
//! | `{PREFIX:ID:BB}:k:NAME` | string | one record: `r1 VERSION EXPIRATION\|- METALEN\n`, metadata JSON, value |
//! | `{PREFIX:ID:BB}:i` | sorted set | the names of bucket `BB` (all scores 0, so byte order) |
//! | `{PREFIX:ID:BB}:i` after deletion | string | tombstone: writes through stale handles fail |
//!
//! `BB` is the key's bucket, two hex digits: an FNV-1a hash of the key name modulo 64.
//!
//! - **Each record is one string** with its version, expiration and metadata inside, so a get
//!   is one `GET`, a bulk get one `MGET` (on a cluster, one pipeline of `GET`s per bucket), and
//!   a put the record's own write followed by the `ZADD` that names it in its bucket's index
//!   (one pipeline on one node; one after the other on a cluster). The record's write is a
//!   `SET` when unconditional; a conditional put or delete runs Lua on the record's key alone
//!   (the condition and the write atomic inside Redis), reading the record's header (not its
//!   value) with `GETRANGE`. Versions are made by the client (a random per-process salt and a
//!   counter through a bijective mixer), so a write needs no counter round trip, a version is
//!   unique per key with overwhelming probability, and a conditional put sent again after its
//!   reply was lost finds its own version and reports the write it made, once.
//! - **The index is updated after the record**, never atomically with it: a name is pruned only
//!   by a script that finds its record absent, and a writer names its record once it exists, so
//!   a listing never misses a record present for its whole run. A delete prunes the name right
//!   after removing the record (best effort); names left behind (a delete racing a put, a
//!   failed condition on an absent record, expiry) are pruned by the listings that meet them.
//! - **A namespace spreads over a cluster.** A hash tag per bucket, not per namespace: a
//!   record and its bucket's index share one slot, so each multi-key script (pruning the
//!   index) and each per-bucket pipeline stays in one slot as Redis Cluster requires, while a
//!   namespace's 64 buckets land on 64 slots, spread over all masters. Throughput of
//!   point operations grows with masters (each key is served by one master) until masters
//!   outnumber the buckets of a hot namespace.
//! - **Ordered listing** merges the 64 per-bucket ordered indexes: each is read with
//!   `ZRANGEBYLEX` from the cursor (a few names per bucket per round, all buckets at once), and
//!   names are taken in byte order while every bucket still has some buffered. The cursor is
//!   the last name returned, so it stays valid while keys change. Names whose records are gone
//!   (expired by Redis, or a put that lost a race with a delete) are pruned as listings meet
//!   them, only if the record is still gone, so a concurrent re-create is kept.
//! - **Expiry** uses Redis's own: a record with an expiration is written with `PX` of its
//!   remaining lifetime on the backend's [`Clock`](kv_core::Clock) (with the system clock the
//!   same instant a `PXAT` would name; with a manual clock in tests it stays consistent). Reads
//!   also check the expiration against the clock, so an entry is gone at exactly its expiration.
//! - **Deleting a namespace** replaces each bucket index with a tombstone first (a script per
//!   bucket), then removes the records it named. A stale handle's put then fails at its `ZADD`
//!   and removes the record it just wrote. Tombstones stay (64 small keys per deleted
//!   namespace): ids are never reused.
//! - **Isolation**: several apps share one Redis with different prefixes
//!   (`redis://host:6379/0?prefix=app1`, default `kv`).
//! - **Slot migration** (a reshard): every command that touches a record's key touches that
//!   key alone, so it is served by whichever node holds the key while its slot moves key by
//!   key; a multi-key command would be refused with `TRYAGAIN` for as long as the slot's keys
//!   are split. Redirections are followed by the backend, not the `redis` crate's cluster
//!   client: the crate sends `ASKING` and the redirected command as two requests on a shared
//!   connection, so under concurrency another request can take the one-shot `ASKING`, and the
//!   bounces that follow make it rebuild its slot map over and over (which could leave it stuck
//!   in a rebuild). The backend sends `ASKING` and the command as one pipeline, follows `MOVED`,
//!   and retries transient errors (`TRYAGAIN`, `CLUSTERDOWN`, a lost connection) with a growing
//!   wait, all within the response timeout.
//! - **Connection loss**: on one node, one multiplexed connection that reconnects by itself; on
//!   a cluster, the `redis` crate's cluster client routes by its slot map, refreshes it after a
//!   `MOVED` and reconnects to a node that stopped answering, and the backend retries as
//!   above, so a promoted replica is found within the response timeout. While Redis is
//!   unreachable, operations fail fast with [`KvError::Unavailable`] (bounded by the connection and
//!   response timeouts); once it is back, they work again without restarting the app. A write
//!   is acknowledged when its master acknowledged it; Redis replicates asynchronously, so a
//!   failover can lose writes acknowledged just before it.
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
//!
//! // The same on a cluster: any reachable node finds the others.
//! let _cluster = RedisBackend::connect("redis+cluster://10.0.0.1:7000,10.0.0.2:7000").await?;
//! # Ok(()) }
//! ```

mod conn;
mod layout;
#[cfg(test)]
mod script_tests;
mod scripts;
mod store;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::{AsyncCommands, RedisError};
use kv_core::{
    async_trait, new_namespace_id, redact_store_url, Backend, Capabilities, KvError, NamespaceInfo,
    NamespaceStore, Result, SharedClock, SystemClock,
};

use conn::Conn;
use layout::{NamespaceKeys, Versions, BUCKETS};
use scripts::Scripts;
use store::RedisNamespace;

const KIND: &str = "redis";

/// The latest expiration this backend can apply, in seconds since the Unix epoch
/// (9 007 199 254 740, about the year 287 396).
///
/// A record's expiry is a Redis TTL in milliseconds, which the conditional-write scripts check
/// as a Lua number, a double: 2^53 - 1 ms is the last instant both hold exactly. It is far
/// beyond the contract's default [`Limits::max_expiration_secs`](kv_core::Limits::max_expiration_secs);
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

    /// How long Redis may take to answer a command (2 s by default). On a cluster this bounds
    /// the whole command, redirections and retries after a failover included.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Connects; [`KvError::Unavailable`] when Redis cannot be reached,
    /// [`KvError::InvalidStoreUrl`] when the URL is not a Redis URL.
    pub async fn connect(self) -> Result<RedisBackend> {
        let invalid = |reason: String| KvError::InvalidStoreUrl {
            url: redact_store_url(&self.url),
            reason,
        };
        let (url, url_prefix) = split_prefix(&self.url)?;
        let prefix = self
            .prefix
            .clone()
            .or(url_prefix)
            .unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            return Err(invalid(
                "the key prefix must be non-empty and free of `{` and `}`".into(),
            ));
        }
        let conn = match cluster_nodes(&url).map_err(invalid)? {
            Some(nodes) => {
                Conn::cluster(nodes, self.connection_timeout, self.response_timeout).await?
            }
            None => {
                let client =
                    ::redis::Client::open(url.as_str()).map_err(|e| invalid(e.to_string()))?;
                Conn::single(client, self.connection_timeout, self.response_timeout).await?
            }
        };
        tracing::debug!(url = %redact_store_url(&url), prefix, "connected to redis");
        Ok(RedisBackend {
            shared: Arc::new(Shared {
                conn,
                catalog: format!("{prefix}:catalog"),
                prefix,
                clock: self.clock.unwrap_or_else(SystemClock::shared),
                scripts: Scripts::new(),
                versions: Versions::new(),
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
    pub(crate) conn: Conn,
    pub(crate) prefix: String,
    pub(crate) catalog: String,
    pub(crate) clock: SharedClock,
    pub(crate) scripts: Scripts,
    pub(crate) versions: Versions,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("prefix", &self.shared.prefix)
            .field("cluster", &self.shared.conn.is_cluster())
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// A builder for the Redis at `url`: `redis://HOST:PORT/DB`, `rediss://...`, or a cluster
    /// as `redis+cluster://HOST:PORT[,HOST:PORT...]` (`rediss+cluster://` with TLS), whose
    /// nodes are seeds: the others are discovered from any reachable one.
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

    /// Whether this backend talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.shared.conn.is_cluster()
    }

    fn keys(&self, id: &str) -> NamespaceKeys {
        NamespaceKeys::new(&self.shared.prefix, id)
    }

    /// Empties one bucket of a deleted namespace: tombstone, then the records it named.
    async fn retire_bucket(&self, keys: &NamespaceKeys, bucket: usize) -> Result<()> {
        let mut conn = self.shared.conn.clone();
        let retired = keys.retired(bucket);
        let _: i64 = self
            .shared
            .scripts
            .retire_bucket
            .key(keys.index(bucket))
            .key(&retired)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        loop {
            let names: Vec<Vec<u8>> = conn.zrange(&retired, 0, 999).await.map_err(redis_error)?;
            if names.is_empty() {
                break;
            }
            let mut pipe = ::redis::pipe();
            for name in &names {
                pipe.del(keys.record_in(bucket, name)).ignore();
            }
            pipe.zrem(&retired, &names).ignore();
            let _: () = pipe.query_async(&mut conn).await.map_err(redis_error)?;
        }
        let _: i64 = conn.del(&retired).await.map_err(redis_error)?;
        Ok(())
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
        let mut conn = self.shared.conn.clone();
        let created: i64 = self
            .shared
            .scripts
            .create_namespace
            .key(&self.shared.catalog)
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
        // Every bucket at once: on a cluster they live on different masters.
        let keys = self.keys(id);
        futures::future::try_join_all((0..BUCKETS).map(|b| self.retire_bucket(&keys, b))).await?;
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

/// Maps a Redis failure: connection trouble, and a cluster without a master for a slot (during
/// a failover), is [`KvError::Unavailable`]; the rest [`KvError::Backend`].
pub(crate) fn redis_error(error: RedisError) -> KvError {
    use ::redis::{ErrorKind, ServerErrorKind};
    let transient = matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::ClusterDown | ServerErrorKind::TryAgain | ServerErrorKind::MasterDown
        )
    );
    if transient
        || error.is_io_error()
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

/// The seed node URLs of a `redis+cluster://` or `rediss+cluster://` URL (`None` for any other
/// scheme): `redis[s]://[USERINFO@]HOST:PORT[?QUERY]` per host, each carrying the URL's user
/// information and query, so a cluster takes the same options as one node. A cluster has one
/// database: a path other than `/` or `/0` is refused.
fn cluster_nodes(url: &str) -> std::result::Result<Option<Vec<String>>, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(None);
    };
    let node_scheme = match scheme.to_ascii_lowercase().as_str() {
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        _ => return Ok(None),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(slash) => before_query.split_at(slash),
        None => (before_query, ""),
    };
    if !matches!(path, "" | "/" | "/0") {
        return Err(format!(
            "a Redis Cluster has only database 0, not {:?}",
            path.trim_start_matches('/')
        ));
    }
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let mut nodes = Vec::new();
    for host in hosts.split(',') {
        let port_ok = host
            .rsplit_once(':')
            .is_some_and(|(name, port)| !name.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(format!(
                "each cluster node is HOST:PORT, and {host:?} is not"
            ));
        }
        let mut node = format!("{node_scheme}://");
        if let Some(userinfo) = userinfo {
            node.push_str(userinfo);
            node.push('@');
        }
        node.push_str(host);
        if let Some(query) = query {
            node.push('?');
            node.push_str(query);
        }
        nodes.push(node);
    }
    Ok(Some(nodes))
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

    #[test]
    fn cluster_urls_become_seed_nodes() {
        assert_eq!(cluster_nodes("redis://h:1/0"), Ok(None));
        assert_eq!(
            cluster_nodes("redis+cluster://a:7000,b:7001"),
            Ok(Some(vec![
                "redis://a:7000".to_owned(),
                "redis://b:7001".to_owned()
            ]))
        );
        assert_eq!(
            cluster_nodes("rediss+cluster://u:pw@a:7000/0?protocol=resp3"),
            Ok(Some(vec!["rediss://u:pw@a:7000?protocol=resp3".to_owned()]))
        );
        assert_eq!(
            cluster_nodes("REDIS+CLUSTER://[::1]:7000/"),
            Ok(Some(vec!["redis://[::1]:7000".to_owned()]))
        );
        for bad in [
            "redis+cluster://a:7000/1",
            "redis+cluster://a",
            "redis+cluster://a:7000,",
            "redis+cluster://a:x",
            "redis+cluster://:7000",
        ] {
            assert!(cluster_nodes(bad).is_err(), "{bad}");
        }
    }
}
