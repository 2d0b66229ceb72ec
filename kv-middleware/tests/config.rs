//! Runtime config: load, validation, update, versions and rollback, visibility from a second
//! handle, refresh failures, concurrent writers with compare-and-swap, and the API-key layer;
//! on the memory and file backends.
#![cfg(feature = "config")]

#[path = "flags_support/mod.rs"]
#[macro_use]
mod support;

use std::time::Duration;

use kv_middleware::config::{Config, ConfigError, ConfigRefresh, ConfigVersion};
use serde::{Deserialize, Serialize};
use serde_json::json;
use support::Fixture;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Limits {
    max_items: u32,
    #[serde(default)]
    api_keys: Vec<String>,
    #[serde(default)]
    counter: u64,
}

fn defaults() -> Limits {
    Limits {
        max_items: 10,
        api_keys: vec![],
        counter: 0,
    }
}

fn positive(limits: &Limits) -> Result<(), String> {
    if limits.max_items == 0 {
        Err("max_items must be at least 1".to_owned())
    } else {
        Ok(())
    }
}

async fn config(fx: &Fixture) -> Config<Limits> {
    Config::builder(fx.namespace("CONFIG").await, "limits")
        .with_default_value(defaults())
        .with_validator(positive)
        .with_manual_refresh()
        .load()
        .await
        .unwrap()
}

async fn load_default_missing_and_invalid(fx: Fixture) {
    let ns = fx.namespace("CONFIG").await;
    // Missing, no default: an error; with a default: the default, not written.
    let missing = Config::<Limits>::builder(ns.clone(), "limits")
        .with_manual_refresh()
        .load()
        .await;
    assert!(matches!(missing, Err(ConfigError::Missing { .. })));
    let config = config(&fx).await;
    assert_eq!(*config.get(), defaults());
    assert_eq!(config.version(), None);
    assert!(ns.get("limits").await.unwrap().is_none());

    // Invalid at start: with a default, the default (and the error is kept); without, an error
    // naming the field.
    ns.put_json("limits", &json!({"max_items": "many"}))
        .await
        .unwrap();
    let error = Config::<Limits>::builder(ns.clone(), "limits")
        .with_manual_refresh()
        .load()
        .await
        .unwrap_err();
    match &error {
        ConfigError::Invalid { key, field, .. } => {
            assert_eq!(key, "limits");
            assert_eq!(field, "max_items");
        }
        other => panic!("{other}"),
    }
    let config = config_with_default(&fx).await;
    assert_eq!(*config.get(), defaults());
    assert!(config.stats().last_error.unwrap().contains("max_items"));
    // Refused by the validation function.
    ns.put_json("limits", &json!({"max_items": 0}))
        .await
        .unwrap();
    let error = Config::<Limits>::builder(ns.clone(), "limits")
        .with_validator(positive)
        .with_manual_refresh()
        .load()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("at least 1"), "{error}");
    // Valid: loaded, with no version number (written by other means).
    ns.put_json("limits", &json!({"max_items": 3}))
        .await
        .unwrap();
    let config = config_with_default(&fx).await;
    assert_eq!(config.get().max_items, 3);
    assert_eq!(config.version(), None);
}

async fn config_with_default(fx: &Fixture) -> Config<Limits> {
    config(fx).await
}

async fn update_versions_and_rollback(fx: Fixture) {
    let config = config(&fx).await;
    let v1 = config.update(|l| l.max_items = 20).await.unwrap();
    assert_eq!(
        (v1, config.version(), config.get().max_items),
        (1, Some(1), 20)
    );
    fx.clock.advance(Duration::from_secs(60));
    let v2 = config
        .set(&Limits {
            max_items: 30,
            ..defaults()
        })
        .await
        .unwrap();
    assert_eq!(v2, 2);
    // Refused by validation: nothing written.
    let error = config.update(|l| l.max_items = 0).await.unwrap_err();
    assert!(matches!(error, ConfigError::Invalid { .. }), "{error}");
    assert_eq!(config.get().max_items, 30);
    assert_eq!(config.version(), Some(2));

    let versions = config.versions().await.unwrap();
    assert_eq!(
        versions,
        vec![
            ConfigVersion {
                version: 1,
                updated_at: Some(support::START),
                note: None
            },
            ConfigVersion {
                version: 2,
                updated_at: Some(support::START + 60),
                note: None
            },
        ]
    );
    assert_eq!(config.version_value(1).await.unwrap().max_items, 20);
    let v3 = config.rollback(1).await.unwrap();
    assert_eq!((v3, config.get().max_items), (3, 20));
    let last = config.versions().await.unwrap().pop().unwrap();
    assert_eq!(last.note.as_deref(), Some("rollback to 1"));
    assert!(matches!(
        config.rollback(99).await,
        Err(ConfigError::VersionNotFound { version: 99, .. })
    ));
}

async fn only_the_last_versions_are_kept(fx: Fixture) {
    let config = Config::builder(fx.namespace("CONFIG").await, "limits")
        .with_default_value(defaults())
        .with_max_versions(3)
        .with_manual_refresh()
        .load()
        .await
        .unwrap();
    for n in 1..=7 {
        config.update(|l| l.max_items = n).await.unwrap();
    }
    let kept: Vec<u64> = config
        .versions()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(kept, [5, 6, 7]);
    assert!(matches!(
        config.rollback(2).await,
        Err(ConfigError::VersionNotFound { .. })
    ));
    // Written with the kv tool (no metadata): used, unnumbered; the next update numbers on.
    let ns = config.namespace().clone();
    ns.put_json("limits", &json!({"max_items": 42}))
        .await
        .unwrap();
    config.refresh().await.unwrap();
    assert_eq!((config.get().max_items, config.version()), (42, None));
    assert_eq!(config.update(|l| l.max_items += 1).await.unwrap(), 8);
    assert_eq!(config.get().max_items, 43);
}

async fn a_second_handle_sees_updates_after_a_refresh(fx: Fixture) {
    let writer = config(&fx).await;
    let reader = config(&fx).await; // another process's view of the same namespace
    writer.update(|l| l.max_items = 77).await.unwrap();
    assert_eq!(writer.get().max_items, 77, "at once in the writing process");
    assert_eq!(reader.get().max_items, 10, "not before a refresh");
    fx.clock.advance(Duration::from_secs(30));
    assert_eq!(reader.refresh().await.unwrap(), ConfigRefresh::Updated);
    assert_eq!((reader.get().max_items, reader.version()), (77, Some(1)));
    assert_eq!(reader.refresh().await.unwrap(), ConfigRefresh::Unchanged);
    let stats = reader.stats();
    assert_eq!((stats.refreshes, stats.updates), (2, 1));
    assert_eq!(
        stats.last_success_unix_ms,
        Some((support::START + 30) * 1000)
    );
    // Rollback by one is seen by the other too.
    writer.rollback(1).await.unwrap();
    reader.refresh().await.unwrap();
    assert_eq!(reader.version(), Some(2));
}

async fn bad_documents_and_store_failures_keep_the_last_good_value(fx: Fixture) {
    let config = config(&fx).await;
    config.update(|l| l.max_items = 5).await.unwrap();
    let ns = config.namespace().clone();
    for bad in [
        json!({"max_items": -1}),
        json!({"max_items": 0}),
        json!("nope"),
    ] {
        ns.put_json("limits", &bad).await.unwrap();
        assert!(matches!(
            config.refresh().await,
            Err(ConfigError::Invalid { .. })
        ));
        assert_eq!(config.get().max_items, 5);
    }
    ns.put_text("limits", "{truncated").await.unwrap();
    assert!(config.refresh().await.is_err());
    ns.delete("limits").await.unwrap();
    assert!(matches!(
        config.refresh().await,
        Err(ConfigError::Missing { .. })
    ));
    assert_eq!(config.get().max_items, 5);
    fx.fail(true);
    fx.clock.advance(Duration::from_secs(100));
    assert!(matches!(config.refresh().await, Err(ConfigError::Store(_))));
    assert_eq!(config.get().max_items, 5, "reads never fail");
    assert!(config.is_older_than(Duration::from_secs(90)));
    let stats = config.stats();
    assert_eq!((stats.rejected, stats.store_errors), (5, 1));
    assert!(stats.last_error.is_some());
    fx.fail(false);
    // An update replaces a missing document, starting from the value in use.
    config.update(|l| l.max_items += 1).await.unwrap();
    assert_eq!(config.get().max_items, 6);
    assert!(config.stats().last_error.is_none());
}

async fn concurrent_writers_with_cas(fx: Fixture) {
    // The two writers' first writes meet at a gate, so they race for certain.
    let (namespace, races) = kv_core::testing::RaceGate::wrap(&fx.namespace("CONFIG").await, 2);
    let over_gate = || {
        Config::builder(namespace.clone(), "limits")
            .with_default_value(defaults())
            .with_validator(positive)
            .with_manual_refresh()
            .load()
    };
    let a = over_gate().await.unwrap();
    let b = over_gate().await.unwrap();
    let bump = |config: Config<Limits>| async move {
        for _ in 0..15 {
            config.update(|l| l.counter += 1).await.unwrap();
        }
    };
    let ta = tokio::spawn(bump(a.clone()));
    let tb = tokio::spawn(bump(b.clone()));
    ta.await.unwrap();
    tb.await.unwrap();
    a.refresh().await.unwrap();
    b.refresh().await.unwrap();
    assert_eq!(b.get().counter, 30, "no update lost");
    assert_eq!(a.version(), Some(30));
    assert!(races.conflicts() > 0, "the writers collided");
    // An admin form: write only if still at the version seen.
    let seen = a.version().unwrap();
    a.set_if_version(
        &Limits {
            max_items: 1,
            ..defaults()
        },
        seen,
    )
    .await
    .unwrap();
    let lost = b
        .set_if_version(
            &Limits {
                max_items: 2,
                ..defaults()
            },
            seen,
        )
        .await;
    assert!(matches!(
        lost,
        Err(ConfigError::Conflict {
            current: Some(31),
            ..
        })
    ));
    b.refresh().await.unwrap();
    assert_eq!(b.get().max_items, 1);
}

backend_tests!(
    load_default_missing_and_invalid,
    update_versions_and_rollback,
    only_the_last_versions_are_kept,
    a_second_handle_sees_updates_after_a_refresh,
    bad_documents_and_store_failures_keep_the_last_good_value,
    concurrent_writers_with_cas,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_task_refreshes() {
    let fx = Fixture::memory();
    let writer = config(&fx).await;
    let reader = Config::builder(fx.namespace("CONFIG").await, "limits")
        .with_default_value(defaults())
        .with_refresh_interval(Duration::from_millis(20))
        .load()
        .await
        .unwrap();
    writer.update(|l| l.max_items = 99).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while reader.get().max_items != 99 {
        assert!(std::time::Instant::now() < deadline, "never refreshed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(feature = "axum")]
mod layers {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use http::{Request, StatusCode};
    use kv_middleware::config::{ApiKeyLayer, ConfigLayer};
    use tower::ServiceExt;

    async fn items(config: Config<Limits>) -> String {
        format!("max {}", config.get().max_items)
    }

    fn keys(limits: &Limits) -> &[String] {
        &limits.api_keys
    }

    #[tokio::test]
    async fn config_extractor_and_api_keys() {
        let fx = Fixture::memory();
        let config = config(&fx).await;
        config
            .update(|l| l.api_keys = vec!["k-1".into(), "k-2-longer".into()])
            .await
            .unwrap();
        let app = Router::new()
            .route("/items", get(items))
            .layer(ApiKeyLayer::new(config.clone(), keys))
            .layer(ConfigLayer::new(config.clone()));
        let call = |header: Option<(&str, &str)>| {
            let mut request = Request::get("/items");
            if let Some((name, value)) = header {
                request = request.header(name, value);
            }
            request.body(Body::empty()).unwrap()
        };
        let status =
            |app: Router, header| async move { app.oneshot(call(header)).await.unwrap().status() };
        assert_eq!(
            status(app.clone(), Some(("x-api-key", "k-1"))).await,
            StatusCode::OK
        );
        assert_eq!(
            status(app.clone(), Some(("authorization", "Bearer k-2-longer"))).await,
            StatusCode::OK
        );
        assert_eq!(
            status(app.clone(), Some(("authorization", "bearer  k-1 "))).await,
            StatusCode::OK
        );
        for wrong in ["k-2", "k-1 ", "K-1", "", "k-2-longer-still"] {
            assert_eq!(
                status(app.clone(), Some(("x-api-key", wrong))).await,
                StatusCode::UNAUTHORIZED,
                "{wrong:?}"
            );
        }
        assert_eq!(
            status(app.clone(), Some(("authorization", "Basic k-1"))).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(status(app.clone(), None).await, StatusCode::UNAUTHORIZED);
        let response = app
            .clone()
            .oneshot(call(Some(("x-api-key", "k-1"))))
            .await
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"max 10");

        // Revoking a key is a config update.
        config
            .update(|l| l.api_keys.retain(|k| k != "k-1"))
            .await
            .unwrap();
        assert_eq!(
            status(app.clone(), Some(("x-api-key", "k-1"))).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(app.clone(), Some(("x-api-key", "k-2-longer"))).await,
            StatusCode::OK
        );
        // No keys: nobody.
        config.update(|l| l.api_keys.clear()).await.unwrap();
        assert_eq!(
            status(app, Some(("x-api-key", "k-2-longer"))).await,
            StatusCode::UNAUTHORIZED
        );
        let layer = ApiKeyLayer::new(config, keys);
        assert!(!layer.is_allowed("k-2-longer"));
    }

    #[tokio::test]
    async fn the_extractor_without_the_layer_is_a_500_naming_it() {
        let app = Router::new().route("/items", get(items));
        let response = app
            .oneshot(Request::get("/items").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body).contains("ConfigLayer"));
    }
}
