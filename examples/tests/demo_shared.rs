//! Two `kv-demo` processes on different ports sharing one store (a kv-server, a Redis, and a
//! Redis Cluster):
//! sessions, rate limits, the response cache, flags and config are one, not two.

mod support;

#[path = "../../kv-backends/tests/support/redis_server.rs"]
mod redis_server;

#[path = "../../kv-backends/tests/support/redis_cluster.rs"]
mod redis_cluster;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{client, get_json, login, DemoProcess, KvServerProcess};

const ADMIN: &str = "shared-admin";

/// Two demos on `store`, each in its own working directory.
fn two_demos(store: &str) -> (tempfile::TempDir, DemoProcess, DemoProcess) {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--api-quota",
        // 50 per hour: no request refills during the test, so exactly 50 may pass.
        "50/h",
        "--admin-token",
        ADMIN,
        "--refresh-secs",
        "1",
    ];
    let a = DemoProcess::start(dir.path(), store, &args);
    let b = DemoProcess::start(dir.path(), store, &args);
    assert_ne!(a.url, b.url);
    (dir, a, b)
}

async fn shared_store_behaves_as_one(store: &str) {
    let (_dir, a, b) = two_demos(store);
    let http = client();

    // A session created on one process is valid on the other, and logout on the other ends it.
    let cookie = login(&http, &a, "ada").await;
    assert_eq!(
        get_json(&http, &b.at("/me"), Some(&cookie), 200).await,
        json!({"user": "ada"})
    );
    let counted = support::with_cookie(http.post(b.at("/counter")), &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(counted.json::<Value>().await.unwrap(), json!({"count": 1}));
    let response = support::with_cookie(http.post(b.at("/logout")), &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    get_json(&http, &a.at("/me"), Some(&cookie), 401).await;

    // 2 x 100 concurrent pings, one quota of 50 for this client IP: exactly 50 pass in all.
    let pings = [&a, &b].into_iter().flat_map(|demo| {
        let http = http.clone();
        let url = demo.at("/api/ping");
        (0..100).map(move |_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move { http.get(url).send().await.unwrap().status().as_u16() })
        })
    });
    let statuses = futures::future::join_all(pings.collect::<Vec<_>>()).await;
    let allowed = statuses
        .iter()
        .filter(|s| *s.as_ref().unwrap() == 200)
        .count();
    let denied = statuses
        .iter()
        .filter(|s| *s.as_ref().unwrap() == 429)
        .count();
    assert_eq!((allowed, denied), (50, 150), "statuses: {statuses:?}");

    // A response cached by one process is served by the other from the shared store (within
    // the route's 30 s stale-while-revalidate window, fresh or stale, never from its origin).
    let cached = http.get(a.at("/api/slow")).send().await.unwrap();
    let status = cached.headers()["cache-status"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(status.contains("stored"), "{status}");
    let cached: Value = cached.json().await.unwrap();
    let from_other = http.get(b.at("/api/slow")).send().await.unwrap();
    let status = from_other.headers()["cache-status"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(status.starts_with("kv; hit"), "{status}");
    assert_eq!(from_other.json::<Value>().await.unwrap(), cached);

    // A flag and a config written through one process reach the other (1 s refresh).
    let response = http
        .put(a.at("/admin/flags/new-ui"))
        .bearer_auth(ADMIN)
        .json(&json!({"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = http
        .put(a.at("/admin/config"))
        .bearer_auth(ADMIN)
        .json(&json!({"public": {"title": "Shared", "counter_step": 3}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let flags = http
            .get(b.at("/api/flags"))
            .header("x-user-id", "anyone")
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let config = get_json(&http, &b.at("/api/config"), None, 200).await;
        if flags["flags"]["new-ui"]["reason"] == "STATIC" && config["config"]["title"] == "Shared" {
            assert_eq!(flags["flags"]["new-ui"]["value"], true);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the other process did not pick up the change: {flags} {config}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_demos_share_one_kv_server() {
    let server = KvServerProcess::start(kv_backends::open("memory:").await.unwrap());
    shared_store_behaves_as_one(&server.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_demos_share_one_redis() {
    let redis = redis_server::RedisServer::start();
    shared_store_behaves_as_one(&redis.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_demos_share_one_redis_cluster() {
    let cluster = tokio::task::spawn_blocking(redis_cluster::RedisCluster::start)
        .await
        .unwrap();
    shared_store_behaves_as_one(&cluster.url()).await;
}
