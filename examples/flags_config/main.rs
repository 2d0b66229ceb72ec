//! Feature flags and runtime config on any store: a page whose design changes with a flag, a
//! beta page hidden unless a flag is on, and an API whose limits and keys come from a config
//! document.
//!
//! ```text
//! cargo run -p kv-examples --bin kv-flags-config                        # file:./kv-data, 127.0.0.1:3003
//! cargo run -p kv-examples --bin kv-flags-config -- --store memory: --listen 127.0.0.1:8080
//! KV_STORE=file:/tmp/flags cargo run -p kv-examples --bin kv-flags-config
//! ```
//!
//! Open the printed address (add `?user=ada` to be someone; `ada` is on the beta allow-list),
//! and try the API:
//!
//! ```text
//! curl -i http://127.0.0.1:3003/api/items                               # 401: no key
//! curl -s -H 'X-API-Key: demo-key' http://127.0.0.1:3003/api/items
//! curl -s http://127.0.0.1:3003/status
//! ```
//!
//! # Flip the flag and edit the config with the `kv` tool
//!
//! The file store admits one process at a time, so while this program runs on `./kv-data`,
//! share the store through `kv serve` and point both at it:
//!
//! ```text
//! cargo run -p kv-server --bin kv -- serve --store file:./kv-data --listen 127.0.0.1:8787 &
//! cargo run -p kv-examples --bin kv-flags-config -- --store http://127.0.0.1:8787
//! export KV_STORE=http://127.0.0.1:8787
//!
//! # The new home page for everyone (the flag is one JSON entry, `flag:<key>`):
//! kv --namespace FLAGS key put flag:new-homepage \
//!   '{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}'
//! # ... for 30 % of users only (by user, stable; growing the percentage only adds users):
//! kv --namespace FLAGS key put flag:new-homepage \
//!   '{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off","rules":[{"split":[["on",30],["off",70]]}]}'
//! # ... and off for everyone, whatever the rules say:
//! kv --namespace FLAGS key put flag:new-homepage \
//!   '{"state":"DISABLED","variants":{"on":true,"off":false},"defaultVariant":"off"}'
//! kv --namespace FLAGS key list --prefix flag:
//!
//! # The config is one JSON document; a change is validated before use (max_items 1..=100):
//! kv --namespace CONFIG key get app
//! kv --namespace CONFIG key put app \
//!   '{"title":"Shop","max_items":3,"banner":"Sale today","api_keys":["demo-key","partner-key"]}'
//! ```
//!
//! Changes show within the refresh interval (`--refresh-secs`, 5 s here; 30 s is the library's
//! default). A document that does not validate (try `"max_items":0`, or `"defaultVariant":"maybe"`
//! in a flag) is refused: the service keeps the last good one and logs why, and `/status` shows
//! the error. With `--store memory:` nothing outlives the process and only this program sees
//! the store; with Redis (`redis://...`) both the program and `kv` use it directly.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::Parser;
use kv_core::DEFAULT_STORE_URL;
use kv_examples::escape_html;
use kv_middleware::config::{ApiKeyLayer, Config, ConfigLayer};
use kv_middleware::flags::{
    default_context, FlagDefinition, FlagStore, Flags, FlagsLayer, RequireFlagLayer, Rule,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A page that changes with a flag and an API whose limits come from config.
#[derive(Debug, Parser)]
struct Args {
    /// The store URL (`file:PATH`, `memory:`, `http://HOST:PORT` of `kv serve`, `redis://...`).
    #[arg(long, env = "KV_STORE", default_value = DEFAULT_STORE_URL)]
    store: String,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:3003")]
    listen: SocketAddr,
    /// The namespace holding the flags.
    #[arg(long, default_value = "FLAGS")]
    flags_namespace: String,
    /// The namespace holding the config document.
    #[arg(long, default_value = "CONFIG")]
    config_namespace: String,
    /// Seconds between background refreshes of flags and config.
    #[arg(long, default_value_t = 5)]
    refresh_secs: u64,
    /// Connection timeouts (header, idle and body reads), as `kv serve` takes them.
    #[command(flatten)]
    timeouts: kv_server::TimeoutArgs,
}

/// The runtime config: one JSON document under the key `app`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppConfig {
    /// The page title.
    title: String,
    /// Items per API answer and on the page (1..=100).
    max_items: u32,
    /// A banner over the page, if any.
    #[serde(default)]
    banner: Option<String>,
    /// The keys `/api/...` admits.
    #[serde(default)]
    api_keys: Vec<String>,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            title: "KV demo shop".to_owned(),
            max_items: 5,
            banner: None,
            api_keys: vec!["demo-key".to_owned()],
        }
    }
}

fn validate(config: &AppConfig) -> Result<(), String> {
    if !(1..=100).contains(&config.max_items) {
        return Err(format!(
            "max_items must be 1..=100, not {}",
            config.max_items
        ));
    }
    if config.title.trim().is_empty() {
        return Err("title must not be empty".to_owned());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kv_examples::init_tracing("info");
    let args = Args::parse();
    let store = kv_examples::open_store(&args.store).await?;
    let interval = Duration::from_secs(args.refresh_secs.max(1));

    // Flags: load (a bad flag in the store would refuse to start: fix it, or use `build()` to
    // start without flags), then seed the demo's flags unless an operator wrote them already.
    let flags = FlagStore::builder(store.namespace(&args.flags_namespace).await?)
        .with_refresh_interval(interval)
        .load()
        .await
        .context("loading the flags")?;
    flags
        .set_flag_if_absent(
            "new-homepage",
            &FlagDefinition::boolean(false)
                .with_rule(Rule::split([("on", 50), ("off", 50)]))
                .with_metadata("owner", "web-team")
                .with_metadata(
                    "description",
                    "the redesigned home page, to half of the users",
                ),
        )
        .await?;
    flags
        .set_flag_if_absent(
            "beta-page",
            &FlagDefinition::boolean(false).with_targets("on", ["ada"]),
        )
        .await?;

    // Config: the stored document, or the default (written once so `kv key get` shows it).
    let config = Config::builder(store.namespace(&args.config_namespace).await?, "app")
        .with_default_value(AppConfig::default())
        .with_validator(validate)
        .with_refresh_interval(interval)
        .load()
        .await
        .context("loading the config")?;
    if config.namespace().get("app").await?.is_none() {
        config.set(&AppConfig::default()).await?;
    }

    // The user: `?user=` (for trying it in a browser), else the `X-User-ID` header. Both are
    // chosen by the client: fine for trying a rollout, never for access control (the default
    // context takes no identity from the request; a session layer gives one that cannot be
    // forged).
    let flags_layer =
        FlagsLayer::new(flags.clone()).with_context(|parts: &http::request::Parts| {
            let mut context = default_context(parts);
            let from_header = parts
                .headers
                .get(kv_middleware::flags::DEFAULT_USER_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|user| !user.is_empty() && user.len() <= 64)
                .map(str::to_owned);
            if from_header.is_some() {
                context.set_targeting_key(from_header);
            }
            let from_query = parts.uri.query().and_then(|q| {
                q.split('&')
                    .find_map(|pair| pair.strip_prefix("user="))
                    .filter(|user| !user.is_empty() && user.len() <= 64)
                    .map(str::to_owned)
            });
            if from_query.is_some() {
                context.set_targeting_key(from_query);
            }
            context
        });

    let api = Router::new()
        .route("/api/items", get(items))
        .layer(ApiKeyLayer::new(config.clone(), |c| c.api_keys.as_slice()));
    let beta = Router::new()
        .route("/beta", get(beta_page))
        .route_layer(RequireFlagLayer::new("beta-page"));
    let status_flags = flags.clone();
    let app = Router::new()
        .route("/", get(home))
        .route(
            "/status",
            get(move |config: Config<AppConfig>| status(status_flags, config)),
        )
        .merge(beta)
        .merge(api)
        .layer(flags_layer)
        .layer(ConfigLayer::new(config));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    println!(
        "kv-flags-config listening on http://{} (flags in {:?}, config in {:?}, {} store {}, refresh every {} s)",
        listener.local_addr()?,
        args.flags_namespace,
        args.config_namespace,
        store.kind(),
        kv_core::redact_store_url(&args.store),
        interval.as_secs()
    );
    kv_examples::serve(listener, app, &args.timeouts).await?;
    Ok(())
}

async fn home(flags: Flags, config: Config<AppConfig>) -> Html<String> {
    let settings = config.get();
    let details = flags.details("new-homepage");
    let user = flags
        .context()
        .targeting_key()
        .unwrap_or("(nobody: add ?user=NAME)");
    let items: String = (1..=settings.max_items)
        .map(|i| format!("<li>Item {i}</li>"))
        .collect();
    let banner = settings
        .banner
        .as_deref()
        .map(|b| format!("<p class=\"banner\">{}</p>", escape_html(b)))
        .unwrap_or_default();
    let beta_link = if flags.is_enabled("beta-page") {
        format!(
            "<p><a href=\"/beta?user={}\">Try the beta page</a></p>",
            escape_html(flags.context().targeting_key().unwrap_or_default())
        )
    } else {
        String::new()
    };
    let (style, heading) = if flags.is_enabled("new-homepage") {
        (
            "font-family:system-ui;background:#0b1f3a;color:#f2f5fa;padding:2em",
            "The new home page",
        )
    } else {
        (
            "font-family:serif;background:#fffbea;color:#222;padding:2em",
            "The classic home page",
        )
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"{style}\"><h1>{title}: {heading}</h1>{banner}\
         <p>You are {user}. Flag <code>new-homepage</code>: variant {variant:?}, reason {reason}.</p>\
         <p>Config version {version:?}: showing {max} items.</p><ul>{items}</ul>{beta_link}\
         </body></html>",
        title = escape_html(&settings.title),
        user = escape_html(user),
        variant = details.variant.unwrap_or("none"),
        reason = details.reason,
        version = config.version(),
        max = settings.max_items,
    ))
}

async fn beta_page(flags: Flags) -> Html<String> {
    let user = flags.context().targeting_key().unwrap_or_default();
    Html(format!(
        "<h1>Beta</h1><p>Welcome to the beta, {}.</p>",
        escape_html(user)
    ))
}

async fn items(config: Config<AppConfig>) -> Response {
    let max = config.get().max_items;
    json_response(json!({
        "items": (1..=max).map(|i| format!("item-{i}")).collect::<Vec<_>>(),
        "max_items": max,
        "config_version": config.version(),
    }))
}

async fn status(flags: FlagStore, config: Config<AppConfig>) -> Response {
    let f = flags.stats();
    let c = config.stats();
    json_response(json!({
        "flags": {
            "keys": flags.keys(),
            "stale": flags.is_stale(),
            "refreshes": f.refreshes,
            "updates": f.updates,
            "store_errors": f.store_errors,
            "rejected": f.rejected,
            "last_error": f.last_error,
        },
        "config": {
            "version": config.version(),
            "refreshes": c.refreshes,
            "updates": c.updates,
            "rejected": c.rejected,
            "store_errors": c.store_errors,
            "last_error": c.last_error,
        },
    }))
}

fn json_response(value: Value) -> Response {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}
