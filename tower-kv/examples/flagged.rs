//! A route that exists only while a feature flag is on.
//!
//! ```text
//! cargo run -p tower-kv --example flagged                 # on http://127.0.0.1:3000
//! curl -i http://127.0.0.1:3000/beta                      # 404: the flag is off
//! curl -X PUT http://127.0.0.1:3000/admin/beta/on         # (guard such a route in a real app)
//! curl -i http://127.0.0.1:3000/beta                      # 200
//! ```
//!
//! The flag is the entry `flag:beta` of the `FLAGS` namespace, a flagd flag definition; the
//! `kv` tool or another process can change it too (each process sees it within 30 s).

use axum::extract::{Path, State};
use axum::{http::StatusCode, routing::get, routing::put, Router};
use tower_kv::flags::{FlagDefinition, FlagStore, Flags, FlagsLayer, RequireFlagLayer};

async fn home(flags: Flags) -> &'static str {
    match flags.is_enabled("beta") {
        true => "home; try /beta\n",
        false => "home\n",
    }
}

async fn set_beta(State(flags): State<FlagStore>, Path(on): Path<String>) -> StatusCode {
    let flag = FlagDefinition::boolean(on == "on");
    match flags.set_flag("beta", &flag).await {
        Ok(_) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var(tower_kv::STORE_URL_ENV).unwrap_or_else(|_| "memory:".into());
    let store = tower_kv::open(&url).await?;
    let flags = FlagStore::load(store.namespace("FLAGS").await?).await?;
    flags
        .set_flag_if_absent("beta", &FlagDefinition::boolean(false))
        .await?;

    let app = Router::new()
        .route("/beta", get(|| async { "the new thing\n" }))
        .route_layer(RequireFlagLayer::new("beta"))
        .route("/", get(home))
        .route("/admin/beta/{on}", put(set_beta))
        .layer(FlagsLayer::new(flags.clone()))
        .with_state(flags);

    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
