//! wrangler (from npm, the version `.ci/run` installs) against `kv serve`, the real binary, with
//! `CLOUDFLARE_API_BASE_URL` pointing at it: every KV command wrangler has, with namespace
//! listings longer than a page, title lookups with exactly 100 and more namespaces, and bulk
//! files of more than 1000 keys. Each wrangler call runs under a timeout: a client that pages
//! forever fails the test instead of hanging it.

mod clients;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use clients::{
    all_keys, all_namespaces, create_namespaces, delete_namespaces, http, require, run, runtime,
    scratch, succeeded, tail, write_json, KvServe, ACCOUNT, CALL_TIMEOUT,
};
use serde_json::{json, Value};

/// The wrangler these tests were written against (see the research notes on its requests).
const WRANGLER_VERSION: &str = "4.86.0";

fn require_wrangler() {
    require(
        "wrangler",
        Command::new("wrangler").arg("--version"),
        WRANGLER_VERSION,
        "npm install -g wrangler@4.86.0",
    );
}

/// Runs `wrangler ARGS` against `server`, with `home` as its home and working directory, and
/// nothing that could reach the network: no telemetry, no error reports, no update check (the
/// check wrangler makes on error paths reads the registry from `npm_registry`, pointed at a
/// closed local port).
fn wrangler(server: &KvServe, home: &Path, args: &[&str]) -> Output {
    let mut command = Command::new("wrangler");
    command
        .args(args)
        .current_dir(home)
        .env("CLOUDFLARE_API_BASE_URL", server.api_base())
        .env("CLOUDFLARE_API_TOKEN", "test-token")
        .env("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_SEND_ERROR_REPORTS", "false")
        .env("WRANGLER_HIDE_BANNER", "true")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("CI", "true")
        .env("npm_registry", "http://127.0.0.1:9/")
        .env("FORCE_COLOR", "0")
        .env_remove("CF_API_BASE_URL")
        .env_remove("CLOUDFLARE_API_KEY")
        .env_remove("CLOUDFLARE_EMAIL");
    run(
        &mut command,
        &format!("wrangler {}", args.join(" ")),
        CALL_TIMEOUT,
    )
}

fn wrangler_ok(server: &KvServe, home: &Path, args: &[&str]) -> String {
    let output = wrangler(server, home, args);
    succeeded(output, &format!("wrangler {}", args.join(" ")))
}

fn titles(all: &[(String, String)]) -> Vec<&str> {
    all.iter().map(|(_, title)| title.as_str()).collect()
}

fn id_of<'a>(all: &'a [(String, String)], title: &str) -> Option<&'a str> {
    all.iter()
        .find(|(_, t)| t == title)
        .map(|(id, _)| id.as_str())
}

#[test]
fn wrangler_namespaces_past_one_page_and_title_lookups_past_100() {
    require_wrangler();
    let server = KvServe::start();
    let home = scratch();
    let home = home.path();
    let rt = runtime();

    let out = wrangler_ok(&server, home, &["kv", "namespace", "create", "first"]);
    let all = rt.block_on(all_namespaces(&server));
    let first = id_of(&all, "first")
        .expect("wrangler created `first`")
        .to_owned();
    assert!(out.contains(&first), "wrangler prints the new id: {out}");

    // 1005 namespaces: wrangler asks for pages of 1000 and stops at an empty page, so it needs
    // three requests; an unpaged listing made it loop forever.
    let mut more: Vec<String> = (0..1003).map(|i| format!("bulk-{i:04}")).collect();
    more.push("second".to_owned());
    rt.block_on(create_namespaces(&server, &more));
    let listed: Value =
        serde_json::from_str(&wrangler_ok(&server, home, &["kv", "namespace", "list"]))
            .expect("`kv namespace list` prints JSON");
    let listed = listed.as_array().expect("a JSON array");
    assert_eq!(listed.len(), 1005);
    let mut ids: Vec<&str> = listed.iter().map(|ns| ns["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1005, "no namespace listed twice");
    let listed_titles: Vec<&str> = listed
        .iter()
        .map(|ns| ns["title"].as_str().unwrap())
        .collect();
    let mut sorted = listed_titles.clone();
    sorted.sort_unstable();
    assert_eq!(listed_titles, sorted, "wrangler asks for order=title");

    // Title lookups page by 100 and stop at a short page: 1005 namespaces take 11 pages.
    wrangler_ok(
        &server,
        home,
        &["kv", "namespace", "delete", "second", "--skip-confirmation"],
    );
    let all = rt.block_on(all_namespaces(&server));
    assert_eq!(all.len(), 1004);
    assert!(id_of(&all, "second").is_none(), "`second` is deleted");

    wrangler_ok(
        &server,
        home,
        &[
            "kv",
            "namespace",
            "rename",
            "first",
            "--new-name",
            "first-renamed",
        ],
    );
    let all = rt.block_on(all_namespaces(&server));
    assert_eq!(id_of(&all, "first-renamed"), Some(first.as_str()));
    assert!(id_of(&all, "first").is_none());

    // Exactly 100: the first page is full, so the lookup asks for page 2, which must be empty.
    let surplus: Vec<String> = all
        .iter()
        .filter(|(_, title)| title.starts_with("bulk-"))
        .skip(99)
        .map(|(id, _)| id.clone())
        .collect();
    rt.block_on(delete_namespaces(&server, &surplus));
    let all = rt.block_on(all_namespaces(&server));
    assert_eq!(all.len(), 100);
    wrangler_ok(
        &server,
        home,
        &[
            "kv",
            "namespace",
            "delete",
            "first-renamed",
            "--skip-confirmation",
        ],
    );
    let all = rt.block_on(all_namespaces(&server));
    assert_eq!(all.len(), 99);
    assert!(!titles(&all).contains(&"first-renamed"));
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn wrangler_keys_with_metadata_and_ttl_and_bulk_files_of_1500_keys() {
    require_wrangler();
    let server = KvServe::start();
    let home = scratch();
    let home = home.path();
    let rt = runtime();
    let ns = rt.block_on(create_namespaces(&server, &["keys".to_owned()]))[0].clone();
    let ns_url = format!("{}/{ns}", server.namespaces_url());
    let key = "a/b c?d";

    // One key, with metadata and a TTL; its name needs percent-encoding.
    let before = now();
    wrangler_ok(
        &server,
        home,
        &[
            "kv",
            "key",
            "put",
            key,
            "hello",
            "--namespace-id",
            &ns,
            "--remote",
            "--metadata",
            r#"{"a":1}"#,
            "--ttl",
            "600",
        ],
    );
    let get = wrangler_ok(
        &server,
        home,
        &[
            "kv",
            "key",
            "get",
            key,
            "--namespace-id",
            &ns,
            "--remote",
            "--text",
        ],
    );
    assert_eq!(get.trim(), "hello");
    let listed: Value = serde_json::from_str(&wrangler_ok(
        &server,
        home,
        &["kv", "key", "list", "--namespace-id", &ns, "--remote"],
    ))
    .expect("`kv key list` prints JSON");
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["name"], key);
    assert_eq!(listed[0]["metadata"], json!({"a": 1}));
    let expiration = listed[0]["expiration"].as_u64().expect("an expiration");
    assert!(
        (before + 600..=now() + 600).contains(&expiration),
        "expiration {expiration} is 600 s after the put"
    );
    wrangler_ok(
        &server,
        home,
        &[
            "kv",
            "key",
            "delete",
            key,
            "--namespace-id",
            &ns,
            "--remote",
        ],
    );
    assert!(rt.block_on(all_keys(&server, &ns)).is_empty(), "deleted");

    // Bulk: 1500 pairs go up in two requests of at most 1000.
    let items: Vec<Value> = (0..1500)
        .map(|i| match i % 3 {
            0 => json!({"key": format!("k{i:04}"), "value": format!("v{i}")}),
            1 => json!({"key": format!("k{i:04}"), "value": format!("v{i}"), "metadata": {"i": i}}),
            _ => {
                json!({"key": format!("k{i:04}"), "value": format!("v{i}"), "expiration_ttl": 600})
            }
        })
        .collect();
    let file = write_json(home, "put.json", &Value::Array(items));
    wrangler_ok(
        &server,
        home,
        &[
            "kv",
            "bulk",
            "put",
            &file,
            "--namespace-id",
            &ns,
            "--remote",
        ],
    );
    let keys = rt.block_on(all_keys(&server, &ns));
    assert_eq!(keys.len(), 1500);
    assert_eq!(keys[1]["metadata"], json!({"i": 1}));
    assert!(keys[2]["expiration"].is_u64(), "{}", keys[2]);
    let value = rt.block_on(async {
        let response = http()
            .get(format!("{ns_url}/values/k1499"))
            .send()
            .await
            .unwrap();
        response.text().await.unwrap()
    });
    assert_eq!(value, "v1499");

    // Bulk get: wrangler sends every key in one request, and Cloudflare reads at most 100 a
    // request; 100 are answered (a missing key as null) ...
    let mut wanted: Vec<String> = (0..1500).step_by(15).map(|i| format!("k{i:04}")).collect();
    wanted.truncate(99);
    wanted.push("missing".to_owned());
    let file = write_json(home, "get.json", &json!(wanted));
    let out = wrangler_ok(
        &server,
        home,
        &[
            "kv",
            "bulk",
            "get",
            &file,
            "--namespace-id",
            &ns,
            "--remote",
        ],
    );
    let json_part = out.split("Success!").next().unwrap();
    let values: Value = serde_json::from_str(json_part.trim()).expect("bulk get prints JSON");
    assert_eq!(values.as_object().unwrap().len(), 100);
    assert_eq!(values["k0000"], "v0");
    assert_eq!(values["k1470"], "v1470");
    assert_eq!(values["missing"], Value::Null);
    // ... and more than 100 is refused with the envelope's code, which wrangler shows, as it
    // would against Cloudflare; it finishes rather than retrying.
    let all: Vec<String> = (0..1500).map(|i| format!("k{i:04}")).collect();
    let file = write_json(home, "all.json", &json!(all));
    let refused = wrangler(
        &server,
        home,
        &[
            "kv",
            "bulk",
            "get",
            &file,
            "--namespace-id",
            &ns,
            "--remote",
        ],
    );
    let said = format!("{}{}", tail(&refused.stdout), tail(&refused.stderr));
    assert!(
        !refused.status.success(),
        "1500 keys in one bulk get: {said}"
    );
    assert!(said.contains("10036") && said.contains("100"), "{said}");

    // Bulk delete of all 1500 (wrangler's `DELETE /bulk`, in two requests).
    wrangler_ok(
        &server,
        home,
        &[
            "kv",
            "bulk",
            "delete",
            &file,
            "--namespace-id",
            &ns,
            "--remote",
            "--force",
        ],
    );
    assert!(rt.block_on(all_keys(&server, &ns)).is_empty());
}
