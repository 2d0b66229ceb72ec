//! Store URLs open the right backend, or say clearly why they cannot.
#![cfg(feature = "memory")]

use kv_backends::{open, open_url, OpenOptions};
use kv_core::{KvError, Limits, StoreUrl};

#[tokio::test]
async fn memory_and_file_urls_open_their_backends() {
    let store = open("memory:").await.unwrap();
    assert_eq!(store.kind(), "memory");

    let dir = tempfile::tempdir().unwrap();
    let url = format!("file:{}", dir.path().join("kv").display());
    let store = open(&url).await.unwrap();
    assert_eq!(store.kind(), "file");
    store
        .namespace("n")
        .await
        .unwrap()
        .put_text("k", "v")
        .await
        .unwrap();
    drop(store);
    // A bare path is a file store too, and it sees what was written.
    let store = open(&dir.path().join("kv").display().to_string())
        .await
        .unwrap();
    let value = store
        .namespace("n")
        .await
        .unwrap()
        .get_text("k")
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("v"));
}

#[tokio::test]
async fn backends_not_yet_available_give_a_typed_error() {
    // Only the backends this build leaves out.
    #[allow(unused_mut)]
    let mut urls: Vec<&str> = Vec::new();
    #[cfg(not(feature = "redis"))]
    urls.push("redis://127.0.0.1:6379/0");
    #[cfg(not(feature = "http"))]
    urls.extend(["http://127.0.0.1:8787", "cloudflare://abc123"]);
    for url in urls {
        match open(url).await {
            Err(KvError::BackendNotAvailable {
                url: u,
                backend,
                reason,
            }) => {
                assert_eq!(u, url);
                assert!(["redis", "http", "cloudflare"].contains(&backend));
                assert!(!reason.is_empty());
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    assert!(matches!(
        open("gopher://x").await,
        Err(KvError::InvalidStoreUrl { .. })
    ));
}

#[tokio::test]
async fn open_options_carry_limits() {
    let limits = Limits {
        max_key_bytes: 8,
        ..Limits::default()
    };
    let options = OpenOptions {
        limits,
        ..OpenOptions::default()
    };
    let store = open_url(&StoreUrl::Memory, options).await.unwrap();
    let ns = store.namespace("n").await.unwrap();
    assert!(ns.put_text("12345678", "v").await.is_ok());
    assert!(matches!(
        ns.put_text("123456789", "v").await,
        Err(KvError::Limit(kv_core::LimitError::KeyTooLong {
            len: 9,
            max: 8
        }))
    ));
}
