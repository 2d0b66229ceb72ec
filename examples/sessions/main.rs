//! Cookie sessions on any store: a login form, a page that greets the logged-in user, and
//! logout.
//!
//! ```text
//! cargo run -p kv-examples --bin kv-sessions                        # file:./kv-data, 127.0.0.1:3001
//! cargo run -p kv-examples --bin kv-sessions -- --store memory: --listen 127.0.0.1:8080
//! KV_STORE=file:/tmp/sessions cargo run -p kv-examples --bin kv-sessions
//! ```
//!
//! Open the printed address, sign in with any name, reload, sign out. What it shows:
//!
//! - The session is one entry in the `SESSIONS` namespace, under the hash of its ID; with the
//!   file store it survives a restart of the program.
//! - Login cycles the session ID (`Session::cycle_id`), so an ID planted before login is useless
//!   after it; logout destroys the session and removes the cookie.
//! - Reading the session writes nothing: the page shows the layer's store-write counter, which
//!   only moves on login, logout, and a rolling refresh (at most every 12 hours per session).
//!
//! The cookie is `Secure` by default; browsers accept that on `http://localhost` and
//! `http://127.0.0.1`. Behind plain HTTP elsewhere, pass `--insecure-cookie`.

use std::net::SocketAddr;

use anyhow::Context;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use clap::Parser;
use kv_core::DEFAULT_STORE_URL;
use kv_examples::escape_html;
use kv_middleware::session::{Session, SessionError, SessionLayer};
use serde::Deserialize;

/// A login form, a greeting and logout, on cookie sessions stored in a KV namespace.
#[derive(Debug, Parser)]
struct Args {
    /// The store URL (`file:PATH`, `memory:`, ...).
    #[arg(long, env = "KV_STORE", default_value = DEFAULT_STORE_URL)]
    store: String,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:3001")]
    listen: SocketAddr,
    /// The namespace holding the sessions.
    #[arg(long, default_value = "SESSIONS")]
    namespace: String,
    /// Send the cookie without `Secure` (for plain HTTP on a host other than localhost).
    #[arg(long)]
    insecure_cookie: bool,
    /// Connection timeouts (header, idle and body reads), as `kv serve` takes them.
    #[command(flatten)]
    timeouts: kv_server::TimeoutArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kv_examples::init_tracing("info");
    let args = Args::parse();
    let store = kv_examples::open_store(&args.store).await?;
    let namespace = store.namespace(&args.namespace).await?;
    let sessions = SessionLayer::new(namespace).with_secure(!args.insecure_cookie);

    let app = Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .with_state(sessions.clone())
        .layer(sessions);

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    println!(
        "kv-sessions listening on http://{} (sessions in namespace {:?} of the {} store {})",
        listener.local_addr()?,
        args.namespace,
        store.kind(),
        kv_core::redact_store_url(&args.store)
    );
    kv_examples::serve(listener, app, &args.timeouts).await?;
    Ok(())
}

/// The greeting for a logged-in user, the login form for anyone else.
async fn home(
    State(sessions): State<SessionLayer>,
    session: Session,
) -> Result<Html<String>, SessionError> {
    let user: Option<String> = session.get("user").await?;
    let writes = sessions.stats().writes;
    let body = match user {
        Some(user) => {
            let since: u64 = session.get("since").await?.unwrap_or_default();
            format!(
                "<h1>Hello, {}!</h1>\
                 <p>Signed in at unix time {since}. Reading this page wrote nothing: the store \
                 has seen {writes} session writes since the server started.</p>\
                 <form method=\"post\" action=\"/logout\"><button>Sign out</button></form>",
                escape_html(&user)
            )
        }
        None => format!(
            "<h1>Sign in</h1>\
             <form method=\"post\" action=\"/login\">\
             <label>Name <input name=\"name\" maxlength=\"64\" autofocus required></label> \
             <button>Sign in</button></form>\
             <p>Session writes since the server started: {writes}.</p>"
        ),
    };
    Ok(Html(page(&body)))
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    name: String,
}

/// Signs in: a new session ID (against fixation), then the user's name.
async fn login(session: Session, Form(form): Form<LoginForm>) -> Result<Response, SessionError> {
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Ok((
            http::StatusCode::UNPROCESSABLE_ENTITY,
            Html(page(
                "<p>Please give a name of 1 to 64 characters. <a href=\"/\">Back</a></p>",
            )),
        )
            .into_response());
    }
    session.cycle_id().await?;
    session.insert("user", name).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    session.insert("since", now).await?;
    Ok(Redirect::to("/").into_response())
}

/// Signs out: the session is deleted and its cookie removed.
async fn logout(session: Session) -> Result<Redirect, SessionError> {
    session.destroy().await?;
    Ok(Redirect::to("/"))
}

fn page(body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>kv-sessions</title></head>\
         <body style=\"font-family: sans-serif; max-width: 40em; margin: 3em auto\">{body}</body></html>"
    )
}
