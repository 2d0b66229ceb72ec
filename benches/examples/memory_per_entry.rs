//! Bytes of memory per entry for 1 000 000 small entries (key `key:0000042`, 11 bytes; value
//! 16 bytes; no metadata, no expiry) in the memory backend, `moka::future::Cache` and
//! `dashmap::DashMap`, all holding `String -> Bytes`.
//!
//! Two measures per contender, each in a fresh child process so one contender's freed memory
//! does not flatter the next:
//! - **allocated**: live heap bytes requested through the global allocator (a counting
//!   wrapper around the system allocator), after - before, divided by the entry count. This is
//!   what the data structure asks for; it ignores the allocator's own per-chunk overhead.
//! - **RSS**: the growth of the resident set (`/proc/self/statm`) over the same span, divided
//!   by the entry count: what the process really pays, allocator overhead included (Linux only).
//!
//! `cargo run --release -p kv-benches --example memory-per-entry [-- ENTRIES]`

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::atomic::{AtomicIsize, Ordering};

use bytes::Bytes;
use dashmap::DashMap;
use futures::executor::block_on;
use kv_backends::memory::MemoryBackend;
use kv_core::Store;
use moka::future::Cache;

/// Counts the live heap bytes requested through it.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc_zeroed(layout);
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = System.realloc(ptr, layout, new_size);
        if !new.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const DEFAULT_ENTRIES: usize = 1_000_000;
const KEY_LEN: usize = 11;
const VALUE_LEN: usize = 16;
const CONTENDERS: [&str; 3] = ["ours", "moka", "dashmap"];

fn key(i: usize) -> String {
    format!("key:{i:07}")
}

fn value(i: usize) -> Bytes {
    let mut v = [0u8; VALUE_LEN];
    v[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Bytes::copy_from_slice(&v)
}

/// Resident set size in bytes (0 where `/proc` is unavailable).
fn rss() -> i64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // The page size is 4 KiB on the machines this runs on (x86-64 and most aarch64 Linux).
    pages * 4096
}

/// Fills one contender in this process and prints `allocated_bytes rss_bytes held_entries`.
fn child(contender: &str, n: usize) {
    assert_eq!(key(n - 1).len(), KEY_LEN);
    let (live0, rss0) = (LIVE.load(Ordering::SeqCst), rss());
    // Keep the structure alive until after the measurement.
    let (held, keep): (u64, Box<dyn std::any::Any>) = match contender {
        "ours" => {
            let backend = MemoryBackend::new();
            let ns = block_on(Store::new(backend.clone()).namespace("BENCH")).expect("namespace");
            for i in 0..n {
                block_on(ns.put(&key(i), value(i))).expect("put");
            }
            (backend.stored_entries() as u64, Box::new((backend, ns)))
        }
        "moka" => {
            let cache: Cache<String, Bytes> = Cache::builder().max_capacity(2 * n as u64).build();
            block_on(async {
                for i in 0..n {
                    cache.insert(key(i), value(i)).await;
                }
                cache.run_pending_tasks().await;
            });
            (cache.entry_count(), Box::new(cache))
        }
        "dashmap" => {
            let map: DashMap<String, Bytes> = DashMap::new();
            for i in 0..n {
                map.insert(key(i), value(i));
            }
            (map.len() as u64, Box::new(map))
        }
        other => panic!("unknown contender {other}"),
    };
    let (live1, rss1) = (LIVE.load(Ordering::SeqCst), rss());
    println!("{} {} {}", live1 - live0, rss1 - rss0, held);
    drop(keep);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1], args[2].parse().expect("entry count"));
        return;
    }
    let n: usize = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(DEFAULT_ENTRIES);
    let exe = std::env::current_exe().expect("current exe");

    println!("entries: {n}; key {KEY_LEN} bytes, value {VALUE_LEN} bytes, no metadata");
    println!("payload (key + value): {} bytes/entry", KEY_LEN + VALUE_LEN);
    println!();
    println!("| contender | allocated bytes/entry | RSS bytes/entry | ours ÷ this (allocated) |");
    println!("| --- | ---: | ---: | ---: |");
    let mut ours = None;
    for contender in CONTENDERS {
        let out = Command::new(&exe)
            .args(["--child", contender, &n.to_string()])
            .output()
            .expect("run child");
        assert!(
            out.status.success(),
            "{contender} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let fields: Vec<i64> = text
            .split_whitespace()
            .map(|f| f.parse().expect("number"))
            .collect();
        let (allocated, rss, held) = (fields[0], fields[1], fields[2]);
        assert_eq!(held, n as i64, "{contender} holds {held} entries, not {n}");
        let per_entry = allocated as f64 / n as f64;
        let ours_per_entry = *ours.get_or_insert(per_entry);
        let label = match contender {
            "ours" => "ours (memory backend)",
            "moka" => "moka::future::Cache",
            _ => "dashmap::DashMap",
        };
        println!(
            "| {label} | {per_entry:.1} | {:.1} | {:.2}x |",
            rss as f64 / n as f64,
            ours_per_entry / per_entry
        );
    }
}
