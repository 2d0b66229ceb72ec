//! `GET /`: the one HTML page, built from the session, the flags and the config.

use axum::http::header;
use axum::response::{Html, IntoResponse};
use kv_examples::escape_html;
use kv_middleware::config::Config;
use kv_middleware::flags::Flags;
use kv_middleware::session::Session;

use crate::api::{current_count, evaluate_all, ApiError};
use crate::app::SESSION_USER;
use crate::config::DemoConfig;
use crate::seed::NEW_UI;

/// The page: a sign-in form, or the greeting, the counter and sign-out; the user's flags.
pub async fn home(
    session: Session,
    flags: Flags,
    config: Config<DemoConfig>,
) -> Result<Html<String>, ApiError> {
    let settings = config.get();
    let user: Option<String> = session.get(SESSION_USER).await?;
    let account = match &user {
        Some(user) => format!(
            "<p id=\"greeting\">Signed in as <strong>{name}</strong></p>\
             <p><button id=\"counter\" type=\"button\">Count +{step}</button> \
             <span>count: <output id=\"count\">{count}</output></span></p>\
             <form method=\"post\" action=\"/logout\"><button id=\"sign-out\">Sign out</button></form>",
            name = escape_html(user),
            step = settings.public.counter_step,
            count = current_count(&session).await?,
        ),
        None => "<form method=\"post\" action=\"/login\" id=\"sign-in-form\">\
             <label>Name <input id=\"user\" name=\"user\" maxlength=\"64\" required autofocus></label> \
             <button id=\"sign-in\">Sign in</button></form>"
            .to_owned(),
    };
    let new_ui = flags.is_enabled(NEW_UI);
    let flag_rows: String = evaluate_all(&flags)
        .iter()
        .map(|(name, evaluation)| {
            format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape_html(name),
                escape_html(&evaluation["value"].to_string()),
                escape_html(evaluation["variant"].as_str().unwrap_or("-")),
                escape_html(evaluation["reason"].as_str().unwrap_or("-")),
            )
        })
        .collect();
    let banner = settings
        .public
        .banner
        .as_deref()
        .map(|b| format!("<p class=\"banner\">{}</p>", escape_html(b)))
        .unwrap_or_default();
    let look = if new_ui {
        "<p id=\"look\" class=\"badge\">You see the new UI (flag <code>new-ui</code> is on for you).</p>"
    } else {
        "<p id=\"look\">You see the classic UI (flag <code>new-ui</code> is off for you).</p>"
    };
    Ok(Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"{STYLE_PATH}\"></head>\
         <body class=\"{class}\"><main><h1>{title}</h1>{banner}{account}{look}\
         <h2>Your flags</h2><table><thead><tr><th>flag</th><th>value</th><th>variant</th>\
         <th>reason</th></tr></thead><tbody>{flag_rows}</tbody></table>\
         <h2>Try</h2><ul>\
         <li><a href=\"/api/slow\">/api/slow</a>: a 200 ms origin behind the cache (watch the \
         <code>Age</code> and <code>Cache-Status</code> headers)</li>\
         <li><a href=\"/api/ping\">/api/ping</a>: rate limited per client IP</li>\
         <li><a href=\"/api/flags\">/api/flags</a>, <a href=\"/api/config\">/api/config</a>, \
         <a href=\"/me\">/me</a></li></ul>\
         <p class=\"foot\">config version {version}</p></main>\
         <script src=\"{SCRIPT_PATH}\"></script></body></html>",
        title = escape_html(&settings.public.title),
        class = if new_ui { "new-ui" } else { "classic-ui" },
        version = config.version().map_or("-".to_owned(), |v| v.to_string()),
    )))
}

/// Where the page's style sheet is served.
pub const STYLE_PATH: &str = "/assets/demo.css";

/// Where the page's script is served.
pub const SCRIPT_PATH: &str = "/assets/demo.js";

/// The page's policy: its own style sheet and script only (no inline code, so injected markup
/// cannot run), requests to itself, forms posted to itself, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; \
script-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; \
frame-ancestors 'none'; base-uri 'none'";

/// `GET /assets/demo.css`: the base style and both looks, chosen by the body's class.
pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

/// `GET /assets/demo.js`: presses the counter without leaving the page.
pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

const STYLE: &str = "body{margin:0;font-family:system-ui,sans-serif}\
main{max-width:44em;margin:0 auto;padding:2em}table{border-collapse:collapse}\
td,th{padding:.2em .8em;text-align:left;border-bottom:1px solid #ccc}\
.foot{color:#888;font-size:.8em}\
body.classic-ui{background:#fffdf5;color:#222;font-family:Georgia,serif}\
body.new-ui{background:linear-gradient(135deg,#0b1f3a,#26497a);color:#f2f5fa;min-height:100vh}\
.new-ui a{color:#9cd3ff}.new-ui .badge{display:inline-block;background:#ffcc33;color:#0b1f3a;\
padding:.3em .8em;border-radius:1em}.new-ui td,.new-ui th{border-color:#4b6a96}";

const SCRIPT: &str = "const b=document.getElementById('counter');\
if(b){b.addEventListener('click',async()=>{\
const r=await fetch('/counter',{method:'POST'});\
if(r.ok){document.getElementById('count').textContent=(await r.json()).count;}});}";
