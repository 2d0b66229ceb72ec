//! The durable file backend: every namespace in one local [redb](https://docs.rs/redb) file.
//!
//! [`FileBackend`] stores a store in a directory holding one file, `store.redb`. Each namespace
//! is one redb table (named `ns:` + the namespace id), a `catalog` table maps ids to titles, and
//! a `meta` table holds the store's format and a version mark, so every write gets a version never handed out before in this
//! store, even after a key or a whole namespace is deleted and created again. The counter itself
//! lives in memory; the mark on disk is the end of a block of versions reserved ahead (1024 at
//! a time), so a commit touches the `meta` table once per block, not once per write, and after a
//! restart counting resumes above every version the store may have handed out.
//!
//! - **Durable**: every put, delete, bulk put and bulk delete commits a redb write transaction
//!   with immediate durability (fsync) before it returns. A process killed at any moment leaves
//!   the store with every acknowledged write and nothing corrupt.
//! - **Atomic compare-and-swap**: a conditional write or delete checks its condition and applies
//!   in one write transaction ([`Capabilities::atomic`](kv_core::Capabilities::atomic)). A bulk put or bulk delete is one
//!   transaction too: all of it happens or none.
//! - **One process at a time**: a second open of a store that is open (in another process or in
//!   this one) fails with [`KvError::StoreLocked`]; share a store between processes through
//!   `kv-server` instead.
//! - **Expiry**: decided with the backend's [`Clock`](kv_core::Clock); an expired entry is
//!   invisible at once and treated as absent by write modes. A background sweeper (when built
//!   inside a tokio runtime) removes expired entries physically every
//!   [`sweep_interval`](FileBackendBuilder::sweep_interval); [`FileBackend::purge_expired`] does
//!   so on demand.
//! - **File size**: the file keeps the space that deleted and expired entries free and reuses
//!   it for later writes, so it stays at its largest size but does not grow while the live data
//!   fits; [`compact()`] (the `kv compact` command) gives the free space back while the store is
//!   not open.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> kv_core::Result<()> {
//! use kv_backends::file::FileBackend;
//! use kv_core::{PutOptions, Store};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::new(FileBackend::open(dir.path())?);
//! let config = store.namespace("CONFIG").await?;
//! let options = PutOptions::new().metadata(serde_json::json!({"owner": "ops"}));
//! let outcome = config.put_with("feature", "on", options).await?;
//! assert!(outcome.version().is_some());
//! drop((config, store));
//!
//! // Everything is still there after reopening.
//! let store = Store::new(FileBackend::open(dir.path())?);
//! let config = store.namespace("CONFIG").await?;
//! assert_eq!(config.get_text("feature").await?.as_deref(), Some("on"));
//! assert_eq!(store.list_namespaces().await?[0].title, "CONFIG");
//! # Ok(()) }
//! ```

mod compact;
mod record;
mod store;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kv_core::{
    async_trait, new_namespace_id, Backend, Capabilities, KvError, Message, NamespaceInfo,
    NamespaceStore, Result, SharedClock, SystemClock,
};
use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable};

pub use compact::{compact, Compaction};

use crate::sweeper::{spawn_sweeper, DEFAULT_SWEEP_INTERVAL};
use store::{
    begin_write, engine, namespace_def, FileNamespace, CATALOG, META, META_FORMAT, NS_PREFIX,
};

/// The backend's name in errors and logs.
const KIND: &str = "file";

/// The name of the redb file inside the store directory.
pub const STORE_FILE_NAME: &str = "store.redb";

/// The store layout this build writes (the `format` entry of the `meta` table).
const STORE_FORMAT: u64 = 1;

/// A durable store in a local directory, on redb. Cheap to clone: clones share the open file.
///
/// See the [module documentation](self) for its guarantees.
#[derive(Clone)]
pub struct FileBackend {
    shared: Arc<Shared>,
}

/// What the backend, its namespaces and its sweeper share.
pub(crate) struct Shared {
    pub(crate) db: Database,
    pub(crate) path: PathBuf,
    pub(crate) clock: SharedClock,
    /// The version counter and its reservation on disk (see [`store::Versions`]).
    pub(crate) versions: parking_lot::Mutex<store::Versions>,
}

impl fmt::Debug for FileBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileBackend")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

/// Configures and opens a [`FileBackend`].
///
/// ```
/// use kv_backends::file::FileBackend;
/// use std::time::Duration;
///
/// let dir = tempfile::tempdir().unwrap();
/// let backend = FileBackend::builder(dir.path().join("kv"))
///     .clock(kv_core::SystemClock::shared())
///     .sweep_interval(Duration::from_secs(300))
///     .open()?;
/// assert!(dir.path().join("kv").join("store.redb").is_file());
/// # drop(backend);
/// # Ok::<(), kv_core::KvError>(())
/// ```
#[derive(Debug, Clone)]
pub struct FileBackendBuilder {
    path: PathBuf,
    clock: Option<SharedClock>,
    sweep_interval: Duration,
}

impl FileBackendBuilder {
    /// Decide expiry with this clock instead of the system clock.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// How often the background sweeper removes expired entries (60 s by default); zero turns
    /// the sweeper off. Expired entries are invisible either way.
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// Opens the store, creating the directory and the file when missing.
    ///
    /// This blocks on file I/O (and, after a crash, on redb's recovery of the file); from async
    /// code call it inside [`tokio::task::spawn_blocking`]. The sweeper starts only when called
    /// inside a tokio runtime (a `spawn_blocking` task counts).
    ///
    /// # Errors
    ///
    /// [`KvError::StoreLocked`] when the store is open elsewhere (another process, or another
    /// backend in this one); [`KvError::Backend`] when the directory or file cannot be created or
    /// is not a store.
    pub fn open(self) -> Result<FileBackend> {
        let path = self.path;
        if let Err(error) = std::fs::create_dir_all(&path) {
            return Err(KvError::backend(
                KIND,
                Message(format!(
                    "cannot create store directory {}: {error}",
                    path.display()
                )),
            ));
        }
        let file = path.join(STORE_FILE_NAME);
        let db = match Database::builder().create(&file) {
            Ok(db) => db,
            Err(DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch) => {
                return Err(KvError::StoreLocked {
                    path: path.display().to_string(),
                })
            }
            Err(error) => return Err(engine(error)),
        };
        check_format(&db, &path)?;
        let versions = store::Versions::load(&db)?;
        let shared = Arc::new(Shared {
            db,
            path,
            clock: self.clock.unwrap_or_else(SystemClock::shared),
            versions: parking_lot::Mutex::new(versions),
        });
        tracing::debug!(path = %shared.path.display(), "opened file store");
        if !self.sweep_interval.is_zero() {
            spawn_sweeper(
                Arc::downgrade(&shared),
                self.sweep_interval,
                |shared| async move { FileBackend { shared }.purge_expired().await },
            );
        }
        Ok(FileBackend { shared })
    }
}

/// Records the store format in a new store and refuses a store written in another one.
fn check_format(db: &Database, path: &Path) -> Result<()> {
    let found = {
        let txn = db.begin_read().map_err(engine)?;
        match txn.open_table(META) {
            Ok(meta) => meta
                .get(META_FORMAT)
                .map_err(engine)?
                .map(|guard| guard.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(error) => return Err(engine(error)),
        }
    };
    match found {
        Some(STORE_FORMAT) => Ok(()),
        Some(other) => Err(KvError::backend(
            KIND,
            Message(format!(
                "store {} has layout version {other}; this build reads version {STORE_FORMAT}",
                path.display()
            )),
        )),
        None => {
            let txn = begin_write(db)?;
            {
                let mut meta = txn.open_table(META).map_err(engine)?;
                meta.insert(META_FORMAT, STORE_FORMAT).map_err(engine)?;
            }
            txn.commit().map_err(engine)
        }
    }
}

impl FileBackend {
    /// Opens (creating if needed) the store in directory `path` with the system clock and the
    /// default sweep interval. Blocks on file I/O; see [`FileBackendBuilder::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<FileBackend> {
        Self::builder(path.as_ref()).open()
    }

    /// A builder for the store in directory `path`.
    pub fn builder(path: impl Into<PathBuf>) -> FileBackendBuilder {
        FileBackendBuilder {
            path: path.into(),
            clock: None,
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
        }
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Removes every expired entry from every namespace now, returning how many were removed.
    ///
    /// Expired entries are already invisible; this reclaims their space. The scan runs in a
    /// read transaction, so writers are only held up while the expired keys are removed.
    pub async fn purge_expired(&self) -> Result<usize> {
        let shared = self.shared.clone();
        blocking(move || store::purge_expired(&shared)).await
    }
}

/// Runs a durable write's blocking redb work without a hop to another thread where the runtime
/// allows it: on a multi-threaded tokio runtime in place ([`tokio::task::block_in_place`]: the
/// worker hands its other tasks to another thread and runs the write itself, so the caller waits
/// for the write and the fsync only, not for a thread to wake); anywhere else through
/// [`blocking`].
///
/// The price: while the write runs, nothing else in the caller's task runs, so a timeout
/// wrapped around the same task (for example
/// [`Namespace::with_timeout`](kv_core::Namespace::with_timeout)) cannot fire before the
/// write's transaction returns.
pub(crate) async fn blocking_write<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let in_place = tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if in_place {
        tokio::task::block_in_place(work)
    } else {
        blocking(work).await
    }
}

/// Runs blocking redb work off the async threads.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| KvError::backend(KIND, error))?
}

#[async_trait]
impl Backend for FileBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn clock(&self) -> SharedClock {
        self.shared.clock.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::atomic()
    }

    async fn create_namespace(&self, title: &str) -> Result<NamespaceInfo> {
        let shared = self.shared.clone();
        let title = title.to_owned();
        blocking(move || {
            let txn = begin_write(&shared.db)?;
            let id = new_namespace_id();
            {
                let mut catalog = txn.open_table(CATALOG).map_err(engine)?;
                if title_taken(&catalog, &title, None)? {
                    return Err(KvError::NamespaceExists { title });
                }
                catalog
                    .insert(id.as_str(), title.as_str())
                    .map_err(engine)?;
                txn.open_table(namespace_def(&format!("{NS_PREFIX}{id}")))
                    .map_err(engine)?;
            }
            txn.commit().map_err(engine)?;
            tracing::debug!(id, title, "created namespace");
            Ok(NamespaceInfo { id, title })
        })
        .await
    }

    async fn list_namespaces(&self) -> Result<Vec<NamespaceInfo>> {
        let txn = self.shared.db.begin_read().map_err(engine)?;
        let catalog = match txn.open_table(CATALOG) {
            Ok(catalog) => catalog,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(error) => return Err(engine(error)),
        };
        let mut all = Vec::new();
        for item in catalog.iter().map_err(engine)? {
            let (id, title) = item.map_err(engine)?;
            all.push(NamespaceInfo {
                id: id.value().to_owned(),
                title: title.value().to_owned(),
            });
        }
        all.sort_by(|a, b| a.title.cmp(&b.title));
        Ok(all)
    }

    async fn rename_namespace(&self, id: &str, title: &str) -> Result<()> {
        let shared = self.shared.clone();
        let (id, title) = (id.to_owned(), title.to_owned());
        blocking(move || {
            let txn = begin_write(&shared.db)?;
            {
                let mut catalog = txn.open_table(CATALOG).map_err(engine)?;
                if catalog.get(id.as_str()).map_err(engine)?.is_none() {
                    return Err(KvError::NamespaceNotFound { name: id });
                }
                if title_taken(&catalog, &title, Some(&id))? {
                    return Err(KvError::NamespaceExists { title });
                }
                catalog
                    .insert(id.as_str(), title.as_str())
                    .map_err(engine)?;
            }
            txn.commit().map_err(engine)
        })
        .await
    }

    async fn delete_namespace(&self, id: &str) -> Result<bool> {
        let shared = self.shared.clone();
        let id = id.to_owned();
        blocking(move || {
            let txn = begin_write(&shared.db)?;
            let existed = txn
                .open_table(CATALOG)
                .map_err(engine)?
                .remove(id.as_str())
                .map_err(engine)?
                .is_some();
            if existed {
                txn.delete_table(namespace_def(&format!("{NS_PREFIX}{id}")))
                    .map_err(engine)?;
                txn.commit().map_err(engine)?;
                tracing::debug!(id, "deleted namespace");
            } else {
                txn.abort().map_err(engine)?;
            }
            Ok(existed)
        })
        .await
    }

    async fn open_namespace(&self, id: &str) -> Result<Arc<dyn NamespaceStore>> {
        // A read: an MVCC snapshot that never waits for the writer.
        let txn = self.shared.db.begin_read().map_err(engine)?;
        let listed = match txn.open_table(CATALOG) {
            Ok(catalog) => catalog.get(id).map_err(engine)?.is_some(),
            Err(redb::TableError::TableDoesNotExist(_)) => false,
            Err(error) => return Err(engine(error)),
        };
        if !listed {
            return Err(KvError::NamespaceNotFound {
                name: id.to_owned(),
            });
        }
        Ok(Arc::new(FileNamespace::new(self.shared.clone(), id)))
    }
}

/// Whether a namespace other than `except` already has `title`.
fn title_taken(
    catalog: &redb::Table<'_, &'static str, &'static str>,
    title: &str,
    except: Option<&str>,
) -> Result<bool> {
    for item in catalog.iter().map_err(engine)? {
        let (id, existing) = item.map_err(engine)?;
        if existing.value() == title && Some(id.value()) != except {
            return Ok(true);
        }
    }
    Ok(false)
}
