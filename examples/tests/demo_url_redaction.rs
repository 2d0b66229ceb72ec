//! The demo names its store without the password a Redis URL carries: in its start-up line, in
//! its log, and in the error when the store cannot be opened.

mod support;

#[path = "../../kv-backends/tests/support/redis_server.rs"]
mod redis_server;

use support::DemoProcess;

const PASSWORD: &str = "hunter2-Zq8";

#[test]
fn the_demo_never_prints_its_store_password() {
    let redis = redis_server::RedisServer::start_with_password(PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let demo = DemoProcess::start(dir.path(), &redis.url(), &[]);
    assert!(
        demo.banner
            .contains(&format!("store: redis://***@127.0.0.1:{}/0", redis.port)),
        "{}",
        demo.banner
    );
    assert!(!demo.banner.contains(PASSWORD), "{}", demo.banner);
    drop(demo);
    let log = std::fs::read_to_string(dir.path().join("kv-demo.log")).unwrap_or_default();
    assert!(!log.contains(PASSWORD), "{log}");

    // A store that cannot be reached: the error says which, without the password.
    let failed = std::process::Command::new(env!("CARGO_BIN_EXE_kv-demo"))
        .args(["--listen", "127.0.0.1:0"])
        .args(["--store", &format!("redis://:{PASSWORD}@127.0.0.1:1/0")])
        .env_remove("KV_STORE")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("redis://***@127.0.0.1:1/0"), "{stderr}");
    let all = [&failed.stdout[..], &failed.stderr[..]].concat();
    assert!(
        !String::from_utf8_lossy(&all).contains(PASSWORD),
        "{stderr}"
    );
}
