//! The OpenFeature provider through the `open-feature` crate's own client: values of every
//! type, variants, reasons and metadata passed through, the context mapped both ways, errors
//! and the caller's default.
#![cfg(feature = "openfeature")]

use std::sync::Arc;

use kv_middleware::flags::{EvaluationContext as Ours, FlagDocument, FlagStore};
use kv_middleware::openfeature::{
    from_openfeature_context, to_openfeature_context, FlagStoreProvider,
};
use open_feature::provider::{FeatureProvider, ProviderStatus};
use open_feature::{
    EvaluationContext, EvaluationContextFieldValue, EvaluationErrorCode, EvaluationReason,
    FlagMetadataValue, OpenFeature, StructValue, Value,
};
use serde_json::json;

const DOCUMENT: &str = r##"{
  "metadata": {"team": "growth"},
  "flags": {
    "new-ui": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
               "targeting": {"if": [{"==": [{"var": "plan"}, "pro"]}, "on", "off"]},
               "metadata": {"ticket": 42}},
    "color": {"state": "ENABLED", "variants": {"red": "#c00", "blue": "#00c"}, "defaultVariant": "red"},
    "limit": {"state": "ENABLED", "variants": {"low": 10, "high": 1000}, "defaultVariant": "high"},
    "ratio": {"state": "ENABLED", "variants": {"a": 0.25}, "defaultVariant": "a"},
    "theme": {"state": "ENABLED", "variants": {"dark": {"bg": "#000", "depth": 2}}, "defaultVariant": "dark"},
    "old-flow": {"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}
  }
}"##;

#[tokio::test]
async fn the_openfeature_client_reads_our_flags() {
    let store = kv_backends::open("memory:").await.unwrap();
    let flags = FlagStore::builder(store.namespace("FLAGS").await.unwrap())
        .with_manual_refresh()
        .build();
    let provider = FlagStoreProvider::new(flags.clone());
    assert_eq!(provider.status(), ProviderStatus::NotReady);
    flags
        .import_document(&FlagDocument::parse(DOCUMENT).unwrap())
        .await
        .unwrap();
    assert_eq!(provider.status(), ProviderStatus::Ready);

    let mut api = OpenFeature::singleton_mut().await;
    api.set_provider(provider).await;
    let client = api.create_client();
    drop(api);

    let pro = EvaluationContext::default()
        .with_targeting_key("user-1")
        .with_custom_field("plan", "pro");
    let details = client
        .get_bool_details("new-ui", Some(&pro), None)
        .await
        .unwrap();
    assert!(details.value);
    assert_eq!(details.variant.as_deref(), Some("on"));
    assert_eq!(details.reason, Some(EvaluationReason::TargetingMatch));
    let metadata = details.flag_metadata.values;
    assert_eq!(metadata.get("ticket"), Some(&FlagMetadataValue::Int(42)));
    assert_eq!(
        metadata.get("team"),
        Some(&FlagMetadataValue::String("growth".into())),
        "the document's metadata under the flag's"
    );

    let free = EvaluationContext::default().with_custom_field("plan", "free");
    let details = client
        .get_bool_details("new-ui", Some(&free), None)
        .await
        .unwrap();
    assert!(!details.value);
    assert_eq!(details.reason, Some(EvaluationReason::TargetingMatch));

    let color = client
        .get_string_details("color", None, None)
        .await
        .unwrap();
    assert_eq!(color.value, "#c00");
    assert_eq!(color.reason, Some(EvaluationReason::Static));
    assert_eq!(
        client.get_int_value("limit", None, None).await.unwrap(),
        1000
    );
    assert_eq!(
        client.get_float_value("ratio", None, None).await.unwrap(),
        0.25
    );
    let theme: StructValue = client.get_struct_value("theme", None, None).await.unwrap();
    assert_eq!(theme.fields.get("bg"), Some(&Value::String("#000".into())));
    assert_eq!(theme.fields.get("depth"), Some(&Value::Int(2)));

    // Errors: the client answers Err, the caller takes its default.
    let missing = client.get_bool_value("nope", None, None).await.unwrap_err();
    assert_eq!(missing.code, EvaluationErrorCode::FlagNotFound);
    let mismatch = client.get_int_value("color", None, None).await.unwrap_err();
    assert_eq!(mismatch.code, EvaluationErrorCode::TypeMismatch);
    let disabled = client.get_bool_value("old-flow", None, None).await;
    assert_eq!(
        disabled.clone().unwrap_err().code,
        EvaluationErrorCode::General("DISABLED".into())
    );
    assert!(
        disabled.unwrap_or(true),
        "the caller's default, not the flag's variant"
    );
}

#[test]
fn contexts_map_both_ways() {
    let ours = Ours::new()
        .with_targeting_key("u1")
        .with_attribute("plan", "pro")
        .with_attribute("age", 31)
        .with_attribute("score", 0.5)
        .with_attribute("beta", true)
        .with_attribute("tags", json!(["a", "b"]));
    let theirs = to_openfeature_context(&ours);
    assert_eq!(theirs.targeting_key.as_deref(), Some("u1"));
    assert_eq!(
        theirs.custom_fields.get("age"),
        Some(&EvaluationContextFieldValue::Int(31))
    );
    assert_eq!(
        theirs.custom_fields.get("score"),
        Some(&EvaluationContextFieldValue::Float(0.5))
    );
    let back = from_openfeature_context(&theirs);
    assert_eq!(back.targeting_key(), Some("u1"));
    for name in ["plan", "age", "score", "beta", "tags"] {
        assert_eq!(back.attribute(name), ours.attribute(name), "{name}");
    }

    // A structure of OpenFeature's own type, and one of a type we cannot read (left out).
    let structure = StructValue::default().with_field("city", "Lyon");
    let theirs = EvaluationContext::default()
        .with_custom_field(
            "address",
            EvaluationContextFieldValue::new_struct(structure),
        )
        .with_custom_field("opaque", EvaluationContextFieldValue::Struct(Arc::new(7u8)));
    let ours = from_openfeature_context(&theirs);
    assert_eq!(ours.attribute("address"), Some(&json!({"city": "Lyon"})));
    assert_eq!(ours.attribute("opaque"), None);
    assert_eq!(ours.targeting_key(), None);
}
