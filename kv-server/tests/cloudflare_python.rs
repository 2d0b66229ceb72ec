//! The official `cloudflare` Python SDK (from PyPI, the version `.ci/run` installs) against
//! `kv serve`, the real binary: namespaces, keys and bulk operations through the SDK's
//! auto-paging iterators, over more namespaces than a page holds. The SDK calls are made by
//! `clients/cloudflare_python.py`, run under a timeout; this test asserts on what it printed.

mod clients;

use std::process::Command;
use std::time::Duration;

use clients::{create_namespaces, require, run, runtime, succeeded, KvServe, ACCOUNT};
use serde_json::{json, Value};

const SDK_VERSION: &str = "5.9.0";

/// The whole script: about 450 listing requests and 30 others, a few seconds normally.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

#[test]
fn cloudflare_python_sdk_pages_and_operates_on_kv_serve() {
    require(
        "the cloudflare Python package",
        Command::new("python3").args(["-c", "import cloudflare; print(cloudflare.__version__)"]),
        SDK_VERSION,
        "pip install cloudflare==5.9.0",
    );
    let server = KvServe::start();
    // 1005 namespaces beside the one the script creates: 51 pages of the default 20, and
    // two of 1000.
    let titles: Vec<String> = (0..1005).map(|i| format!("bulk-{i:04}")).collect();
    runtime().block_on(create_namespaces(&server, &titles));

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/cloudflare_python.py"
    );
    let output = run(
        Command::new("python3")
            .arg(script)
            .arg(server.api_base())
            .arg(ACCOUNT)
            .env_remove("CLOUDFLARE_BASE_URL")
            .env_remove("CLOUDFLARE_API_TOKEN"),
        "the cloudflare Python script",
        SCRIPT_TIMEOUT,
    );
    let out = succeeded(output, "the cloudflare Python script");
    let seen: Value = serde_json::from_str(out.trim()).expect("the script prints JSON");

    assert_eq!(seen["sdk_version"], SDK_VERSION);
    // Namespaces.
    assert_eq!(seen["created_title"], "py-first");
    assert_eq!(
        seen["list_default"],
        json!({"count": 1006, "distinct": 1006})
    );
    assert_eq!(seen["first_page_len"], 20);
    assert_eq!(
        seen["first_page_info"],
        json!({"page": 1, "per_page": 20, "count": 20, "total_count": 1006, "total_pages": 51})
    );
    assert_eq!(
        seen["list_per_page_7"],
        json!({"count": 1006, "distinct": 1006})
    );
    assert_eq!(seen["id_desc_sorted"], true);
    assert_eq!(seen["title_asc_sorted"], true);
    let pages: Vec<u64> = seen["pages_of_1000"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(pages[..2], [1000, 6], "pages of 1000: {pages:?}");
    assert!(
        pages[2..].iter().all(|&n| n == 0),
        "then only the empty page: {pages:?}"
    );
    assert_eq!(seen["got_title"], "py-first");
    assert_eq!(seen["renamed_title"], "py-renamed");
    assert_eq!(seen["deleted_namespace"], "not found");
    // Keys.
    assert_eq!(seen["value_hex"], "006279746573ff");
    assert!(seen["value_expiration_header"].is_string(), "{seen}");
    assert_eq!(seen["metadata"], json!({"a": 1}));
    let expected: Vec<String> = (0..25).map(|i| format!("k{i:02}")).collect();
    assert_eq!(seen["keys_listed"], json!(expected), "cursor paging by 10");
    assert_eq!(
        seen["listed_meta"],
        json!([{"name": "a/b c", "metadata": {"a": 1}, "has_expiration": true}])
    );
    assert_eq!(seen["deleted_get"], "not found");
    // Bulk.
    assert_eq!(seen["bulk_written"], 1500.0);
    assert_eq!(seen["bulk_listed_before_delete"], 1500);
    assert_eq!(
        seen["bulk_read"],
        json!({"count": 100, "first": {"value": "value 0", "metadata": {"i": 0}}, "missing": null})
    );
    assert_eq!(seen["bulk_deleted"], 1500.0);
    assert_eq!(seen["bulk_listed_after_delete"], 0);
}
