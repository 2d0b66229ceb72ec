//! Durable puts on the file backend or on raw redb, alone, for an instruction counter:
//!
//! ```text
//! valgrind --tool=callgrind target/release/examples/profile_file_put ours 500
//! valgrind --tool=callgrind target/release/examples/profile_file_put ours 2500
//! ```
//!
//! Arguments: contender (`ours`: `Namespace::put` on a 2-worker runtime, as `benches/file.rs`
//! runs it; `redb`: `begin_write`, `open_table`, `insert`, durable `commit`, inline) and the
//! number of puts, after pre-filling 10 000 keys of 100 bytes. The difference of two runs
//! divided by the difference of their put counts is the CPU work per durable put, whatever the
//! disk's fsync latency (instructions spent in the kernel are not counted).

use std::hint::black_box;

use kv_backends::file::FileBackend;
use kv_benches::{multi_thread_runtime, pattern, value, KeyCursor, KeySet};
use kv_core::{BulkPut, Store};
use redb::{Database, TableDefinition};

const KEYS: usize = 10_000;
const VALUE_LEN: usize = 100;
const TABLE: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("bench");

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let contender = args.first().map_or("ours", String::as_str);
    let puts: usize = args.get(1).map_or(1000, |a| a.parse().expect("puts"));
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = KeySet::new(KEYS);
    let pattern = pattern(KEYS, 1);
    let new_value = value(VALUE_LEN, usize::MAX);
    let mut cursor = KeyCursor::new(&keys, &pattern);
    match contender {
        "ours" => {
            let rt = multi_thread_runtime(2);
            rt.block_on(async {
                let backend = FileBackend::open(dir.path().join("store")).expect("open");
                let ns = Store::new(backend).namespace("BENCH").await.expect("ns");
                let items = (0..KEYS)
                    .map(|i| BulkPut::new(keys.get(i), value(VALUE_LEN, i)))
                    .collect();
                ns.put_many(items).await.expect("prefill");
                for _ in 0..puts {
                    black_box(ns.put(cursor.next(), new_value.clone()).await.expect("put"));
                }
            });
        }
        "redb" => {
            let db = Database::create(dir.path().join("raw.redb")).expect("redb");
            let txn = db.begin_write().expect("begin_write");
            {
                let mut table = txn.open_table(TABLE).expect("open_table");
                for i in 0..KEYS {
                    table
                        .insert(keys.get(i), value(VALUE_LEN, i).as_ref())
                        .expect("insert");
                }
            }
            txn.commit().expect("commit");
            for _ in 0..puts {
                let txn = db.begin_write().expect("begin_write");
                {
                    let mut table = txn.open_table(TABLE).expect("open_table");
                    table
                        .insert(cursor.next(), new_value.as_ref())
                        .expect("insert");
                }
                txn.commit().expect("commit");
            }
        }
        other => panic!("unknown contender {other:?} (ours, redb)"),
    }
}
