//! The HTTP backend against a kv-server started in the test, over the memory and over the file
//! backend: the whole conformance suite, with the server's backend and the client sharing one
//! manual clock; and the read-through cache in front of the HTTP backend.

mod http_support;

use http_support::Server;
use kv_core::conformance::{start_clock, Fixture};
use kv_core::Store;
use kv_server::ServerConfig;

mod over_memory {
    use super::*;
    use kv_backends::memory::MemoryBackend;

    async fn fixture() -> Fixture {
        let clock = start_clock();
        let backend = MemoryBackend::builder().clock(clock.shared()).build();
        let server = Server::start(Store::new(backend), ServerConfig::default()).await;
        let client = server.client(&clock).build().expect("client");
        Fixture::new(Store::new(client), clock).with_guard(server)
    }

    kv_core::conformance_tests!(fixture);
}

mod over_file {
    use super::*;
    use kv_backends::file::FileBackend;

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("temporary directory");
        let clock = start_clock();
        let backend = FileBackend::builder(dir.path())
            .clock(clock.shared())
            .open()
            .expect("opening the file store");
        let server = Server::start(Store::new(backend), ServerConfig::default()).await;
        let client = server.client(&clock).build().expect("client");
        // The server goes first, then the directory.
        Fixture::new(Store::new(client), clock).with_guard((server, dir))
    }

    kv_core::conformance_tests!(fixture);
}

/// The read-through cache in front of the HTTP backend (its use: a local cache of a remote
/// store) keeps the contract too.
mod read_cache_over_http {
    use super::*;
    use kv_backends::memory::MemoryBackend;

    async fn fixture() -> Fixture {
        let clock = start_clock();
        let backend = MemoryBackend::builder().clock(clock.shared()).build();
        let server = Server::start(Store::new(backend), ServerConfig::default()).await;
        let client = server.client(&clock).build().expect("client");
        let cache = kv_backends::ReadCache::new(client);
        Fixture::new(Store::new(cache), clock).with_guard(server)
    }

    kv_core::conformance_tests!(fixture);
}
