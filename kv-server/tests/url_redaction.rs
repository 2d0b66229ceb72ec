//! Store URLs carry passwords (`redis://:PASSWORD@host`); the `kv` tool never prints one: not
//! in `kv serve`'s start-up line, not in its logs at any level, not in the errors of a store
//! that cannot be reached or of a URL that does not parse.

#[path = "../../kv-backends/tests/support/redis_server.rs"]
mod redis_server;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

const PASSWORD: &str = "hunter2-Zq8";

fn kv() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kv"));
    command.env_remove("KV_STORE").env_remove("KV_TOKEN");
    command
}

fn assert_no_password(what: &str, text: &str) {
    assert!(
        !text.contains(PASSWORD),
        "{what} shows the password: {text}"
    );
    // Not even a piece of it.
    assert!(
        !text.contains(&PASSWORD[..6]),
        "{what} shows part of the password: {text}"
    );
}

#[test]
fn kv_serve_shows_its_store_without_the_password() {
    let redis = redis_server::RedisServer::start_with_password(PASSWORD);
    let url = redis.url();
    assert!(
        url.contains(PASSWORD),
        "the test's URL carries the password"
    );
    let mut child = kv()
        .args(["--store", &url, "serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kv serve");
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .expect("banner");
    // Some traffic, so the backend logs at TRACE too.
    let addr = banner
        .split_whitespace()
        .find_map(|word| word.strip_prefix("http://"))
        .expect("address in the banner")
        .to_owned();
    let base = format!("http://{addr}/client/v4/accounts/a/storage/kv/namespaces");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let created = client
            .post(&base)
            .json(&serde_json::json!({"title": "redaction"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 200);
        let listed = client.get(&base).send().await.unwrap();
        assert_eq!(listed.status(), 200);
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();

    assert!(
        banner.contains(&format!("store redis://***@127.0.0.1:{}/0", redis.port)),
        "{banner}"
    );
    assert_no_password("the start-up line", &banner);
    assert!(!logs.is_empty(), "no logs captured at TRACE");
    assert_no_password("the logs", &logs);
}

#[test]
fn kv_errors_name_the_store_without_the_password() {
    let unreachable = format!("redis://:{PASSWORD}@127.0.0.1:1/0");
    let invalid = format!("redis://:{PASSWORD}@:6379");
    let server = format!("http://admin:{PASSWORD}@127.0.0.1:1");
    for (url, expected_code) in [(&unreachable, None), (&invalid, Some(2)), (&server, None)] {
        let output = kv()
            .args(["--store", url, "key", "get", "k"])
            .stdin(Stdio::null())
            .output()
            .expect("run kv");
        assert!(!output.status.success(), "{url}: succeeded");
        if let Some(code) = expected_code {
            assert_eq!(output.status.code(), Some(code), "{url}");
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.trim().is_empty(), "{url}: no error message");
        assert_no_password(&format!("the error for {url}"), &stderr);
        assert_no_password("stdout", &String::from_utf8_lossy(&output.stdout));
    }
    // The message still says which store it was.
    let output = kv()
        .args(["--store", &unreachable, "key", "get", "k"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
}
