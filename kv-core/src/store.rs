//! The object-safe traits every backend implements.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::SharedClock;
use crate::error::Result;
use crate::types::{
    Capabilities, DeleteOutcome, Entry, ListOptions, ListPage, NamespaceInfo, NewEntry, PutOutcome,
    WriteMode,
};

/// One namespace of one backend: an isolated keyspace.
///
/// Implementations receive requests already checked against the [`Limits`](crate::Limits) by the
/// [`Namespace`](crate::Namespace) handle, with expiries already absolute; they decide expiry
/// with the backend's [`Clock`](crate::Clock), treat an entry whose expiration is at or before
/// now as absent, and give every write a new [`Version`](crate::Version). Conditional writes
/// reach an implementation only when its capabilities say they are atomic.
#[async_trait]
pub trait NamespaceStore: Send + Sync + Debug + 'static {
    /// The backend's short name, for errors and logs (`memory`, `file`).
    fn kind(&self) -> &'static str;

    /// What this store does faithfully.
    fn capabilities(&self) -> Capabilities;

    /// Reads one entry.
    async fn get(&self, key: &str) -> Result<Option<Entry>>;

    /// Writes one entry under `mode`.
    async fn put(&self, key: &str, entry: NewEntry, mode: WriteMode) -> Result<PutOutcome>;

    /// Deletes one entry under `mode`; deleting an absent key unconditionally is a no-op.
    async fn delete(&self, key: &str, mode: WriteMode) -> Result<DeleteOutcome>;

    /// Lists one page in key byte order (the limit is already checked; the cursor is not).
    async fn list(&self, options: &ListOptions) -> Result<ListPage>;

    /// The synchronous fast path of [`get`](Self::get): a store that can answer at once (it
    /// holds the data in this process and never waits) returns `Some` with the answer; any other
    /// store declines with `None` (the default), and the caller awaits [`get`](Self::get).
    ///
    /// [`Namespace`](crate::Namespace) tries this first, so a call answered here allocates no
    /// boxed future and takes no task hop. An implementation must give the same answer the
    /// async method would.
    fn get_now(&self, key: &str) -> Option<Result<Option<Entry>>> {
        let _ = key;
        None
    }

    /// The synchronous fast path of [`put`](Self::put): `Ok` with the answer, or `Err` giving
    /// the entry back when the store declines (the default), and the caller awaits
    /// [`put`](Self::put). A store that may block (on a disk flush, a lock held across I/O) or
    /// needs the network declines.
    fn put_now(
        &self,
        key: &str,
        entry: NewEntry,
        mode: WriteMode,
    ) -> std::result::Result<Result<PutOutcome>, NewEntry> {
        let _ = (key, mode);
        Err(entry)
    }

    /// The synchronous fast path of [`delete`](Self::delete); `None` declines (the default).
    fn delete_now(&self, key: &str, mode: WriteMode) -> Option<Result<DeleteOutcome>> {
        let _ = (key, mode);
        None
    }

    /// The synchronous fast path of [`list`](Self::list); `None` declines (the default).
    fn list_now(&self, options: &ListOptions) -> Option<Result<ListPage>> {
        let _ = options;
        None
    }

    /// Reads many entries, in the order of `keys`.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
        let mut entries = Vec::with_capacity(keys.len());
        for key in keys {
            entries.push(self.get(key).await?);
        }
        Ok(entries)
    }

    /// Writes many entries unconditionally.
    async fn put_many(&self, items: Vec<(String, NewEntry)>) -> Result<()> {
        for (key, entry) in items {
            let _ = self.put(&key, entry, WriteMode::Overwrite).await?;
        }
        Ok(())
    }

    /// Deletes many keys unconditionally.
    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        for key in keys {
            let _ = self.delete(key, WriteMode::Overwrite).await?;
        }
        Ok(())
    }
}

/// A backend: keeps a catalog of namespaces (id and title) and opens them by id.
///
/// Most code uses [`Store`](crate::Store), which resolves titles, creates namespaces on first
/// use and checks names; a backend implements only these primitives.
#[async_trait]
pub trait Backend: Send + Sync + Debug + 'static {
    /// A short name for logs and errors (`memory`, `file`).
    fn kind(&self) -> &'static str;

    /// The clock this backend decides expiry with.
    fn clock(&self) -> SharedClock;

    /// What every namespace of this backend does faithfully.
    fn capabilities(&self) -> Capabilities;

    /// Creates an empty namespace with a new id (see [`new_namespace_id`](crate::new_namespace_id));
    /// [`KvError::NamespaceExists`](crate::KvError::NamespaceExists) when the title is taken.
    async fn create_namespace(&self, title: &str) -> Result<NamespaceInfo>;

    /// Every namespace, sorted by title.
    async fn list_namespaces(&self) -> Result<Vec<NamespaceInfo>>;

    /// Gives a namespace a new title; its id and entries stay.
    /// [`KvError::NamespaceNotFound`](crate::KvError::NamespaceNotFound) for an unknown id,
    /// [`KvError::NamespaceExists`](crate::KvError::NamespaceExists) when another has the title.
    async fn rename_namespace(&self, id: &str, title: &str) -> Result<()>;

    /// Removes a namespace and everything in it; `false` when the id is unknown. Handles still
    /// open on it read nothing and fail to write.
    async fn delete_namespace(&self, id: &str) -> Result<bool>;

    /// Opens the namespace with this id;
    /// [`KvError::NamespaceNotFound`](crate::KvError::NamespaceNotFound) when there is none.
    async fn open_namespace(&self, id: &str) -> Result<Arc<dyn NamespaceStore>>;
}
