//! A visit counter per browser, kept in a cookie session in the store.
//!
//! ```text
//! cargo run -p tower-kv --example counter                 # on http://127.0.0.1:3000
//! curl -c jar -b jar http://127.0.0.1:3000/               # 1, then 2, 3, ...
//! KV_STORE=file:./kv-data cargo run -p tower-kv --example counter   # counts survive restarts
//! ```

use axum::{routing::get, Router};
use tower_kv::session::{Session, SessionError, SessionLayer};

async fn count(session: Session) -> Result<String, SessionError> {
    // Nothing is read from the store until the handler touches the session.
    let count: u64 = session.get("count").await?.unwrap_or(0) + 1;
    session.insert("count", count).await?;
    Ok(format!("visit {count}\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Any store URL: "memory:", "file:./kv-data", "redis://..." (feature redis), "http://...".
    let url = std::env::var(tower_kv::STORE_URL_ENV).unwrap_or_else(|_| "memory:".into());
    let store = tower_kv::open(&url).await?;
    // The cookie is `Secure` by default; this example is served over plain HTTP.
    let sessions = SessionLayer::new(store.namespace("SESSIONS").await?).with_secure(false);

    let app = Router::new().route("/", get(count)).layer(sessions);

    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
