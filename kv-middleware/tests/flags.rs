//! Feature flags: flagd's bucketing vectors, uniformity, independence and monotone growth of
//! splits, every operator, evaluation order and reasons, validation, refresh, staleness and
//! concurrent admins, on the memory and file backends.
#![cfg(feature = "flags")]

#[path = "flags_support/mod.rs"]
#[macro_use]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use kv_core::{ManualClock, Store};
use kv_middleware::flags::{
    fractional, murmur3_x86_32, Condition, ErrorCode, EvaluationContext, FlagDefinition, FlagState,
    FlagStore, Flags, FlagsError, FlagsRefresh, ItemKind, Operator, Reason, Rule, Segment,
};
use serde_json::{json, Value};
use support::Fixture;

// ---- helpers ----

/// A loaded store (no background task) holding these raw flag documents.
async fn store_with(flags: &[(&str, Value)]) -> FlagStore {
    let clock = ManualClock::at_unix_secs(support::START);
    let backend = kv_backends::memory::MemoryBackend::builder()
        .clock(clock.shared())
        .build();
    let ns = Store::new(backend).namespace("FLAGS").await.unwrap();
    for (key, flag) in flags {
        ns.put_json(&format!("flag:{key}"), flag).await.unwrap();
    }
    FlagStore::builder(ns)
        .with_manual_refresh()
        .load()
        .await
        .unwrap()
}

fn user(key: &str) -> EvaluationContext {
    EvaluationContext::new().with_targeting_key(key)
}

fn bool_flag_with_rule(rule: Value) -> Value {
    json!({
        "state": "ENABLED",
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "rules": [rule]
    })
}

// ---- flagd's fractional vectors ----

fn vectors() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/flagd_fractional_vectors.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn murmur3_matches_the_vectors_checks() {
    let vectors = vectors();
    let checks = vectors["murmur3_x86_32_checks"].as_array().unwrap();
    assert!(!checks.is_empty());
    for check in checks {
        let input = check["input"].as_str().unwrap();
        let seed = check["seed"].as_u64().unwrap() as u32;
        let expected =
            u32::from_str_radix(check["hash"].as_str().unwrap().trim_start_matches("0x"), 16)
                .unwrap();
        assert_eq!(
            murmur3_x86_32(&[input.as_bytes()], seed),
            expected,
            "murmur3({input:?}, {seed})"
        );
    }
}

fn case_weights(case: &Value) -> Vec<(String, u32)> {
    case["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w[0].as_str().unwrap().to_owned(),
                w[1].as_u64().unwrap() as u32,
            )
        })
        .collect()
}

#[test]
fn fractional_matches_flagd_vectors() {
    let vectors = vectors();
    let cases = vectors["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 11);
    for case in cases {
        let key = case["bucket_key"].as_str().unwrap();
        let weights = case_weights(case);
        let got = fractional("", key, &weights).map(String::as_str);
        assert_eq!(got, case["variant"].as_str(), "bucket key {key:?}");
    }
}

#[tokio::test]
async fn flags_assign_flagd_vectors() {
    // Through real flags: with salt "" the bucketing key is the whole vector key; and for the
    // `headerColor` cases the default salt (the flag key) plus the targeting key gives the same.
    let vectors = vectors();
    for case in vectors["cases"].as_array().unwrap() {
        let key = case["bucket_key"].as_str().unwrap();
        let weights = case_weights(case);
        let variants: BTreeMap<&str, Value> = weights
            .iter()
            .map(|(v, _)| (v.as_str(), json!(v)))
            .collect();
        let flag = json!({
            "state": "ENABLED",
            "variants": variants,
            "defaultVariant": weights[0].0,
            "rules": [{"split": weights, "salt": ""}]
        });
        let mut flags = vec![("vector", flag.clone())];
        let salted = key.strip_prefix("headerColor").map(|user| {
            let mut flag = flag.clone();
            flag["rules"][0].as_object_mut().unwrap().remove("salt");
            (user, flag)
        });
        if let Some((_, flag)) = &salted {
            flags.push(("headerColor", flag.clone()));
        }
        let store = store_with(&flags).await;
        let flags_view = store.flags(user(key));
        let details = flags_view.details("vector");
        assert_eq!(details.variant, case["variant"].as_str(), "{key:?}");
        assert_eq!(details.reason, Reason::Split);
        if let Some((user_key, _)) = salted {
            let flags_view = store.flags(user(user_key));
            let details = flags_view.details("headerColor");
            assert_eq!(
                details.variant,
                case["variant"].as_str(),
                "headerColor + {user_key:?}"
            );
        }
    }
}

// ---- statistics of splits ----

fn split_flag(weights: &[(&str, u32)]) -> Value {
    let variants: BTreeMap<&str, Value> = weights.iter().map(|(v, _)| (*v, json!(v))).collect();
    json!({
        "state": "ENABLED",
        "variants": variants,
        "defaultVariant": weights[0].0,
        "rules": [{"split": weights}]
    })
}

const USERS: usize = 100_000;

fn user_key(i: usize) -> String {
    format!("user-{i}")
}

#[tokio::test]
async fn splits_are_uniform_within_one_percent() {
    let splits: [&[(&str, u32)]; 4] = [
        &[("a", 25), ("b", 25), ("c", 25), ("d", 25)],
        &[("a", 10), ("b", 90)],
        &[("a", 50), ("b", 50)],
        &[("a", 1), ("b", 2), ("c", 7)],
    ];
    for (n, weights) in splits.iter().enumerate() {
        let store = store_with(&[("split", split_flag(weights))]).await;
        let base = store.flags(EvaluationContext::new());
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..USERS {
            let flags = base.with_targeting_key(user_key(i));
            *counts
                .entry(flags.variant("split").unwrap().to_owned())
                .or_default() += 1;
        }
        let total: u32 = weights.iter().map(|(_, w)| w).sum();
        for (variant, weight) in weights.iter() {
            let expected = f64::from(*weight) / f64::from(total);
            let got = counts.get(*variant).copied().unwrap_or(0) as f64 / USERS as f64;
            assert!(
                (got - expected).abs() < 0.01,
                "split {n}: variant {variant} got {got:.4}, expected {expected:.4}"
            );
        }
    }
}

#[tokio::test]
async fn two_flags_bucket_independently() {
    let ten = |salt: Option<&str>| {
        let mut flag = split_flag(&[("on", 10), ("off", 90)]);
        if let Some(salt) = salt {
            flag["rules"][0]["salt"] = json!(salt);
        }
        flag
    };
    let store = store_with(&[
        ("first", ten(None)),
        ("second", ten(None)),
        ("shared-a", ten(Some("cohort"))),
        ("shared-b", ten(Some("cohort"))),
    ])
    .await;
    let base = store.flags(EvaluationContext::new());
    let (mut first, mut second, mut both, mut shared_both) = (0, 0, 0, 0);
    for i in 0..USERS {
        let flags = base.with_targeting_key(user_key(i));
        let a = flags.variant("first") == Some("on");
        let b = flags.variant("second") == Some("on");
        first += a as usize;
        second += b as usize;
        both += (a && b) as usize;
        let sa = flags.variant("shared-a") == Some("on");
        let sb = flags.variant("shared-b") == Some("on");
        assert_eq!(sa, sb, "one salt, one bucketing");
        shared_both += (sa && sb) as usize;
    }
    let share = |n: usize| n as f64 / USERS as f64;
    assert!((share(first) - 0.10).abs() < 0.01);
    assert!((share(second) - 0.10).abs() < 0.01);
    // Independent: the overlap is 10 % of 10 %, within ± 0.3 percentage points.
    assert!(
        (share(both) - 0.01).abs() < 0.003,
        "overlap {:.4} of users",
        share(both)
    );
    assert!((share(shared_both) - 0.10).abs() < 0.01);
}

#[tokio::test]
async fn growing_a_percentage_only_adds_users() {
    for on_first in [true, false] {
        let at = |percent: u32| {
            let weights = if on_first {
                [("on", percent), ("off", 100 - percent)]
            } else {
                [("off", 100 - percent), ("on", percent)]
            };
            split_flag(&weights)
        };
        let stores = [
            store_with(&[("rollout", at(5))]).await,
            store_with(&[("rollout", at(25))]).await,
            store_with(&[("rollout", at(50))]).await,
            store_with(&[("rollout", at(100))]).await,
        ];
        let mut previous: Option<Vec<bool>> = None;
        for store in &stores {
            let base = store.flags(EvaluationContext::new());
            let on: Vec<bool> = (0..20_000)
                .map(|i| base.with_targeting_key(user_key(i)).variant("rollout") == Some("on"))
                .collect();
            if let Some(previous) = &previous {
                for (i, (was, is)) in previous.iter().zip(&on).enumerate() {
                    assert!(!was || *is, "user {i} left the rollout as it grew");
                }
            }
            previous = Some(on);
        }
        assert!(previous.unwrap().iter().all(|on| *on), "100 % is everyone");
    }
}

// ---- operators ----

/// `(attribute, op, value, context attribute value, expected)`.
fn operator_cases() -> Vec<(&'static str, &'static str, Value, Value, bool)> {
    vec![
        ("plan", "eq", json!("pro"), json!("pro"), true),
        ("plan", "eq", json!("pro"), json!("free"), false),
        ("age", "eq", json!(30), json!(30), true),
        ("age", "eq", json!(30), json!("30"), true),
        ("age", "eq", json!(30), json!(31), false),
        ("beta", "eq", json!(true), json!(true), true),
        ("beta", "eq", json!(true), json!(false), false),
        ("plan", "neq", json!("pro"), json!("free"), true),
        ("plan", "neq", json!("pro"), json!("pro"), false),
        ("country", "in", json!(["FR", "DE"]), json!("DE"), true),
        ("country", "in", json!(["FR", "DE"]), json!("US"), false),
        ("tier", "in", json!([1, 2]), json!(2), true),
        ("tier", "in", json!(["1", "2"]), json!(2), true),
        ("tier", "in", json!([1, 2]), json!(3), false),
        ("country", "not_in", json!(["FR", "DE"]), json!("US"), true),
        ("country", "not_in", json!(["FR", "DE"]), json!("FR"), false),
        (
            "email",
            "starts_with",
            json!("admin@"),
            json!("admin@x.io"),
            true,
        ),
        (
            "email",
            "starts_with",
            json!("admin@"),
            json!("user@x.io"),
            false,
        ),
        (
            "email",
            "ends_with",
            json!("@example.com"),
            json!("a@example.com"),
            true,
        ),
        (
            "email",
            "ends_with",
            json!("@example.com"),
            json!("a@example.org"),
            false,
        ),
        (
            "agent",
            "contains",
            json!("Firefox"),
            json!("Mozilla Firefox/1"),
            true,
        ),
        (
            "agent",
            "contains",
            json!("Firefox"),
            json!("Chrome/1"),
            false,
        ),
        (
            "groups",
            "contains",
            json!("ops"),
            json!(["dev", "ops"]),
            true,
        ),
        ("groups", "contains", json!("ops"), json!(["dev"]), false),
        (
            "email",
            "regex",
            json!("^[a-z]+@corp\\.io$"),
            json!("ana@corp.io"),
            true,
        ),
        (
            "email",
            "regex",
            json!("^[a-z]+@corp\\.io$"),
            json!("ana@corp.io.evil"),
            false,
        ),
        ("age", "lt", json!(18), json!(17), true),
        ("age", "lt", json!(18), json!(18), false),
        ("age", "lte", json!(18), json!(18), true),
        ("age", "lte", json!(18), json!(19), false),
        ("age", "gt", json!(18), json!("19"), true),
        ("age", "gt", json!(18), json!(18), false),
        ("age", "gte", json!(18.5), json!(18.5), true),
        ("age", "gte", json!(18.5), json!(18.4), false),
        (
            "since",
            "lt",
            json!("2024-01-01"),
            json!("2023-12-31"),
            true,
        ),
        (
            "since",
            "lt",
            json!("2024-01-01"),
            json!("2024-02-01"),
            false,
        ),
        ("app", "semver_lt", json!("2.0.0"), json!("1.9.9"), true),
        ("app", "semver_lt", json!("2.0.0"), json!("2.0.0"), false),
        (
            "app",
            "semver_lt",
            json!("2.0.0"),
            json!("2.0.0-rc.1"),
            true,
        ),
        ("app", "semver_lte", json!("2.0.0"), json!("v2.0.0"), true),
        ("app", "semver_lte", json!("2.0.0"), json!("2.0.1"), false),
        ("app", "semver_gt", json!("1.10.0"), json!("1.10.1"), true),
        ("app", "semver_gt", json!("1.10.0"), json!("1.9.0"), false),
        ("app", "semver_gte", json!("1.10.0"), json!("1.10.0"), true),
        ("app", "semver_gte", json!("1.10.0"), json!("1.2.0"), false),
        (
            "app",
            "semver_eq",
            json!("1.2.3"),
            json!("1.2.3+build.9"),
            true,
        ),
        ("app", "semver_eq", json!("1.2.3"), json!("1.2.4"), false),
        (
            "app",
            "semver_eq",
            json!("1.2.3"),
            json!("not a version"),
            false,
        ),
        (
            "addr",
            "in_cidr",
            json!("10.0.0.0/8"),
            json!("10.20.30.40"),
            true,
        ),
        (
            "addr",
            "in_cidr",
            json!("10.0.0.0/8"),
            json!("11.0.0.1"),
            false,
        ),
        (
            "addr",
            "in_cidr",
            json!(["192.168.0.0/16", "2001:db8::/32"]),
            json!("2001:db8::7"),
            true,
        ),
        (
            "addr",
            "in_cidr",
            json!(["192.168.0.0/16", "2001:db8::/32"]),
            json!("2001:db9::7"),
            false,
        ),
        (
            "addr",
            "in_cidr",
            json!("10.0.0.0/8"),
            json!("not an ip"),
            false,
        ),
    ]
}

#[tokio::test]
async fn every_operator_matches_and_rejects() {
    let cases = operator_cases();
    let flags: Vec<(String, Value)> = cases
        .iter()
        .enumerate()
        .map(|(i, (attribute, op, value, _, _))| {
            let rule = json!({
                "conditions": [{"attribute": attribute, "op": op, "value": value}],
                "variant": "on"
            });
            (format!("case-{i}"), bool_flag_with_rule(rule))
        })
        .collect();
    let refs: Vec<(&str, Value)> = flags.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let store = store_with(&refs).await;
    let mut seen_ops = std::collections::BTreeSet::new();
    for (i, (attribute, op, value, attr_value, expected)) in cases.iter().enumerate() {
        seen_ops.insert(*op);
        let context = EvaluationContext::new().with_attribute(*attribute, attr_value.clone());
        let flags = store.flags(context);
        let key = format!("case-{i}");
        assert_eq!(
            flags.is_enabled(&key),
            *expected,
            "{attribute} {op} {value} with {attr_value}"
        );
        // `negate` inverts every result.
        let negated = {
            let mut flag = refs[i].1.clone();
            flag["rules"][0]["conditions"][0]["negate"] = json!(true);
            store_with(&[("n", flag)]).await
        };
        let context = EvaluationContext::new().with_attribute(*attribute, attr_value.clone());
        assert_eq!(
            negated.flags(context).is_enabled("n"),
            !*expected,
            "negated {attribute} {op} {value} with {attr_value}"
        );
        // A missing attribute never matches (so its negation always does).
        assert!(!store.flags(EvaluationContext::new()).is_enabled(&key));
        assert!(negated.flags(EvaluationContext::new()).is_enabled("n"));
    }
    assert_eq!(seen_ops.len(), 18, "every operator: {seen_ops:?}");
}

#[tokio::test]
async fn builtin_attributes_ip_headers_and_targeting_key() {
    let store = store_with(&[
        (
            "office",
            bool_flag_with_rule(json!({
                "conditions": [{"attribute": "ip", "op": "in_cidr", "value": "203.0.113.0/24"}],
                "variant": "on"
            })),
        ),
        (
            "mobile",
            bool_flag_with_rule(json!({
                "conditions": [{"attribute": "header.X-Client", "op": "eq", "value": "ios"}],
                "variant": "on"
            })),
        ),
        (
            "staff",
            bool_flag_with_rule(json!({
                "conditions": [{"attribute": "targetingKey", "op": "starts_with", "value": "staff-"}],
                "variant": "on"
            })),
        ),
    ])
    .await;
    let mut headers = http::HeaderMap::new();
    headers.insert("x-client", "ios".parse().unwrap());
    let context = EvaluationContext::new()
        .with_ip("203.0.113.9".parse().unwrap())
        .with_headers(headers)
        .with_targeting_key("staff-7");
    let flags = store.flags(context);
    assert!(flags.is_enabled("office"));
    assert!(flags.is_enabled("mobile"));
    assert!(flags.is_enabled("staff"));
    let flags = store.flags(
        EvaluationContext::new()
            .with_ip("::ffff:198.51.100.1".parse().unwrap())
            .with_targeting_key("user-1"),
    );
    assert!(!flags.is_enabled("office"));
    assert!(!flags.is_enabled("mobile"));
    assert!(!flags.is_enabled("staff"));
}

#[tokio::test]
async fn conditions_are_anded_and_segments_reused() {
    let clock = ManualClock::at_unix_secs(support::START);
    let backend = kv_backends::memory::MemoryBackend::builder()
        .clock(clock.shared())
        .build();
    let ns = Store::new(backend).namespace("FLAGS").await.unwrap();
    let store = FlagStore::builder(ns)
        .with_manual_refresh()
        .load()
        .await
        .unwrap();
    store
        .set_segment(
            "eu-pro",
            &Segment::new([
                Condition::new("country", Operator::In, json!(["FR", "DE"])),
                Condition::new("plan", Operator::Eq, "pro"),
            ]),
            None,
        )
        .await
        .unwrap();
    let flag = FlagDefinition::boolean(false)
        .with_rule(Rule::serve("on").when(Condition::segment("eu-pro")))
        .with_rule(
            Rule::serve("off")
                .when(Condition::segment("eu-pro").negated())
                .when(Condition::new("plan", Operator::Eq, "pro")),
        )
        .with_rule(Rule::serve("on").when(Condition::new("plan", Operator::Eq, "pro")));
    store.set_flag("eu", &flag).await.unwrap();
    let ctx = |country: &str, plan: &str| {
        EvaluationContext::new()
            .with_attribute("country", country)
            .with_attribute("plan", plan)
    };
    assert!(store.flags(ctx("FR", "pro")).is_enabled("eu"));
    assert!(
        !store.flags(ctx("FR", "free")).is_enabled("eu"),
        "AND: both must hold"
    );
    // Not in the segment, on pro: the second rule (negated segment) serves "off" first.
    let flags_view = store.flags(ctx("US", "pro"));
    let details = flags_view.details("eu");
    assert_eq!(details.variant, Some("off"));
    assert_eq!(details.reason, Reason::TargetingMatch);
    // A segment in use cannot be deleted.
    assert!(matches!(
        store.delete_segment("eu-pro").await,
        Err(FlagsError::SegmentInUse { .. })
    ));
}

// ---- evaluation order and reasons ----

#[tokio::test]
async fn evaluation_order_and_reasons() {
    let targeted = json!({
        "state": "ENABLED",
        "variants": {"red": "#f00", "green": "#0f0", "blue": "#00f"},
        "defaultVariant": "red",
        "targets": {"green": ["vip"]},
        "rules": [
            {"conditions": [{"attribute": "plan", "op": "eq", "value": "pro"}], "variant": "blue"},
            {"conditions": [{"attribute": "plan", "op": "eq", "value": "pro"}], "variant": "green"},
            {"conditions": [{"attribute": "plan", "op": "eq", "value": "team"}], "split": [["green", 1], ["blue", 1]]},
        ],
        "metadata": {"owner": "growth", "expiry": "2030-01-01"}
    });
    let mut disabled = targeted.clone();
    disabled["state"] = json!("DISABLED");
    let store = store_with(&[
        ("color", targeted),
        ("off", disabled),
        (
            "static",
            json!({"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"}),
        ),
    ])
    .await;

    // Targets come before rules.
    let vip_pro = store.flags(user("vip").with_attribute("plan", "pro"));
    let d = vip_pro.details("color");
    assert_eq!(
        (d.variant, d.reason),
        (Some("green"), Reason::TargetingMatch)
    );
    assert_eq!(d.flag_metadata.unwrap()["owner"], "growth");
    // The first matching rule wins.
    let flags_view = store.flags(user("ann").with_attribute("plan", "pro"));
    let d = flags_view.details("color");
    assert_eq!(
        (d.variant, d.reason),
        (Some("blue"), Reason::TargetingMatch)
    );
    assert_eq!(d.value, Some(&json!("#00f")));
    // A split.
    let flags_view = store.flags(user("ann").with_attribute("plan", "team"));
    let d = flags_view.details("color");
    assert_eq!(d.reason, Reason::Split);
    assert!(matches!(d.variant, Some("green" | "blue")));
    // A split without a bucketing key: the default variant, never a random one.
    let f = store.flags(EvaluationContext::new().with_attribute("plan", "team"));
    let d = f.details("color");
    assert_eq!((d.variant, d.reason), (Some("red"), Reason::Default));
    assert_eq!(d.error_code, Some(ErrorCode::TargetingKeyMissing));
    // Nothing matches: DEFAULT; no targeting at all: STATIC.
    let flags_view = store.flags(user("ann"));
    let d = flags_view.details("color");
    assert_eq!(
        (d.variant, d.reason, d.error_code),
        (Some("red"), Reason::Default, None)
    );
    let flags_view = store.flags(user("ann"));
    let d = flags_view.details("static");
    assert_eq!((d.variant, d.reason), (Some("off"), Reason::Static));
    // Disabled beats targets: the caller's default.
    let flags = store.flags(user("vip"));
    let d = flags.details("off");
    assert_eq!(
        (d.value, d.variant, d.reason),
        (None, None, Reason::Disabled)
    );
    assert_eq!(flags.value("off", "#fff".to_owned()), "#fff");
    // Unknown flag.
    let d = flags.details("nope");
    assert_eq!(
        (d.reason, d.error_code),
        (Reason::Error, Some(ErrorCode::FlagNotFound))
    );
    assert!(!flags.is_enabled("nope"));
    // Typed access, and a type mismatch.
    assert_eq!(flags.value("color", String::new()), "#0f0");
    let typed = flags.value_details("color", 7u32);
    assert_eq!(typed.value, 7);
    assert_eq!(typed.reason, Reason::Error);
    assert_eq!(typed.error_code, Some(ErrorCode::TypeMismatch));
    assert!(!flags.is_enabled("color"), "a string flag is not a boolean");
    let ok = flags.value_details("color", String::new());
    assert_eq!(ok.value, "#0f0");
    assert_eq!(ok.variant.as_deref(), Some("green"));
    assert_eq!(ok.reason, Reason::TargetingMatch);
    assert_eq!(ok.error_code, None);
}

#[tokio::test]
async fn json_and_number_variants_and_bucket_by() {
    let store = store_with(&[
        (
            "limits",
            json!({
                "state": "ENABLED",
                "variants": {"small": {"max": 10}, "large": {"max": 1000}},
                "defaultVariant": "small",
                "rules": [{"split": [["small", 50], ["large", 50]], "bucketBy": "company"}]
            }),
        ),
        (
            "ratio",
            json!({"state":"ENABLED","variants":{"low":0.1,"high":0.9},"defaultVariant":"high"}),
        ),
    ])
    .await;
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Limits {
        max: u32,
    }
    // Bucketing by company: every user of one company gets the same variant.
    let variant_of = |user_key: &str, company: &str| {
        store
            .flags(user(user_key).with_attribute("company", company))
            .variant("limits")
            .map(str::to_owned)
    };
    for company in ["acme", "globex", "initech", "umbrella"] {
        let first = variant_of("u1", company);
        assert!(first.is_some());
        for u in ["u2", "u3", "u4", "u5"] {
            assert_eq!(variant_of(u, company), first);
        }
    }
    let limits: Limits = store
        .flags(user("u").with_attribute("company", "acme"))
        .value("limits", Limits { max: 0 });
    assert!(limits.max == 10 || limits.max == 1000);
    assert_eq!(store.flags(user("u")).value("ratio", 0.0), 0.9);
}

// ---- validation ----

fn invalid_flags() -> Vec<(&'static str, Value, &'static str)> {
    let base = |extra: Value| {
        let mut flag =
            json!({"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"});
        for (k, v) in extra.as_object().unwrap() {
            flag[k] = v.clone();
        }
        flag
    };
    vec![
        (
            "unknown-default",
            base(json!({"defaultVariant": "maybe"})),
            "defaultVariant",
        ),
        (
            "mixed",
            base(json!({"variants": {"on": true, "off": "no"}})),
            "variants.",
        ),
        (
            "unknown-target",
            base(json!({"targets": {"maybe": ["u1"]}})),
            "targets.maybe",
        ),
        (
            "unknown-rule-variant",
            base(json!({"rules": [{"variant": "maybe"}]})),
            "rules[0].variant",
        ),
        (
            "unknown-split-variant",
            base(json!({"rules": [{"split": [["on", 1], ["maybe", 1]]}]})),
            "rules[0].split[1][0]",
        ),
        (
            "bad-regex",
            base(
                json!({"rules": [{"conditions": [{"attribute": "a", "op": "regex", "value": "(["}], "variant": "on"}]}),
            ),
            "rules[0].conditions[0].value",
        ),
        (
            "bad-semver",
            base(
                json!({"rules": [{"conditions": [{"attribute": "a", "op": "semver_gt", "value": "1.2"}], "variant": "on"}]}),
            ),
            "rules[0].conditions[0].value",
        ),
        (
            "bad-cidr",
            base(
                json!({"rules": [{"conditions": [{"attribute": "a", "op": "in_cidr", "value": "10.0.0.0/40"}], "variant": "on"}]}),
            ),
            "rules[0].conditions[0].value",
        ),
        (
            "missing-segment",
            base(json!({"rules": [{"conditions": [{"segment": "ghosts"}], "variant": "on"}]})),
            "rules[0].conditions[0].segment",
        ),
        (
            "zero-weights",
            base(json!({"rules": [{"split": [["on", 0], ["off", 0]]}]})),
            "rules[0].split",
        ),
        (
            "negative-weight",
            base(json!({"rules": [{"split": [["on", -5], ["off", 10]]}]})),
            "rules[0].split[0][1]",
        ),
        (
            "huge-weight",
            base(json!({"rules": [{"split": [["on", 4294967295u64], ["off", 10]]}]})),
            "rules[0].split",
        ),
        (
            "unknown-operator",
            base(
                json!({"rules": [{"conditions": [{"attribute": "a", "op": "equals", "value": 1}], "variant": "on"}]}),
            ),
            "rules[0].conditions[0].op",
        ),
        (
            "typo",
            base(json!({"defaultVarient": "off"})),
            "defaultVarient",
        ),
        ("bad-state", base(json!({"state": "ON"})), "state"),
        (
            "both-variant-and-split",
            base(json!({"rules": [{"variant": "on", "split": [["on", 1]]}]})),
            "rules[0]",
        ),
        ("no-variants", base(json!({"variants": {}})), "variants"),
    ]
}

async fn validation_rejects_and_keeps_the_last_good_snapshot(fx: Fixture) {
    let ns = fx.namespace("FLAGS").await;
    let store = FlagStore::builder(ns.clone())
        .with_manual_refresh()
        .load()
        .await
        .unwrap();
    store
        .set_flag("good", &FlagDefinition::boolean(true))
        .await
        .unwrap();
    assert!(store.flags(user("u")).is_enabled("good"));

    for (key, flag, field) in invalid_flags() {
        // Written behind the API's back (the `kv` tool writes raw JSON) ...
        ns.put_json(&format!("flag:{key}"), &flag).await.unwrap();
        store.refresh().await.unwrap();
        let errors = store.validation_errors();
        let error = FlagsError::Invalid(errors.clone());
        assert_eq!(errors.len(), 1, "{key}: {error}");
        assert_eq!(errors[0].kind, ItemKind::Flag);
        assert_eq!(errors[0].key, key);
        assert!(
            errors[0].field.starts_with(field),
            "{key}: field {:?} should start with {field:?} ({})",
            errors[0].field,
            errors[0]
        );
        let message = error.to_string();
        assert!(message.contains(key), "{message}");
        // ... it fails alone: the other flags keep serving, it answers PARSE_ERROR.
        let flags = store.flags(user("u"));
        assert!(flags.is_enabled("good"), "{key}");
        assert_eq!(flags.details(key).error_code, Some(ErrorCode::ParseError));
        let details = store.evaluate(key, &user("u"));
        assert!(details.error_message.unwrap().contains(field), "{key}");
        assert!(store.stats().last_error.unwrap().contains(key));
        // The admin API refuses it before writing.
        let parsed: Result<FlagDefinition, _> = serde_json::from_value(flag);
        if let Ok(definition) = parsed {
            let error = store
                .set_flag(&format!("{key}-2"), &definition)
                .await
                .unwrap_err();
            assert!(!error.validation_errors().is_empty(), "{key}: {error}");
            assert!(ns.get(&format!("flag:{key}-2")).await.unwrap().is_none());
        }
        ns.delete(&format!("flag:{key}")).await.unwrap();
    }
    // Fixed: the next refresh is accepted.
    store
        .set_flag("good", &FlagDefinition::boolean(false))
        .await
        .unwrap();
    assert!(!store.flags(user("u")).is_enabled("good"));
    assert_eq!(store.stats().last_error, None);
    assert_eq!(store.stats().rejected, invalid_flags().len() as u64);
}

#[tokio::test]
async fn several_errors_are_all_reported() {
    let clock = ManualClock::at_unix_secs(support::START);
    let backend = kv_backends::memory::MemoryBackend::builder()
        .clock(clock.shared())
        .build();
    let ns = Store::new(backend).namespace("FLAGS").await.unwrap();
    ns.put_text("flag:a", "{not json").await.unwrap();
    ns.put_json(
        "flag:b",
        &json!({"state":"ENABLED","variants":{},"defaultVariant":"x"}),
    )
    .await
    .unwrap();
    ns.put_json(
        "segment:s",
        &json!({"conditions":[{"attribute":"x","op":"regex","value":"("}]}),
    )
    .await
    .unwrap();
    ns.put_text("unrelated", "ignored").await.unwrap();
    let store = FlagStore::builder(ns)
        .with_manual_refresh()
        .load()
        .await
        .unwrap();
    let errors = store.validation_errors();
    let error = FlagsError::Invalid(errors.clone());
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors
        .iter()
        .any(|e| e.kind == ItemKind::Segment && e.key == "s"));
    assert!(error.to_string().contains("and 2 more"), "{error}");
}

// ---- refresh, staleness ----

async fn refresh_with_a_manual_clock(fx: Fixture) {
    let ns = fx.namespace("FLAGS").await;
    let store = FlagStore::builder(ns.clone())
        .with_manual_refresh()
        .load()
        .await
        .unwrap();
    assert!(store.is_ready());
    assert_eq!(
        store.flags(user("u")).details("late").error_code,
        Some(ErrorCode::FlagNotFound)
    );
    // Another process writes: invisible until a refresh.
    ns.put_json("flag:late", &FlagDefinition::boolean(true))
        .await
        .unwrap();
    assert!(!store.flags(user("u")).is_enabled("late"));
    assert_eq!(
        store.refresh().await.unwrap(),
        FlagsRefresh::Updated {
            flags: 1,
            segments: 0
        }
    );
    assert!(store.flags(user("u")).is_enabled("late"));
    fx.clock.advance(Duration::from_secs(30));
    assert_eq!(store.refresh().await.unwrap(), FlagsRefresh::Unchanged);
    assert_eq!(
        store.stats().last_success_unix_ms,
        Some((support::START + 30) * 1000)
    );
    // A handle keeps its snapshot: two checks in one request agree.
    let request_view = store.flags(user("u"));
    ns.put_json("flag:late", &FlagDefinition::boolean(false))
        .await
        .unwrap();
    store.refresh().await.unwrap();
    assert!(request_view.is_enabled("late"));
    assert!(!store.flags(user("u")).is_enabled("late"));
    // Deleting from the store removes it at the next refresh.
    ns.delete("flag:late").await.unwrap();
    store.refresh().await.unwrap();
    assert!(store.keys().is_empty());
    let stats = store.stats();
    assert_eq!(
        (stats.refreshes, stats.updates, stats.store_errors),
        (5, 4, 0)
    );
}

async fn stale_after_max_staleness_with_a_failing_store(fx: Fixture) {
    let ns = fx.namespace("FLAGS").await;
    ns.put_json("flag:f", &FlagDefinition::boolean(true))
        .await
        .unwrap();
    let store = FlagStore::builder(ns)
        .with_manual_refresh()
        .with_max_staleness(Duration::from_secs(120))
        .load()
        .await
        .unwrap();
    fx.fail(true);
    for _ in 0..4 {
        fx.clock.advance(Duration::from_secs(30));
        assert!(matches!(store.refresh().await, Err(FlagsError::Store(_))));
        // Within the max staleness: the last good snapshot, as usual.
        let flags_view = store.flags(user("u"));
        let d = flags_view.details("f");
        assert_eq!((d.value, d.reason), (Some(&json!(true)), Reason::Static));
    }
    fx.clock.advance(Duration::from_secs(1));
    assert!(store.refresh().await.is_err());
    assert!(store.is_stale());
    let flags = store.flags(user("u"));
    assert!(flags.is_stale());
    let d = flags.details("f");
    assert_eq!(
        (d.value, d.reason, d.error_code),
        (Some(&json!(true)), Reason::Stale, None)
    );
    assert!(flags.is_enabled("f"), "stale values are still served");
    assert_eq!(store.stats().store_errors, 5);
    // The store comes back: fresh again.
    fx.fail(false);
    store.refresh().await.unwrap();
    assert!(!store.is_stale());
    assert_eq!(store.flags(user("u")).details("f").reason, Reason::Static);
}

#[tokio::test]
async fn not_ready_until_the_first_refresh() {
    let fx = Fixture::memory();
    let ns = fx.namespace("FLAGS").await;
    ns.put_json("flag:f", &FlagDefinition::boolean(true))
        .await
        .unwrap();
    fx.fail(true);
    assert!(matches!(
        FlagStore::builder(ns.clone())
            .with_manual_refresh()
            .load()
            .await,
        Err(FlagsError::Store(_))
    ));
    let store = FlagStore::builder(ns).with_manual_refresh().build();
    assert!(!store.is_ready());
    let flags = store.flags(user("u"));
    assert_eq!(
        flags.details("f").error_code,
        Some(ErrorCode::ProviderNotReady)
    );
    assert!(!flags.is_enabled("f"));
    assert!(flags.value("f", true));
    fx.fail(false);
    store.refresh().await.unwrap();
    assert!(store.flags(user("u")).is_enabled("f"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_task_refreshes_and_stops_with_the_store() {
    let fx = Fixture::memory();
    let ns = fx.namespace("FLAGS").await;
    let store = FlagStore::builder(ns.clone())
        .with_refresh_interval(Duration::from_millis(20))
        .build();
    ns.put_json("flag:f", &FlagDefinition::boolean(true))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !store.flags(user("u")).is_enabled("f") {
        assert!(
            std::time::Instant::now() < deadline,
            "the background task never refreshed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let weak_probe = store.stats().refreshes;
    assert!(weak_probe >= 1);
    drop(store);
}

#[tokio::test]
async fn concurrent_refreshes_are_single_flight() {
    let fx = Fixture::memory();
    let ns = fx.namespace("FLAGS").await;
    ns.put_json("flag:f", &FlagDefinition::boolean(true))
        .await
        .unwrap();
    let store = FlagStore::builder(ns)
        .with_manual_refresh()
        .load()
        .await
        .unwrap();
    fx.delay(Duration::from_millis(20));
    let before = store.stats().refreshes;
    let calls: Vec<_> = (0..50).map(|_| store.refresh()).collect();
    for outcome in futures::future::join_all(calls).await {
        outcome.unwrap();
    }
    let ran = store.stats().refreshes - before;
    assert!(ran <= 2, "50 concurrent calls ran {ran} refreshes");
}

// ---- admin ----

async fn concurrent_admin_writes_with_cas(fx: Fixture) {
    let plain = fx.namespace("FLAGS").await;
    FlagStore::builder(plain.clone())
        .with_manual_refresh()
        .load()
        .await
        .unwrap()
        .set_flag("beta", &FlagDefinition::boolean(false))
        .await
        .unwrap();
    // The two admins' first writes meet at a gate, so they race for certain.
    let (ns, races) = kv_core::testing::RaceGate::wrap(&plain, 2);
    // Two admins: two stores (as two processes would have) over one namespace.
    let admin_a = FlagStore::builder(ns.clone())
        .with_manual_refresh()
        .load()
        .await
        .unwrap();
    let admin_b = FlagStore::builder(ns.clone())
        .with_manual_refresh()
        .load()
        .await
        .unwrap();

    // Read-modify-write from both at once: every target lands.
    let add = |store: FlagStore, prefix: &'static str| async move {
        for i in 0..10 {
            store
                .update_flag("beta", |flag| {
                    flag.targets
                        .entry("on".into())
                        .or_default()
                        .push(format!("{prefix}{i}"));
                })
                .await
                .unwrap();
        }
    };
    let a = tokio::spawn(add(admin_a.clone(), "a"));
    let b = tokio::spawn(add(admin_b.clone(), "b"));
    a.await.unwrap();
    b.await.unwrap();
    let stored = admin_a.get_flag("beta").await.unwrap().unwrap();
    assert_eq!(stored.definition.targets["on"].len(), 20, "no update lost");
    assert!(races.conflicts() > 0, "the admins collided");
    admin_b.refresh().await.unwrap();
    assert!(admin_b.flags(user("a3")).is_enabled("beta"));
    assert!(admin_b.flags(user("b9")).is_enabled("beta"));

    // Explicit compare-and-swap: the second admin, holding an old version, loses.
    let seen = admin_a.get_flag("beta").await.unwrap().unwrap();
    let on = FlagDefinition::boolean(true);
    admin_a
        .set_flag_if("beta", &on, Some(seen.version))
        .await
        .unwrap();
    let off = FlagDefinition::boolean(false);
    assert!(matches!(
        admin_b.set_flag_if("beta", &off, Some(seen.version)).await,
        Err(FlagsError::Conflict { .. })
    ));
    assert!(matches!(
        admin_b.set_flag_if("beta", &off, None).await,
        Err(FlagsError::Conflict { .. })
    ));
    admin_b.set_flag_if("gamma", &off, None).await.unwrap();
    let stale = admin_b.get_flag("gamma").await.unwrap().unwrap().version;
    admin_a.set_flag("gamma", &on).await.unwrap();
    assert!(matches!(
        admin_b.delete_flag_if("gamma", stale).await,
        Err(FlagsError::Conflict { .. })
    ));
    // Lists and deletes.
    let keys: Vec<String> = admin_b
        .list_flags()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.key)
        .collect();
    assert_eq!(keys, ["beta", "gamma"]);
    assert!(admin_b.delete_flag("gamma").await.unwrap());
    assert!(!admin_b.delete_flag("gamma").await.unwrap());
    assert_eq!(admin_b.keys(), ["beta"]);
    assert!(matches!(
        admin_b.update_flag("nope", |_| {}).await,
        Err(FlagsError::NotFound { .. })
    ));
    // The writing process sees its write at once; the other after a refresh.
    admin_a
        .set_flag(
            "delta",
            &FlagDefinition::boolean(true).with_state(FlagState::Disabled),
        )
        .await
        .unwrap();
    assert_eq!(
        admin_a.flags(user("u")).details("delta").reason,
        Reason::Disabled
    );
    assert_eq!(
        admin_b.flags(user("u")).details("delta").error_code,
        Some(ErrorCode::FlagNotFound)
    );
}

backend_tests!(
    validation_rejects_and_keeps_the_last_good_snapshot,
    refresh_with_a_manual_clock,
    stale_after_max_staleness_with_a_failing_store,
    concurrent_admin_writes_with_cas,
);

#[test]
fn flag_documents_round_trip() {
    let flag = FlagDefinition::boolean(false)
        .with_targets("on", ["u1"])
        .with_rule(
            Rule::split([("on", 10), ("off", 90)])
                .named("ten percent")
                .when(Condition::new("plan", Operator::NotIn, json!(["free"])).negated()),
        )
        .with_metadata("owner", "web");
    let json = serde_json::to_value(&flag).unwrap();
    assert_eq!(json["defaultVariant"], "off");
    assert_eq!(json["rules"][0]["split"], json!([["on", 10], ["off", 90]]));
    assert_eq!(json["rules"][0]["conditions"][0]["op"], "not_in");
    assert_eq!(json["rules"][0]["conditions"][0]["negate"], true);
    let back: FlagDefinition = serde_json::from_value(json).unwrap();
    assert_eq!(back, flag);
    let minimal: FlagDefinition = serde_json::from_str(
        r#"{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"}"#,
    )
    .unwrap();
    assert_eq!(minimal, FlagDefinition::boolean(false));
}

#[allow(dead_code)]
fn flags_is_send_sync_clone(flags: Flags) -> impl Send + Sync + Clone + 'static {
    flags
}

#[tokio::test]
async fn set_flag_if_absent_seeds_once_with_and_without_compare_and_swap() {
    for cas in [true, false] {
        let fx = Fixture::memory();
        let namespace = fx.namespace("FLAGS").await;
        if !cas {
            fx.faults
                .report_capabilities(kv_core::Capabilities::plain());
        }
        let flags = FlagStore::builder(namespace).with_manual_refresh().build();
        let seeded = FlagDefinition::boolean(false);
        assert!(
            flags.set_flag_if_absent("f", &seeded).await.unwrap(),
            "cas {cas}"
        );
        // An admin changes it; a later seed leaves the change alone.
        flags
            .set_flag("f", &FlagDefinition::boolean(true))
            .await
            .unwrap();
        assert!(
            !flags.set_flag_if_absent("f", &seeded).await.unwrap(),
            "cas {cas}"
        );
        let stored = flags.get_flag("f").await.unwrap().unwrap();
        assert_eq!(
            stored.definition,
            FlagDefinition::boolean(true),
            "cas {cas}"
        );
    }
}
