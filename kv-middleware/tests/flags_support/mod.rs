//! Test support for the flags and config tests: a fixture per backend (memory, file) on a
//! manual clock, whose namespaces fail on demand.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kv_backends::file::FileBackend;
use kv_backends::memory::MemoryBackend;
use kv_core::{
    async_trait, Capabilities, DeleteOutcome, Entry, KvError, KvStore, ListOptions, ListPage,
    ManualClock, Message, Namespace, NewEntry, PutOutcome, Result, Store, WriteMode,
};

/// The manual clock's start: 2023-11-14T22:13:20Z.
pub const START: u64 = 1_700_000_000;

/// Runs each listed test body (`async fn name(fx: Fixture)`) on the memory and file backends.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::support::Fixture::memory()).await;
                }
            )*
        }
        mod file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::support::Fixture::file()).await;
                }
            )*
        }
    };
}

/// A store on a manual clock, and a switch that makes its namespaces fail.
pub struct Fixture {
    pub store: Store,
    pub clock: ManualClock,
    pub failing: Arc<AtomicBool>,
    pub delay_ms: Arc<AtomicU64>,
    pub kind: &'static str,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    pub fn memory() -> Self {
        let clock = ManualClock::at_unix_secs(START);
        let backend = MemoryBackend::builder().clock(clock.shared()).build();
        Fixture {
            store: Store::new(backend),
            clock,
            failing: Arc::new(AtomicBool::new(false)),
            delay_ms: Arc::new(AtomicU64::new(0)),
            kind: "memory",
            _dir: None,
        }
    }

    pub fn file() -> Self {
        let clock = ManualClock::at_unix_secs(START);
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = FileBackend::builder(dir.path())
            .clock(clock.shared())
            .open()
            .expect("file backend");
        Fixture {
            store: Store::new(backend),
            clock,
            failing: Arc::new(AtomicBool::new(false)),
            delay_ms: Arc::new(AtomicU64::new(0)),
            kind: "file",
            _dir: Some(dir),
        }
    }

    /// The namespace `name`, wrapped so that [`Fixture::fail`] makes it fail.
    pub async fn namespace(&self, name: &str) -> Namespace {
        let ns = self.store.namespace(name).await.expect("namespace");
        let flaky = Flaky {
            inner: ns.raw().clone(),
            failing: self.failing.clone(),
            delay_ms: self.delay_ms.clone(),
        };
        Namespace::new(
            ns.id(),
            Arc::new(flaky),
            ns.limits().clone(),
            ns.clock().clone(),
        )
    }

    /// From now on every operation of this fixture's namespaces takes this long first.
    pub fn delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// From now on every operation of this fixture's namespaces fails (or works again).
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

/// Delegates to a store, or fails with `Unavailable` while the switch is on.
#[derive(Debug)]
struct Flaky {
    inner: Arc<dyn KvStore>,
    failing: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
}

impl Flaky {
    async fn check(&self) -> Result<()> {
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if self.failing.load(Ordering::SeqCst) {
            Err(KvError::Unavailable {
                backend: "flaky",
                source: Box::new(Message("the test switched the store off".to_owned())),
            })
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl KvStore for Flaky {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        self.check().await?;
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, entry: NewEntry, mode: WriteMode) -> Result<PutOutcome> {
        self.check().await?;
        self.inner.put(key, entry, mode).await
    }
    async fn delete(&self, key: &str, mode: WriteMode) -> Result<DeleteOutcome> {
        self.check().await?;
        self.inner.delete(key, mode).await
    }
    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        self.check().await?;
        self.inner.list(options).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
        self.check().await?;
        self.inner.get_many(keys).await
    }
}
