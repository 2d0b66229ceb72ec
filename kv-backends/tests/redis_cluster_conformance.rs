//! The Redis backend on a real Redis Cluster (three masters, three replicas) against the whole
//! conformance suite. The checks share one cluster, each under its own key prefix, so each
//! sees an empty store.
#![cfg(feature = "redis")]

mod support;

use kv_backends::redis::RedisBackend;
use kv_core::conformance::{start_clock, Fixture};
use kv_core::{new_namespace_id, Store};
use support::redis_cluster::RedisCluster;

async fn fixture() -> Fixture {
    let cluster = tokio::task::spawn_blocking(RedisCluster::shared)
        .await
        .unwrap();
    let clock = start_clock();
    let backend = RedisBackend::builder(cluster.url())
        .prefix(format!("t{}", new_namespace_id()))
        .clock(clock.shared())
        .connect()
        .await
        .expect("connects to the test cluster");
    assert!(backend.is_cluster());
    Fixture::new(Store::new(backend), clock).with_guard(cluster)
}

kv_core::conformance_tests!(fixture);
