//! An API limited to 5 requests a minute per client IP, with the standard headers.
//!
//! ```text
//! cargo run -p tower-kv --example rate_limited            # on http://127.0.0.1:3000
//! curl -i http://127.0.0.1:3000/api/items                 # ratelimit: "api";r=4;t=12
//! for i in 1 2 3 4 5; do curl -s -o /dev/null -w '%{http_code} ' http://127.0.0.1:3000/api/items; done
//!                                                         # 200 200 200 200 429 (retry-after: 12)
//! ```
//!
//! Processes that share a store (`KV_STORE=redis://...` with the `redis` feature, or a
//! `kv serve`) share the limit exactly: the state is updated by compare-and-swap.

use std::net::SocketAddr;

use axum::{routing::get, Json, Router};
use tower_kv::rate_limit::RateLimitLayer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var(tower_kv::STORE_URL_ENV).unwrap_or_else(|_| "memory:".into());
    let store = tower_kv::open(&url).await?;
    let limits = store.namespace("RATE_LIMITS").await?;

    let app = Router::new()
        .route("/api/items", get(|| async { Json(["apple", "pear"]) }))
        // Only the API is limited (`route_layer`); the home page is not.
        .route_layer(RateLimitLayer::per_ip(limits, "api", "5/min".parse()?)?)
        .route("/", get(|| async { "try /api/items\n" }));

    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    // The limit is per peer address, which axum hands to the layer through `ConnectInfo`.
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await?;
    Ok(())
}
