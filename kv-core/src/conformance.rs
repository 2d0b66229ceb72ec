//! The conformance suite: the executable definition of the store contract.
//!
//! Every backend runs all of it unchanged through [`conformance_tests!`](crate::conformance_tests),
//! which expands to one `#[tokio::test]` per check, each with a fresh store built by the
//! backend's fixture function:
//!
//! ```ignore
//! async fn fixture() -> kv_core::conformance::Fixture {
//!     let clock = kv_core::conformance::start_clock();
//!     let backend = MyBackend::with_clock(clock.shared());
//!     kv_core::conformance::Fixture::new(kv_core::Store::new(backend), clock)
//! }
//! kv_core::conformance_tests!(fixture);
//! ```
#![allow(missing_docs)]

use std::any::Any;

use crate::clock::ManualClock;
use crate::namespace::{Namespace, Store};

/// The time the suite's manual clocks start at (a whole second, 2023-11-14).
pub const START_UNIX_SECS: u64 = 1_700_000_000;

/// A manual clock at [`START_UNIX_SECS`], for fixture functions.
pub fn start_clock() -> ManualClock {
    ManualClock::at_unix_secs(START_UNIX_SECS)
}

/// A fresh, empty store on a manual clock, built by a backend's fixture function.
pub struct Fixture {
    /// The store under test; its backend must decide expiry with `clock`.
    pub store: Store,
    /// The manual clock the backend uses.
    pub clock: ManualClock,
    /// Anything that must live as long as the test (a temporary directory, a server).
    pub guard: Option<Box<dyn Any + Send + Sync>>,
}

impl Fixture {
    /// A fixture with nothing to keep alive.
    pub fn new(store: Store, clock: ManualClock) -> Self {
        Fixture {
            store,
            clock,
            guard: None,
        }
    }

    /// The same fixture keeping `guard` alive until the test ends.
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }

    /// Opens a namespace, panicking with the error if the backend cannot.
    pub async fn ns(&self, name: &str) -> Namespace {
        self.store
            .namespace(name)
            .await
            .unwrap_or_else(|e| panic!("opening namespace {name:?}: {e}"))
    }
}
