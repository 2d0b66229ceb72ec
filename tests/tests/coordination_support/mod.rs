//! Stores for the coordination tests (lock, event log): memory and file backends on a chosen
//! clock, and a store without atomic compare-and-swap.
#![allow(dead_code)]

use std::path::Path;

use kv_backends::file::FileBackend;
use kv_backends::memory::MemoryBackend;
use kv_core::testing::FaultyStore;
use kv_core::{Capabilities, Namespace, SharedClock, Store, SystemClock};

/// A memory store on `clock`.
pub fn memory(clock: SharedClock) -> Store {
    Store::new(MemoryBackend::builder().clock(clock).build())
}

/// A memory store on the system clock.
pub fn memory_system() -> Store {
    memory(SystemClock::shared())
}

/// A file store in `dir` on the system clock.
pub fn file(dir: &Path) -> Store {
    Store::new(
        FileBackend::builder(dir)
            .clock(SystemClock::shared())
            .open()
            .expect("open the file store"),
    )
}

/// A namespace over a memory store that claims no atomic compare-and-swap (as Workers KV).
pub async fn plain_namespace(clock: SharedClock) -> Namespace {
    let inner = memory(clock).namespace("plain").await.unwrap();
    let (namespace, faults) = FaultyStore::wrap(&inner);
    faults.report_capabilities(Capabilities::plain());
    namespace
}
