//! The Redis benchmarks' contenders, shared by `benches/benches/redis.rs` and
//! `benches/examples/redis_ops.rs`: each operation through our backend (a namespace) and as the
//! raw `redis` crate issues it (GET / SET / MGET, on one node or through its cluster client),
//! over [`KEYS`] keys of [`VALUE_LEN`]-byte values, timed in rounds of concurrent tasks.

use std::time::{Duration, Instant};

use kv_backends::redis::RedisBackend;
use kv_core::{Namespace, PutOptions, Store, WriteMode};
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::AsyncCommands;

/// How many keys each contender cycles through (ours `key:0000`..., the raw client's
/// `raw:0000`..., so the two never share a key).
pub const KEYS: usize = 1000;

/// Bytes in every value written.
pub const VALUE_LEN: usize = 100;

/// One measured operation.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// One point read.
    Get,
    /// One unconditional write.
    Put,
    /// The usual compare-and-swap step: read the version, then write only if it still matches
    /// (raw: a `GET` then a `SET`, which is not atomic).
    ConditionalPut,
    /// One read of 100 keys (raw: `MGET`).
    BulkGet100,
}

impl Op {
    /// The operation's name in criterion's benchmark IDs.
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::ConditionalPut => "read+cas",
            Op::BulkGet100 => "bulk-get-100",
        }
    }
}

/// Who runs an operation: our backend (through a namespace) or the raw client.
#[derive(Clone)]
pub enum Contender {
    /// Our backend, through a namespace of a [`Store`] over [`RedisBackend`].
    Ours(Namespace),
    /// The raw `redis` crate.
    Raw(RawConn),
}

/// A raw `redis` connection: to one node, or through the crate's cluster client.
#[derive(Clone)]
pub enum RawConn {
    /// A connection manager to one `redis-server`.
    Single(ConnectionManager),
    /// The cluster client's connection, which routes each key to its slot's master.
    Cluster(ClusterConnection),
}

impl Contender {
    /// Our backend on the Redis (or Redis Cluster) at `url`, namespace `BENCH`.
    pub async fn ours(url: &str) -> Contender {
        let store = Store::new(RedisBackend::connect(url).await.unwrap());
        Contender::Ours(store.namespace("BENCH").await.unwrap())
    }

    /// The raw client on the one `redis-server` at `url`.
    pub async fn raw_single(url: &str) -> Contender {
        let client = redis::Client::open(url).unwrap();
        Contender::Raw(RawConn::Single(
            ConnectionManager::new(client).await.unwrap(),
        ))
    }

    /// The raw cluster client over the cluster nodes at `node_urls`.
    pub async fn raw_cluster(node_urls: Vec<String>) -> Contender {
        let conn = redis::cluster::ClusterClient::new(node_urls)
            .unwrap()
            .get_async_connection()
            .await
            .unwrap();
        Contender::Raw(RawConn::Cluster(conn))
    }

    /// Writes every one of the contender's [`KEYS`] keys, so reads find them.
    pub async fn fill(&mut self) {
        for i in 0..KEYS {
            self.run(Op::Put, i).await;
        }
    }

    /// Runs `op` once on key `i` (modulo [`KEYS`]); panics on any error, so a bench never
    /// measures failures.
    pub async fn run(&mut self, op: Op, i: usize) {
        match self {
            Contender::Ours(ns) => ours(ns, op, i).await,
            Contender::Raw(RawConn::Single(conn)) => raw(conn, op, i).await,
            Contender::Raw(RawConn::Cluster(conn)) => raw(conn, op, i).await,
        }
    }

    /// `ops` operations over `tasks` concurrent tasks (each its own clone of the contender);
    /// returns the elapsed time scaled to exactly `ops` operations (so criterion's time per
    /// iteration is the time per operation), and each operation's latency in nanoseconds when
    /// `latencies` is set.
    pub async fn round(
        &self,
        op: Op,
        tasks: usize,
        ops: u64,
        latencies: bool,
    ) -> (Duration, Vec<u64>) {
        let per_task = (ops as usize).div_ceil(tasks);
        let started = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let mut contender = self.clone();
                tokio::spawn(async move {
                    let mut times = Vec::new();
                    for i in 0..per_task {
                        let began = Instant::now();
                        contender.run(op, t * 7919 + i).await;
                        if latencies {
                            times.push(began.elapsed().as_nanos() as u64);
                        }
                    }
                    times
                })
            })
            .collect();
        let mut times = Vec::new();
        for handle in handles {
            times.extend(handle.await.unwrap());
        }
        let elapsed = started.elapsed();
        let scaled = elapsed.mul_f64(ops as f64 / (per_task * tasks) as f64);
        (scaled, times)
    }
}

async fn ours(ns: &Namespace, op: Op, i: usize) {
    let key = format!("key:{:04}", i % KEYS);
    match op {
        Op::Get => {
            ns.get(&key).await.unwrap().unwrap();
        }
        Op::Put => {
            ns.put(&key, vec![b'v'; VALUE_LEN]).await.unwrap();
        }
        Op::ConditionalPut => {
            let entry = ns.get_entry(&key).await.unwrap().unwrap();
            let options = PutOptions::new().mode(WriteMode::OnlyIfVersion(entry.version));
            let _ = ns
                .put_with(&key, vec![b'c'; VALUE_LEN], options)
                .await
                .unwrap();
        }
        Op::BulkGet100 => {
            let keys: Vec<String> = (0..100)
                .map(|j| format!("key:{:04}", (i + j) % KEYS))
                .collect();
            ns.get_many(&keys).await.unwrap();
        }
    }
}

async fn raw<C: ConnectionLike + Send + Sync>(conn: &mut C, op: Op, i: usize) {
    let key = format!("raw:{:04}", i % KEYS);
    match op {
        Op::Get => {
            let _: Vec<u8> = conn.get(&key).await.unwrap();
        }
        Op::Put => {
            let _: () = conn.set(&key, vec![b'v'; VALUE_LEN]).await.unwrap();
        }
        Op::ConditionalPut => {
            let _: Vec<u8> = conn.get(&key).await.unwrap();
            let _: () = conn.set(&key, vec![b'c'; VALUE_LEN]).await.unwrap();
        }
        Op::BulkGet100 => {
            let keys: Vec<String> = (0..100)
                .map(|j| format!("raw:{:04}", (i + j) % KEYS))
                .collect();
            let _: Vec<Vec<u8>> = conn.mget(&keys).await.unwrap();
        }
    }
}
