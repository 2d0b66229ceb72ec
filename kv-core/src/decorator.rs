//! Store decorators in one place: wrappers that are themselves stores, adding one behaviour by
//! composition (as tower adds behaviour to services), and the adapter that lifts one namespace
//! decorator to a whole backend.
//!
//! | decorator | what it adds | made by |
//! | --- | --- | --- |
//! | [`TimeoutStore`] | every call bounded in time: a store that stops answering becomes [`KvError::Unavailable`](crate::KvError::Unavailable) | [`Timeout`], [`Namespace::with_timeout`](crate::Namespace::with_timeout) |
//! | `FaultyStore` (feature `testing`) | injected errors, delays, hangs and lost replies | `kv_core::testing::Faults`, `FaultyStore::wrap` |
//! | `ReadCache` (kv-backends, feature `read-cache`) | a local read-through cache in front of a remote store | `kv_backends::ReadCache` |
//!
//! A decorator works on one namespace ([`NamespaceDecorator`]); [`Decorated`] applies it to every
//! namespace a [`Backend`] opens, so a whole store is wrapped in one line and runs anywhere a
//! backend does, the conformance suite included (every decorator runs the whole suite over the
//! backends its tests can reach: `kv-backends/tests/decorator_conformance.rs`).
//!
//! ```
//! # async fn example() -> kv_core::Result<()> {
//! # #[derive(Debug)] struct Never;
//! # #[kv_core::async_trait] impl kv_core::Backend for Never {
//! #   fn kind(&self) -> &'static str { "never" }
//! #   fn clock(&self) -> kv_core::SharedClock { std::sync::Arc::new(kv_core::SystemClock) }
//! #   fn capabilities(&self) -> kv_core::Capabilities { kv_core::Capabilities::atomic() }
//! #   async fn create_namespace(&self, _: &str) -> kv_core::Result<kv_core::NamespaceInfo> { Err(kv_core::KvError::Unsupported { backend: "never", operation: "create namespace" }) }
//! #   async fn list_namespaces(&self) -> kv_core::Result<Vec<kv_core::NamespaceInfo>> { Ok(vec![]) }
//! #   async fn rename_namespace(&self, _: &str, _: &str) -> kv_core::Result<()> { Ok(()) }
//! #   async fn delete_namespace(&self, _: &str) -> kv_core::Result<bool> { Ok(false) }
//! #   async fn open_namespace(&self, _: &str) -> kv_core::Result<std::sync::Arc<dyn kv_core::NamespaceStore>> { Err(kv_core::KvError::Unsupported { backend: "never", operation: "open namespace" }) }
//! # }
//! # let backend = Never;
//! use std::time::Duration;
//! use kv_core::decorator::{Decorated, Timeout};
//!
//! // Every namespace of this store answers within 2 s or fails with `Unavailable`.
//! let store = kv_core::Store::new(Decorated::new(backend, Timeout::new(Duration::from_secs(2))));
//! assert!(store.list_namespaces().await?.is_empty());
//! # Ok(()) }
//! ```

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{Backend, Capabilities, NamespaceInfo, NamespaceStore, Result, SharedClock};

#[cfg(feature = "testing")]
pub use crate::testing::FaultyStore;
pub use crate::timeout::TimeoutStore;

/// Wraps one namespace's store in another that adds a behaviour.
///
/// Implemented for closures `Fn(Arc<dyn NamespaceStore>) -> Arc<dyn NamespaceStore>`, so an
/// ad-hoc decorator needs no type of its own.
pub trait NamespaceDecorator: Send + Sync + 'static {
    /// The store `inner` seen through this decorator.
    fn decorate(&self, inner: Arc<dyn NamespaceStore>) -> Arc<dyn NamespaceStore>;

    /// What a namespace does faithfully through this decorator, given what the wrapped backend
    /// does. Most decorators change nothing.
    fn capabilities(&self, inner: Capabilities) -> Capabilities {
        inner
    }
}

impl<F> NamespaceDecorator for F
where
    F: Fn(Arc<dyn NamespaceStore>) -> Arc<dyn NamespaceStore> + Send + Sync + 'static,
{
    fn decorate(&self, inner: Arc<dyn NamespaceStore>) -> Arc<dyn NamespaceStore> {
        self(inner)
    }
}

/// The [`TimeoutStore`] decorator: every call of every namespace bounded by one timeout.
#[derive(Debug, Clone, Copy)]
pub struct Timeout {
    timeout: Duration,
}

impl Timeout {
    /// Bounds each store call by `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Timeout { timeout }
    }
}

impl NamespaceDecorator for Timeout {
    fn decorate(&self, inner: Arc<dyn NamespaceStore>) -> Arc<dyn NamespaceStore> {
        Arc::new(TimeoutStore::new(inner, self.timeout))
    }
}

#[cfg(feature = "testing")]
impl NamespaceDecorator for crate::testing::Faults {
    /// Every namespace goes through a `FaultyStore` steered by this one handle, so one call to
    /// [`Faults::always`](crate::testing::Faults::always) reaches them all.
    fn decorate(&self, inner: Arc<dyn NamespaceStore>) -> Arc<dyn NamespaceStore> {
        Arc::new(crate::testing::FaultyStore::new(inner, self))
    }
}

/// A [`Backend`] whose every namespace is seen through a [`NamespaceDecorator`]: lifts a
/// decorator of one namespace to a whole store. The catalog (create, list, rename, delete) is
/// the wrapped backend's, unchanged.
pub struct Decorated<B, D> {
    inner: B,
    decorator: D,
}

impl<B: Backend, D: NamespaceDecorator> Decorated<B, D> {
    /// `inner` with every namespace it opens wrapped by `decorator`.
    pub fn new(inner: B, decorator: D) -> Self {
        Decorated { inner, decorator }
    }

    /// The wrapped backend.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The decorator.
    pub fn decorator(&self) -> &D {
        &self.decorator
    }
}

impl<B: Debug, D> Debug for Decorated<B, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decorated")
            .field("inner", &self.inner)
            .field("decorator", &std::any::type_name::<D>())
            .finish()
    }
}

#[async_trait]
impl<B: Backend, D: NamespaceDecorator> Backend for Decorated<B, D> {
    fn kind(&self) -> &'static str {
        // Transparent, as every decorator is: logs and errors name the real backend.
        self.inner.kind()
    }

    fn clock(&self) -> SharedClock {
        self.inner.clock()
    }

    fn capabilities(&self) -> Capabilities {
        self.decorator.capabilities(self.inner.capabilities())
    }

    async fn create_namespace(&self, title: &str) -> Result<NamespaceInfo> {
        self.inner.create_namespace(title).await
    }

    async fn list_namespaces(&self) -> Result<Vec<NamespaceInfo>> {
        self.inner.list_namespaces().await
    }

    async fn rename_namespace(&self, id: &str, title: &str) -> Result<()> {
        self.inner.rename_namespace(id, title).await
    }

    async fn delete_namespace(&self, id: &str) -> Result<bool> {
        self.inner.delete_namespace(id).await
    }

    async fn open_namespace(&self, id: &str) -> Result<Arc<dyn NamespaceStore>> {
        Ok(self
            .decorator
            .decorate(self.inner.open_namespace(id).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeleteOutcome, Store, SystemClock};
    use crate::{Entry, KvError, ListOptions, ListPage, NewEntry, PutOutcome, WriteMode};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A backend with one namespace whose every call hangs, and a count of opened namespaces.
    #[derive(Debug, Default)]
    struct Hanging {
        opened: AtomicUsize,
    }

    #[derive(Debug)]
    struct HangingStore;

    #[async_trait]
    impl NamespaceStore for HangingStore {
        fn kind(&self) -> &'static str {
            "hanging"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::atomic()
        }
        async fn get(&self, _: &str) -> Result<Option<Entry>> {
            std::future::pending().await
        }
        async fn put(&self, _: &str, _: NewEntry, _: WriteMode) -> Result<PutOutcome> {
            std::future::pending().await
        }
        async fn delete(&self, _: &str, _: WriteMode) -> Result<DeleteOutcome> {
            std::future::pending().await
        }
        async fn list(&self, _: &ListOptions) -> Result<ListPage> {
            std::future::pending().await
        }
    }

    #[async_trait]
    impl Backend for Hanging {
        fn kind(&self) -> &'static str {
            "hanging"
        }
        fn clock(&self) -> SharedClock {
            Arc::new(SystemClock)
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::atomic()
        }
        async fn create_namespace(&self, title: &str) -> Result<NamespaceInfo> {
            Ok(NamespaceInfo {
                id: "id1".into(),
                title: title.into(),
            })
        }
        async fn list_namespaces(&self) -> Result<Vec<NamespaceInfo>> {
            Ok(vec![NamespaceInfo {
                id: "id1".into(),
                title: "N".into(),
            }])
        }
        async fn rename_namespace(&self, _: &str, _: &str) -> Result<()> {
            Ok(())
        }
        async fn delete_namespace(&self, _: &str) -> Result<bool> {
            Ok(true)
        }
        async fn open_namespace(&self, _: &str) -> Result<Arc<dyn NamespaceStore>> {
            self.opened.fetch_add(1, Ordering::SeqCst);
            Ok(Arc::new(HangingStore))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_lifted_timeout_bounds_every_namespace_and_keeps_the_catalog() {
        let store = Store::new(Decorated::new(
            Hanging::default(),
            Timeout::new(Duration::from_secs(2)),
        ));
        assert_eq!(store.kind(), "hanging", "transparent");
        assert_eq!(store.list_namespaces().await.unwrap().len(), 1);
        let ns = store.namespace("N").await.unwrap();
        let started = tokio::time::Instant::now();
        let error = ns.get("k").await.unwrap_err();
        assert!(matches!(error, KvError::Unavailable { .. }), "{error:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_closure_is_a_decorator_applied_to_each_opened_namespace() {
        let wrapped = Arc::new(AtomicUsize::new(0));
        let count = wrapped.clone();
        let backend = Decorated::new(
            Hanging::default(),
            move |inner: Arc<dyn NamespaceStore>| -> Arc<dyn NamespaceStore> {
                count.fetch_add(1, Ordering::SeqCst);
                inner
            },
        );
        let _ = backend.open_namespace("id1").await.unwrap();
        let _ = backend.open_namespace("id1").await.unwrap();
        assert_eq!(wrapped.load(Ordering::SeqCst), 2);
        assert_eq!(backend.get_ref().opened.load(Ordering::SeqCst), 2);
    }
}
