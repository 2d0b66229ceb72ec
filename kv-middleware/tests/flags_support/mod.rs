//! Test support for the flags and config tests: a fixture per backend (memory, file) on a
//! manual clock, whose namespaces fail on demand.
#![allow(dead_code)]

use std::time::Duration;

use kv_backends::file::FileBackend;
use kv_backends::memory::MemoryBackend;
use kv_core::testing::{Fault, Faults, FaultyStore, Ops};
use kv_core::{ManualClock, Namespace, Store};

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
    /// Steers every namespace of the fixture (kv_core's fault injector).
    pub faults: Faults,
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
            faults: Faults::new(),
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
            faults: Faults::new(),
            kind: "file",
            _dir: Some(dir),
        }
    }

    /// The namespace `name`, wrapped so that [`Fixture::fail`] makes it fail.
    pub async fn namespace(&self, name: &str) -> Namespace {
        let ns = self.store.namespace(name).await.expect("namespace");
        FaultyStore::wrap_with(&ns, &self.faults)
    }

    /// From now on every operation of this fixture's namespaces takes this long first.
    pub fn delay(&self, delay: Duration) {
        self.faults.always(Ops::All, Fault::Delay(delay));
    }

    /// From now on every operation of this fixture's namespaces fails (or works again).
    pub fn fail(&self, failing: bool) {
        if failing {
            self.faults.always(Ops::All, Fault::Error);
        } else {
            self.faults.clear();
        }
    }
}
