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

use criterion::{criterion_group, BenchmarkId, Criterion};
use kv_benches::median;
use kv_benches::redis_ops::{Contender, Op};

#[path = "../../kv-backends/tests/support/redis_server.rs"]
mod redis_server;

#[path = "../../kv-backends/tests/support/redis_cluster.rs"]
mod redis_cluster;

struct Setup {
    _server: redis_server::RedisServer,
    _cluster: Arc<redis_cluster::RedisCluster>,
    single_ours: Contender,
    single_raw: Contender,
    cluster_ours: Contender,
    cluster_raw: Contender,
}

async fn setup() -> Setup {
    let server = redis_server::RedisServer::start();
    let cluster = Arc::new(
        tokio::task::spawn_blocking(redis_cluster::RedisCluster::start)
            .await
            .unwrap(),
    );
    let nodes: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("redis://127.0.0.1:{}", n.port))
        .collect();
    let mut setup = Setup {
        single_ours: Contender::ours(&server.url()).await,
        single_raw: Contender::raw_single(&server.url()).await,
        cluster_ours: Contender::ours(&cluster.url()).await,
        cluster_raw: Contender::raw_cluster(nodes).await,
        _server: server,
        _cluster: cluster,
    };
    for contender in [
        &mut setup.single_ours,
        &mut setup.single_raw,
        &mut setup.cluster_ours,
        &mut setup.cluster_raw,
    ] {
        contender.fill().await;
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
    for op in [Op::Put, Op::ConditionalPut, Op::BulkGet100] {
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
    for op in [Op::Get, Op::Put, Op::ConditionalPut] {
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

/// Throughput and p99 of the cluster rows, contenders in turn, 5 rounds.
fn latency_pass(rt: &tokio::runtime::Runtime, setup: &Setup) {
    const OPS: u64 = 6400;
    const ROUNDS: usize = 5;
    println!("\n| operation (64 tasks) | contender | throughput | p50 | p99 |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for op in [Op::Get, Op::Put, Op::ConditionalPut] {
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
        for ((name, _), (throughput, p50, p99)) in contenders.iter().zip(results) {
            println!(
                "| {} | {name} | {:.0} ops/s | {:.0} µs | {:.0} µs |",
                op.name(),
                median(&throughput),
                median(&p50) / 1000.0,
                median(&p99) / 1000.0
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
