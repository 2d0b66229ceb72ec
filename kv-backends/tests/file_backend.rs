//! File-backend behaviour beyond the shared contract: persistence across reopening, the store
//! lock, physical removal of expired entries, namespaces on disk, corrupt records.
#![cfg(feature = "file")]

use std::path::Path;
use std::time::Duration;

use kv_backends::file::{FileBackend, STORE_FILE_NAME};
use kv_core::{
    BulkPut, DeleteOutcome, KvError, ListOptions, ManualClock, PutOptions, PutOutcome, Store,
    Version, WriteMode,
};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle};
use serde_json::{json, Value};

const START: u64 = 1_700_000_000;

fn ttl(secs: u64) -> PutOptions {
    PutOptions::new().ttl(Duration::from_secs(secs))
}

fn open(dir: &Path, clock: &ManualClock) -> FileBackend {
    FileBackend::builder(dir)
        .clock(clock.shared())
        .open()
        .expect("open the file store")
}

/// The titles of the store's namespaces, as listed.
async fn titles(store: &Store) -> Vec<String> {
    let listed = store.list_namespaces().await.unwrap();
    listed.into_iter().map(|ns| ns.title).collect()
}

/// The number of records stored in the namespace titled `title`, read from the file itself
/// (the store must be closed).
fn raw_record_count(dir: &Path, title: &str) -> u64 {
    let db = redb::Database::open(dir.join(STORE_FILE_NAME)).unwrap();
    let txn = db.begin_read().unwrap();
    let catalog = txn
        .open_table(TableDefinition::<&str, &str>::new("catalog"))
        .unwrap();
    let id = catalog
        .iter()
        .unwrap()
        .map(|item| item.unwrap())
        .find(|(_, t)| t.value() == title)
        .map(|(id, _)| id.value().to_owned())
        .expect("the namespace is in the catalog");
    let name = format!("ns:{id}");
    let table = txn
        .open_table(TableDefinition::<&str, &[u8]>::new(&name))
        .unwrap();
    table.len().unwrap()
}

#[tokio::test]
async fn reopening_sees_everything_written_before() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_unix_secs(START);
    let (before, last_version) = {
        let store = Store::new(open(dir.path(), &clock));
        let ns = store.namespace("data").await.unwrap();
        ns.put_text("plain", "value").await.unwrap();
        let _ = ns
            .put_with(
                "meta",
                "m",
                PutOptions::new().metadata(json!({"a": [1, 2]})),
            )
            .await
            .unwrap();
        let _ = ns
            .put_with("null-meta", "n", PutOptions::new().metadata(Value::Null))
            .await
            .unwrap();
        let _ = ns.put_with("ttl", "t", ttl(3600)).await.unwrap();
        let _ = ns
            .put_with("binary", vec![0u8, 255, 1, 2], PutOptions::new())
            .await
            .unwrap();
        ns.put_text("deleted", "gone").await.unwrap();
        ns.delete("deleted").await.unwrap();
        let other = store.namespace("other").await.unwrap();
        let last = other.put_text("x", "y").await.unwrap();

        let keys = ["plain", "meta", "null-meta", "ttl", "binary", "deleted"];
        (ns.get_many(&keys).await.unwrap(), last)
    };
    assert_eq!(before[2].as_ref().unwrap().metadata, Some(Value::Null));
    assert_eq!(before[0].as_ref().unwrap().metadata, None);

    let store = Store::new(open(dir.path(), &clock));
    assert_eq!(titles(&store).await, ["data", "other"]);
    let ns = store.namespace("data").await.unwrap();
    let keys = ["plain", "meta", "null-meta", "ttl", "binary", "deleted"];
    let after = ns.get_many(&keys).await.unwrap();
    assert_eq!(after, before, "values, metadata, expirations and versions");
    assert_eq!(
        after[3].as_ref().unwrap().expiration,
        Some(START + 3600),
        "expiration kept"
    );
    assert!(after[5].is_none());

    // The version counter continues: new writes never reuse a version.
    let new = ns.put_text("plain", "again").await.unwrap();
    assert!(new > last_version, "{new} after {last_version}");
    let recreated = ns.put_text("deleted", "back").await.unwrap();
    assert!(recreated > new);
    let mut versions: Vec<Version> = after.iter().flatten().map(|e| e.version).collect();
    versions.extend([last_version, new, recreated]);
    let count = versions.len();
    versions.sort();
    versions.dedup();
    assert_eq!(versions.len(), count, "every version is unique");

    // The expiration still counts after reopening.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(ns.get("ttl").await.unwrap(), None);
}

#[tokio::test]
async fn a_second_open_of_an_open_store_is_store_locked() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_unix_secs(START);
    let first = open(dir.path(), &clock);
    let store = Store::new(first.clone());
    store
        .namespace("n")
        .await
        .unwrap()
        .put_text("k", "v")
        .await
        .unwrap();

    match FileBackend::open(dir.path()) {
        Err(KvError::StoreLocked { path }) => {
            assert_eq!(Path::new(&path), dir.path());
        }
        other => panic!("expected StoreLocked, got {other:?}"),
    }
    let url = format!("file:{}", dir.path().display());
    assert!(matches!(
        kv_backends::open(&url).await,
        Err(KvError::StoreLocked { .. })
    ));

    // The refused opens changed nothing; once every handle is gone the store opens again.
    assert_eq!(
        store
            .namespace("n")
            .await
            .unwrap()
            .get_text("k")
            .await
            .unwrap()
            .as_deref(),
        Some("v")
    );
    drop((first, store));
    let reopened = Store::new(FileBackend::open(dir.path()).unwrap());
    let ns = reopened.namespace("n").await.unwrap();
    assert_eq!(ns.get_text("k").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test]
async fn store_url_opens_the_file_backend() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("store");
    let url = format!("file:{}", path.display());
    {
        let store = kv_backends::open(&url).await.unwrap();
        assert_eq!(store.kind(), "file");
        let ns = store.namespace("n").await.unwrap();
        ns.put_text("k", "v").await.unwrap();
    }
    assert!(path.join(STORE_FILE_NAME).is_file());
    let store = kv_backends::open(&url).await.unwrap();
    let ns = store.namespace("n").await.unwrap();
    assert_eq!(ns.get_text("k").await.unwrap().as_deref(), Some("v"));
}

#[test]
fn opens_outside_a_runtime_and_rejects_a_file_path() {
    let dir = tempfile::tempdir().unwrap();
    // No tokio runtime: no sweeper, but opening works.
    let backend = FileBackend::open(dir.path().join("store")).unwrap();
    assert_eq!(backend.path(), dir.path().join("store"));
    drop(backend);

    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"not a directory").unwrap();
    assert!(matches!(
        FileBackend::open(&file),
        Err(KvError::Backend { .. })
    ));

    // A directory whose store.redb is not a redb file is an error too, not a panic.
    let bogus = dir.path().join("bogus");
    std::fs::create_dir(&bogus).unwrap();
    std::fs::write(bogus.join(STORE_FILE_NAME), vec![7u8; 8192]).unwrap();
    assert!(matches!(
        FileBackend::open(&bogus),
        Err(KvError::Backend { .. })
    ));
}

#[tokio::test]
async fn purge_expired_removes_entries_physically() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_unix_secs(START);
    {
        let backend = open(dir.path(), &clock);
        let store = Store::new(backend.clone());
        let a = store.namespace("a").await.unwrap();
        let b = store.namespace("b").await.unwrap();
        for i in 0..10 {
            let _ = a.put_with(&format!("x{i}"), "v", ttl(60)).await.unwrap();
        }
        let _ = b.put_with("y", "v", ttl(120)).await.unwrap();
        b.put_text("z", "forever").await.unwrap();
        assert_eq!(backend.purge_expired().await.unwrap(), 0);

        clock.advance(Duration::from_secs(60));
        assert_eq!(a.get("x0").await.unwrap(), None, "hidden before the purge");
        assert_eq!(backend.purge_expired().await.unwrap(), 10);
        assert_eq!(backend.purge_expired().await.unwrap(), 0);

        // Turning the clock back shows they are really gone, not just hidden.
        clock.set(std::time::UNIX_EPOCH + Duration::from_secs(START));
        assert_eq!(a.get("x0").await.unwrap(), None);
        assert!(a.list(&ListOptions::new()).await.unwrap().keys.is_empty());
        assert_eq!(
            b.get_text("y").await.unwrap().as_deref(),
            Some("v"),
            "not expired yet"
        );

        clock.advance(Duration::from_secs(120));
        // A key rewritten without expiry after expiring is not purged.
        let _ = b.put_with("y", "renewed", PutOptions::new()).await.unwrap();
        assert_eq!(backend.purge_expired().await.unwrap(), 0);
    }
    assert_eq!(raw_record_count(dir.path(), "a"), 0);
    assert_eq!(raw_record_count(dir.path(), "b"), 2);
}

#[tokio::test(start_paused = true)]
async fn sweeper_purges_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_unix_secs(START);
    {
        let backend = FileBackend::builder(dir.path())
            .clock(clock.shared())
            .sweep_interval(Duration::from_secs(5))
            .open()
            .unwrap();
        let store = Store::new(backend);
        let ns = store.namespace("n").await.unwrap();
        for i in 0..20 {
            let options = if i < 15 { ttl(60) } else { ttl(600) };
            let _ = ns
                .put_with(&format!("k{i:02}"), "v", options)
                .await
                .unwrap();
        }
        clock.advance(Duration::from_secs(60));
        // Let sweeps happen until the expired entries are gone from the file (turning the clock
        // back would show any that were only hidden).
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            clock.set(std::time::UNIX_EPOCH + Duration::from_secs(START));
            let visible = ns.list(&ListOptions::new()).await.unwrap().keys.len();
            clock.advance(Duration::from_secs(60));
            if visible == 5 {
                break;
            }
        }
        clock.set(std::time::UNIX_EPOCH + Duration::from_secs(START));
        assert_eq!(
            ns.list(&ListOptions::new()).await.unwrap().keys.len(),
            5,
            "the sweeper removed the expired entries"
        );
    }
    assert_eq!(raw_record_count(dir.path(), "n"), 5);
}

#[tokio::test]
async fn namespaces_are_tables_listed_sorted_and_deletable() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_unix_secs(START);
    let store = Store::new(open(dir.path(), &clock));
    assert!(store.list_namespaces().await.unwrap().is_empty());
    let names = ["zeta", "Alpha", "ns:nested", "mé ta", "a:b", "meta"];
    for name in names {
        let ns = store.namespace(name).await.unwrap();
        ns.put_text("k", name).await.unwrap();
    }
    let mut sorted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    sorted.sort();
    assert_eq!(titles(&store).await, sorted);
    for name in names {
        let ns = store.namespace(name).await.unwrap();
        assert_eq!(ns.get_text("k").await.unwrap().as_deref(), Some(name));
    }

    // An empty namespace exists once opened.
    let _ = store.namespace("empty").await.unwrap();
    assert!(titles(&store).await.contains(&"empty".to_owned()));

    assert!(store.delete_namespace("meta").await.unwrap());
    assert!(!store.delete_namespace("meta").await.unwrap());
    assert!(!store.delete_namespace("never").await.unwrap());
    let listed = titles(&store).await;
    assert!(!listed.contains(&"meta".to_owned()));
    assert_eq!(listed.len(), names.len());

    // Deleting the namespace called "meta" leaves the store's own bookkeeping alone.
    let ns = store.namespace("zeta").await.unwrap();
    let before = ns.put_text("k2", "v").await.unwrap();
    let recreated = store.namespace("meta").await.unwrap();
    assert_eq!(recreated.get("k").await.unwrap(), None);
    let after = recreated.put_text("k", "new").await.unwrap();
    assert!(after > before, "versions keep increasing across namespaces");
}

#[tokio::test]
async fn conditional_writes_and_bulk_operations_persist() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_unix_secs(START);
    let version = {
        let store = Store::new(open(dir.path(), &clock));
        let ns = store.namespace("n").await.unwrap();
        let items = (0..100)
            .map(|i| {
                BulkPut::new(format!("bulk{i:03}"), format!("v{i}"))
                    .with_options(PutOptions::new().metadata(json!(i)))
            })
            .collect();
        ns.put_many(items).await.unwrap();
        let keys: Vec<String> = (0..50).map(|i| format!("bulk{i:03}")).collect();
        ns.delete_many(&keys).await.unwrap();
        let outcome = ns
            .put_with("cas", "1", PutOptions::new().only_if_absent())
            .await
            .unwrap();
        let PutOutcome::Written(version) = outcome else {
            panic!("first only-if-absent write must happen");
        };
        version
    };
    let store = Store::new(open(dir.path(), &clock));
    let ns = store.namespace("n").await.unwrap();
    let page = ns.list(&ListOptions::new()).await.unwrap();
    assert_eq!(page.keys.len(), 51);
    assert_eq!(page.keys[0].name, "bulk050");
    assert_eq!(page.keys[0].metadata, Some(json!(50)));
    assert_eq!(
        ns.put_with("cas", "2", PutOptions::new().only_if_absent())
            .await
            .unwrap(),
        PutOutcome::ConditionFailed
    );
    let outcome = ns
        .put_with("cas", "2", PutOptions::new().only_if_version(version))
        .await
        .unwrap();
    assert!(matches!(outcome, PutOutcome::Written(v) if v > version));
}

#[tokio::test]
async fn corrupt_records_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_unix_secs(START);
    let id = {
        let store = Store::new(open(dir.path(), &clock));
        let ns = store.namespace("n").await.unwrap();
        ns.put_text("a-good", "fine").await.unwrap();
        ns.put_text("z-good", "fine").await.unwrap();
        ns.id().to_owned()
    };
    // Plant records this backend never writes, straight into the file.
    {
        let db = redb::Database::create(dir.path().join(STORE_FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn
                .open_table(TableDefinition::<&str, &[u8]>::new(&format!("ns:{id}")))
                .unwrap();
            table.insert("m-empty", &b""[..]).unwrap();
            table.insert("m-format", &[99u8, 0, 1, 2][..]).unwrap();
            let mut bad_json = vec![1u8, 0b10, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0];
            bad_json.extend_from_slice(b"{x}value");
            table.insert("m-json", &bad_json[..]).unwrap();
            let tables: Vec<String> = txn
                .list_tables()
                .unwrap()
                .map(|t| t.name().to_owned())
                .collect();
            assert!(tables.contains(&"meta".to_owned()), "{tables:?}");
        }
        txn.commit().unwrap();
    }

    let backend = open(dir.path(), &clock);
    let store = Store::new(backend.clone());
    let ns = store.namespace("n").await.unwrap();
    for key in ["m-empty", "m-format", "m-json"] {
        match ns.get(key).await {
            Err(KvError::Backend { backend, source }) => {
                assert_eq!(backend, "file");
                assert!(source.to_string().contains(key), "{source}");
            }
            other => panic!("{key}: expected a backend error, got {other:?}"),
        }
    }
    assert!(matches!(
        ns.get_many(&["a-good", "m-json"]).await,
        Err(KvError::Backend { .. })
    ));
    assert!(matches!(
        ns.list(&ListOptions::new()).await,
        Err(KvError::Backend { .. })
    ));
    assert!(matches!(
        ns.put_with("m-format", "x", PutOptions::new().only_if_absent())
            .await,
        Err(KvError::Backend { .. })
    ));
    // The good records around them are unaffected.
    assert_eq!(
        ns.get_text("a-good").await.unwrap().as_deref(),
        Some("fine")
    );
    let page = ns.list(&ListOptions::new().prefix("z")).await.unwrap();
    assert_eq!(page.keys.len(), 1);
    let page = ns
        .list(&ListOptions::new().prefix("a").limit(1))
        .await
        .unwrap();
    assert!(page.list_complete);
    assert_eq!(backend.purge_expired().await.unwrap(), 0);

    // Unconditional writes replace or remove what cannot be read.
    ns.put_text("m-format", "repaired").await.unwrap();
    assert_eq!(
        ns.get_text("m-format").await.unwrap().as_deref(),
        Some("repaired")
    );
    assert_eq!(
        ns.delete_with("m-empty", WriteMode::Overwrite)
            .await
            .unwrap(),
        DeleteOutcome::Deleted { existed: true }
    );
    ns.delete("m-json").await.unwrap();
    assert_eq!(ns.list(&ListOptions::new()).await.unwrap().keys.len(), 3);
}

/// Deleted and expired entries leave their space in the file (redb reuses it for later writes);
/// `compact` gives it back once the store is closed, and keeps every live entry.
#[tokio::test]
async fn compact_gives_back_the_space_of_deleted_and_expired_entries() {
    let dir = tempfile::tempdir().unwrap();
    let now = kv_core::unix_secs(std::time::SystemTime::now());
    // Written an hour ago by the backend's clock with a two-minute TTL: expired by the system
    // clock that `compact` judges with.
    let clock = kv_core::ManualClock::at_unix_secs(now - 3_600);
    let backend = kv_backends::file::FileBackend::builder(dir.path())
        .clock(clock.shared())
        .sweep_interval(Duration::ZERO)
        .open()
        .unwrap();
    let store = kv_core::Store::new(backend);
    let ns = store.namespace("BIG").await.unwrap();
    let value = bytes::Bytes::from(vec![7u8; 16 * 1024]);
    let expiring = (0..400)
        .map(|i| {
            kv_core::BulkPut::new(format!("expiring/{i}"), value.clone())
                .with_options(kv_core::PutOptions::new().ttl(Duration::from_secs(120)))
        })
        .collect();
    ns.put_many(expiring).await.unwrap();
    let deleted: Vec<String> = (0..400).map(|i| format!("deleted/{i}")).collect();
    let items = deleted
        .iter()
        .map(|key| kv_core::BulkPut::new(key.clone(), value.clone()))
        .collect();
    ns.put_many(items).await.unwrap();
    let _ = ns.put("kept", "still here").await.unwrap();
    ns.delete_many(&deleted).await.unwrap();
    drop((ns, store));
    let file = dir.path().join(kv_backends::file::STORE_FILE_NAME);
    let grown = std::fs::metadata(&file).unwrap().len();
    assert!(grown > 8 * 1024 * 1024, "the file grew to {grown} bytes");

    let compaction = kv_backends::file::compact(dir.path()).unwrap();
    assert_eq!(compaction.bytes_before, grown);
    assert!(
        compaction.bytes_after * 4 < compaction.bytes_before,
        "{compaction:?}"
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        compaction.bytes_after
    );

    let store = kv_core::Store::new(kv_backends::file::FileBackend::open(dir.path()).unwrap());
    let ns = store.namespace("BIG").await.unwrap();
    assert_eq!(
        ns.get_text("kept").await.unwrap().as_deref(),
        Some("still here")
    );
    assert_eq!(
        ns.list(&kv_core::ListOptions::default())
            .await
            .unwrap()
            .keys
            .len(),
        1
    );
    // While the store is open, compaction is refused, not forced.
    assert!(matches!(
        kv_backends::file::compact(dir.path()),
        Err(kv_core::KvError::StoreLocked { .. })
    ));
}
