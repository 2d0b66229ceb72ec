//! The memory backend against the whole conformance suite.
#![cfg(feature = "memory")]

use kv_backends::memory::MemoryBackend;
use kv_core::conformance::{start_clock, Fixture};
use kv_core::Store;

async fn fixture() -> Fixture {
    let clock = start_clock();
    let backend = MemoryBackend::builder().clock(clock.shared()).build();
    Fixture::new(Store::new(backend), clock)
}

kv_core::conformance_tests!(fixture);
