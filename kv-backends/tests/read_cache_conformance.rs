//! The read-through cache over the memory backend against the whole conformance suite: the
//! cache's semantics (own writes seen at once, expiry respected) keep the contract.
#![cfg(all(feature = "read-cache", feature = "memory"))]

use kv_backends::memory::MemoryBackend;
use kv_backends::ReadCache;
use kv_core::conformance::{start_clock, Fixture};
use kv_core::Store;

async fn fixture() -> Fixture {
    let clock = start_clock();
    let backend = MemoryBackend::builder().clock(clock.shared()).build();
    Fixture::new(Store::new(ReadCache::new(backend)), clock)
}

kv_core::conformance_tests!(fixture);

/// The suite again with a cache so small that it evicts all the time.
mod tiny_cache {
    use super::*;

    async fn fixture() -> Fixture {
        let clock = start_clock();
        let backend = MemoryBackend::builder().clock(clock.shared()).build();
        let cache = ReadCache::builder(backend).max_entries(8).build();
        Fixture::new(Store::new(cache), clock)
    }

    kv_core::conformance_tests!(fixture);
}
