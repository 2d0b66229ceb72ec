//! The soak tool in short: a mixed load on a kv-server and on the demo (separate processes)
//! for a few seconds: no unexpected answers, memory flat, latency figures present. The 60 s
//! run whose figures are in RELIABILITY.md is `target/release/kv-soak --seconds 60`.

use std::process::Command;

#[test]
fn a_short_soak_has_no_unexpected_errors_and_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("soak.json");
    let output = Command::new(env!("CARGO_BIN_EXE_kv-soak"))
        .args([
            "--seconds",
            "8",
            "--warmup",
            "2",
            "--window",
            "3",
            "--rate",
            "150",
        ])
        .arg("--dir")
        .arg(dir.path())
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kv-soak failed:\n{stdout}\n{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let targets = report["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    for target in targets {
        let name = target["name"].as_str().unwrap();
        assert_eq!(target["unexpected"], 0, "{name}: {target}");
        // Paced at 150/s for 8 s: most of the 1 200 requests completed.
        assert!(
            target["requests"].as_u64().unwrap() > 600,
            "{name}: {target}"
        );
        let p99 = target["p99_ms"].as_f64().unwrap();
        assert!(
            p99 > 0.0 && p99 >= target["p50_ms"].as_f64().unwrap(),
            "{name}"
        );
        assert!(target["rss_first_bytes"].as_u64().unwrap() > 0, "{name}");
    }
    // Every kind of request was made.
    let demo_ops = targets[1]["by_op"].as_object().unwrap();
    for op in [
        "page", "me", "counter", "login", "ping", "slow", "flags", "config",
    ] {
        assert!(demo_ops.contains_key(op), "{op} missing: {demo_ops:?}");
    }
    let kv_ops = targets[0]["by_op"].as_object().unwrap();
    for op in ["get", "put", "list", "delete"] {
        assert!(kv_ops.contains_key(op), "{op} missing: {kv_ops:?}");
    }
}
