//! flagd flag-definition documents evaluated as flagd evaluates them: every operator, the
//! reasons and error codes of each case flagd's documentation and test bed list, a document of
//! many flags with one invalid, and import / export through a namespace.
#![cfg(feature = "flags")]

use kv_backends::memory::MemoryBackend;
use kv_core::Store;
use kv_middleware::flags::{
    ErrorCode, EvaluationContext, FlagDocument, FlagSnapshot, FlagStore, FlagType, ItemKind, Reason,
};
use serde_json::{json, Value};

fn snapshot(document: Value) -> FlagSnapshot {
    FlagSnapshot::from_document(&document.to_string()).expect("a flagd document")
}

fn ctx(attributes: Value) -> EvaluationContext {
    let mut context = EvaluationContext::new();
    for (k, v) in attributes.as_object().unwrap() {
        if k == "targetingKey" {
            context.set_targeting_key(v.as_str().map(str::to_owned));
        } else {
            context.set_attribute(k.clone(), v.clone());
        }
    }
    context
}

/// One flag whose targeting is `rule`, with string variants named as their values.
fn one(rule: Value, variants: &[&str], default: &str) -> FlagSnapshot {
    let variants: serde_json::Map<String, Value> =
        variants.iter().map(|v| (v.to_string(), json!(v))).collect();
    snapshot(json!({"flags": {"f": {
        "state": "ENABLED", "variants": variants, "defaultVariant": default, "targeting": rule
    }}}))
}

fn value(s: &FlagSnapshot, key: &str, context: Value) -> Option<Value> {
    s.evaluate(key, &ctx(context)).value.cloned()
}

#[test]
fn custom_operators_from_flagds_test_bed() {
    // flagd-testbed flags/custom-ops.json and gherkin/targeting.feature.
    let doc = snapshot(json!({"flags": {
        "fractional-flag": {
            "state": "ENABLED",
            "variants": {"clubs": "clubs", "diamonds": "diamonds", "hearts": "hearts", "spades": "spades", "wild": "wild"},
            "defaultVariant": "wild",
            "targeting": {"fractional": [
                {"cat": [{"var": "$flagd.flagKey"}, {"var": "user.name"}]},
                ["clubs", 25], ["diamonds", 25], ["hearts", 25], ["spades", 25]
            ]}
        },
        "fractional-flag-shorthand": {
            "state": "ENABLED",
            "variants": {"heads": "heads", "tails": "tails", "draw": "draw"},
            "defaultVariant": "draw",
            "targeting": {"fractional": [["heads"], ["tails", 1]]}
        },
        "fractional-hash-edge-flag": {
            "state": "ENABLED",
            "variants": {"lower": "lower", "upper": "upper"},
            "defaultVariant": "lower",
            "targeting": {"fractional": [{"var": "targetingKey"}, ["lower", 50], ["upper", 50]]}
        },
        "fractional-nested-if-flag": {
            "state": "ENABLED",
            "variants": {"premium": "premium", "standard": "standard", "fallback": "fallback"},
            "defaultVariant": "fallback",
            "targeting": {"fractional": [{"var": "targetingKey"},
                [{"if": [{"==": [{"var": "tier"}, "premium"]}, "premium", "standard"]}, 50],
                ["standard", 50]]}
        },
        "fractional-nested-weight-flag": {
            "state": "ENABLED",
            "variants": {"red": "red", "blue": "blue", "fallback": "fallback"},
            "defaultVariant": "fallback",
            "targeting": {"fractional": [{"var": "targetingKey"},
                ["red", {"if": [{"==": [{"var": "tier"}, "premium"]}, 100, 0]}],
                ["blue", 10]]}
        },
        "fractional-as-condition-flag": {
            "state": "ENABLED",
            "variants": {"big": "hundreds", "small": "ones", "fallback": "zero"},
            "defaultVariant": "fallback",
            "targeting": {"if": [{"fractional": [[false, 0], [true, 100]]}, "big", "small"]}
        },
        "fractional-negative-weight-flag": {
            "state": "ENABLED",
            "variants": {"one": "one", "two": "two", "fallback": "fallback"},
            "defaultVariant": "fallback",
            "targeting": {"fractional": [{"var": "targetingKey"}, ["one", -50], ["two", 100]]}
        }
    }}));
    for (name, expected) in [
        ("jack", "hearts"),
        ("queen", "spades"),
        ("ten", "clubs"),
        ("nine", "diamonds"),
        ("3", "clubs"),
    ] {
        assert_eq!(
            value(&doc, "fractional-flag", json!({"user": {"name": name}})),
            Some(json!(expected)),
            "{name}"
        );
    }
    for (key, expected) in [("jon@company.com", "heads"), ("jane@company.com", "tails")] {
        assert_eq!(
            value(
                &doc,
                "fractional-flag-shorthand",
                json!({"targetingKey": key})
            ),
            Some(json!(expected))
        );
    }
    for (key, expected) in [
        ("ejOoVL", "lower"),
        ("bY9fO-", "lower"),
        ("SI7p-", "lower"),
        ("6LvT0", "upper"),
        ("ceQdGm", "upper"),
    ] {
        assert_eq!(
            value(
                &doc,
                "fractional-hash-edge-flag",
                json!({"targetingKey": key})
            ),
            Some(json!(expected)),
            "{key}"
        );
    }
    for (key, tier, expected) in [
        ("jon@company.com", "premium", "premium"),
        ("jon@company.com", "basic", "standard"),
        ("user1", "premium", "standard"),
    ] {
        assert_eq!(
            value(
                &doc,
                "fractional-nested-if-flag",
                json!({"targetingKey": key, "tier": tier})
            ),
            Some(json!(expected))
        );
    }
    for (tier, expected) in [("premium", "red"), ("basic", "blue")] {
        assert_eq!(
            value(
                &doc,
                "fractional-nested-weight-flag",
                json!({"targetingKey": "user1", "tier": tier})
            ),
            Some(json!(expected))
        );
    }
    let e = doc.evaluate(
        "fractional-as-condition-flag",
        &ctx(json!({"targetingKey": "some-targeting-key"})),
    );
    assert_eq!(e.value, Some(&json!("hundreds")));
    assert_eq!(e.reason, Reason::TargetingMatch);
    assert_eq!(
        value(
            &doc,
            "fractional-negative-weight-flag",
            json!({"targetingKey": "any-user"})
        ),
        Some(json!("two"))
    );
    // The shorthand without a targeting key has nothing to bucket: the default variant.
    let e = doc.evaluate("fractional-flag-shorthand", &EvaluationContext::new());
    assert_eq!((e.value, e.reason), (Some(&json!("draw")), Reason::Default));
}

#[test]
fn fractional_agrees_with_flagds_bucketing_vectors() {
    let data: Value =
        serde_json::from_str(include_str!("data/flagd_fractional_vectors.json")).unwrap();
    let cases = data["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let weights = case["weights"].as_array().unwrap();
        let variants: serde_json::Map<String, Value> = weights
            .iter()
            .map(|w| (w[0].as_str().unwrap().to_owned(), w[0].clone()))
            .collect();
        let mut args = vec![json!({"var": "k"})];
        args.extend(weights.iter().cloned());
        let first = weights[0][0].as_str().unwrap();
        let doc = snapshot(json!({"flags": {"f": {
            "state": "ENABLED", "variants": variants, "defaultVariant": first,
            "targeting": {"fractional": args}
        }}}));
        let key = case["bucket_key"].as_str().unwrap();
        assert_eq!(
            value(&doc, "f", json!({"k": key})),
            Some(case["variant"].clone()),
            "{case}"
        );
    }
}

#[test]
fn sem_ver_starts_with_ends_with() {
    let versions = one(
        json!({"if": [{"sem_ver": [{"var": "version"}, "=", "2.0.0"]}, "equal",
              {"if": [{"sem_ver": [{"var": "version"}, ">", "2.0.0"]}, "greater",
              {"if": [{"sem_ver": [{"var": "version"}, "<", "2.0.0"]}, "lesser",
              {"if": [{"sem_ver": [{"var": "version"}, "=", "2.0.0.0"]}, "fail", "none"]}]}]}]}),
        &["equal", "greater", "lesser", "none", "fail"],
        "none",
    );
    for (v, expected) in [
        ("2.0.0", "equal"),
        ("2.1.0", "greater"),
        ("1.9.0", "lesser"),
        ("2.0.0-alpha", "lesser"),
        ("2.0.0.0", "none"),
    ] {
        assert_eq!(
            value(&versions, "f", json!({"version": v})),
            Some(json!(expected)),
            "{v}"
        );
    }
    let major_minor = one(
        json!({"if": [{"sem_ver": [{"var": "version"}, "~", "3.0.0"]}, "minor",
              {"if": [{"sem_ver": [{"var": "version"}, "^", "3.0.0"]}, "major", "none"]}]}),
        &["minor", "major", "none"],
        "none",
    );
    for (v, expected) in [("3.0.1", "minor"), ("3.1.0", "major"), ("4.0.0", "none")] {
        assert_eq!(
            value(&major_minor, "f", json!({"version": v})),
            Some(json!(expected)),
            "{v}"
        );
    }
    let prefix = one(
        json!({"if": [{"sem_ver": [{"var": "version"}, "=", "v1.0.0"]}, "match", "no-match"]}),
        &["match", "no-match"],
        "no-match",
    );
    for (v, expected) in [
        ("1.0.0", "match"),
        ("v1.0.0", "match"),
        ("V1.0.0", "match"),
        ("2.0.0", "no-match"),
    ] {
        assert_eq!(
            value(&prefix, "f", json!({"version": v})),
            Some(json!(expected)),
            "{v}"
        );
    }
    let partial = one(
        json!({"if": [{"sem_ver": [{"var": "version"}, "^", "1"]}, "match", "no-match"]}),
        &["match", "no-match"],
        "no-match",
    );
    for (v, expected) in [
        (json!("1.5.0"), "match"),
        (json!("1.0"), "match"),
        (json!("1"), "match"),
        (json!(1), "match"),
        (json!("2.0.0"), "no-match"),
    ] {
        assert_eq!(
            value(&partial, "f", json!({"version": v})),
            Some(json!(expected)),
            "{v}"
        );
    }
    let build = one(
        json!({"if": [{"sem_ver": [{"var": "version"}, "=", "1.0.0+build"]}, "match", "no-match"]}),
        &["match", "no-match"],
        "no-match",
    );
    for (v, expected) in [
        ("1.0.0", "match"),
        ("1.0.0+other", "match"),
        ("2.0.0", "no-match"),
    ] {
        assert_eq!(
            value(&build, "f", json!({"version": v})),
            Some(json!(expected)),
            "{v}"
        );
    }
    let strings = one(
        json!({"if": [{"starts_with": [{"var": "id"}, "abc"]}, "prefix",
              {"if": [{"ends_with": [{"var": "id"}, "xyz"]}, "postfix", "none"]}]}),
        &["prefix", "postfix", "none"],
        "none",
    );
    for (id, expected) in [
        ("abcdef", "prefix"),
        ("uvwxyz", "postfix"),
        ("abcxyz", "prefix"),
        ("lmnopq", "none"),
    ] {
        assert_eq!(
            value(&strings, "f", json!({"id": id})),
            Some(json!(expected)),
            "{id}"
        );
    }
}

#[test]
fn operator_errors_serve_the_default_variant_with_reason_default() {
    // flagd-testbed flags/edge-case-flags.json, @operator-errors.
    for (rule, context) in [
        (
            json!({"if": [{"sem_ver": [{"var": "version"}, "=", "1.0.0"]}, "true", "false"]}),
            json!({"version": "not-a-version"}),
        ),
        (
            json!({"if": [{"sem_ver": [{"var": "version"}, "===", "1.0.0"]}, "true", "false"]}),
            json!({"version": "1.0.0"}),
        ),
        (
            json!({"if": [{"sem_ver": [{"var": "version"}, "="]}, "true", "false"]}),
            json!({"version": "1.0.0"}),
        ),
        (
            json!({"if": [{"fractional": [{"var": "missing_key"}, ["one", 50], ["two", 50]]}, "true", "false"]}),
            json!({}),
        ),
        (
            json!({"if": [{"fractional": [{"var": "targetingKey"}, ["one", 0], ["two", 0]]}, "true", "false"]}),
            json!({"targetingKey": "any-user"}),
        ),
        (
            json!({"if": [{"starts_with": [{"var": "num"}, "abc"]}, "true", "false"]}),
            json!({"num": 123}),
        ),
        (
            json!({"if": [{"ends_with": [{"var": "num"}, "xyz"]}, "true", "false"]}),
            json!({"num": 123}),
        ),
        (
            json!({"if": [{"starts_with": ["abc"]}, "true", "false"]}),
            json!({}),
        ),
        (
            json!({"if": [{"ends_with": ["xyz"]}, "true", "false"]}),
            json!({}),
        ),
    ] {
        let s = one(rule.clone(), &["true", "false", "fallback"], "fallback");
        let e = s.evaluate("f", &ctx(context));
        assert_eq!(e.value, Some(&json!("fallback")), "{rule}");
        assert_eq!(e.reason, Reason::Default, "{rule}");
        assert_eq!(e.error_code, None, "{rule}");
    }
}

#[test]
fn reasons_and_error_codes() {
    // flagd-testbed flags/edge-case-flags.json and gherkin/evaluation.feature.
    let doc = snapshot(json!({
        "metadata": {"team": "growth", "version": 1},
        "flags": {
            "targeting-null-variant-flag": {"state": "ENABLED", "variants": {"one": 1, "two": 2}, "defaultVariant": "two", "targeting": {"if": [true, null, "one"]}},
            "error-targeting-flag": {"state": "ENABLED", "variants": {"one": 1, "two": 2}, "defaultVariant": "two", "targeting": {"invalid": ["this is not valid targeting"]}},
            "missing-variant-targeting-flag": {"state": "ENABLED", "variants": {"one": 1, "two": 2}, "defaultVariant": "two", "targeting": {"if": [true, "three", "one"]}},
            "non-string-variant-targeting-flag": {"state": "ENABLED", "variants": {"false": 1, "true": 2}, "defaultVariant": "false", "targeting": {"if": [true, true, false]}},
            "empty-targeting-flag": {"state": "ENABLED", "variants": {"false": 1, "true": 2}, "defaultVariant": "false", "targeting": {}},
            "ref-to-nonexistent-evaluator-flag": {"state": "ENABLED", "variants": {"a": "a"}, "defaultVariant": "a", "targeting": {"if": [{"$ref": "nope"}, "a", null]}},
            "disabled-flag": {"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
            "null-default-flag": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": null},
            "undefined-default-flag": {"state": "ENABLED", "variants": {"small": 10, "big": 1000}},
            "no-default-flag-null-targeting-variant": {"state": "ENABLED", "variants": {"normal": "CFO", "special": "CEO"}, "defaultVariant": null,
                "targeting": {"if": [{"==": ["jobs@orange.com", {"var": "email"}]}, "special", null]}},
            "boolean-zero-flag": {"state": "ENABLED", "variants": {"zero": false, "non-zero": true}, "defaultVariant": "zero"},
            "string-zero-flag": {"state": "ENABLED", "variants": {"zero": "", "non-zero": "str"}, "defaultVariant": "zero"},
            "integer-zero-flag": {"state": "ENABLED", "variants": {"zero": 0, "non-zero": 1}, "defaultVariant": "zero"},
            "float-zero-flag": {"state": "ENABLED", "variants": {"zero": 0.0, "non-zero": 1.0}, "defaultVariant": "zero"},
            "object-zero-flag": {"state": "ENABLED", "variants": {"zero": {}, "non-zero": {"a": 1}}, "defaultVariant": "zero"},
            "integer-targeted-zero-flag": {"state": "ENABLED", "variants": {"zero": 0, "non-zero": 1}, "defaultVariant": "zero",
                "targeting": {"if": [{"ends_with": [{"var": "email"}, "@macrosoft.com"]}, "zero", null]}},
            "float-flag": {"state": "ENABLED", "variants": {"tenth": 0.1, "half": 0.5}, "defaultVariant": "half"},
            "integral-float-flag": {"state": "ENABLED", "variants": {"ten": 10.0}, "defaultVariant": "ten"},
            "string-flag": {"state": "ENABLED", "variants": {"greeting": "hi"}, "defaultVariant": "greeting"},
            "metadata-flag": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on", "metadata": {"team": "checkout", "string": "a"}},
            "timestamp-flag": {"state": "ENABLED", "variants": {"past": -1, "future": 1, "none": 0}, "defaultVariant": "none",
                "targeting": {"if": [{">": [{"var": "$flagd.timestamp"}, {"var": "time"}]}, "past", {"<": [{"var": "$flagd.timestamp"}, {"var": "time"}]}, "future", "none"]}},
            "targeting-key-flag": {"state": "ENABLED", "variants": {"hit": "hit", "miss": "miss"}, "defaultVariant": "miss",
                "targeting": {"if": [{"==": [{"var": "targetingKey"}, "5c3d8535-f81a-4478-a6d3-afaa4d51199e"]}, "hit", null]}}
        }
    }));
    let none = EvaluationContext::new();
    let e = doc.evaluate("targeting-null-variant-flag", &none);
    assert_eq!(
        (e.value, e.variant, e.reason),
        (Some(&json!(2)), Some("two"), Reason::Default)
    );

    let d = doc.details("error-targeting-flag", &none, Some(FlagType::Integer));
    assert_eq!(
        (d.value, d.reason, d.error_code),
        (None, Reason::Error, Some(ErrorCode::ParseError))
    );
    let message = d.error_message.unwrap();
    assert!(
        message.contains("error-targeting-flag")
            && message.contains("targeting.invalid")
            && message.contains("unknown operator"),
        "{message}"
    );
    let d = doc.details("ref-to-nonexistent-evaluator-flag", &none, None);
    assert_eq!(d.error_code, Some(ErrorCode::ParseError));
    assert!(d.error_message.unwrap().contains("nope"));

    let e = doc.evaluate("missing-variant-targeting-flag", &none);
    assert_eq!(
        (e.value, e.reason, e.error_code),
        (None, Reason::Error, Some(ErrorCode::General))
    );
    let e = doc.evaluate("non-string-variant-targeting-flag", &none);
    assert_eq!(
        (e.value, e.variant, e.reason),
        (Some(&json!(2)), Some("true"), Reason::TargetingMatch)
    );
    let e = doc.evaluate("empty-targeting-flag", &none);
    assert_eq!((e.value, e.reason), (Some(&json!(1)), Reason::Static));

    let e = doc.evaluate("disabled-flag", &none);
    assert_eq!(
        (e.value, e.variant, e.reason, e.error_code),
        (None, None, Reason::Disabled, None)
    );

    for key in ["null-default-flag", "undefined-default-flag"] {
        let e = doc.evaluate(key, &none);
        assert_eq!(
            (e.value, e.variant, e.reason, e.error_code),
            (None, None, Reason::Default, None),
            "{key}"
        );
    }
    let f = "no-default-flag-null-targeting-variant";
    let e = doc.evaluate(f, &ctx(json!({"email": "wozniak@orange.com"})));
    assert_eq!((e.value, e.reason), (None, Reason::Default));
    let e = doc.evaluate(f, &ctx(json!({"email": "jobs@orange.com"})));
    assert_eq!(
        (e.value, e.reason),
        (Some(&json!("CEO")), Reason::TargetingMatch)
    );

    for (key, ty, zero) in [
        ("boolean-zero-flag", FlagType::Boolean, json!(false)),
        ("string-zero-flag", FlagType::String, json!("")),
        ("integer-zero-flag", FlagType::Integer, json!(0)),
        ("float-zero-flag", FlagType::Float, json!(0.0)),
        ("object-zero-flag", FlagType::Object, json!({})),
    ] {
        let e = doc.evaluate(key, &none).typed(ty);
        assert_eq!(
            (e.value, e.reason, e.error_code),
            (Some(&zero), Reason::Static, None),
            "{key}"
        );
    }
    let e = doc.evaluate(
        "integer-targeted-zero-flag",
        &ctx(json!({"email": "ballmer@macrosoft.com"})),
    );
    assert_eq!(
        (e.value, e.reason),
        (Some(&json!(0)), Reason::TargetingMatch)
    );
    let e = doc.evaluate(
        "integer-targeted-zero-flag",
        &ctx(json!({"email": "ballmer@none.com"})),
    );
    assert_eq!((e.value, e.reason), (Some(&json!(0)), Reason::Default));

    // Integer against float: an integer reads as a float, a float with a fraction is no integer.
    assert_eq!(
        doc.evaluate("integer-zero-flag", &none)
            .typed(FlagType::Float)
            .error_code,
        None
    );
    assert_eq!(
        doc.evaluate("integral-float-flag", &none)
            .typed(FlagType::Integer)
            .error_code,
        None
    );
    let e = doc.evaluate("float-flag", &none).typed(FlagType::Integer);
    assert_eq!(
        (e.value, e.reason, e.error_code),
        (None, Reason::Error, Some(ErrorCode::TypeMismatch))
    );
    for ty in [FlagType::Boolean, FlagType::Integer, FlagType::Float] {
        let e = doc.evaluate("string-flag", &none).typed(ty);
        assert_eq!(e.error_code, Some(ErrorCode::TypeMismatch), "{ty}");
    }
    for ty in [FlagType::String, FlagType::Integer, FlagType::Float] {
        assert_eq!(
            doc.evaluate("boolean-zero-flag", &none)
                .typed(ty)
                .error_code,
            Some(ErrorCode::TypeMismatch),
            "{ty}"
        );
    }

    // Flag metadata over the document's.
    let e = doc.evaluate("metadata-flag", &none);
    let metadata = e.flag_metadata.unwrap();
    assert_eq!(metadata.get("team"), Some(&json!("checkout")));
    assert_eq!(metadata.get("version"), Some(&json!(1)));
    assert_eq!(metadata.get("string"), Some(&json!("a")));
    assert_eq!(
        doc.evaluate("string-flag", &none)
            .flag_metadata
            .unwrap()
            .get("team"),
        Some(&json!("growth"))
    );

    assert_eq!(
        value(&doc, "timestamp-flag", json!({"time": 1})),
        Some(json!(-1))
    );
    assert_eq!(
        value(&doc, "timestamp-flag", json!({"time": 4_133_980_802u64})),
        Some(json!(1))
    );
    let e = doc.evaluate(
        "targeting-key-flag",
        &ctx(json!({"targetingKey": "5c3d8535-f81a-4478-a6d3-afaa4d51199e"})),
    );
    assert_eq!(
        (e.value, e.reason),
        (Some(&json!("hit")), Reason::TargetingMatch)
    );
    let e = doc.evaluate(
        "targeting-key-flag",
        &ctx(json!({"targetingKey": "f20bd32d-703b-48b6-bc8e-79d53c85134a"})),
    );
    assert_eq!((e.value, e.reason), (Some(&json!("miss")), Reason::Default));

    let e = doc.evaluate("no-such-flag", &none);
    assert_eq!(
        (e.reason, e.error_code),
        (Reason::Error, Some(ErrorCode::FlagNotFound))
    );
}

#[test]
fn evaluators_are_shared_through_ref() {
    // flagd-testbed flags/evaluator-refs.json.
    let doc = snapshot(json!({
        "flags": {
            "some-email-targeted-flag": {"state": "ENABLED", "variants": {"hi": "hi", "bye": "bye"}, "defaultVariant": "bye",
                "targeting": {"if": [{"$ref": "emailWithFaas"}, "hi", "bye"]}},
            "some-other-email-targeted-flag": {"state": "ENABLED", "variants": {"yes": "yes", "no": "no"}, "defaultVariant": "no",
                "targeting": {"if": [{"$ref": "emailWithFaas"}, "yes", "no"]}}
        },
        "$evaluators": {"emailWithFaas": {"in": ["@macrosoft.com", {"var": "email"}]}}
    }));
    let who = json!({"email": "ballmer@macrosoft.com"});
    assert_eq!(
        value(&doc, "some-email-targeted-flag", who.clone()),
        Some(json!("hi"))
    );
    assert_eq!(
        value(&doc, "some-other-email-targeted-flag", who),
        Some(json!("yes"))
    );
    assert_eq!(
        value(&doc, "some-email-targeted-flag", json!({"email": "a@b.c"})),
        Some(json!("bye"))
    );
}

fn many_flags_one_invalid() -> Value {
    let mut flags = serde_json::Map::new();
    for i in 0..50 {
        flags.insert(
            format!("flag-{i:02}"),
            json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                   "targeting": {"if": [{"in": [{"var": "plan"}, ["pro", "team"]]}, "on", "off"]}}),
        );
    }
    flags.insert(
        "flag-25".to_owned(),
        json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
               "targeting": {"if": [{"sem_ver_gte": [{"var": "version"}, "1.0.0"]}, "on", "off"]}}),
    );
    json!({"$schema": FlagDocument::SCHEMA, "flags": flags})
}

#[test]
fn in_a_document_of_many_flags_one_invalid_fails_alone() {
    let doc = snapshot(many_flags_one_invalid());
    let errors = doc.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (errors[0].kind, errors[0].key.as_str()),
        (ItemKind::Flag, "flag-25")
    );
    assert!(errors[0].field.starts_with("targeting.if"), "{}", errors[0]);
    assert!(errors[0].message.contains("sem_ver_gte"), "{}", errors[0]);
    let pro = ctx(json!({"plan": "pro"}));
    for key in doc.keys() {
        let e = doc.evaluate(&key, &pro);
        if key == "flag-25" {
            assert_eq!(e.error_code, Some(ErrorCode::ParseError));
        } else {
            assert_eq!(
                (e.value, e.reason),
                (Some(&json!(true)), Reason::TargetingMatch),
                "{key}"
            );
        }
    }
}

#[tokio::test]
async fn store_import_export_and_a_bad_flag_in_the_store() {
    let ns = Store::new(MemoryBackend::new())
        .namespace("FLAGS")
        .await
        .unwrap();
    let store = FlagStore::builder(ns.clone())
        .with_manual_refresh()
        .load()
        .await
        .unwrap();

    // All or nothing: a document with one invalid flag writes nothing.
    let bad: FlagDocument = serde_json::from_value(many_flags_one_invalid()).unwrap();
    let error = store.import_document(&bad).await.unwrap_err();
    assert_eq!(error.validation_errors().len(), 1, "{error}");
    assert!(error.to_string().contains("flag-25"), "{error}");
    assert!(ns.list(&Default::default()).await.unwrap().keys.is_empty());

    let mut good = bad.clone();
    good.flags.remove("flag-25");
    good.metadata.insert("owner".to_owned(), json!("growth"));
    good.evaluators
        .insert("pro".to_owned(), json!({"==": [{"var": "plan"}, "pro"]}));
    good.flags.insert(
        "uses-ref".to_owned(),
        json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
               "targeting": {"if": [{"$ref": "pro"}, "on", "off"]}}),
    );
    assert_eq!(store.import_document(&good).await.unwrap(), 50);
    let pro = ctx(json!({"plan": "pro"}));
    let d = store.evaluate_as("uses-ref", &pro, FlagType::Boolean);
    assert_eq!(
        (d.value, d.reason),
        (Some(json!(true)), Reason::TargetingMatch)
    );
    assert_eq!(d.flag_metadata.get("owner"), Some(&json!("growth")));
    assert_eq!(store.keys().len(), 50);

    let exported = store.export_document().await.unwrap();
    assert_eq!(exported.flags.len(), 50);
    assert_eq!(exported.evaluators, good.evaluators);
    assert_eq!(exported.metadata, good.metadata);
    let round = FlagSnapshot::from_flagd_document(&exported);
    assert!(round.errors().is_empty());
    assert_eq!(round.evaluate("uses-ref", &pro).value, Some(&json!(true)));

    // A flag broken in the store behind the API's back keeps its last good definition; the
    // others go on refreshing.
    ns.put_json("flag:uses-ref", &json!({"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on", "targeting": {"nope": []}}))
        .await
        .unwrap();
    ns.put_json(
        "flag:flag-00",
        &json!({"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"}),
    )
    .await
    .unwrap();
    store.refresh().await.unwrap();
    assert_eq!(store.evaluate("uses-ref", &pro).value, Some(json!(true)));
    assert_eq!(
        store.evaluate("flag-00", &EvaluationContext::new()).reason,
        Reason::Static
    );
    let errors = store.validation_errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].key, "uses-ref");
    assert!(store.stats().last_error.unwrap().contains("uses-ref"));
    // A new invalid flag with no earlier definition answers PARSE_ERROR.
    ns.put_text("flag:fresh", "{not json").await.unwrap();
    store.refresh().await.unwrap();
    assert_eq!(
        store.evaluate("fresh", &pro).error_code,
        Some(ErrorCode::ParseError)
    );
    assert_eq!(store.evaluate("flag-01", &pro).value, Some(json!(true)));
}

#[test]
fn documents_that_are_not_documents_are_refused() {
    for text in ["{not json", "[]", r#"{"flags": 3}"#, r#"{"flag": {}}"#] {
        let error = FlagSnapshot::from_document(text).unwrap_err();
        assert!(!error.validation_errors().is_empty(), "{text}");
    }
}
