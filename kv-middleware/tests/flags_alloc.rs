//! Evaluating a boolean flag allocates nothing: a counting global allocator watches
//! `is_enabled` on a flag with five rules (every kind of operator) and a split.
#![cfg(feature = "flags")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use kv_backends::memory::MemoryBackend;
use kv_core::Store;
use kv_middleware::flags::{EvaluationContext, FlagStore};
use serde_json::json;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

/// The benchmark's flag: five rules that do not match the evaluated users, then a split.
pub fn five_rules_and_a_split() -> serde_json::Value {
    json!({
        "state": "ENABLED",
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "targets": {"on": ["vip-1", "vip-2"]},
        "rules": [
            {"conditions": [{"attribute": "email", "op": "ends_with", "value": "@example.com"}], "variant": "on"},
            {"conditions": [{"attribute": "country", "op": "in", "value": ["FR", "DE", "IT", "ES"]}], "variant": "on"},
            {"conditions": [{"attribute": "app_version", "op": "semver_lt", "value": "2.0.0"}], "variant": "off"},
            {"conditions": [{"attribute": "ip", "op": "in_cidr", "value": ["10.0.0.0/8", "192.168.0.0/16"]}], "variant": "on"},
            {"conditions": [{"attribute": "email", "op": "regex", "value": "^qa-[0-9]+@"}], "variant": "on"},
            {"conditions": [], "split": [["on", 25], ["off", 75]]}
        ]
    })
}

#[test]
fn evaluating_a_bool_flag_does_not_allocate() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(async {
        let ns = Store::new(MemoryBackend::new())
            .namespace("FLAGS")
            .await
            .unwrap();
        ns.put_json("flag:checkout", &five_rules_and_a_split())
            .await
            .unwrap();
        FlagStore::builder(ns)
            .with_manual_refresh()
            .load()
            .await
            .unwrap()
    });
    let contexts: Vec<_> = (0..100)
        .map(|i| {
            store.flags(
                EvaluationContext::new()
                    .with_targeting_key(format!("user-{i}"))
                    .with_attribute("email", format!("user-{i}@mail.test"))
                    .with_attribute("country", "US")
                    .with_attribute("app_version", "2.3.1")
                    .with_ip("203.0.113.7".parse().unwrap()),
            )
        })
        .collect();
    // Warm up (the regex engine's per-thread cache is built on first use).
    let mut on = 0;
    for flags in &contexts {
        on += flags.is_enabled("checkout") as usize;
    }
    let count = allocations(|| {
        for _ in 0..100 {
            for flags in &contexts {
                on += flags.is_enabled("checkout") as usize;
            }
        }
    });
    assert_eq!(count, 0, "allocations in 10 000 evaluations");
    assert!(on > 0 && on < 101 * 100, "the split serves both variants");
    // Unknown flags and details() allocate nothing either.
    let count = allocations(|| {
        for flags in &contexts {
            std::hint::black_box(flags.details("checkout"));
            std::hint::black_box(flags.is_enabled("missing"));
            std::hint::black_box(flags.variant("checkout"));
            std::hint::black_box(flags.value("checkout", false));
        }
    });
    assert_eq!(count, 0);
}

/// The same meaning as flagd targeting: `ends_with`, `in`, `sem_ver`, then `fractional`.
pub fn flagd_targeting() -> serde_json::Value {
    json!({
        "state": "ENABLED",
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "targeting": {"if": [
            {"ends_with": [{"var": "email"}, "@example.com"]}, "on",
            {"in": [{"var": "country"}, ["FR", "DE", "IT", "ES"]]}, "on",
            {"sem_ver": [{"var": "app_version"}, "<", "2.0.0"]}, "off",
            {"fractional": [["on", 25], ["off", 75]]}
        ]}
    })
}

#[test]
fn evaluating_a_flagd_bool_flag_does_not_allocate() {
    let snapshot = kv_middleware::flags::FlagSnapshot::from_document(
        &json!({"flags": {"checkout": flagd_targeting()}}).to_string(),
    )
    .unwrap();
    assert!(snapshot.errors().is_empty());
    let contexts: Vec<_> = (0..100)
        .map(|i| {
            snapshot.flags(
                EvaluationContext::new()
                    .with_targeting_key(format!("user-{i}"))
                    .with_attribute("email", format!("user-{i}@mail.test"))
                    .with_attribute("country", "US")
                    .with_attribute("app_version", "2.3.1"),
            )
        })
        .collect();
    let mut on = 0;
    let count = allocations(|| {
        for _ in 0..100 {
            for flags in &contexts {
                on += flags.is_enabled("checkout") as usize;
            }
        }
    });
    assert_eq!(count, 0, "allocations in 10 000 flagd evaluations");
    assert!(
        on > 0 && on < 100 * 100,
        "the fractional serves both variants"
    );
}
