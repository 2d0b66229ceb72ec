//! The Redis backend against the raw `redis` crate, on one node and on a three-master cluster.
//!
//! ```text
//! cargo bench -p kv-benches --bench redis -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Starts its own `redis-server` (no persistence) and its own six-node Redis Cluster (three
//! masters, three replicas) on free loopback ports; 100-byte values over 1 000 keys.
//!
//! - `redis-single/*`: put (raw: SET), read + conditional put (raw: GET + SET) and a bulk get
//!   of 100 (raw: MGET), each with 1 and with 64 concurrent tasks; criterion's time is the time
//!   per operation (with 64 tasks, the inverse of throughput).
//! - `redis-cluster/*`: get, put and conditional put with 64 tasks through our backend on the
//!   cluster, through our backend on one node, and through the raw cluster client.
//! - After criterion, a latency pass prints throughput and p99 for the cluster rows: 64 tasks
//!   doing 100 operations each, contenders in turn, the median of 5 rounds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion};
use kv_backends::redis::RedisBackend;
use kv_core::{Namespace, PutOptions, Store, WriteMode};
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::AsyncCommands;

#[path = "../../kv-backends/tests/support/redis_server.rs"]
mod redis_server;

#[path = "../../kv-backends/tests/support/redis_cluster.rs"]
mod redis_cluster;

const KEYS: usize = 1000;

#[derive(Clone, Copy, Debug)]
enum Op {
    Get,
    Put,
    ReadCas,
    BulkGet100,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::ReadCas => "read+cas",
            Op::BulkGet100 => "bulk-get-100",
        }
    }
}

/// Who runs an operation: our backend (through a namespace) or the raw client (GET/SET/MGET).
#[derive(Clone)]
enum Contender {
    Ours(Namespace),
    Raw(RawConn),
}

#[derive(Clone)]
enum RawConn {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl RawConn {
    async fn run(&mut self, op: Op, i: usize) {
        match self {
            RawConn::Single(conn) => raw(conn, op, i).await,
            RawConn::Cluster(conn) => raw(conn, op, i).await,
        }
    }
}

async fn ours(ns: &Namespace, op: Op, i: usize) {
    let key = format!("key:{:04}", i % KEYS);
    match op {
        Op::Get => {
            ns.get(&key).await.unwrap().unwrap();
        }
        Op::Put => {
            ns.put(&key, vec![b'v'; 100]).await.unwrap();
        }
        Op::ReadCas => {
            // The usual compare-and-swap step: read the version, write if it still matches.
            let entry = ns.get_entry(&key).await.unwrap().unwrap();
            let options = PutOptions::new().mode(WriteMode::OnlyIfVersion(entry.version));
            let _ = ns.put_with(&key, vec![b'c'; 100], options).await.unwrap();
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
            let _: () = conn.set(&key, vec![b'v'; 100]).await.unwrap();
        }
        Op::ReadCas => {
            // The raw equivalent of a read-then-write: GET then SET.
            let _: Vec<u8> = conn.get(&key).await.unwrap();
            let _: () = conn.set(&key, vec![b'c'; 100]).await.unwrap();
        }
        Op::BulkGet100 => {
            let keys: Vec<String> = (0..100)
                .map(|j| format!("raw:{:04}", (i + j) % KEYS))
                .collect();
            let _: Vec<Vec<u8>> = conn.mget(&keys).await.unwrap();
        }
    }
}

impl Contender {
    async fn run(&mut self, op: Op, i: usize) {
        match self {
            Contender::Ours(ns) => ours(ns, op, i).await,
            Contender::Raw(conn) => conn.run(op, i).await,
        }
    }

    /// `ops` operations over `tasks` tasks; the latency of each when `latencies` is set.
    async fn round(&self, op: Op, tasks: usize, ops: u64, latencies: bool) -> (Duration, Vec<u64>) {
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
        // Scaled to `ops` so criterion's per-iteration time is the time per operation.
        let elapsed = started.elapsed();
        let scaled = elapsed.mul_f64(ops as f64 / (per_task * tasks) as f64);
        (scaled, times)
    }
}

struct Setup {
    _server: redis_server::RedisServer,
    _cluster: Arc<redis_cluster::RedisCluster>,
    single_ours: Contender,
    single_raw: Contender,
    cluster_ours: Contender,
    cluster_raw: Contender,
}

async fn fill(contender: &mut Contender) {
    for i in 0..KEYS {
        contender.run(Op::Put, i).await;
    }
}

async fn setup() -> Setup {
    let server = redis_server::RedisServer::start();
    let cluster = Arc::new(
        tokio::task::spawn_blocking(redis_cluster::RedisCluster::start)
            .await
            .unwrap(),
    );
    let single = Store::new(RedisBackend::connect(&server.url()).await.unwrap());
    let on_cluster = Store::new(RedisBackend::connect(&cluster.url()).await.unwrap());
    let raw_single = ConnectionManager::new(redis::Client::open(server.url()).unwrap())
        .await
        .unwrap();
    let nodes: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("redis://127.0.0.1:{}", n.port))
        .collect();
    let raw_cluster = redis::cluster::ClusterClient::new(nodes)
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let mut setup = Setup {
        _server: server,
        _cluster: cluster,
        single_ours: Contender::Ours(single.namespace("BENCH").await.unwrap()),
        single_raw: Contender::Raw(RawConn::Single(raw_single)),
        cluster_ours: Contender::Ours(on_cluster.namespace("BENCH").await.unwrap()),
        cluster_raw: Contender::Raw(RawConn::Cluster(raw_cluster)),
    };
    for contender in [
        &mut setup.single_ours,
        &mut setup.single_raw,
        &mut setup.cluster_ours,
        &mut setup.cluster_raw,
    ] {
        fill(contender).await;
    }
    setup
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let setup = rt.block_on(setup());

    let mut group = c.benchmark_group("redis-single");
    for op in [Op::Put, Op::ReadCas, Op::BulkGet100] {
        for tasks in [1, 64] {
            for (name, contender) in [("ours", &setup.single_ours), ("raw", &setup.single_raw)] {
                let id = BenchmarkId::new(format!("{}/{name}", op.name()), tasks);
                group.bench_function(id, |b| {
                    b.to_async(&rt).iter_custom(|iters| async move {
                        contender.round(op, tasks, iters, false).await.0
                    })
                });
            }
        }
    }
    group.finish();

    let mut group = c.benchmark_group("redis-cluster");
    for op in [Op::Get, Op::Put, Op::ReadCas] {
        for (name, contender) in [
            ("ours-cluster", &setup.cluster_ours),
            ("ours-one-node", &setup.single_ours),
            ("raw-cluster", &setup.cluster_raw),
        ] {
            let id = BenchmarkId::new(format!("{}/{name}", op.name()), 64);
            group.bench_function(id, |b| {
                b.to_async(&rt).iter_custom(|iters| async move {
                    contender.round(op, 64, iters, false).await.0
                })
            });
        }
    }
    group.finish();

    latency_pass(&rt, &setup);
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Throughput and p99 of the cluster rows, contenders in turn, 5 rounds.
fn latency_pass(rt: &tokio::runtime::Runtime, setup: &Setup) {
    const OPS: u64 = 6400;
    const ROUNDS: usize = 5;
    println!("\n| operation (64 tasks) | contender | throughput | p50 | p99 |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for op in [Op::Get, Op::Put, Op::ReadCas] {
        let contenders = [
            ("ours, 3-master cluster", &setup.cluster_ours),
            ("ours, one node", &setup.single_ours),
            ("raw cluster client", &setup.cluster_raw),
        ];
        let mut results = vec![(Vec::new(), Vec::new(), Vec::new()); contenders.len()];
        for _ in 0..ROUNDS {
            for (slot, (_, contender)) in contenders.iter().enumerate() {
                let (elapsed, mut times) = rt.block_on(contender.round(op, 64, OPS, true));
                times.sort_unstable();
                results[slot].0.push(OPS as f64 / elapsed.as_secs_f64());
                results[slot].1.push(percentile(&times, 0.50) as f64);
                results[slot].2.push(percentile(&times, 0.99) as f64);
            }
        }
        for ((name, _), (mut throughput, mut p50, mut p99)) in contenders.iter().zip(results) {
            println!(
                "| {} | {name} | {:.0} ops/s | {:.0} µs | {:.0} µs |",
                op.name(),
                median(&mut throughput),
                median(&mut p50) / 1000.0,
                median(&mut p99) / 1000.0
            );
        }
    }
}

criterion_group! {
    name = redis_benches;
    config = Criterion::default().sample_size(20);
    targets = benches
}

fn main() {
    redis_benches();
    Criterion::default().configure_from_args().final_summary();
}
