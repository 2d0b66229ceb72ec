//! First-start defaults: the config document and the `new-ui` flag, written only when absent.

use kv_middleware::flags::{FlagDefinition, Rule};

use crate::app::Demo;
use crate::config::DemoConfig;

/// The flag that switches the page to its new look, for half of the users.
pub const NEW_UI: &str = "new-ui";

/// The `new-ui` flag as first written: on for a stable 50 % of users.
pub fn new_ui_flag() -> FlagDefinition {
    FlagDefinition::boolean(false)
        .with_rule(Rule::split([("on", 50), ("off", 50)]))
        .with_metadata("owner", "web-team")
        .with_metadata(
            "description",
            "the new look of the home page, for half of the users",
        )
}

/// Writes the default config and the `new-ui` flag unless the store has them, so a restart
/// (or a second process on the same store) keeps what an admin changed.
pub async fn defaults(demo: &Demo) -> anyhow::Result<()> {
    let config = &demo.config;
    if config.namespace().get_entry(config.key()).await?.is_none() {
        config.set(&DemoConfig::default()).await?;
        tracing::info!(key = config.key(), "seeded the default config");
    }
    let flags = &demo.flags;
    if flags.set_flag_if_absent(NEW_UI, &new_ui_flag()).await? {
        tracing::info!(flag = NEW_UI, "seeded the flag");
    }
    flags.refresh().await?;
    Ok(())
}
