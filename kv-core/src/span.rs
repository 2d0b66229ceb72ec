//! The `tracing` span around every store call made through a [`Namespace`](crate::Namespace).
//!
//! One span per call, named `kv.store`, at `DEBUG` level, with the fields
//!
//! | field | value |
//! | --- | --- |
//! | `backend` | the store's kind (`memory`, `file`, `redis`, `http`) |
//! | `namespace` | the namespace id |
//! | `operation` | `get`, `get_many`, `put`, `put_many`, `delete`, `delete_many`, `list` |
//! | `outcome` | `hit` / `miss` (get), `written` / `condition_failed` (put), `deleted` / `absent` / `condition_failed` (delete), `ok` (the others), `error` |
//! | `duration_us` | the call's wall time in microseconds |
//! | `error` | the error's text, when the outcome is `error` |
//!
//! When no subscriber wants the span, creating it is one check of the call site's cached
//! interest, and the clock is not read: the disabled cost is a few nanoseconds per call (see
//! BENCHMARKS.md).

use std::time::Instant;

use tracing::field::Empty;
use tracing::Span;

use crate::error::Result;

/// The name every store-call span carries.
pub const STORE_SPAN_NAME: &str = "kv.store";

/// A started store-call span: the span, and the start time when the span is enabled.
pub(crate) struct CallSpan {
    pub(crate) span: Span,
    start: Option<Instant>,
}

impl CallSpan {
    /// Opens the span of one call (the clock is read only when someone listens).
    #[inline]
    pub(crate) fn start(backend: &'static str, namespace: &str, operation: &'static str) -> Self {
        let span = tracing::debug_span!(
            "kv.store",
            backend,
            namespace,
            operation,
            outcome = Empty,
            duration_us = Empty,
            error = Empty,
        );
        let start = if span.is_disabled() {
            None
        } else {
            Some(Instant::now())
        };
        CallSpan { span, start }
    }

    /// The start time of a call whose span is made only once the call answered (see
    /// [`started_at`](Self::started_at)): read when a subscriber may want `DEBUG` spans.
    #[inline]
    pub(crate) fn clock_if_listened() -> Option<Instant> {
        tracing::level_enabled!(tracing::Level::DEBUG).then(Instant::now)
    }

    /// Opens the span of a call that already ran, from `start` (of
    /// [`clock_if_listened`](Self::clock_if_listened)): for a synchronous attempt that may
    /// be declined, so that a declined attempt leaves no span.
    #[inline]
    pub(crate) fn started_at(
        backend: &'static str,
        namespace: &str,
        operation: &'static str,
        start: Option<Instant>,
    ) -> Self {
        let mut call = Self::start(backend, namespace, operation);
        if call.start.is_some() {
            call.start = start.or(call.start);
        }
        call
    }

    /// Records the outcome and the duration; `outcome` names a successful result.
    #[inline]
    pub(crate) fn finish<T>(self, result: &Result<T>, outcome: impl FnOnce(&T) -> &'static str) {
        let Some(start) = self.start else {
            return;
        };
        match result {
            Ok(value) => {
                self.span.record("outcome", outcome(value));
            }
            Err(error) => {
                self.span.record("outcome", "error");
                self.span.record("error", tracing::field::display(error));
            }
        }
        let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.span.record("duration_us", micros);
    }
}
