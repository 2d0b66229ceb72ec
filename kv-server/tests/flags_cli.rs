//! `kv flags` end to end, through the real binary: import (validated first, all or nothing),
//! list, export, and eval from a store or from a flagd document file, with its exit codes.

use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

fn kv(store: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(["--store", store, "--namespace", "FLAGS"])
        .args(args)
        .env_remove("KV_STORE")
        .stdin(Stdio::null())
        .output()
        .expect("kv runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The one JSON object of `kv flags eval`, after checking it exited 0.
fn eval(store: &str, args: &[&str]) -> Value {
    let mut all = vec!["flags", "eval"];
    all.extend_from_slice(args);
    let output = kv(store, &all);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = stdout(&output);
    assert_eq!(text.trim().lines().count(), 1, "one line: {text}");
    serde_json::from_str(text.trim()).expect("one JSON object")
}

fn document() -> Value {
    json!({
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "flags": {
            "new-ui": {
                "state": "ENABLED",
                "variants": {"on": true, "off": false},
                "defaultVariant": "off",
                "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", "off"]},
                "metadata": {"owner": "growth"}
            },
            "color": {"state": "ENABLED", "variants": {"red": "#c00", "blue": "#00c"},
                      "defaultVariant": "red"},
            "old-flow": {"state": "DISABLED", "variants": {"on": true, "off": false},
                         "defaultVariant": "on"}
        }
    })
}

#[test]
fn import_list_export_and_eval_from_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file:{}", dir.path().join("kv-data").display());
    let file = dir.path().join("flags.json");
    std::fs::write(&file, document().to_string()).unwrap();
    let file = file.display().to_string();

    let output = kv(&store, &["flags", "import", &file]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let listed = stdout(&kv(&store, &["flags", "list", "--json"]));
    let keys: Vec<String> = listed
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(keys, ["color", "new-ui", "old-flow"]);

    let exported: Value = serde_json::from_str(&stdout(&kv(&store, &["flags", "export"]))).unwrap();
    assert_eq!(
        exported["flags"]["new-ui"]["targeting"],
        document()["flags"]["new-ui"]["targeting"]
    );
    assert_eq!(exported["flags"].as_object().unwrap().len(), 3);

    // Targeting from the context.
    let on = eval(
        &store,
        &[
            "new-ui",
            "--context",
            r#"{"targetingKey":"u1","email":"a@example.com"}"#,
        ],
    );
    assert_eq!(on["value"], true);
    assert_eq!(on["variant"], "on");
    assert_eq!(on["reason"], "TARGETING_MATCH");
    assert_eq!(on["flagMetadata"]["owner"], "growth");
    assert!(
        on.get("errorCode").is_none() && on.get("errorMessage").is_none(),
        "{on}"
    );

    // Disabled: the caller's default, no variant.
    let disabled = eval(
        &store,
        &["old-flow", "--type", "boolean", "--default", "false"],
    );
    assert_eq!(disabled["value"], false);
    assert_eq!(disabled["reason"], "DISABLED");
    assert!(disabled.get("variant").is_none(), "{disabled}");

    // Errors are results too: exit 0.
    let missing = eval(&store, &["nope", "--default", "\"x\""]);
    assert_eq!(missing["value"], "x");
    assert_eq!(missing["reason"], "ERROR");
    assert_eq!(missing["errorCode"], "FLAG_NOT_FOUND");
    assert!(missing["errorMessage"].is_string());
    let mismatch = eval(&store, &["color", "--type", "integer", "--default", "3"]);
    assert_eq!(mismatch["value"], 3);
    assert_eq!(mismatch["errorCode"], "TYPE_MISMATCH");
    let no_default = eval(&store, &["nope"]);
    assert!(no_default.get("value").is_none(), "{no_default}");

    // Usage errors: exit 2, nothing on stdout.
    for args in [
        &["flags", "eval", "color", "--context", "[1]"][..],
        &["flags", "eval", "color", "--context", "{"],
        &[
            "flags",
            "eval",
            "color",
            "--context",
            r#"{"targetingKey":1}"#,
        ],
        &["flags", "eval", "color", "--default", "nope"],
        &[
            "flags",
            "eval",
            "color",
            "--type",
            "boolean",
            "--default",
            "\"x\"",
        ],
        &["flags", "eval", "color", "--type", "long"],
    ] {
        let output = kv(&store, args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn an_import_with_one_invalid_flag_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file:{}", dir.path().join("kv-data").display());
    let mut bad = document();
    bad["flags"]["broken"] =
        json!({"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "zzz"});
    let file = dir.path().join("bad.json");
    std::fs::write(&file, bad.to_string()).unwrap();
    let output = kv(&store, &["flags", "import", &file.display().to_string()]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken"), "names the flag: {stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    // The namespace exists (created for the import) but holds no flag.
    let listed = kv(&store, &["flags", "list"]);
    assert!(stdout(&listed).trim().is_empty(), "{}", stdout(&listed));

    // Not a flagd document at all: a usage error.
    std::fs::write(&file, "[1, 2]").unwrap();
    let output = kv(&store, &["flags", "import", &file.display().to_string()]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn eval_of_a_document_file_needs_no_store() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flags.json");
    let mut doc = document();
    doc["flags"]["broken"] =
        json!({"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "zzz"});
    std::fs::write(&file, doc.to_string()).unwrap();
    let file = file.display().to_string();
    // A store URL that cannot be opened: --file never touches it.
    let store = "redis://127.0.0.1:1/0";

    let off = eval(
        store,
        &[
            "new-ui",
            "--file",
            &file,
            "--context",
            r#"{"email":"a@other.org"}"#,
        ],
    );
    assert_eq!(off["value"], false);
    assert_eq!(off["variant"], "off");
    // A bad flag fails alone.
    let broken = eval(store, &["broken", "--file", &file, "--default", "0"]);
    assert_eq!(broken["errorCode"], "PARSE_ERROR");
    assert_eq!(broken["value"], 0);
    let color = eval(store, &["color", "--file", &file]);
    assert_eq!(color["value"], "#c00");
    assert_eq!(color["reason"], "STATIC");

    // A file that is no flagd document still gives one result: a parse error.
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "not json").unwrap();
    let result = eval(
        store,
        &[
            "color",
            "--file",
            &junk.display().to_string(),
            "--default",
            "\"d\"",
        ],
    );
    assert_eq!(result["errorCode"], "PARSE_ERROR");
    assert_eq!(result["value"], "d");
}
