//! A slow route behind the stale-while-revalidate cache: one slow request, then fast ones.
//!
//! ```text
//! cargo run -p tower-kv --example cached                  # on http://127.0.0.1:3000
//! curl -i http://127.0.0.1:3000/report    # ~1 s,  cache-status: kv; fwd=uri-miss; stored
//! curl -i http://127.0.0.1:3000/report    # fast, cache-status: kv; hit; age: 1
//! ```
//!
//! After 5 s the report is stale: it is still served at once while one background request
//! fetches the next; a herd of concurrent misses makes one call to the handler.

use std::time::Duration;

use axum::{http::header, routing::get, Router};
use tower_kv::cache::CacheLayer;

async fn report() -> ([(header::HeaderName, &'static str); 1], String) {
    tokio::time::sleep(Duration::from_secs(1)).await; // an expensive query
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    // The origin says how long its answer may be reused, as HTTP caches expect.
    let policy = "max-age=5, stale-while-revalidate=60";
    let built = now.map_or(0, |d| d.as_secs());
    (
        [(header::CACHE_CONTROL, policy)],
        format!("report built at {built}\n"),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var(tower_kv::STORE_URL_ENV).unwrap_or_else(|_| "memory:".into());
    let store = tower_kv::open(&url).await?;
    let cache = CacheLayer::new(store.namespace("HTTP_CACHE").await?);

    let app = Router::new().route("/report", get(report).route_layer(cache));

    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
