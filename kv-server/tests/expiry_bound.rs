//! An expiration beyond the contract's bound is a 400 with the error envelope on every store,
//! and changes nothing.
//!
//! The requests are the ones that once answered 500 on the Redis store after the write had
//! half-applied: a compare-and-swap `PUT` with `If-Match` and
//! `expiration_ttl=9223372036854775` (the value and version changed, a retry with the old
//! `If-Match` got 412, the key left the listing), and a bulk of three items whose third carries
//! that TTL (the first was stored, the second half-stored).

mod support;

#[path = "../../kv-backends/tests/support/redis_server.rs"]
mod redis_server;

use kv_backends::file::FileBackend;
use kv_backends::memory::MemoryBackend;
use kv_backends::redis::RedisBackend;
use kv_core::{Limits, ManualClock, Store};
use kv_server::error::codes;
use kv_server::ServerConfig;
use redis_server::RedisServer;
use reqwest::Client;
use serde_json::{json, Value};
use support::{assert_envelope, error_code, TestServer};

const START: u64 = 1_700_000_000;
const HUGE_TTL: &str = "9223372036854775";

/// The stores under test, each with whatever must outlive it (a directory, a redis-server).
async fn stores(clock: &ManualClock) -> Vec<(&'static str, Store, Box<dyn std::any::Any + Send>)> {
    let memory = MemoryBackend::builder().clock(clock.shared()).build();
    let dir = tempfile::tempdir().unwrap();
    let file = FileBackend::builder(dir.path().join("kv.redb"))
        .clock(clock.shared())
        .open()
        .unwrap();
    let server = RedisServer::start();
    let redis = RedisBackend::builder(server.url())
        .clock(clock.shared())
        .connect()
        .await
        .unwrap();
    vec![
        ("memory", Store::new(memory), Box::new(())),
        ("file", Store::new(file), Box::new(dir)),
        ("redis", Store::new(redis), Box::new(server)),
    ]
}

/// What a client can observe of key `k`: value, ETag, expiration header and its listing.
async fn observe(client: &Client, ns: &str) -> (String, String, String, Value) {
    let got = client.get(format!("{ns}/values/k")).send().await.unwrap();
    assert_eq!(got.status(), 200);
    let etag = got.headers()["etag"].to_str().unwrap().to_owned();
    let expiration = got.headers()["expiration"].to_str().unwrap().to_owned();
    let value = got.text().await.unwrap();
    let keys: Value = client
        .get(format!("{ns}/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_envelope(&keys);
    (value, etag, expiration, keys["result"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_ttl_is_refused_with_400_on_every_store_and_changes_nothing() {
    let clock = ManualClock::at_unix_secs(START);
    for (kind, store, _guard) in stores(&clock).await {
        assert_eq!(
            store.limits().max_expiration_secs,
            Limits::DEFAULT_MAX_EXPIRATION_SECS
        );
        let server = TestServer::over(store, clock.clone(), ServerConfig::default()).await;
        let client = Client::new();
        let id = server.create_namespace(&client, "ATTACK").await;
        let ns = format!("{}/{id}", server.base());
        let url = format!("{ns}/values/k");

        let created = client
            .put(format!("{url}?expiration_ttl=3600"))
            .body("before")
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 200, "{kind}");
        let etag = created.headers()["etag"].to_str().unwrap().to_owned();
        let before = observe(&client, &ns).await;
        assert_eq!(before.0, "before");
        assert_eq!(before.1, etag);
        assert_eq!(before.2, (START + 3600).to_string());
        assert_eq!(before.3, json!([{"name": "k", "expiration": START + 3600}]));

        // The attack: a compare-and-swap with the huge TTL, then the same with an absolute
        // expiration past the bound.
        let attacks = [
            format!("{url}?expiration_ttl={HUGE_TTL}"),
            format!("{url}?expiration=18446744073709551615"),
            format!(
                "{url}?expiration={}",
                Limits::DEFAULT_MAX_EXPIRATION_SECS + 1
            ),
        ];
        for attack in &attacks {
            let refused = client
                .put(attack)
                .header("If-Match", &etag)
                .body("after")
                .send()
                .await
                .unwrap();
            let code = error_code(refused, 400).await;
            assert_eq!(code, codes::INVALID_EXPIRATION, "{kind} {attack}");
            assert_eq!(
                observe(&client, &ns).await,
                before,
                "{kind}: nothing changed"
            );
        }
        let refused = client
            .put(format!("{url}?expiration_ttl={HUGE_TTL}"))
            .header("If-None-Match", "*")
            .body("after")
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(refused, 400).await,
            codes::INVALID_EXPIRATION,
            "{kind}"
        );

        // A bulk of three whose third item is bad stores none of them.
        let bulk = json!([
            {"key": "a", "value": "1"},
            {"key": "k", "value": "2", "expiration_ttl": 120},
            {"key": "c", "value": "3", "expiration_ttl": HUGE_TTL.parse::<u64>().unwrap()},
        ]);
        let refused = client
            .put(format!("{ns}/bulk"))
            .json(&bulk)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(refused, 400).await,
            codes::INVALID_EXPIRATION,
            "{kind} bulk"
        );
        assert_eq!(
            observe(&client, &ns).await,
            before,
            "{kind}: bulk stored nothing"
        );
        for key in ["a", "c"] {
            let missing = client.get(format!("{ns}/values/{key}")).send();
            assert_eq!(
                error_code(missing.await.unwrap(), 404).await,
                codes::KEY_NOT_FOUND,
                "{kind} {key}"
            );
        }

        // A retry with the old If-Match and a valid TTL is accepted (not 412).
        let retried = client
            .put(format!("{url}?expiration_ttl=120"))
            .header("If-Match", &etag)
            .body("retried")
            .send()
            .await
            .unwrap();
        assert_eq!(retried.status(), 200, "{kind}");
        server.stop().await;
    }
}
