//! The demo's runtime config: a public part any visitor may read and a private part only the
//! admin routes show.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The whole config document, stored as JSON under the `demo` key of the `CONFIG` namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// What `GET /api/config` answers and the page shows.
    pub public: PublicConfig,
    /// Settings for operators only (free-form).
    #[serde(default)]
    pub private: Map<String, Value>,
}

/// The part of the config that anyone may read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicConfig {
    /// The page's title.
    pub title: String,
    /// A line shown at the top of the page, if any.
    #[serde(default)]
    pub banner: Option<String>,
    /// How much `POST /counter` adds.
    pub counter_step: u32,
}

impl Default for DemoConfig {
    fn default() -> Self {
        let mut private = Map::new();
        private.insert("owner".into(), Value::from("ops@example.com"));
        DemoConfig {
            public: PublicConfig {
                title: "kv-demo".to_owned(),
                banner: Some(
                    "Sessions, rate limits, caching, flags and config on one store.".into(),
                ),
                counter_step: 1,
            },
            private,
        }
    }
}

/// Rejects documents the app cannot use; a rejected write never reaches the store, and a
/// rejected document found in the store leaves the last good one in use.
pub fn validate(config: &DemoConfig) -> Result<(), String> {
    let title = config.public.title.trim();
    if title.is_empty() || title.chars().count() > 80 {
        return Err("public.title must be 1 to 80 characters".to_owned());
    }
    if config
        .public
        .banner
        .as_deref()
        .is_some_and(|b| b.chars().count() > 200)
    {
        return Err("public.banner must be at most 200 characters".to_owned());
    }
    if !(1..=100).contains(&config.public.counter_step) {
        return Err(format!(
            "public.counter_step must be 1 to 100, not {}",
            config.public.counter_step
        ));
    }
    Ok(())
}
