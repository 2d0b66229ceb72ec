//! One namespace of the file backend: a redb table of encoded records, and the transactions
//! over it.
//!
//! Point reads (`get`, `get_many`) run inline on the caller's task, and `get` answers on the
//! store contract's synchronous fast path: a redb read transaction is an MVCC snapshot of the
//! last commit that never waits for the writer (or for other readers), so it costs no more than
//! the page reads themselves, usually served from redb's cache; sending them to the blocking
//! pool would add a thread hop to the hottest path for nothing. Writes wait for redb's single
//! writer and for an fsync: on a multi-threaded runtime they run in place
//! ([`tokio::task::block_in_place`], which moves the worker's other tasks to another thread
//! rather than the write), elsewhere in [`tokio::task::spawn_blocking`]. A listing may walk many
//! pages and runs in `spawn_blocking`.

use std::fmt;
use std::ops::Bound;
use std::sync::Arc;
use std::time::SystemTime;

use kv_core::{
    async_trait, collect_page, is_expired, list_start, Bytes, Capabilities, DeleteOutcome, Entry,
    KeyInfo, KvError, ListOptions, ListPage, Message, NamespaceStore, NewEntry, PutOutcome, Result,
    Version, WriteMode,
};
use redb::{
    Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, Table, TableDefinition,
    TableError, TableHandle, WriteTransaction,
};

use super::record::{encode_header, CorruptRecord, RecordError, RecordRef};
use super::{blocking, blocking_write, Shared, KIND};

/// The prefix of a namespace's table name.
pub(crate) const NS_PREFIX: &str = "ns:";

/// The store's own bookkeeping.
pub(crate) const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");
/// The namespace catalog: id to title.
pub(crate) const CATALOG: TableDefinition<'static, &'static str, &'static str> =
    TableDefinition::new("catalog");
/// The `meta` key of the version mark: no version above it has been handed out.
const META_VERSION: &str = "version";
/// Versions reserved on disk at a time: the `meta` table is written once per this many writes.
const VERSION_BLOCK: u64 = 1024;
/// The `meta` key of the store layout version.
pub(crate) const META_FORMAT: &str = "format";

/// The definition of a namespace's table (`ns:` + the namespace name).
pub(crate) fn namespace_def(table: &str) -> TableDefinition<'_, &'static str, &'static [u8]> {
    TableDefinition::new(table)
}

/// Wraps an error of redb.
pub(crate) fn engine(error: impl Into<redb::Error>) -> KvError {
    KvError::backend(KIND, error.into())
}

/// A write transaction that is durable (fsynced) once its commit returns.
pub(crate) fn begin_write(db: &Database) -> Result<WriteTransaction> {
    let mut txn = db.begin_write().map_err(engine)?;
    txn.set_durability(Durability::Immediate).map_err(engine)?;
    Ok(txn)
}

/// The store's version counter: the last version handed out, in memory, and the mark on disk
/// that every version handed out stays at or below.
///
/// Versions are handed out inside a write transaction, and redb runs one write transaction at a
/// time, so the counter is never contended. Only when the counter would pass the mark does the
/// transaction also write a new mark, a block ahead, in the `meta` table; the mark in memory
/// follows only once that transaction has committed. So a version is never handed out above a
/// durable mark (a crash loses at most the rest of a block, never a version's uniqueness), and a
/// write that does not commit leaves, at worst, a gap.
#[derive(Debug)]
pub(crate) struct Versions {
    last: u64,
    reserved: u64,
}

/// A new mark written in a transaction, to adopt once it has committed.
#[must_use = "the mark is adopted only after the commit"]
struct Reservation(Option<u64>);

impl Versions {
    /// The counter of an open store: resumes at its mark (the last version handed out, in a
    /// store written before marks were reserved ahead).
    pub(crate) fn load(db: &Database) -> Result<Versions> {
        let txn = db.begin_read().map_err(engine)?;
        let mark = match txn.open_table(META) {
            Ok(meta) => meta
                .get(META_VERSION)
                .map_err(engine)?
                .map_or(0, |guard| guard.value()),
            Err(TableError::TableDoesNotExist(_)) => 0,
            Err(error) => return Err(engine(error)),
        };
        Ok(Versions {
            last: mark,
            reserved: mark,
        })
    }
}

/// Hands out `count` new versions inside `txn`: returns the first (the others follow it) and
/// the new mark to adopt after the commit, if this transaction wrote one.
fn allocate_versions(
    shared: &Shared,
    txn: &WriteTransaction,
    count: u64,
) -> Result<(u64, Reservation)> {
    let exhausted = || KvError::backend(KIND, Message("version counter exhausted".into()));
    let mut versions = shared.versions.lock();
    let first = versions.last.checked_add(1).ok_or_else(exhausted)?;
    let new_last = versions.last.checked_add(count).ok_or_else(exhausted)?;
    let mut reservation = Reservation(None);
    if new_last > versions.reserved {
        let mark = new_last.saturating_add(VERSION_BLOCK);
        let mut meta = txn.open_table(META).map_err(engine)?;
        meta.insert(META_VERSION, mark).map_err(engine)?;
        reservation = Reservation(Some(mark));
    }
    versions.last = new_last;
    Ok((first, reservation))
}

/// Commits `txn`, then adopts the mark it wrote.
fn commit(shared: &Shared, txn: WriteTransaction, reservation: Reservation) -> Result<()> {
    txn.commit().map_err(engine)?;
    if let Some(mark) = reservation.0 {
        let mut versions = shared.versions.lock();
        versions.reserved = versions.reserved.max(mark);
    }
    Ok(())
}

/// Writes one encoded record, copying the value once, straight into the table's page.
fn insert_record(
    table: &mut Table<'_, &'static str, &'static [u8]>,
    key: &str,
    version: u64,
    entry: &NewEntry,
    metadata_json: Option<&[u8]>,
) -> Result<()> {
    let header = encode_header(version, entry.expiration, metadata_json);
    let mut slot = table
        .insert_reserve(key, header.len() + entry.value.len())
        .map_err(engine)?;
    let buf = slot.as_mut();
    buf[..header.len()].copy_from_slice(&header);
    buf[header.len()..].copy_from_slice(&entry.value);
    Ok(())
}

fn encode_metadata(entry: &NewEntry) -> Result<Option<Vec<u8>>> {
    entry
        .metadata
        .as_ref()
        .map(|metadata| {
            serde_json::to_vec(metadata).map_err(|source| KvError::Encode {
                what: "metadata",
                source,
            })
        })
        .transpose()
}

/// One namespace of a [`FileBackend`](super::FileBackend); clones share everything.
#[derive(Clone)]
pub(crate) struct FileNamespace {
    shared: Arc<Shared>,
    name: Arc<str>,
    table: Arc<str>,
}

impl fmt::Debug for FileNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileNamespace")
            .field("path", &self.shared.path)
            .field("name", &self.name)
            .finish()
    }
}

impl FileNamespace {
    pub(crate) fn new(shared: Arc<Shared>, name: &str) -> Self {
        FileNamespace {
            shared,
            name: Arc::from(name),
            table: Arc::from(format!("{NS_PREFIX}{name}")),
        }
    }

    /// Opens this namespace's table for writing, if the catalog still lists the namespace (a
    /// handle kept after its namespace was deleted must not bring the table back).
    fn open_live_table<'txn>(
        &self,
        txn: &'txn WriteTransaction,
    ) -> Result<Table<'txn, &'static str, &'static [u8]>> {
        let listed = txn
            .open_table(CATALOG)
            .map_err(engine)?
            .get(&*self.name)
            .map_err(engine)?
            .is_some();
        if !listed {
            return Err(KvError::NamespaceNotFound {
                name: self.name.to_string(),
            });
        }
        txn.open_table(namespace_def(&self.table)).map_err(engine)
    }

    /// A point read on the caller's thread: see the module documentation.
    fn get_inline(&self, key: &str) -> Result<Option<Entry>> {
        let txn = self.shared.db.begin_read().map_err(engine)?;
        let Some(table) = open_read(&txn, &self.table)? else {
            return Ok(None);
        };
        self.read_entry(&table, key, self.shared.clock.now())
    }

    fn corrupt(&self, key: &str, error: RecordError) -> KvError {
        corrupt(&self.name, key, error)
    }

    fn read_entry(
        &self,
        table: &ReadOnlyTable<&'static str, &'static [u8]>,
        key: &str,
        now: SystemTime,
    ) -> Result<Option<Entry>> {
        let Some(guard) = table.get(key).map_err(engine)? else {
            return Ok(None);
        };
        let record = RecordRef::decode(guard.value()).map_err(|e| self.corrupt(key, e))?;
        if is_expired(record.expiration, now) {
            return Ok(None);
        }
        Ok(Some(Entry {
            value: Bytes::copy_from_slice(record.value),
            metadata: record.metadata().map_err(|e| self.corrupt(key, e))?,
            expiration: record.expiration,
            version: Version::from_raw(record.version),
        }))
    }

    fn put_blocking(
        &self,
        key: &str,
        entry: &NewEntry,
        metadata_json: Option<&[u8]>,
        mode: WriteMode,
    ) -> Result<PutOutcome> {
        let txn = begin_write(&self.shared.db)?;
        let version = {
            let mut table = self.open_live_table(&txn)?;
            let allowed = match mode {
                WriteMode::Overwrite => true,
                _ => {
                    let now = self.shared.clock.now();
                    let current = match table.get(key).map_err(engine)? {
                        None => None,
                        Some(guard) => {
                            let record = RecordRef::decode(guard.value())
                                .map_err(|e| self.corrupt(key, e))?;
                            (!is_expired(record.expiration, now)).then_some(record.version)
                        }
                    };
                    mode.allows(current.map(Version::from_raw))
                }
            };
            if allowed {
                let (version, reservation) = allocate_versions(&self.shared, &txn, 1)?;
                insert_record(&mut table, key, version, entry, metadata_json)?;
                Some((version, reservation))
            } else {
                None
            }
        };
        match version {
            Some((version, reservation)) => {
                commit(&self.shared, txn, reservation)?;
                tracing::debug!(ns = %self.name, key, version, "put");
                Ok(PutOutcome::Written(Version::from_raw(version)))
            }
            None => {
                txn.abort().map_err(engine)?;
                tracing::debug!(ns = %self.name, key, ?mode, "put condition failed");
                Ok(PutOutcome::ConditionFailed)
            }
        }
    }

    fn delete_blocking(&self, key: &str, mode: WriteMode) -> Result<DeleteOutcome> {
        let txn = begin_write(&self.shared.db)?;
        // (outcome, whether something was removed and must be committed)
        let (outcome, removed) = {
            let mut table = self.open_live_table(&txn)?;
            let now = self.shared.clock.now();
            let stored = table.get(key).map_err(engine)?.map(|guard| {
                RecordRef::decode(guard.value())
                    .map(|record| (record.version, is_expired(record.expiration, now)))
            });
            let (allowed, existed, present) = match stored {
                None => (mode.allows(None), false, false),
                // An unconditional delete removes a record it cannot read; a conditional one
                // cannot be decided on it.
                Some(Err(error)) if !mode.is_conditional() => {
                    tracing::warn!(ns = %self.name, key, %error, "deleting a corrupt record");
                    (true, true, true)
                }
                Some(Err(error)) => return Err(self.corrupt(key, error)),
                Some(Ok((version, expired))) => {
                    let current = (!expired).then_some(Version::from_raw(version));
                    (mode.allows(current), !expired, true)
                }
            };
            if !allowed {
                (DeleteOutcome::ConditionFailed, false)
            } else {
                if present {
                    table.remove(key).map_err(engine)?;
                }
                (DeleteOutcome::Deleted { existed }, present)
            }
        };
        if removed {
            txn.commit().map_err(engine)?;
        } else {
            txn.abort().map_err(engine)?;
        }
        tracing::debug!(ns = %self.name, key, ?mode, ?outcome, "delete");
        Ok(outcome)
    }

    fn put_many_blocking(&self, items: &[(String, NewEntry, Option<Vec<u8>>)]) -> Result<()> {
        let txn = begin_write(&self.shared.db)?;
        let reservation = {
            let mut table = self.open_live_table(&txn)?;
            let (first, reservation) = allocate_versions(&self.shared, &txn, items.len() as u64)?;
            for (version, (key, entry, metadata_json)) in (first..).zip(items) {
                insert_record(&mut table, key, version, entry, metadata_json.as_deref())?;
            }
            reservation
        };
        commit(&self.shared, txn, reservation)?;
        tracing::debug!(ns = %self.name, count = items.len(), "put many");
        Ok(())
    }

    fn delete_many_blocking(&self, keys: &[String]) -> Result<()> {
        let txn = begin_write(&self.shared.db)?;
        let mut removed = 0usize;
        {
            let mut table = self.open_live_table(&txn)?;
            for key in keys {
                if table.remove(key.as_str()).map_err(engine)?.is_some() {
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            txn.commit().map_err(engine)?;
        } else {
            txn.abort().map_err(engine)?;
        }
        tracing::debug!(ns = %self.name, count = keys.len(), removed, "delete many");
        Ok(())
    }

    fn list_blocking(&self, options: &ListOptions) -> Result<ListPage> {
        let prefix = options.prefix.as_deref().unwrap_or("");
        let start = list_start(prefix, options.cursor.as_deref())?;
        let txn = self.shared.db.begin_read().map_err(engine)?;
        let Some(table) = open_read(&txn, &self.table)? else {
            return Ok(ListPage {
                keys: Vec::new(),
                list_complete: true,
                cursor: None,
            });
        };
        let now = self.shared.clock.now();
        let lower = match &start {
            Bound::Included(key) => Bound::Included(key.as_str()),
            Bound::Excluded(key) => Bound::Excluded(key.as_str()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let range = table
            .range::<&str>((lower, Bound::Unbounded))
            .map_err(engine)?;
        let items = range.map(|item| {
            let (key, value) = item.map_err(engine)?;
            let name = key.value().to_owned();
            if !name.starts_with(prefix) {
                // The end of the listing: `collect_page` stops here without looking inside.
                return Ok(KeyInfo {
                    name,
                    expiration: None,
                    metadata: None,
                });
            }
            let record = RecordRef::decode(value.value()).map_err(|e| self.corrupt(&name, e))?;
            // An expired key is skipped by `collect_page`; its metadata need not be parsed.
            let metadata = if is_expired(record.expiration, now) {
                None
            } else {
                record.metadata().map_err(|e| self.corrupt(&name, e))?
            };
            Ok(KeyInfo {
                name,
                expiration: record.expiration,
                metadata,
            })
        });
        collect_page(items, prefix, options.limit, now)
    }
}

/// Opens a namespace table for reading; `None` when it does not exist.
fn open_read(
    txn: &redb::ReadTransaction,
    table: &str,
) -> Result<Option<ReadOnlyTable<&'static str, &'static [u8]>>> {
    match txn.open_table(namespace_def(table)) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(error) => Err(engine(error)),
    }
}

fn corrupt(namespace: &str, key: &str, error: RecordError) -> KvError {
    KvError::backend(
        KIND,
        CorruptRecord {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
            error,
        },
    )
}

/// Removes every expired entry of every namespace; returns how many were removed.
///
/// The scan runs over a read snapshot so writers are not held up by it; the removal then
/// re-checks each entry in the write transaction, so an entry rewritten in between survives.
pub(crate) fn purge_expired(shared: &Shared) -> Result<usize> {
    let now = shared.clock.now();
    let mut expired: Vec<(String, Vec<(String, u64)>)> = Vec::new();
    {
        let txn = shared.db.begin_read().map_err(engine)?;
        let tables: Vec<String> = txn
            .list_tables()
            .map_err(engine)?
            .map(|table| table.name().to_owned())
            .filter(|name| name.starts_with(NS_PREFIX))
            .collect();
        for name in tables {
            let Some(table) = open_read(&txn, &name)? else {
                continue;
            };
            let mut keys = Vec::new();
            for item in table.iter().map_err(engine)? {
                let (key, value) = item.map_err(engine)?;
                // Corrupt records are left alone: reading them reports the corruption.
                if let Ok(record) = RecordRef::decode(value.value()) {
                    if is_expired(record.expiration, now) {
                        keys.push((key.value().to_owned(), record.version));
                    }
                }
            }
            if !keys.is_empty() {
                expired.push((name, keys));
            }
        }
    }
    if expired.is_empty() {
        return Ok(0);
    }
    let txn = begin_write(&shared.db)?;
    let mut removed = 0;
    {
        for (name, keys) in &expired {
            let mut table = match txn.open_table(namespace_def(name)) {
                Ok(table) => table,
                Err(error) => return Err(engine(error)),
            };
            for (key, version) in keys {
                let still_expired = match table.get(key.as_str()).map_err(engine)? {
                    Some(guard) => RecordRef::decode(guard.value()).is_ok_and(|record| {
                        record.version == *version && is_expired(record.expiration, now)
                    }),
                    None => false,
                };
                if still_expired {
                    table.remove(key.as_str()).map_err(engine)?;
                    removed += 1;
                }
            }
        }
    }
    if removed > 0 {
        txn.commit().map_err(engine)?;
    } else {
        txn.abort().map_err(engine)?;
    }
    Ok(removed)
}

#[async_trait]
impl NamespaceStore for FileNamespace {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::atomic()
    }

    /// Point reads answer at once (see the module documentation); writes decline, as they
    /// wait for the writer lock and an fsync.
    fn get_now(&self, key: &str) -> Option<Result<Option<Entry>>> {
        Some(self.get_inline(key))
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        self.get_inline(key)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
        // Inline, and all keys from one snapshot.
        let txn = self.shared.db.begin_read().map_err(engine)?;
        let Some(table) = open_read(&txn, &self.table)? else {
            return Ok(vec![None; keys.len()]);
        };
        let now = self.shared.clock.now();
        keys.iter()
            .map(|key| self.read_entry(&table, key, now))
            .collect()
    }

    async fn put(&self, key: &str, entry: NewEntry, mode: WriteMode) -> Result<PutOutcome> {
        let metadata_json = encode_metadata(&entry)?;
        let this = self.clone();
        let key = key.to_owned();
        blocking_write(move || this.put_blocking(&key, &entry, metadata_json.as_deref(), mode))
            .await
    }

    async fn delete(&self, key: &str, mode: WriteMode) -> Result<DeleteOutcome> {
        let this = self.clone();
        let key = key.to_owned();
        blocking_write(move || this.delete_blocking(&key, mode)).await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let this = self.clone();
        let options = options.clone();
        blocking(move || this.list_blocking(&options)).await
    }

    async fn put_many(&self, items: Vec<(String, NewEntry)>) -> Result<()> {
        let items = items
            .into_iter()
            .map(|(key, entry)| {
                let metadata_json = encode_metadata(&entry)?;
                Ok((key, entry, metadata_json))
            })
            .collect::<Result<Vec<_>>>()?;
        let this = self.clone();
        blocking_write(move || this.put_many_blocking(&items)).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let this = self.clone();
        let keys = keys.to_vec();
        blocking_write(move || this.delete_many_blocking(&keys)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::FileBackend;
    use kv_core::{Bytes, Store};

    fn mark(backend: &FileBackend) -> u64 {
        let txn = backend.shared.db.begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        let mark = meta.get(META_VERSION).unwrap().unwrap().value();
        mark
    }

    fn entry(value: &'static str) -> NewEntry {
        NewEntry {
            value: Bytes::from_static(value.as_bytes()),
            metadata: None,
            expiration: None,
        }
    }

    /// The version mark on disk moves once per block of writes, and a reopened store hands out
    /// versions above every one handed out before.
    #[tokio::test]
    async fn versions_are_reserved_in_blocks_and_never_reused_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = Vec::new();
        {
            let backend = FileBackend::open(dir.path()).unwrap();
            let store = Store::new(backend.clone());
            let ns = store.namespace("n").await.unwrap();
            for i in 0..5 {
                seen.push(ns.put_text(&format!("k{i}"), "v").await.unwrap().raw());
            }
            assert_eq!(seen, [1, 2, 3, 4, 5], "one counter, no gaps while running");
            assert_eq!(mark(&backend), 1 + VERSION_BLOCK, "one mark for the block");
            // A bulk write past the end of the block reserves the next block in its commit.
            let items: Vec<_> = (0..VERSION_BLOCK + 10)
                .map(|i| (format!("b{i}"), entry("v")))
                .collect();
            ns.raw().put_many(items).await.unwrap();
            let last = 5 + VERSION_BLOCK + 10;
            assert_eq!(mark(&backend), last + VERSION_BLOCK);
            seen.push(ns.put_text("k0", "w").await.unwrap().raw());
            assert_eq!(*seen.last().unwrap(), last + 1);
        }
        let backend = FileBackend::open(dir.path()).unwrap();
        let store = Store::new(backend.clone());
        let ns = store.namespace("n").await.unwrap();
        let after = ns.put_text("k1", "x").await.unwrap().raw();
        assert!(
            seen.iter().all(|&old| after > old),
            "{after} is above every earlier version"
        );
        // The old versions are still readable as stored.
        assert_eq!(
            ns.get_entry("k0").await.unwrap().unwrap().version.raw(),
            *seen.last().unwrap()
        );
    }

    /// A write whose transaction does not commit leaves the mark in memory where it was, so
    /// the next write writes a mark again rather than handing out versions above the durable
    /// one.
    #[test]
    fn a_reservation_is_adopted_only_after_its_commit() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::builder(dir.path())
            .sweep_interval(std::time::Duration::ZERO)
            .open()
            .unwrap();
        let shared = &backend.shared;
        let txn = begin_write(&shared.db).unwrap();
        let (first, reservation) = allocate_versions(shared, &txn, 1).unwrap();
        assert_eq!(first, 1);
        assert_eq!(reservation.0, Some(1 + VERSION_BLOCK));
        txn.abort().unwrap();
        assert_eq!(shared.versions.lock().reserved, 0, "not adopted");
        let txn = begin_write(&shared.db).unwrap();
        let (second, reservation) = allocate_versions(shared, &txn, 1).unwrap();
        assert_eq!(second, 2, "the aborted version is a gap, not reused");
        assert_eq!(
            reservation.0,
            Some(2 + VERSION_BLOCK),
            "the mark is written again"
        );
        commit(shared, txn, reservation).unwrap();
        assert_eq!(shared.versions.lock().reserved, 2 + VERSION_BLOCK);
        assert_eq!(mark(&backend), 2 + VERSION_BLOCK);
    }
}
