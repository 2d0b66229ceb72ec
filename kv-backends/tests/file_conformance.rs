//! The file backend against the whole conformance suite, each check on a fresh store in its
//! own temporary directory.
#![cfg(feature = "file")]

use kv_backends::file::FileBackend;
use kv_core::conformance::{start_clock, Fixture};
use kv_core::Store;

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    let clock = start_clock();
    let backend = FileBackend::builder(dir.path())
        .clock(clock.shared())
        .open()
        .expect("opening the file store");
    Fixture::new(Store::new(backend), clock).with_guard(dir)
}

kv_core::conformance_tests!(fixture);
