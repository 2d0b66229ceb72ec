//! The lookup and store steps' guard: a store operation never fails the caller.

use std::future::Future;

use super::{Engine, Settings};
use crate::cache::stats::Counters;
use crate::shared::timeout::bounded;

impl<O> Engine<O> {
    /// Runs a store operation within the store timeout; a failure or a timeout is logged,
    /// counted in `store_errors` and `None`, so the caller goes on without the store.
    pub async fn guarded<T>(
        &self,
        settings: &Settings,
        operation: &'static str,
        key: &str,
        future: impl Future<Output = kv_core::Result<T>>,
    ) -> Option<T> {
        match bounded(settings.store_timeout, future).await {
            Some(Ok(value)) => Some(value),
            Some(Err(error)) => {
                Counters::bump(&self.counters.store_errors);
                tracing::warn!(operation, key, error = %error, "cache store error; going on without the store");
                None
            }
            None => {
                Counters::bump(&self.counters.store_errors);
                tracing::warn!(
                    operation,
                    key,
                    "cache store timed out; going on without the store"
                );
                None
            }
        }
    }
}
