//! The http backend against Miniflare's local explorer API (Miniflare from npm, started by
//! `tests/support/miniflare.rs`): every operation Miniflare serves works, what it has no route
//! for falls back (metadata from a one-key listing, bulk writes and deletes item by item), and
//! what it cannot do is a typed error (a TTL it would drop, namespace administration).
#![cfg(feature = "http")]

#[path = "support/miniflare.rs"]
mod miniflare;

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use kv_backends::http::HttpBackend;
use kv_core::{BulkPut, KvError, ListOptions, PutOptions, Store, WriteMode};
use miniflare::{Miniflare, KV1, KV2};
use serde_json::json;

/// Every call to Miniflare must finish; 60 s covers a bulk of 1 100 single writes.
async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("a call to Miniflare did not finish within 60 s")
}

async fn open(mf: &Miniflare) -> Store {
    within(kv_backends::open(&mf.api_base()))
        .await
        .expect("the store URL of Miniflare's explorer API opens")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miniflare_explorer_through_the_http_backend() {
    let mf = Miniflare::start();
    let store = open(&mf).await;

    // What the backend reports: no compare-and-swap (Miniflare does not advertise it),
    // metadata (from listings), no expirations (Miniflare drops them).
    let caps = store.capabilities();
    assert!(!caps.atomic_conditional_writes);
    assert!(caps.metadata);
    assert!(!caps.expirations);

    // Namespaces: Miniflare's bindings, in one page that the backend does not re-request.
    let namespaces = within(store.list_namespaces()).await.unwrap();
    let ids: Vec<&str> = namespaces.iter().map(|ns| ns.id.as_str()).collect();
    assert_eq!(ids, [KV1, KV2]);
    assert_eq!(namespaces[0].title, "KV1");

    // Namespace administration is not served: a typed error, not a missing namespace.
    for result in [
        within(store.create_namespace("NEW")).await.map(drop),
        within(store.rename_namespace(KV1, "RENAMED")).await,
        within(store.delete_namespace(KV2)).await.map(drop),
    ] {
        match result {
            Err(KvError::NotServed {
                backend: "http",
                status: 404,
                ..
            }) => {}
            other => panic!("expected NotServed, got {other:?}"),
        }
    }
    let unknown = within(store.namespace_by_id("no-such-id")).await;
    assert!(
        matches!(unknown, Err(KvError::NamespaceNotFound { .. })),
        "{unknown:?}"
    );

    let ns = within(store.namespace(KV1)).await.unwrap();
    assert_eq!(ns.id(), KV1);

    // Put with metadata, get it back (value and metadata), a binary value, a missing key.
    let options = PutOptions::new().metadata(json!({"owner": "ada", "n": 1}));
    within(ns.put_with("a/b c?d", "hello", options))
        .await
        .unwrap()
        .version()
        .expect("written");
    within(ns.put("bin", Bytes::from_static(&[0, 0xff, 0x10])))
        .await
        .unwrap();
    let entry = within(ns.get_entry("a/b c?d")).await.unwrap().unwrap();
    assert_eq!(entry.value, Bytes::from_static(b"hello"));
    assert_eq!(entry.metadata, Some(json!({"owner": "ada", "n": 1})));
    assert_eq!(entry.expiration, None);
    let binary = within(ns.get_entry("bin")).await.unwrap().unwrap();
    assert_eq!(binary.value, Bytes::from_static(&[0, 0xff, 0x10]));
    assert_eq!(binary.metadata, None);
    // A key that is a prefix of others: the one-key listing matches the exact name.
    within(ns.put_with("a", "short", PutOptions::new().metadata(json!("m-a"))))
        .await
        .unwrap()
        .version()
        .expect("written");
    let short = within(ns.get_entry("a")).await.unwrap().unwrap();
    assert_eq!(short.metadata, Some(json!("m-a")));
    assert_eq!(within(ns.get_entry("missing")).await.unwrap(), None);
    assert_eq!(within(ns.get_entry("a/b")).await.unwrap(), None);

    // A write with a TTL or an expiration is refused before anything is sent.
    for options in [
        PutOptions::new().ttl(Duration::from_secs(600)),
        PutOptions::new().expiration(4_102_444_800),
    ] {
        let refused = within(ns.put_with("ttl", "v", options)).await;
        assert!(
            matches!(
                refused,
                Err(KvError::Unsupported {
                    backend: "http",
                    ..
                })
            ),
            "{refused:?}"
        );
    }
    assert_eq!(within(ns.get("ttl")).await.unwrap(), None);

    // An expiration written through the worker's binding is read back (from the listing,
    // since Miniflare's value reads carry no `expiration` header).
    mf.put_with_ttl_through_binding("bound");
    let bound = within(ns.get_entry("bound")).await.unwrap().unwrap();
    assert_eq!(bound.metadata, Some(json!({"via": "binding"})));
    let expiration = bound.expiration.expect("the binding's TTL is read back");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        expiration > now && expiration <= now + 601,
        "{expiration} vs {now}"
    );

    // Delete says whether the key existed (asked through the listing first).
    let deleted = within(ns.delete_with("a", WriteMode::Overwrite))
        .await
        .unwrap();
    assert_eq!(deleted, kv_core::DeleteOutcome::Deleted { existed: true });
    let again = within(ns.delete_with("a", WriteMode::Overwrite))
        .await
        .unwrap();
    assert_eq!(again, kv_core::DeleteOutcome::Deleted { existed: false });
    assert_eq!(within(ns.get("a")).await.unwrap(), None);
    // Conditional writes are refused: Miniflare has no compare-and-swap.
    let conditional = within(ns.put_with("c", "v", PutOptions::new().only_if_absent())).await;
    assert!(
        matches!(conditional, Err(KvError::Unsupported { .. })),
        "{conditional:?}"
    );

    // Bulk put of more than 1 000 items (Miniflare has no `PUT bulk`: item by item), with
    // metadata and a binary value among them.
    let items: Vec<BulkPut> = (0..1100)
        .map(|i| {
            let item = BulkPut::new(format!("bulk/{i:04}"), format!("value {i}"));
            if i % 100 == 0 {
                item.with_options(PutOptions::new().metadata(json!({"i": i})))
            } else {
                item
            }
        })
        .chain([BulkPut::new("bulk/bin", Bytes::from_static(&[0xfe, 0]))])
        .collect();
    within(ns.put_many(items)).await.unwrap();
    assert_eq!(
        within(ns.get_text("bulk/0042")).await.unwrap().as_deref(),
        Some("value 42")
    );
    let with_metadata = within(ns.get_entry("bulk/0500")).await.unwrap().unwrap();
    assert_eq!(with_metadata.metadata, Some(json!({"i": 500})));
    let bin = within(ns.get("bulk/bin")).await.unwrap().unwrap();
    assert_eq!(bin, Bytes::from_static(&[0xfe, 0]));

    // A bulk put with a TTL anywhere is refused whole, before anything is written.
    let refused = within(ns.put_many(vec![
            BulkPut::new("bulk-ttl/1", "v"),
            BulkPut::new("bulk-ttl/2", "v")
                .with_options(PutOptions::new().ttl(Duration::from_secs(600))),
        ]))
    .await;
    assert!(
        matches!(refused, Err(KvError::Unsupported { .. })),
        "{refused:?}"
    );
    assert_eq!(within(ns.get("bulk-ttl/1")).await.unwrap(), None);

    // Bulk get.
    let got = within(ns.get_many(&["bulk/0001", "missing", "bulk/1099"]))
        .await
        .unwrap();
    assert_eq!(
        got[0].as_ref().unwrap().value,
        Bytes::from_static(b"value 1")
    );
    assert!(got[1].is_none());
    assert_eq!(
        got[2].as_ref().unwrap().value,
        Bytes::from_static(b"value 1099")
    );

    // List with a cursor: 25 keys under a prefix, pages of 10.
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut options = ListOptions::new().prefix("bulk/00").limit(10);
        if let Some(cursor) = cursor.take() {
            options = options.cursor(cursor);
        }
        let page = within(ns.list(&options)).await.unwrap();
        pages += 1;
        names.extend(page.keys.iter().map(|key| key.name.clone()));
        if page.list_complete {
            assert!(page.cursor.is_none());
            break;
        }
        cursor = page.cursor;
        assert!(pages < 20, "the listing does not end");
    }
    assert_eq!(pages, 10);
    assert_eq!(names.len(), 100);
    assert_eq!(names[0], "bulk/0000");
    assert_eq!(names[99], "bulk/0099");
    let listed = within(ns.list(&ListOptions::new().prefix("bulk/0100").limit(10)))
        .await
        .unwrap();
    assert_eq!(listed.keys.len(), 1);
    assert_eq!(listed.keys[0].metadata, Some(json!({"i": 100})));

    // Bulk delete (Miniflare has no `POST bulk/delete`: item by item).
    let keys: Vec<String> = (0..1100)
        .map(|i| format!("bulk/{i:04}"))
        .chain(["bulk/bin".to_owned()])
        .collect();
    within(ns.delete_many(&keys)).await.unwrap();
    let left = within(ns.list(&ListOptions::new().prefix("bulk/").limit(10)))
        .await
        .unwrap();
    assert!(left.keys.is_empty(), "{:?}", left.keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_can_be_omitted_instead_of_listed() {
    let mf = Miniflare::start();
    let backend = within(
        HttpBackend::builder(mf.api_base())
            .metadata_from_listing(false)
            .connect(),
    )
    .await
    .unwrap();
    let store = Store::new(backend);
    assert!(store.capabilities().metadata, "not known to be missing yet");
    let ns = within(store.namespace(KV1)).await.unwrap();
    within(ns.put_with("k", "v", PutOptions::new().metadata(json!({"a": 1}))))
        .await
        .unwrap()
        .version()
        .expect("written");
    let entry = within(ns.get_entry("k")).await.unwrap().unwrap();
    assert_eq!(entry.value, Bytes::from_static(b"v"));
    assert_eq!(entry.metadata, None, "omitted, as configured");
    assert!(!store.capabilities().metadata, "now known to be missing");
    // The listing still has it.
    let page = within(ns.list(&ListOptions::new().prefix("k").limit(10)))
        .await
        .unwrap();
    assert_eq!(page.keys[0].metadata, Some(json!({"a": 1})));

    // Telling the backend that the server keeps expirations sends them (Miniflare drops
    // them: that is what the detection protects against).
    let told = within(
        HttpBackend::builder(mf.api_base())
            .server_keeps_expirations(true)
            .connect(),
    )
    .await
    .unwrap();
    let store = Store::new(told);
    assert!(store.capabilities().expirations);
    let ns = within(store.namespace(KV1)).await.unwrap();
    within(ns.put_with("t", "v", PutOptions::new().ttl(Duration::from_secs(600))))
        .await
        .unwrap()
        .version()
        .expect("written");
    let dropped = within(ns.get_entry("t")).await.unwrap().unwrap();
    assert_eq!(dropped.expiration, None, "Miniflare dropped the TTL");
}
