//! An origin check against cross-site request forgery (feature `origin`).
//!
//! [`OriginCheckLayer`] refuses, with `403 Forbidden`, the state-changing requests a browser
//! makes on behalf of another site: a form on `evil.example` posting to your `/login` (signing
//! the victim in as the attacker), to `/transfer`, to `/logout`. It needs no token, no session
//! and no store: browsers say where a request comes from, in `Sec-Fetch-Site` (all browsers
//! since 2023) and `Origin`. These are the semantics of Go 1.25's
//! `http.CrossOriginProtection`, with Rails' and Django's treatment of `Origin`.
//!
//! `SameSite` cookies alone are not enough: a forged request still reaches the handler, only
//! without the cookie, and a login form needs none (login CSRF: the victim's browser accepts
//! the session cookie of the attacker's account from the answer); a sibling subdomain is
//! same-site, so its requests carry even `Strict` cookies; and `SameSite` protects only
//! cookie-based authentication.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{body::Body, routing::post, Router};
//! use http::{Request, StatusCode};
//! use kv_middleware::origin::OriginCheckLayer;
//! use tower::ServiceExt;
//!
//! let app = Router::new()
//!     .route("/login", post(|| async { "signed in" }))
//!     .layer(OriginCheckLayer::new());
//!
//! // A form on another site posting here: refused.
//! let forged = Request::post("/login")
//!     .header("host", "shop.example")
//!     .header("sec-fetch-site", "cross-site")
//!     .header("origin", "https://evil.example")
//!     .body(Body::empty())?;
//! assert_eq!(app.clone().oneshot(forged).await?.status(), StatusCode::FORBIDDEN);
//!
//! // The site's own form: let through.
//! let own = Request::post("/login")
//!     .header("host", "shop.example")
//!     .header("sec-fetch-site", "same-origin")
//!     .header("origin", "https://shop.example")
//!     .body(Body::empty())?;
//! assert_eq!(app.clone().oneshot(own).await?.status(), StatusCode::OK);
//!
//! // curl, a server, a mobile app: no browser headers, let through.
//! let api = Request::post("/login").body(Body::empty())?;
//! assert_eq!(app.oneshot(api).await?.status(), StatusCode::OK);
//! # Ok(()) }
//! ```
//!
//! # The rules
//!
//! Requests with a safe method (`GET`, `HEAD`, `OPTIONS`, `TRACE`) always pass: they must not
//! change anything (keep it so: a `GET /logout` is forgeable by an `<img>`). Every other
//! method, including unknown ones, is checked:
//!
//! 1. **`Sec-Fetch-Site`** present: `same-origin` and `none` (a navigation the user started:
//!    typed URL, bookmark) pass. `same-site` passes only with
//!    [`with_allow_same_site(true)`](OriginCheckLayer::with_allow_same_site). `cross-site`
//!    (and `same-site` when not allowed) passes only when `Origin` is one of the
//!    [allowed origins](OriginCheckLayer::with_allowed_origins); so does any other value.
//!    `Origin` is not compared with the request here, so a site whose pages send
//!    `Origin: null` on their own forms (`Referrer-Policy: no-referrer`) keeps working.
//! 2. Else **`Origin`** present: it must be the request's own origin or an allowed one.
//!    `Origin: null` (a sandboxed frame, a `data:` or `file:` page, a redirect across origins)
//!    is refused.
//! 3. **Neither header**: the request passes. It does not come from a browser that could be
//!    made to forge it (curl, servers, mobile apps, webhooks), or from a browser too old to
//!    send either header, which is outside what this check covers.
//!
//! A header sent twice, or not text, is refused ([`CrossOriginRefusal::Malformed`]).
//!
//! # The request's own origin
//!
//! Scheme, host and port. Host and port come from the request URI's authority (HTTP/2, or an
//! absolute-form request line), else from `Host`. The scheme comes from
//! [`with_scheme`](OriginCheckLayer::with_scheme), else from the request URI; a plain HTTP/1.1
//! request says nothing about it, and then only host and port are compared (as Go does: the
//! `http://` page of the same host would pass on a browser that sends no `Sec-Fetch-Site`;
//! HSTS rules that page out, `with_scheme` closes the gap). Host names compare without regard
//! to case, and a default port written out (`:443` for `https`) is the same as none.
//!
//! Behind a reverse proxy that rewrites `Host` (to `127.0.0.1:3000`, say), the request's own
//! origin is not the public one, so browsers that send only `Origin` would be refused: list
//! the public origin with
//! `OriginCheckLayer::new().with_allowed_origins(["https://shop.example"])`.
//! `X-Forwarded-Host` and `X-Forwarded-Proto` are not read: any client can send them.
//!
//! # Refusals
//!
//! `403 Forbidden` with a problem document (`application/problem+json`):
//! `{"type":"about:blank","title":"Forbidden","status":403,"detail":"Cross-origin request
//! refused: ..."}`. The inner service is not called. Each refusal is logged at `debug`
//! (method, the two headers clipped to 100 bytes, the [reason](CrossOriginRefusal); no
//! cookies, no path) and counted ([`OriginCheckLayer::stats`]).
//! [`OriginCheckLayer::check`] gives the verdict for a request without serving it.
//!
//! # What it exempts
//!
//! Nothing but the above: there is no list of exempt paths or methods. Routes that must accept
//! cross-site posts (webhooks, a public API used from other sites with its own
//! authentication) go outside the layer: apply it with axum's `route_layer` to the routes it
//! protects, or to a sub-router. Requests without browser headers (webhooks, API clients)
//! already pass.
//!
//! # With sessions
//!
//! The check complements the session layer's `SameSite=Strict` cookie: it also covers the
//! login form (no cookie yet), browsers or settings that ignore `SameSite`, and requests from
//! sibling subdomains (`same-site`). A sibling subdomain can also plant a session cookie
//! itself (cookie tossing), which no request check sees: give the session cookie the `__Host-`
//! prefix (`SessionLayer::with_host_prefix`).

mod layer;
mod policy;
mod service;

/// The response future of [`OriginCheckService`]: the inner service's, or the refusal.
pub type ResponseFuture<F, B> = crate::EarlyResponseFuture<F, B>;
pub use self::layer::OriginCheckLayer;
pub use self::policy::{CrossOriginRefusal, InvalidOrigin, OriginCheckStats};
pub use self::service::OriginCheckService;

/// Renamed [`OriginCheckService`] (every service of the crate is `...Service`).
#[deprecated(note = "renamed `OriginCheckService`")]
#[doc(hidden)]
pub type OriginCheck<S> = OriginCheckService<S>;
