//! Giving a store file's free space back to the file system.
//!
//! redb never shrinks its file as entries go: pages freed by deletes and by the expiry sweeper
//! are kept in the file and reused by later writes. A store's file therefore stays at its
//! largest size (its high-water mark) but does not grow again while the live data fits in it.
//! [`compact`] rewrites the file to its live size. It needs the store to itself, so it runs
//! while no backend has the store open (`kv compact --store file:PATH` between runs).

use std::path::Path;

use kv_core::{KvError, Message, Result};
use redb::{Database, DatabaseError};

use super::store::engine;
use super::{KIND, STORE_FILE_NAME};

/// The file's size before and after a [`compact`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// The store file's size before, in bytes.
    pub bytes_before: u64,
    /// The store file's size after, in bytes.
    pub bytes_after: u64,
}

/// Removes expired entries from the store in directory `path` and shrinks its file to what the
/// live entries need.
///
/// Blocks on file I/O (from async code, call it in [`tokio::task::spawn_blocking`]).
///
/// # Errors
///
/// [`KvError::StoreLocked`] when the store is open (in this process or another);
/// [`KvError::Backend`] when there is no store at `path` or the file cannot be rewritten.
///
/// ```
/// # fn main() -> kv_core::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// drop(kv_backends::file::FileBackend::open(dir.path())?);
/// let compaction = kv_backends::file::compact(dir.path())?;
/// assert!(compaction.bytes_after <= compaction.bytes_before);
/// # Ok(()) }
/// ```
pub fn compact(path: &Path) -> Result<Compaction> {
    let file = path.join(STORE_FILE_NAME);
    let size = || {
        std::fs::metadata(&file).map(|m| m.len()).map_err(|error| {
            KvError::backend(
                KIND,
                Message(format!("no store file {}: {error}", file.display())),
            )
        })
    };
    let bytes_before = size()?;
    // Expired entries first, so their pages are free to give back. Opening the backend (with no
    // sweeper) also checks the store's format and takes its lock.
    {
        let backend = super::FileBackend::builder(path)
            .sweep_interval(std::time::Duration::ZERO)
            .open()?;
        super::store::purge_expired(&backend.shared)?;
    }
    let mut db = match Database::open(&file) {
        Ok(db) => db,
        Err(DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch) => {
            return Err(KvError::StoreLocked {
                path: path.display().to_string(),
            })
        }
        Err(error) => return Err(engine(error)),
    };
    db.compact().map_err(engine)?;
    drop(db);
    let bytes_after = size()?;
    tracing::info!(path = %path.display(), bytes_before, bytes_after, "compacted file store");
    Ok(Compaction {
        bytes_before,
        bytes_after,
    })
}
