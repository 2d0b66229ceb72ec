//! [`TimeoutStore`]: bounds every call of a store, so a store that stops answering turns into
//! an error instead of a request that never ends.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    Capabilities, DeleteOutcome, Entry, KvError, ListOptions, ListPage, Message, NamespaceStore,
    NewEntry, PutOutcome, Result, WriteMode,
};

/// A [`NamespaceStore`] whose calls fail with [`KvError::Unavailable`] when the wrapped store takes
/// longer than the timeout. Made by [`Namespace::with_timeout`](crate::Namespace::with_timeout).
///
/// A write that times out may still have happened (the store got it, the answer was late):
/// callers treat the error as "unknown outcome", exactly as for a lost connection.
#[derive(Debug)]
pub struct TimeoutStore {
    inner: Arc<dyn NamespaceStore>,
    timeout: Duration,
}

impl TimeoutStore {
    /// Bounds each call of `inner` by `timeout`.
    pub fn new(inner: Arc<dyn NamespaceStore>, timeout: Duration) -> Self {
        TimeoutStore { inner, timeout }
    }

    async fn bounded<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(KvError::Unavailable {
                backend: self.inner.kind(),
                source: Box::new(Message(format!(
                    "no answer within {:?} (store timeout)",
                    self.timeout
                ))),
            }),
        }
    }
}

#[async_trait]
impl NamespaceStore for TimeoutStore {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    // An answer given at once cannot outlast the timeout: the fast paths pass straight through.
    fn get_now(&self, key: &str) -> Option<Result<Option<Entry>>> {
        self.inner.get_now(key)
    }

    fn put_now(
        &self,
        key: &str,
        entry: NewEntry,
        mode: WriteMode,
    ) -> std::result::Result<Result<PutOutcome>, NewEntry> {
        self.inner.put_now(key, entry, mode)
    }

    fn delete_now(&self, key: &str, mode: WriteMode) -> Option<Result<DeleteOutcome>> {
        self.inner.delete_now(key, mode)
    }

    fn list_now(&self, options: &ListOptions) -> Option<Result<ListPage>> {
        self.inner.list_now(options)
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        self.bounded(self.inner.get(key)).await
    }

    async fn put(&self, key: &str, entry: NewEntry, mode: WriteMode) -> Result<PutOutcome> {
        self.bounded(self.inner.put(key, entry, mode)).await
    }

    async fn delete(&self, key: &str, mode: WriteMode) -> Result<DeleteOutcome> {
        self.bounded(self.inner.delete(key, mode)).await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        self.bounded(self.inner.list(options)).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
        self.bounded(self.inner.get_many(keys)).await
    }

    async fn put_many(&self, items: Vec<(String, NewEntry)>) -> Result<()> {
        self.bounded(self.inner.put_many(items)).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        self.bounded(self.inner.delete_many(keys)).await
    }
}
