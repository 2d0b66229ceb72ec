//! The Redis backend against the whole conformance suite, each check on its own redis-server.
#![cfg(feature = "redis")]

mod support;

use kv_backends::redis::RedisBackend;
use kv_core::conformance::{start_clock, Fixture};
use kv_core::Store;
use support::redis_server::RedisServer;

async fn fixture() -> Fixture {
    let server = RedisServer::start();
    let clock = start_clock();
    let backend = RedisBackend::builder(server.url())
        .clock(clock.shared())
        .connect()
        .await
        .expect("connects to the test redis-server");
    Fixture::new(Store::new(backend), clock).with_guard(server)
}

kv_core::conformance_tests!(fixture);
