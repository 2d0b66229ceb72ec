//! The conformance suite: the executable definition of the store contract.
//!
//! Every backend runs all of it unchanged through [`conformance_tests!`](crate::conformance_tests),
//! which expands to one `#[tokio::test]` per check, each with a fresh store built by the
//! backend's fixture function:
//!
//! ```text
//! async fn fixture() -> kv_core::conformance::Fixture {
//!     let clock = kv_core::conformance::start_clock();
//!     let backend = MyBackend::with_clock(clock.shared());
//!     kv_core::conformance::Fixture::new(kv_core::Store::new(backend), clock)
//! }
//! kv_core::conformance_tests!(fixture);
//! ```
#![allow(missing_docs)]

use std::any::Any;

use crate::clock::{Clock, ManualClock};
use crate::namespace::{Namespace, Store};

/// The time the suite's manual clocks start at (a whole second, 2023-11-14).
pub const START_UNIX_SECS: u64 = 1_700_000_000;

/// A manual clock at [`START_UNIX_SECS`], for fixture functions.
pub fn start_clock() -> ManualClock {
    ManualClock::at_unix_secs(START_UNIX_SECS)
}

/// A fresh, empty store on a manual clock, built by a backend's fixture function.
pub struct Fixture {
    /// The store under test; its backend must decide expiry with `clock`.
    pub store: Store,
    /// The manual clock the backend uses.
    pub clock: ManualClock,
    /// Anything that must live as long as the test (a temporary directory, a server).
    pub guard: Option<Box<dyn Any + Send + Sync>>,
}

impl Fixture {
    /// A fixture with nothing to keep alive.
    pub fn new(store: Store, clock: ManualClock) -> Self {
        Fixture {
            store,
            clock,
            guard: None,
        }
    }

    /// The same fixture keeping `guard` alive until the test ends.
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }

    /// Opens a namespace, panicking with the error if the backend cannot.
    pub async fn ns(&self, name: &str) -> Namespace {
        self.store
            .namespace(name)
            .await
            .unwrap_or_else(|e| panic!("opening namespace {name:?}: {e}"))
    }
}

// ---------------------------------------------------------------------------------------------
// The checks. Each takes a fresh fixture; the macro below lists them all.
// ---------------------------------------------------------------------------------------------

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{KvError, LimitError};
use crate::types::{
    BulkPut, DeleteOutcome, KeyInfo, ListOptions, PutOptions, PutOutcome, Version, WriteMode,
};

const NS: &str = "conformance";

fn ttl(secs: u64) -> PutOptions {
    PutOptions::new().ttl(Duration::from_secs(secs))
}

fn limit_error<T: std::fmt::Debug>(result: crate::Result<T>) -> LimitError {
    match result {
        Err(KvError::Limit(limit)) => limit,
        other => panic!("expected a limit error, got {other:?}"),
    }
}

async fn list_names(ns: &Namespace, prefix: &str) -> Vec<String> {
    ns.list_all(prefix)
        .map_ok(|key| key.name)
        .try_collect()
        .await
        .expect("list_all")
}

async fn list_with_limit(ns: &Namespace, prefix: &str, limit: usize) -> Vec<String> {
    let mut names = Vec::new();
    let mut options = ListOptions::new().prefix(prefix).limit(limit);
    loop {
        let page = ns.list(&options).await.expect("list");
        assert!(page.keys.len() <= limit, "page larger than its limit");
        assert_eq!(
            page.cursor.is_some(),
            !page.list_complete,
            "a cursor is given exactly when the list is incomplete"
        );
        names.extend(page.keys.into_iter().map(|k| k.name));
        match page.cursor {
            Some(cursor) => options.cursor = Some(cursor),
            None => return names,
        }
    }
}

pub async fn round_trip_text(f: Fixture) {
    let ns = f.ns(NS).await;
    ns.put_text("greeting", "hello, wörld ✓").await.unwrap();
    assert_eq!(
        ns.get_text("greeting").await.unwrap().as_deref(),
        Some("hello, wörld ✓")
    );
    assert_eq!(ns.get_text("missing").await.unwrap(), None);
}

pub async fn round_trip_binary(f: Fixture) {
    let ns = f.ns(NS).await;
    let bytes: &[u8] = &[0, 1, 2, 127, 128, 254, 255];
    ns.put("bin", Bytes::from_static(bytes)).await.unwrap();
    assert_eq!(ns.get("bin").await.unwrap().as_deref(), Some(bytes));
    assert!(matches!(
        ns.get_text("bin").await,
        Err(KvError::Decode {
            format: "UTF-8",
            ..
        })
    ));
}

pub async fn round_trip_empty_value(f: Fixture) {
    let ns = f.ns(NS).await;
    ns.put("empty", Bytes::new()).await.unwrap();
    assert_eq!(ns.get("empty").await.unwrap(), Some(Bytes::new()));
    assert_eq!(ns.get_text("empty").await.unwrap().as_deref(), Some(""));
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    age: u32,
    tags: Vec<String>,
    admin: bool,
}

pub async fn round_trip_json(f: Fixture) {
    let ns = f.ns(NS).await;
    let profile = Profile {
        name: "Ada".into(),
        age: 36,
        tags: vec!["math".into(), "engines".into()],
        admin: false,
    };
    ns.put_json("user:ada", &profile).await.unwrap();
    assert_eq!(
        ns.get_json::<Profile>("user:ada").await.unwrap(),
        Some(profile)
    );
    ns.put_text("not-json", "{oops").await.unwrap();
    assert!(matches!(
        ns.get_json::<Profile>("not-json").await,
        Err(KvError::Decode { format: "JSON", .. })
    ));
}

pub async fn round_trip_metadata(f: Fixture) {
    let ns = f.ns(NS).await;
    let cases = [
        json!({"owner": "billing", "n": 3}),
        json!(""),
        json!(0),
        json!(false),
        json!(null),
        json!([]),
        json!({"nested": {"deep": [1, 2, {"x": "y"}]}}),
    ];
    for (i, metadata) in cases.iter().enumerate() {
        let key = format!("meta:{i}");
        let _ = ns
            .put_with(&key, "v", PutOptions::new().metadata(metadata.clone()))
            .await
            .unwrap();
        let entry = ns.get_entry(&key).await.unwrap().expect("present");
        assert_eq!(entry.metadata.as_ref(), Some(metadata), "case {i}");
        assert_eq!(&entry.value[..], b"v");
    }
    ns.put_text("meta:none", "v").await.unwrap();
    let entry = ns.get_entry("meta:none").await.unwrap().unwrap();
    assert_eq!(entry.metadata, None, "no metadata is not JSON null");
    let listed = ns
        .list(&ListOptions::new().prefix("meta:"))
        .await
        .unwrap()
        .keys;
    let listed_meta: Vec<Option<Value>> = listed.into_iter().map(|k| k.metadata).collect();
    let mut expected: Vec<Option<Value>> = cases.iter().cloned().map(Some).collect();
    expected.push(None);
    assert_eq!(listed_meta, expected, "list returns metadata");
}

pub async fn overwrite_replaces_value_and_metadata(f: Fixture) {
    let ns = f.ns(NS).await;
    let _ = ns
        .put_with("k", "first", ttl(3600).metadata(json!({"generation": 1})))
        .await
        .unwrap();
    ns.put_text("k", "second").await.unwrap();
    let entry = ns.get_entry("k").await.unwrap().unwrap();
    assert_eq!(&entry.value[..], b"second");
    assert_eq!(entry.metadata, None, "metadata is replaced, not merged");
    assert_eq!(entry.expiration, None, "expiration is replaced too");
}

pub async fn keys_are_case_sensitive(f: Fixture) {
    let ns = f.ns(NS).await;
    ns.put_text("Key", "upper").await.unwrap();
    ns.put_text("key", "lower").await.unwrap();
    assert_eq!(ns.get_text("Key").await.unwrap().as_deref(), Some("upper"));
    assert_eq!(ns.get_text("key").await.unwrap().as_deref(), Some("lower"));
    assert_eq!(ns.get_text("KEY").await.unwrap(), None);
}

pub async fn unusual_keys_round_trip(f: Fixture) {
    let ns = f.ns(NS).await;
    let keys = [
        "with space",
        "a/b/c",
        "../up",
        "...",
        "new\nline",
        "nul\0byte",
        "ключ",
        "emoji 🔑",
        "%2F",
        "?query#frag",
    ];
    for key in keys {
        ns.put_text(key, key).await.unwrap();
    }
    for key in keys {
        assert_eq!(ns.get_text(key).await.unwrap().as_deref(), Some(key));
    }
    let longest = "é".repeat(256); // 512 bytes exactly
    ns.put_text(&longest, "max").await.unwrap();
    assert_eq!(ns.get_text(&longest).await.unwrap().as_deref(), Some("max"));
}

pub async fn delete_removes_and_missing_is_noop(f: Fixture) {
    let ns = f.ns(NS).await;
    ns.put_text("doomed", "x").await.unwrap();
    ns.delete("doomed").await.unwrap();
    assert_eq!(ns.get("doomed").await.unwrap(), None);
    ns.delete("doomed").await.unwrap();
    ns.delete("never-existed").await.unwrap();
    assert_eq!(
        ns.delete_with("never-existed", WriteMode::Overwrite)
            .await
            .unwrap(),
        DeleteOutcome::Deleted { existed: false }
    );
    ns.put_text("again", "x").await.unwrap();
    assert_eq!(
        ns.delete_with("again", WriteMode::Overwrite).await.unwrap(),
        DeleteOutcome::Deleted { existed: true }
    );
    assert!(list_names(&ns, "").await.is_empty());
}

pub async fn key_limits(f: Fixture) {
    let ns = f.ns(NS).await;
    assert_eq!(
        limit_error(ns.put_text("", "v").await),
        LimitError::EmptyKey
    );
    assert!(matches!(
        limit_error(ns.put_text(".", "v").await),
        LimitError::DotKey { key } if key == "."
    ));
    assert!(matches!(
        limit_error(ns.put_text("..", "v").await),
        LimitError::DotKey { key } if key == ".."
    ));
    let long = "é".repeat(256) + "x"; // 513 bytes
    assert_eq!(
        limit_error(ns.put_text(&long, "v").await),
        LimitError::KeyTooLong { len: 513, max: 512 }
    );
    assert_eq!(limit_error(ns.get("").await), LimitError::EmptyKey);
    assert!(matches!(
        limit_error(ns.get(&long).await),
        LimitError::KeyTooLong { .. }
    ));
    assert!(matches!(
        limit_error(ns.delete("..").await),
        LimitError::DotKey { .. }
    ));
    assert!(list_names(&ns, "").await.is_empty(), "nothing was stored");
}

pub async fn value_limit(f: Fixture) {
    let ns = f.ns(NS).await;
    let max = ns.limits().max_value_bytes;
    let too_big = Bytes::from(vec![7u8; max + 1]);
    assert!(matches!(
        limit_error(ns.put("big", too_big).await),
        LimitError::ValueTooLarge { len, max: m, .. } if len == max + 1 && m == max
    ));
    assert_eq!(ns.get("big").await.unwrap(), None, "nothing was stored");
    let exactly = Bytes::from(vec![7u8; max]);
    ns.put("big", exactly).await.unwrap();
    assert_eq!(ns.get("big").await.unwrap().map(|v| v.len()), Some(max));
}

pub async fn metadata_limit(f: Fixture) {
    let ns = f.ns(NS).await;
    // `"` + n chars + `"` = n + 2 bytes of JSON.
    let fits = json!("m".repeat(1022));
    let over = json!("m".repeat(1023));
    let _ = ns
        .put_with("fits", "v", PutOptions::new().metadata(fits.clone()))
        .await
        .unwrap();
    assert_eq!(
        ns.get_entry("fits").await.unwrap().unwrap().metadata,
        Some(fits)
    );
    assert!(matches!(
        limit_error(
            ns.put_with("over", "v", PutOptions::new().metadata(over))
                .await
        ),
        LimitError::MetadataTooLarge {
            len: 1025,
            max: 1024,
            ..
        }
    ));
    assert_eq!(ns.get("over").await.unwrap(), None);
}

pub async fn expiry_limits(f: Fixture) {
    let ns = f.ns(NS).await;
    let now = f.clock.unix_secs();
    assert!(matches!(
        limit_error(ns.put_with("k", "v", ttl(59)).await),
        LimitError::TtlTooShort {
            ttl_secs: 59,
            min_secs: 60
        }
    ));
    assert!(matches!(
        limit_error(ns.put_with("k", "v", ttl(0)).await),
        LimitError::TtlTooShort { ttl_secs: 0, .. }
    ));
    assert!(matches!(
        limit_error(
            ns.put_with("k", "v", PutOptions::new().expiration(now + 59))
                .await
        ),
        LimitError::ExpirationTooSoon { expiration, .. } if expiration == now + 59
    ));
    assert!(matches!(
        limit_error(
            ns.put_with("k", "v", PutOptions::new().expiration(now - 10))
                .await
        ),
        LimitError::ExpirationTooSoon { .. }
    ));
    assert_eq!(ns.get("k").await.unwrap(), None, "nothing was stored");
    let _ = ns.put_with("ok-ttl", "v", ttl(60)).await.unwrap();
    let _ = ns
        .put_with("ok-at", "v", PutOptions::new().expiration(now + 60))
        .await
        .unwrap();
    assert_eq!(
        ns.get_entry("ok-ttl").await.unwrap().unwrap().expiration,
        Some(now + 60)
    );
    assert_eq!(
        ns.get_entry("ok-at").await.unwrap().unwrap().expiration,
        Some(now + 60)
    );
}

/// The `expiration_ttl` of a request that once half-applied a write on Redis: `i64::MAX / 1000`
/// seconds, whose milliseconds overflow an `i64`.
pub const HUGE_TTL_SECS: u64 = 9_223_372_036_854_775;

/// An expiration later than [`Limits::max_expiration_secs`](crate::Limits::max_expiration_secs)
/// is refused with a typed error before any I/O, by TTL and by absolute time, in a plain write,
/// a compare-and-swap and a bulk write: nothing is stored and the previous entry keeps its
/// value, version, metadata, expiration and place in listings. The bound itself is accepted.
pub async fn expiry_upper_bound(f: Fixture) {
    let ns = f.ns(NS).await;
    let now = f.clock.unix_secs();
    let max = ns.limits().max_expiration_secs;
    let before = ns
        .put_with("k", "before", ttl(3600).metadata(json!({"n": 1})))
        .await
        .unwrap()
        .version()
        .unwrap();
    let ttl_too_long = |ttl_secs: u64| LimitError::TtlTooLong {
        ttl_secs,
        max_secs: max - now,
        max_expiration: max,
    };
    let too_late = |expiration: u64| LimitError::ExpirationTooLate { expiration, max };
    let refused = [
        (ttl(HUGE_TTL_SECS), ttl_too_long(HUGE_TTL_SECS)),
        (ttl(u64::MAX), ttl_too_long(u64::MAX)),
        (ttl(max - now + 1), ttl_too_long(max - now + 1)),
        (PutOptions::new().expiration(max + 1), too_late(max + 1)),
        (PutOptions::new().expiration(u64::MAX), too_late(u64::MAX)),
    ];
    for (options, expected) in refused {
        for mode in [
            WriteMode::Overwrite,
            WriteMode::OnlyIfVersion(before),
            WriteMode::OnlyIfAbsent,
        ] {
            let options = options.clone().mode(mode);
            let result = ns.put_with("k", "after", options.clone()).await;
            assert_eq!(limit_error(result), expected, "{options:?}");
            let result = ns.put_with("fresh", "after", options).await;
            assert_eq!(limit_error(result), expected);
        }
    }
    // A bulk write with one bad item (the last) stores none of its items.
    let items = vec![
        BulkPut::new("k", "bulk"),
        BulkPut::new("b2", "2").with_options(ttl(120)),
        BulkPut::new("b3", "3").with_options(ttl(HUGE_TTL_SECS)),
    ];
    assert_eq!(
        limit_error(ns.put_many(items).await),
        ttl_too_long(HUGE_TTL_SECS)
    );
    let items = vec![
        BulkPut::new("b1", "1"),
        BulkPut::new("b2", "2").with_options(PutOptions::new().expiration(max + 1)),
    ];
    assert_eq!(limit_error(ns.put_many(items).await), too_late(max + 1));

    let entry = ns.get_entry("k").await.unwrap().expect("k is untouched");
    assert_eq!(&entry.value[..], b"before");
    assert_eq!(entry.version, before, "the version did not change");
    assert_eq!(entry.metadata, Some(json!({"n": 1})));
    assert_eq!(entry.expiration, Some(now + 3600));
    let page = ns.list(&ListOptions::new()).await.unwrap();
    assert_eq!(
        page.keys,
        [KeyInfo {
            name: "k".into(),
            expiration: Some(now + 3600),
            metadata: Some(json!({"n": 1})),
        }],
        "only k is listed, as it was"
    );
    // The old version still matches: a retry of the refused compare-and-swap can succeed.
    let retried = ns
        .put_with("k", "retried", ttl(60).only_if_version(before))
        .await
        .unwrap();
    assert!(matches!(retried, PutOutcome::Written(_)));

    // The bound itself is a valid expiration, by TTL and by absolute time.
    let _ = ns.put_with("edge-ttl", "v", ttl(max - now)).await.unwrap();
    let _ = ns
        .put_with("edge-at", "v", PutOptions::new().expiration(max))
        .await
        .unwrap();
    for key in ["edge-ttl", "edge-at"] {
        let entry = ns.get_entry(key).await.unwrap().expect("stored");
        assert_eq!(entry.expiration, Some(max), "{key}");
    }
    assert_eq!(list_names(&ns, "").await, ["edge-at", "edge-ttl", "k"]);
}

pub async fn list_and_bulk_limits(f: Fixture) {
    let ns = f.ns(NS).await;
    for limit in [0, 1001] {
        assert_eq!(
            limit_error(ns.list(&ListOptions::new().limit(limit)).await),
            LimitError::ListLimit { limit, max: 1000 }
        );
    }
    let none: [&str; 0] = [];
    assert_eq!(
        limit_error(ns.get_many(&none).await),
        LimitError::BulkGetCount { count: 0, max: 100 }
    );
    let keys: Vec<String> = (0..101).map(|i| format!("k{i}")).collect();
    assert_eq!(
        limit_error(ns.get_many(&keys).await),
        LimitError::BulkGetCount {
            count: 101,
            max: 100
        }
    );
    assert_eq!(ns.get_many(&keys[..100]).await.unwrap().len(), 100);
    let items: Vec<BulkPut> = (0..10_001)
        .map(|i| BulkPut::new(format!("b{i}"), ""))
        .collect();
    assert!(matches!(
        limit_error(ns.put_many(items).await),
        LimitError::BulkWriteCount { count: 10_001, .. }
    ));
    // One bad item rejects the whole batch before anything is written.
    let items = vec![BulkPut::new("good", "v"), BulkPut::new("", "v")];
    assert_eq!(limit_error(ns.put_many(items).await), LimitError::EmptyKey);
    assert_eq!(ns.get("good").await.unwrap(), None);
    assert!(list_names(&ns, "").await.is_empty());
}

async fn assert_visible(ns: &Namespace, key: &str, visible: bool) {
    let what = if visible { "visible" } else { "gone" };
    assert_eq!(ns.get(key).await.unwrap().is_some(), visible, "get: {what}");
    assert_eq!(
        ns.get_entry(key).await.unwrap().is_some(),
        visible,
        "get_entry: {what}"
    );
    let many = ns.get_many(&[key]).await.unwrap();
    assert_eq!(many[0].is_some(), visible, "get_many: {what}");
    let listed = list_names(ns, key).await.contains(&key.to_owned());
    assert_eq!(listed, visible, "list: {what}");
}

pub async fn expiry_by_ttl_is_inclusive(f: Fixture) {
    let ns = f.ns(NS).await;
    let _ = ns.put_with("ttl", "v", ttl(60)).await.unwrap();
    ns.put_text("forever", "v").await.unwrap();
    f.clock.advance(Duration::from_millis(59_999));
    assert_visible(&ns, "ttl", true).await;
    f.clock.advance(Duration::from_millis(1));
    assert_visible(&ns, "ttl", false).await;
    assert_visible(&ns, "forever", true).await;
}

pub async fn expiry_by_absolute_time_is_inclusive(f: Fixture) {
    let ns = f.ns(NS).await;
    let at = f.clock.unix_secs() + 3600;
    let _ = ns
        .put_with("abs", "v", PutOptions::new().expiration(at))
        .await
        .unwrap();
    let entry = ns.get_entry("abs").await.unwrap().unwrap();
    assert_eq!(entry.expiration, Some(at));
    let listed = ns.list(&ListOptions::new()).await.unwrap().keys;
    assert_eq!(
        listed,
        vec![KeyInfo {
            name: "abs".into(),
            expiration: Some(at),
            metadata: None
        }]
    );
    f.clock.advance(Duration::from_secs(3599));
    assert_visible(&ns, "abs", true).await;
    f.clock.advance(Duration::from_secs(1));
    assert_visible(&ns, "abs", false).await;
}

pub async fn expired_entry_counts_as_absent_for_writes(f: Fixture) {
    let ns = f.ns(NS).await;
    let old = ns
        .put_with("k", "old", ttl(60))
        .await
        .unwrap()
        .version()
        .unwrap();
    f.clock.advance(Duration::from_secs(60));
    assert_eq!(
        ns.put_with("k", "stale", PutOptions::new().only_if_version(old))
            .await
            .unwrap(),
        PutOutcome::ConditionFailed,
        "an expired version cannot be matched"
    );
    assert_eq!(
        ns.delete_with("k", WriteMode::OnlyIfVersion(old))
            .await
            .unwrap(),
        DeleteOutcome::ConditionFailed
    );
    assert!(matches!(
        ns.put_with("k", "new", PutOptions::new().only_if_absent())
            .await
            .unwrap(),
        PutOutcome::Written(_)
    ));
    let entry = ns.get_entry("k").await.unwrap().unwrap();
    assert_eq!(&entry.value[..], b"new");
    assert_eq!(entry.expiration, None);
}

pub async fn list_is_ordered_by_key_bytes(f: Fixture) {
    let ns = f.ns(NS).await;
    let keys = [
        "b", ", ", "!", "a", "A", "Z", "a!", "a ", "é", "z", "~", "0", "9", "ab", "aa", "\u{7f}",
        "日本",
    ];
    for key in keys {
        ns.put_text(key, "v").await.unwrap();
    }
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(list_names(&ns, "").await, expected);
    let bang = expected.iter().position(|k| k == "!").unwrap();
    let comma = expected.iter().position(|k| k == ", ").unwrap();
    assert!(bang < comma, "\"!\" sorts before \", \"");
}

pub async fn list_prefix_is_literal(f: Fixture) {
    let ns = f.ns(NS).await;
    for key in [
        "key_%", "key_a", "key_", "keyX", "key", "kez", "key_%%", "a",
    ] {
        ns.put_text(key, "v").await.unwrap();
    }
    assert_eq!(list_names(&ns, "key_%").await, vec!["key_%", "key_%%"]);
    assert_eq!(
        list_names(&ns, "key_").await,
        vec!["key_", "key_%", "key_%%", "key_a"]
    );
    assert_eq!(list_names(&ns, "key_.*").await, Vec::<String>::new());
    assert_eq!(list_names(&ns, "zzz").await, Vec::<String>::new());
    assert_eq!(list_names(&ns, "").await.len(), 8);
}

pub async fn list_pages_with_any_limit(f: Fixture) {
    let ns = f.ns(NS).await;
    let items: Vec<BulkPut> = (0..25)
        .map(|i| BulkPut::new(format!("p:{i:02}"), format!("{i}")))
        .collect();
    ns.put_many(items).await.unwrap();
    ns.put_text("other", "v").await.unwrap();
    let expected: Vec<String> = (0..25).map(|i| format!("p:{i:02}")).collect();
    for limit in [1, 2, 3, 5, 7, 24, 25, 26, 1000] {
        assert_eq!(
            list_with_limit(&ns, "p:", limit).await,
            expected,
            "limit {limit}"
        );
    }
    // A page that ends exactly at the last key is complete.
    let page = ns
        .list(&ListOptions::new().prefix("p:").limit(25))
        .await
        .unwrap();
    assert!(page.list_complete);
    assert_eq!(page.cursor, None);
    let page = ns
        .list(&ListOptions::new().prefix("p:").limit(24))
        .await
        .unwrap();
    assert!(!page.list_complete);
    assert!(page.cursor.is_some());
}

pub async fn list_cursor_survives_concurrent_changes(f: Fixture) {
    let ns = f.ns(NS).await;
    for i in (0..20).step_by(2) {
        ns.put_text(&format!("c:{i:02}"), "v").await.unwrap();
    }
    // c:00 c:02 ... c:18; read the first page of 4: c:00..c:06
    let page = ns
        .list(&ListOptions::new().prefix("c:").limit(4))
        .await
        .unwrap();
    let first: Vec<_> = page.keys.iter().map(|k| k.name.clone()).collect();
    assert_eq!(first, ["c:00", "c:02", "c:04", "c:06"]);
    // Between pages: delete the last key returned and the next one, insert before and after.
    ns.delete("c:06").await.unwrap();
    ns.delete("c:08").await.unwrap();
    ns.put_text("c:01", "v").await.unwrap(); // before the cursor: not seen
    ns.put_text("c:07", "v").await.unwrap(); // after the cursor: seen
    ns.put_text("c:99", "v").await.unwrap();
    let mut rest = Vec::new();
    let mut options = ListOptions::new()
        .prefix("c:")
        .limit(4)
        .cursor(page.cursor.unwrap());
    loop {
        let page = ns.list(&options).await.unwrap();
        rest.extend(page.keys.into_iter().map(|k| k.name));
        match page.cursor {
            Some(c) => options.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        rest,
        ["c:07", "c:10", "c:12", "c:14", "c:16", "c:18", "c:99"]
    );
}

pub async fn list_hides_expired_keys(f: Fixture) {
    let ns = f.ns(NS).await;
    for i in 0..10 {
        let options = if i % 2 == 0 { ttl(60) } else { ttl(3600) };
        let _ = ns.put_with(&format!("e:{i}"), "v", options).await.unwrap();
    }
    f.clock.advance(Duration::from_secs(60));
    assert_eq!(
        list_with_limit(&ns, "e:", 2).await,
        ["e:1", "e:3", "e:5", "e:7", "e:9"]
    );
    // A page whose remaining keys are all expired is complete.
    let page = ns
        .list(&ListOptions::new().prefix("e:").limit(5))
        .await
        .unwrap();
    assert_eq!(page.keys.len(), 5);
    assert!(page.list_complete);
}

pub async fn list_rejects_invalid_cursor(f: Fixture) {
    let ns = f.ns(NS).await;
    ns.put_text("k", "v").await.unwrap();
    for cursor in ["not a cursor!", "Zm9v", "%%%"] {
        match ns.list(&ListOptions::new().cursor(cursor)).await {
            Err(KvError::InvalidCursor { cursor: c, .. }) => assert_eq!(c, cursor),
            other => panic!("cursor {cursor:?} gave {other:?}"),
        }
    }
}

pub async fn list_all_streams_every_page(f: Fixture) {
    let ns = f.ns(NS).await;
    let items: Vec<BulkPut> = (0..2500)
        .map(|i| BulkPut::new(format!("s:{i:05}"), "v"))
        .collect();
    ns.put_many(items).await.unwrap();
    let names = list_names(&ns, "s:").await;
    assert_eq!(names.len(), 2500);
    assert!(names.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(names[2499], "s:02499");
}

pub async fn bulk_get_keeps_order_and_reports_missing(f: Fixture) {
    let ns = f.ns(NS).await;
    let _ = ns
        .put_with("b", "B", PutOptions::new().metadata(json!({"m": 1})))
        .await
        .unwrap();
    ns.put_text("a", "A").await.unwrap();
    let _ = ns.put_with("gone", "x", ttl(60)).await.unwrap();
    f.clock.advance(Duration::from_secs(61));
    let got = ns
        .get_many(&["b", "missing", "a", "gone", "b"])
        .await
        .unwrap();
    let values: Vec<Option<&[u8]>> = got
        .iter()
        .map(|e| e.as_ref().map(|e| &e.value[..]))
        .collect();
    assert_eq!(
        values,
        [
            Some(&b"B"[..]),
            None,
            Some(&b"A"[..]),
            None,
            Some(&b"B"[..])
        ]
    );
    assert_eq!(got[0].as_ref().unwrap().metadata, Some(json!({"m": 1})));
}

pub async fn bulk_put_and_delete(f: Fixture) {
    let ns = f.ns(NS).await;
    let now = f.clock.unix_secs();
    let items = vec![
        BulkPut::new("x", "1"),
        BulkPut::new("y", "2").with_options(ttl(120).metadata(json!({"y": true}))),
        BulkPut::new("z", "3").with_options(PutOptions::new().expiration(now + 600)),
    ];
    ns.put_many(items).await.unwrap();
    let got = ns.get_many(&["x", "y", "z"]).await.unwrap();
    let y = got[1].as_ref().unwrap();
    assert_eq!(&y.value[..], b"2");
    assert_eq!(y.metadata, Some(json!({"y": true})));
    assert_eq!(y.expiration, Some(now + 120));
    assert_eq!(got[2].as_ref().unwrap().expiration, Some(now + 600));
    ns.delete_many(&["x", "z", "never"]).await.unwrap();
    assert_eq!(list_names(&ns, "").await, ["y"]);
    let empty: Vec<BulkPut> = Vec::new();
    ns.put_many(empty).await.unwrap();
}

pub async fn versions_change_on_every_write(f: Fixture) {
    let ns = f.ns(NS).await;
    let mut seen = BTreeSet::new();
    let v1 = ns.put_text("k", "same").await.unwrap();
    let v2 = ns.put_text("k", "same").await.unwrap();
    assert_ne!(v1, v2, "rewriting the same value gives a new version");
    assert_eq!(ns.get_entry("k").await.unwrap().unwrap().version, v2);
    ns.delete("k").await.unwrap();
    let v3 = ns.put_text("k", "same").await.unwrap();
    for v in [v1, v2, v3] {
        assert!(seen.insert(v), "version {v} reused");
    }
    let other = ns.put_text("other", "x").await.unwrap();
    assert!(seen.insert(other));
    // A version survives its text form (as in an ETag).
    assert_eq!(v3.to_string().parse::<Version>().unwrap(), v3);
}

pub async fn only_if_absent(f: Fixture) {
    let ns = f.ns(NS).await;
    let first = ns
        .put_with("k", "first", PutOptions::new().only_if_absent())
        .await
        .unwrap();
    assert!(matches!(first, PutOutcome::Written(_)));
    let second = ns
        .put_with("k", "second", PutOptions::new().only_if_absent())
        .await
        .unwrap();
    assert_eq!(second, PutOutcome::ConditionFailed);
    assert_eq!(ns.get_text("k").await.unwrap().as_deref(), Some("first"));
    assert_eq!(
        ns.delete_with("k", WriteMode::OnlyIfAbsent).await.unwrap(),
        DeleteOutcome::ConditionFailed
    );
    assert_eq!(
        ns.delete_with("nothing", WriteMode::OnlyIfAbsent)
            .await
            .unwrap(),
        DeleteOutcome::Deleted { existed: false }
    );
}

pub async fn only_if_version(f: Fixture) {
    let ns = f.ns(NS).await;
    let v1 = ns.put_text("k", "one").await.unwrap();
    let v2 = ns
        .put_with("k", "two", PutOptions::new().only_if_version(v1))
        .await
        .unwrap()
        .version()
        .expect("matching version writes");
    assert_ne!(v1, v2);
    assert_eq!(
        ns.put_with("k", "stale", PutOptions::new().only_if_version(v1))
            .await
            .unwrap(),
        PutOutcome::ConditionFailed
    );
    assert_eq!(ns.get_text("k").await.unwrap().as_deref(), Some("two"));
    assert_eq!(
        ns.put_with("missing", "x", PutOptions::new().only_if_version(v2))
            .await
            .unwrap(),
        PutOutcome::ConditionFailed,
        "a version never matches an absent key"
    );
    assert_eq!(ns.get("missing").await.unwrap(), None);
}

pub async fn conditional_delete(f: Fixture) {
    let ns = f.ns(NS).await;
    let v1 = ns.put_text("k", "one").await.unwrap();
    let v2 = ns.put_text("k", "two").await.unwrap();
    assert_eq!(
        ns.delete_with("k", WriteMode::OnlyIfVersion(v1))
            .await
            .unwrap(),
        DeleteOutcome::ConditionFailed
    );
    assert_eq!(ns.get_text("k").await.unwrap().as_deref(), Some("two"));
    assert_eq!(
        ns.delete_with("k", WriteMode::OnlyIfVersion(v2))
            .await
            .unwrap(),
        DeleteOutcome::Deleted { existed: true }
    );
    assert_eq!(ns.get("k").await.unwrap(), None);
    assert_eq!(
        ns.delete_with("k", WriteMode::OnlyIfVersion(v2))
            .await
            .unwrap(),
        DeleteOutcome::ConditionFailed
    );
}

pub async fn racing_only_if_absent_has_one_winner(f: Fixture) {
    let ns = f.ns(NS).await;
    for round in 0..5 {
        let key = format!("race:{round}");
        let tasks: Vec<_> = (0..32)
            .map(|task| {
                let ns = ns.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    let outcome = ns
                        .put_with(&key, format!("{task}"), PutOptions::new().only_if_absent())
                        .await
                        .unwrap();
                    (task, outcome)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (task, outcome) = task.await.unwrap();
            if let PutOutcome::Written(_) = outcome {
                winners.push(task);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        assert_eq!(
            ns.get_text(&key).await.unwrap(),
            Some(winners[0].to_string()),
            "the stored value is the winner's"
        );
    }
}

pub async fn racing_increments_lose_nothing(f: Fixture) {
    const TASKS: u64 = 16;
    const INCREMENTS: u64 = 25;
    let ns = f.ns(NS).await;
    // Every task's first read happens before any task's first write, so the racers do collide
    // (at least TASKS - 1 lost races), however the scheduler runs them.
    let first_read = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS as usize));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let ns = ns.clone();
            let first_read = first_read.clone();
            tokio::spawn(async move {
                let mut conflicts = 0u64;
                let mut first = true;
                for _ in 0..INCREMENTS {
                    loop {
                        let (count, mode) = match ns.get_json_entry::<u64>("counter").await.unwrap()
                        {
                            Some((count, entry)) => {
                                (count, WriteMode::OnlyIfVersion(entry.version))
                            }
                            None => (0, WriteMode::OnlyIfAbsent),
                        };
                        if std::mem::take(&mut first) {
                            first_read.wait().await;
                        }
                        let outcome = ns
                            .put_json_with("counter", &(count + 1), PutOptions::new().mode(mode))
                            .await
                            .unwrap();
                        match outcome {
                            PutOutcome::Written(_) => break,
                            PutOutcome::ConditionFailed => conflicts += 1,
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap();
    }
    assert!(
        conflicts >= TASKS - 1,
        "the racers collided: {conflicts} lost races"
    );
    assert_eq!(
        ns.get_json::<u64>("counter").await.unwrap(),
        Some(TASKS * INCREMENTS)
    );
}

pub async fn namespaces_are_isolated(f: Fixture) {
    let a = f.ns("alpha").await;
    let b = f.ns("beta").await;
    a.put_text("shared-key", "from alpha").await.unwrap();
    b.put_text("shared-key", "from beta").await.unwrap();
    a.put_text("only-alpha", "x").await.unwrap();
    assert_eq!(
        a.get_text("shared-key").await.unwrap().as_deref(),
        Some("from alpha")
    );
    assert_eq!(
        b.get_text("shared-key").await.unwrap().as_deref(),
        Some("from beta")
    );
    assert_eq!(b.get("only-alpha").await.unwrap(), None);
    assert_eq!(list_names(&b, "").await, ["shared-key"]);
    assert!(f.store.delete_namespace("alpha").await.unwrap());
    let again = f.ns("alpha").await;
    assert_ne!(again.id(), a.id(), "a re-created namespace gets a new id");
    assert_eq!(
        again.get("shared-key").await.unwrap(),
        None,
        "deleted with its namespace"
    );
    assert_eq!(
        b.get_text("shared-key").await.unwrap().as_deref(),
        Some("from beta")
    );
    assert!(matches!(
        f.store.namespace("").await,
        Err(KvError::InvalidNamespace { .. })
    ));
}

pub async fn namespace_catalog(f: Fixture) {
    let created = f.store.create_namespace("SESSIONS").await.unwrap();
    assert_eq!(created.title, "SESSIONS");
    assert!(!created.id.is_empty() && created.id != created.title);
    assert!(matches!(
        f.store.create_namespace("SESSIONS").await,
        Err(KvError::NamespaceExists { title }) if title == "SESSIONS"
    ));
    // By title and by id: the same keyspace.
    let by_title = f.ns("SESSIONS").await;
    let by_id = f.store.namespace_by_id(&created.id).await.unwrap();
    assert_eq!(by_title.id(), created.id);
    by_title.put_text("k", "v").await.unwrap();
    assert_eq!(by_id.get_text("k").await.unwrap().as_deref(), Some("v"));
    let cache = f.ns("CACHE").await;
    let listed = f.store.list_namespaces().await.unwrap();
    let titles: Vec<&str> = listed.iter().map(|ns| ns.title.as_str()).collect();
    assert_eq!(titles, ["CACHE", "SESSIONS"], "listed by title");
    assert_eq!(listed[0].id, cache.id());
    assert_eq!(
        f.store.find_namespace(&created.id).await.unwrap(),
        Some(created.clone())
    );
    // Rename keeps the id and the entries.
    f.store
        .rename_namespace("SESSIONS", "USER_SESSIONS")
        .await
        .unwrap();
    let renamed = f
        .store
        .find_namespace("USER_SESSIONS")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.id, created.id);
    assert_eq!(f.store.find_namespace("SESSIONS").await.unwrap(), None);
    assert_eq!(by_id.get_text("k").await.unwrap().as_deref(), Some("v"));
    assert!(matches!(
        f.store.rename_namespace("USER_SESSIONS", "CACHE").await,
        Err(KvError::NamespaceExists { .. })
    ));
    assert!(matches!(
        f.store.rename_namespace("nope", "x").await,
        Err(KvError::NamespaceNotFound { .. })
    ));
    // Unknown ids are typed errors; deleting twice is false the second time.
    assert!(matches!(
        f.store
            .namespace_by_id("0123456789abcdef0123456789abcdef")
            .await,
        Err(KvError::NamespaceNotFound { .. })
    ));
    assert!(f.store.delete_namespace(&created.id).await.unwrap());
    assert!(!f.store.delete_namespace(&created.id).await.unwrap());
    assert_eq!(
        by_id.get("k").await.unwrap(),
        None,
        "a deleted namespace reads empty"
    );
    assert!(
        by_id.put_text("k", "v").await.is_err(),
        "writing through a handle to a deleted namespace fails"
    );
    let remaining = f.store.list_namespaces().await.unwrap();
    assert_eq!(remaining.len(), 1);
    assert_eq!(remaining[0].title, "CACHE");
}

pub async fn concurrent_mixed_operations(f: Fixture) {
    let ns = f.ns(NS).await;
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let ns = ns.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let key = format!("m:{task}:{i:03}");
                    ns.put_text(&key, &key).await.unwrap();
                    assert_eq!(ns.get_text(&key).await.unwrap().as_deref(), Some(&*key));
                    if i % 5 == 0 {
                        ns.delete(&key).await.unwrap();
                    }
                    let _ = ns
                        .list(&ListOptions::new().prefix("m:").limit(10))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(list_names(&ns, "m:").await.len(), 8 * 40);
}

/// Expands to one `#[tokio::test]` per conformance check, each calling `$fixture().await` for a
/// fresh store. The calling crate needs `tokio` with the `macros` and `rt-multi-thread`
/// features as a dev-dependency.
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:path) => {
        $crate::conformance_tests!(@each $fixture;
            round_trip_text,
            round_trip_binary,
            round_trip_empty_value,
            round_trip_json,
            round_trip_metadata,
            overwrite_replaces_value_and_metadata,
            keys_are_case_sensitive,
            unusual_keys_round_trip,
            delete_removes_and_missing_is_noop,
            key_limits,
            value_limit,
            metadata_limit,
            expiry_limits,
            expiry_upper_bound,
            list_and_bulk_limits,
            expiry_by_ttl_is_inclusive,
            expiry_by_absolute_time_is_inclusive,
            expired_entry_counts_as_absent_for_writes,
            list_is_ordered_by_key_bytes,
            list_prefix_is_literal,
            list_pages_with_any_limit,
            list_cursor_survives_concurrent_changes,
            list_hides_expired_keys,
            list_rejects_invalid_cursor,
            list_all_streams_every_page,
            bulk_get_keeps_order_and_reports_missing,
            bulk_put_and_delete,
            versions_change_on_every_write,
            only_if_absent,
            only_if_version,
            conditional_delete,
            racing_only_if_absent_has_one_winner,
            racing_increments_lose_nothing,
            namespaces_are_isolated,
            namespace_catalog,
            concurrent_mixed_operations,
        );
    };
    (@each $fixture:path; $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                $crate::conformance::$check($fixture().await).await;
            }
        )*
    };
}
