//! Every store decorator against the whole conformance suite, over every backend these tests
//! can reach without a server: the timeout and the fault injector (with no faults) lifted to a
//! whole backend by `kv_core::decorator::Decorated`, and the read-through cache, over the memory
//! and the file backend. A decorator that keeps the contract passes unchanged. (The read cache
//! over memory is `read_cache_conformance.rs`; over the HTTP backend and a real kv-server,
//! `tests/tests/http_conformance.rs`.)
#![cfg(all(feature = "memory", feature = "file"))]

use std::time::Duration;

use kv_backends::file::FileBackend;
use kv_backends::memory::MemoryBackend;
use kv_core::conformance::{start_clock, Fixture};
use kv_core::decorator::{Decorated, Timeout};
use kv_core::testing::Faults;
use kv_core::{Backend, ManualClock, Store};

/// Long enough never to fire on a healthy store, even on a loaded machine: the suite checks
/// that the decorator changes nothing while the store answers.
const GENEROUS: Duration = Duration::from_secs(60);

fn memory(clock: &ManualClock) -> MemoryBackend {
    MemoryBackend::builder().clock(clock.shared()).build()
}

/// A file backend in a temporary directory that lives as long as the fixture.
fn file(clock: &ManualClock) -> (FileBackend, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = FileBackend::builder(dir.path())
        .clock(clock.shared())
        .open()
        .expect("open the file store");
    (backend, dir)
}

fn fixture(backend: impl Backend, clock: ManualClock) -> Fixture {
    Fixture::new(Store::new(backend), clock)
}

mod timeout_over_memory {
    use super::*;
    async fn fixture() -> Fixture {
        let clock = start_clock();
        super::fixture(
            Decorated::new(memory(&clock), Timeout::new(GENEROUS)),
            clock,
        )
    }
    kv_core::conformance_tests!(fixture);
}

mod timeout_over_file {
    use super::*;
    async fn fixture() -> Fixture {
        let clock = start_clock();
        let (backend, dir) = file(&clock);
        super::fixture(Decorated::new(backend, Timeout::new(GENEROUS)), clock).with_guard(dir)
    }
    kv_core::conformance_tests!(fixture);
}

mod faulty_over_memory {
    use super::*;
    async fn fixture() -> Fixture {
        let clock = start_clock();
        super::fixture(Decorated::new(memory(&clock), Faults::new()), clock)
    }
    kv_core::conformance_tests!(fixture);
}

mod faulty_over_file {
    use super::*;
    async fn fixture() -> Fixture {
        let clock = start_clock();
        let (backend, dir) = file(&clock);
        super::fixture(Decorated::new(backend, Faults::new()), clock).with_guard(dir)
    }
    kv_core::conformance_tests!(fixture);
}

#[cfg(feature = "read-cache")]
mod read_cache_over_file {
    use super::*;
    async fn fixture() -> Fixture {
        let clock = start_clock();
        let (backend, dir) = file(&clock);
        super::fixture(kv_backends::ReadCache::new(backend), clock).with_guard(dir)
    }
    kv_core::conformance_tests!(fixture);
}

#[cfg(feature = "read-cache")]
mod read_cache_over_file_evicting {
    use super::*;
    async fn fixture() -> Fixture {
        let clock = start_clock();
        let (backend, dir) = file(&clock);
        let cache = kv_backends::ReadCache::builder(backend)
            .max_entries(8)
            .build();
        super::fixture(cache, clock).with_guard(dir)
    }
    kv_core::conformance_tests!(fixture);
}
