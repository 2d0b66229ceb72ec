//! Stores for the coordination tests (lock, event log): memory and file backends on a chosen
//! clock, and a store without atomic compare-and-swap.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use kv_backends::file::FileBackend;
use kv_backends::memory::MemoryBackend;
use kv_core::{
    async_trait, Capabilities, DeleteOutcome, Entry, Limits, ListOptions, ListPage, Namespace,
    NewEntry, PutOutcome, SharedClock, Store, SystemClock, WriteMode,
};

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
    let inner = memory(clock.clone()).namespace("plain").await.unwrap();
    Namespace::new(
        "plain",
        Arc::new(Plain(inner.raw().clone())),
        Limits::default(),
        clock,
    )
}

/// Delegates everything but says its conditional writes are not atomic.
#[derive(Debug)]
struct Plain(Arc<dyn kv_core::KvStore>);

#[async_trait]
impl kv_core::KvStore for Plain {
    fn kind(&self) -> &'static str {
        "plain"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::plain()
    }
    async fn get(&self, key: &str) -> kv_core::Result<Option<Entry>> {
        self.0.get(key).await
    }
    async fn put(
        &self,
        key: &str,
        entry: NewEntry,
        mode: WriteMode,
    ) -> kv_core::Result<PutOutcome> {
        self.0.put(key, entry, mode).await
    }
    async fn delete(&self, key: &str, mode: WriteMode) -> kv_core::Result<DeleteOutcome> {
        self.0.delete(key, mode).await
    }
    async fn list(&self, options: &ListOptions) -> kv_core::Result<ListPage> {
        self.0.list(options).await
    }
}
