//! Durability of what the demo acknowledged: sessions saved and config versions written on the
//! file store survive a SIGKILL of the demo in the middle of a write load.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::{client, login, with_cookie, DemoProcess};

const ADMIN: &str = "durable-admin";

/// The session's counter as the page shows it (a read that writes nothing).
async fn stored_count(http: &reqwest::Client, demo: &DemoProcess, cookie: &str) -> u64 {
    let page = with_cookie(http.get(demo.at("/")), cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = page.find("<output id=\"count\">").expect("signed in") + 19;
    let end = start + page[start..].find('<').unwrap();
    page[start..end].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_sessions_and_config_versions_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file:{}", dir.path().join("kv-data").display());
    let args = ["--admin-token", ADMIN, "--login-quota", "100000/min"];
    let demo = DemoProcess::start(dir.path(), &store, &args);
    let http = client();
    let mut cookies = Vec::new();
    for n in 0..8 {
        cookies.push(login(&http, &demo, &format!("user-{n}")).await);
    }

    let stop = Arc::new(AtomicBool::new(false));
    // Each session's counter pressed in a loop: the last count the demo acknowledged.
    let counters: Vec<_> = cookies
        .iter()
        .map(|cookie| {
            let (http, url, cookie, stop) = (
                http.clone(),
                demo.at("/counter"),
                cookie.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut acknowledged = 0;
                while !stop.load(Ordering::SeqCst) {
                    let Ok(response) = with_cookie(http.post(&url), &cookie).send().await else {
                        break;
                    };
                    assert_eq!(response.status(), 200);
                    let Ok(body) = response.json::<Value>().await else {
                        break;
                    };
                    acknowledged = body["count"].as_u64().unwrap();
                }
                acknowledged
            })
        })
        .collect();
    // Config versions written in a loop: (version, title) as acknowledged. (The step stays 1, so
    // the counters above count requests.)
    let writer = {
        let (http, url, stop) = (http.clone(), demo.at("/admin/config"), stop.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let title = format!("edition {n}");
                let document = json!({"public": {"title": title, "counter_step": 1}});
                let Ok(response) = http
                    .put(&url)
                    .bearer_auth(ADMIN)
                    .json(&document)
                    .send()
                    .await
                else {
                    break;
                };
                assert_eq!(response.status(), 200);
                let Ok(body) = response.json::<Value>().await else {
                    break;
                };
                acknowledged.push((body["version"].as_u64().unwrap(), title));
            }
            acknowledged
        })
    };

    tokio::time::sleep(Duration::from_millis(1500)).await;
    demo.kill();
    stop.store(true, Ordering::SeqCst);
    let mut counts = Vec::new();
    for counter in counters {
        counts.push(counter.await.unwrap());
    }
    let versions = writer.await.unwrap();
    assert!(
        counts.iter().all(|&n| n > 0),
        "every session was written: {counts:?}"
    );
    assert!(versions.len() > 2, "config versions written: {versions:?}");

    let demo = DemoProcess::start(dir.path(), &store, &args);
    for (n, (cookie, acknowledged)) in cookies.iter().zip(&counts).enumerate() {
        let me = support::get_json(&http, &demo.at("/me"), Some(cookie), 200).await;
        assert_eq!(me["user"], format!("user-{n}"));
        let stored = stored_count(&http, &demo, cookie).await;
        // At most one write was in flight when the process died: it may have landed unacknowledged.
        assert!(
            stored == *acknowledged || stored == acknowledged + 1,
            "session {n}: acknowledged {acknowledged}, stored {stored}"
        );
    }

    let (last_version, last_title) = versions.last().unwrap().clone();
    let current = http
        .get(demo.at("/admin/config"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let current_version = current["version"].as_u64().unwrap();
    assert!(
        current_version == last_version || current_version == last_version + 1,
        "acknowledged up to {last_version}, stored {current_version}"
    );
    if current_version == last_version {
        assert_eq!(current["config"]["public"]["title"], last_title);
    }
    // Every acknowledged version still kept (the newest ten are) is listed.
    let kept = http
        .get(demo.at("/admin/config/versions"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let kept: Vec<u64> = kept["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    for (version, _) in versions.iter().rev().take(9) {
        assert!(
            kept.contains(version),
            "version {version} lost; kept {kept:?}"
        );
    }
}
