//! Serves any backend over the Cloudflare Workers KV REST API v4 shape, so programs in any
//! language (and the `http` backend of this toolkit) share one store.
//!
//! Under `/client/v4/accounts/{account_id}/storage/kv/namespaces` (any account id is accepted):
//!
//! | method and path | what it does |
//! | --- | --- |
//! | `GET /`, `POST /` `{title}` | list namespaces, create one |
//! | `GET /{ns}`, `PUT /{ns}` `{title}`, `DELETE /{ns}` | read, rename, remove a namespace |
//! | `GET /{ns}/values/{key}` | the raw value; `expiration`, `ETag` and `x-kv-metadata` headers |
//! | `PUT /{ns}/values/{key}?expiration=&expiration_ttl=` | raw body, or multipart `value` + `metadata` |
//! | `DELETE /{ns}/values/{key}` | remove a key (absent is fine) |
//! | `GET /{ns}/metadata/{key}` | the key's metadata |
//! | `GET /{ns}/keys?prefix=&limit=&cursor=` | a page of keys; `result_info {count, cursor}` |
//! | `PUT /{ns}/bulk` | write up to 10 000 items (`base64` values allowed) |
//! | `POST /{ns}/bulk/delete` (or `DELETE /{ns}/bulk`) | delete up to 10 000 keys |
//! | `POST /{ns}/bulk/get` `{keys, type, withMetadata}` | read up to 100 keys |
//!
//! plus `GET /metrics` (OpenMetrics text), and with [`ServerConfig::flags`] set, OFREP's
//! `POST /ofrep/v1/evaluate/flags[/{key}]` ([`ofrep`], in OFREP's own shapes). Every other
//! answer but a raw value is the envelope `{success, errors: [{code, message}], messages,
//! result, result_info?}`; the status codes and error codes are listed in [`error::codes`].
//!
//! **Compare-and-swap**, an extension: value responses carry an `ETag`; `PUT` and `DELETE`
//! honour `If-Match: "<etag>"` and `If-None-Match: *` and answer 412 when the condition fails.
//! Every response carries `x-kv-capabilities`, a comma-separated list of what the store behind
//! the server can do: `metadata-header` when its reads return metadata (so value responses carry
//! it), and `compare-and-swap` when it does conditional writes atomically; the header is present
//! (possibly empty) on every answer, which is how a client tells this server from Cloudflare's.
//! The list follows the store's [`Capabilities`] at the time of each
//! answer, so a remote store that turns out to lack a route is described as it is. Value
//! responses carry `x-kv-metadata` (the metadata as unpadded base64url of its JSON), so one
//! round trip reads a whole entry.
//!
//! In front of a remote store (`kv serve --store http://...`, such as Miniflare's explorer API),
//! what that store has no route for is answered 502 with code 10042
//! ([`error::codes::UPSTREAM_NOT_SERVED`]), and what it rejects 502 with code 10043; a TTL it
//! would drop is refused with 501 and code 10039.
//!
//! [`proxy`] is `kv proxy`: a caching reverse proxy (the `CacheLayer` of kv-middleware) in
//! front of any upstream, its cache in any store.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let store = kv_backends::open("file:./kv-data").await.expect("store opens");
//! let app = kv_server::router(store, kv_server::ServerConfig::default().with_token("s3cret"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8787").await?;
//! kv_server::serve(listener, app, kv_server::shutdown_signal()).await
//! # }
//! ```
#![warn(missing_docs)]

mod auth;
pub mod bulk_format;
mod config;
pub mod console;
pub mod error;
mod extract;
pub mod metrics;
mod observe;
pub mod ofrep;
pub mod proxy;
mod routes;
mod serve;
mod state;

use std::sync::Arc;

use axum::http::HeaderValue;
use axum::middleware::from_fn_with_state;
use axum::routing::{any, get, post, put};
use axum::Router;
use kv_core::{Capabilities, Store};
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;

pub use crate::auth::tokens_match;
pub use crate::config::{ServerConfig, DEFAULT_BODY_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT};
use crate::observe::ObserveLayer;
pub use crate::routes::values::{etag, EXPIRATION_HEADER, METADATA_HEADER};
#[cfg(feature = "cli")]
pub use crate::serve::TimeoutArgs;
pub use crate::serve::{serve, serve_with_config, shutdown_signal};
use crate::state::AppState;

/// The REST API's base path; `{account_id}` may be anything.
pub const API_BASE: &str = "/client/v4/accounts/{account_id}/storage/kv/namespaces";

/// The response header through which the server advertises its extensions.
pub const CAPABILITIES_HEADER: &str = "x-kv-capabilities";

/// The [`CAPABILITIES_HEADER`] token of a server with atomic conditional writes.
pub const COMPARE_AND_SWAP: &str = "compare-and-swap";

/// The [`CAPABILITIES_HEADER`] token saying value responses carry [`METADATA_HEADER`].
pub const METADATA_HEADER_CAPABILITY: &str = "metadata-header";

/// The router serving `store` over the REST protocol.
pub fn router(store: Store, config: ServerConfig) -> Router {
    let value_limit = store.limits().max_value_bytes + config.multipart_overhead_bytes;
    let bulk_limit = config.max_bulk_body_bytes;
    let bulk_get_limit = config.max_bulk_get_body_bytes;
    let ofrep = config.flags.clone().map(ofrep::router);
    let console = config.console.clone();
    let state = AppState::new(store, config, Arc::new(metrics::Metrics::default()));
    // The console signs in with its own form and cookie, so it sits outside the token check.
    let console = console.map(|settings| console::router(state.clone(), settings));
    let observe = ObserveLayer::new(state.metrics.clone(), state.store.clone());

    let ns = format!("{API_BASE}/{{namespace_id}}");
    // Each body-taking route refuses a declared length over its limit before reading, and stops
    // reading a chunked body at it (see `extract::limit_body`).
    let values = get(routes::values::get_value)
        .put(routes::values::put_value)
        .delete(routes::values::delete_value);
    let values = extract::limit_body(values, value_limit);
    let bulk = put(routes::bulk::write).delete(routes::bulk::delete);
    let bulk = extract::limit_body(bulk, bulk_limit);
    let bulk_delete = extract::limit_body(post(routes::bulk::delete), bulk_limit);
    let bulk_get = extract::limit_body(post(routes::bulk::get), bulk_get_limit);
    let namespaces = get(routes::namespaces::list).post(routes::namespaces::create);

    let router = Router::new();
    // OFREP sits behind the same token, metrics and tracing as the REST API.
    let router = match ofrep {
        Some(ofrep) => router.merge(ofrep),
        None => router,
    };
    let router = router
        .route(API_BASE, namespaces.clone())
        .route(&format!("{API_BASE}/"), namespaces)
        .route(
            &ns,
            get(routes::namespaces::get)
                .put(routes::namespaces::rename)
                .delete(routes::namespaces::delete),
        )
        .route(&format!("{ns}/values/{{*key}}"), values)
        .route(&format!("{ns}/values/"), any(routes::values::empty_key))
        .route(&format!("{ns}/metadata/"), any(routes::values::empty_key))
        .route(
            &format!("{ns}/metadata/{{*key}}"),
            get(routes::values::get_metadata),
        )
        .route(&format!("{ns}/keys"), get(routes::keys::list))
        .route(&format!("{ns}/bulk"), bulk)
        .route(&format!("{ns}/bulk/delete"), bulk_delete)
        .route(&format!("{ns}/bulk/get"), bulk_get)
        .route("/metrics", get(metrics::exposition))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed);
    // Without a token there is nothing to check: no layer, no per-request cost.
    let router = if state.config.token.is_some() {
        router.layer(from_fn_with_state(state.clone(), auth::require_token))
    } else {
        router
    };
    let router = match console {
        Some(console) => router
            .route("/", get(console::redirect_to_console))
            .nest_service(console::CONSOLE_PATH, console),
        None => router,
    };
    // One `layer` call: axum wraps (and boxes) each route once per call.
    router
        .layer(
            ServiceBuilder::new()
                .layer(observe)
                .layer(TraceLayer::new_for_http()),
        )
        .with_state(state)
}

/// The capabilities header for a store with these capabilities.
fn capabilities_value(capabilities: Capabilities) -> HeaderValue {
    let value = match (
        capabilities.metadata,
        capabilities.atomic_conditional_writes,
    ) {
        (true, true) => "metadata-header, compare-and-swap",
        (true, false) => METADATA_HEADER_CAPABILITY,
        (false, true) => COMPARE_AND_SWAP,
        (false, false) => "",
    };
    HeaderValue::from_static(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_header_claims_only_what_the_store_can_do() {
        let value = |c: Capabilities| capabilities_value(c).to_str().unwrap().to_owned();
        assert_eq!(
            value(Capabilities::atomic()),
            "metadata-header, compare-and-swap"
        );
        assert_eq!(value(Capabilities::plain()), "metadata-header");
        assert_eq!(value(Capabilities::plain().with_metadata(false)), "");
        assert_eq!(
            value(Capabilities::atomic().with_metadata(false)),
            "compare-and-swap"
        );
    }
}
