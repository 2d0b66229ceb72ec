//! The memory a bulk get naming one large value 100 times takes, measured by a counting global
//! allocator: bounded by a few copies of the value, not 100.
//!
//! This file holds one test so that nothing else allocates in the process while it measures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The system allocator, keeping the bytes live now and the most live since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn grew(by: usize) {
        let live = LIVE.fetch_add(by, Ordering::SeqCst) + by;
        PEAK.fetch_max(live, Ordering::SeqCst);
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = System.alloc(layout);
        if !pointer.is_null() {
            Counting::grew(layout.size());
        }
        pointer
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = System.alloc_zeroed(layout);
        if !pointer.is_null() {
            Counting::grew(layout.size());
        }
        pointer
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        System.dealloc(pointer, layout);
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = System.realloc(pointer, layout, new_size);
        if !moved.is_null() {
            if new_size > layout.size() {
                Counting::grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::SeqCst);
            }
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: usize = 1024 * 1024;
const BASE: &str = "/client/v4/accounts/acc/storage/kv/namespaces";

#[tokio::test(flavor = "current_thread")]
async fn a_value_asked_for_100_times_takes_a_few_copies_of_memory_not_100() {
    // The file store copies a value out of the database on every read, as the attack found.
    let dir = tempfile::tempdir().unwrap();
    let backend = kv_backends::file::FileBackend::open(dir.path().join("kv.redb")).unwrap();
    let store = kv_core::Store::new(backend);
    let ns = store.namespace("BIG").await.unwrap();
    ns.put("big", vec![b'x'; 25 * MIB]).await.unwrap();
    let id = store
        .list_namespaces()
        .await
        .unwrap()
        .into_iter()
        .find(|info| info.title == "BIG")
        .unwrap()
        .id;
    let app = kv_server::router(store, kv_server::ServerConfig::default());
    let request = || {
        let body = serde_json::json!({ "keys": vec!["big"; 100] }).to_string();
        Request::post(format!("{BASE}/{id}/bulk/get"))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    // One bulk get to warm up whatever is allocated once (caches, lazily built state).
    let warm = app.clone().oneshot(request()).await.unwrap();
    let _ = warm.into_body().collect().await.unwrap();

    let baseline = LIVE.load(Ordering::SeqCst);
    PEAK.store(baseline, Ordering::SeqCst);
    let response = app.clone().oneshot(request()).await.unwrap();
    let status = response.status();
    // Count the answer's bytes frame by frame instead of collecting a copy of it.
    let mut body = response.into_body();
    let mut answered = 0usize;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.unwrap().data_ref() {
            answered += data.len();
        }
    }
    let peak = PEAK.load(Ordering::SeqCst) - baseline;
    assert!(
        status == 200 || status == 413,
        "answered {status} ({answered} bytes)"
    );
    assert!(
        answered < 25 * MIB + MIB,
        "the answer is bounded: {answered} bytes"
    );
    // The value once from the store, once in the answer, and room for the store's own pages.
    assert!(
        peak < 4 * 25 * MIB,
        "peak allocation during the request: {} MiB",
        peak / MIB
    );
    eprintln!(
        "peak allocation during the request: {:.1} MiB",
        peak as f64 / MIB as f64
    );
}
