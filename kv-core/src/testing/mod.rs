//! Test doubles for code built on the store contract (feature `testing`).
//!
//! [`FaultyStore`] wraps any namespace store and injects faults on command: errors, delays,
//! calls that never return, and calls that run but lose their reply (a write that landed while
//! its caller saw an error or a timeout), on every call, on the next *n* calls, or with a
//! probability from a seeded generator (so a failing run can be replayed). Tests of the layers use it to show each
//! documented store-error policy: what a request gets while the store is unwell, and that it
//! recovers when the store does. [`RaceGate`] makes racing writers collide for certain and
//! counts the races they lost, so a test of "racers lose nothing" can show they raced.
//! [`capture_logs`] runs async work under a `tracing` subscriber that writes into a buffer,
//! for tests that prove what is (or is not) logged.
//!
//! ```
//! # async fn example(namespace: kv_core::Namespace) -> kv_core::Result<()> {
//! use kv_core::testing::{Fault, FaultyStore, Ops};
//!
//! let (namespace, faults) = FaultyStore::wrap(&namespace);
//! faults.always(Ops::Writes, Fault::Error);
//! assert!(namespace.put_text("k", "v").await.is_err());
//! assert!(namespace.get("k").await.is_ok(), "reads still work");
//! faults.clear();
//! namespace.put_text("k", "v").await?;
//! assert_eq!(faults.counts().injected, 1);
//!
//! // The write lands, the caller sees an error: exactness must not assume "error = no write".
//! faults.next(Ops::Writes, 1, Fault::LostReply);
//! assert!(namespace.put_text("k", "landed").await.is_err());
//! assert_eq!(namespace.get_text("k").await?.as_deref(), Some("landed"));
//! assert_eq!(faults.counts().lost_replies, 1);
//! # Ok(()) }
//! ```

mod faulty;
mod logs;
mod race;

pub use faulty::{Fault, FaultCounts, Faults, FaultyStore, Ops};
pub use logs::capture_logs;
pub use race::{RaceGate, Races};
