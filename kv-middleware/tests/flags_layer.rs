//! The flags layer: the `Flags` extractor, the default context (X-User-ID, IP, headers), a
//! custom context, the session user hook, `RequireFlagLayer`, and the missing-layer errors.
#![cfg(all(feature = "flags", feature = "axum", feature = "session"))]

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use axum::Router;
use http::{header, Request, Response, StatusCode};
use kv_backends::memory::MemoryBackend;
use kv_core::Store;
use kv_middleware::flags::{
    default_context, Condition, FlagDefinition, FlagStore, Flags, FlagsLayer, Operator,
    RequireFlagLayer, Rule,
};
use kv_middleware::session::{Session, SessionLayer};
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt};

async fn flag_store() -> FlagStore {
    let store = Store::new(MemoryBackend::new());
    let flags = FlagStore::builder(store.namespace("FLAGS").await.unwrap())
        .with_manual_refresh()
        .load()
        .await
        .unwrap();
    flags
        .set_flag(
            "beta",
            &FlagDefinition::boolean(false).with_targets("on", ["ada"]),
        )
        .await
        .unwrap();
    flags
        .set_flag(
            "office",
            &FlagDefinition::boolean(false).with_rule(Rule::serve("on").when(Condition::new(
                "ip",
                Operator::InCidr,
                "10.0.0.0/8",
            ))),
        )
        .await
        .unwrap();
    flags
        .set_flag(
            "ios",
            &FlagDefinition::boolean(false).with_rule(Rule::serve("on").when(Condition::new(
                "header.x-client",
                Operator::Eq,
                "ios",
            ))),
        )
        .await
        .unwrap();
    flags
}

async fn text(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn report(flags: Flags) -> String {
    format!(
        "beta={} office={} ios={} user={:?}",
        flags.is_enabled("beta"),
        flags.is_enabled("office"),
        flags.is_enabled("ios"),
        flags.context().targeting_key()
    )
}

/// The header a client chooses: only read when the layer opts in.
const X_USER_ID: http::HeaderName = http::HeaderName::from_static("x-user-id");

#[tokio::test]
async fn the_default_context_takes_no_identity_from_the_client() {
    let app = Router::new()
        .route("/", get(report))
        .layer(FlagsLayer::new(flag_store().await));
    let request = Request::get("/")
        .header("x-user-id", "ada")
        .body(Body::empty())
        .unwrap();
    let body = text(app.oneshot(request).await.unwrap()).await;
    assert!(body.ends_with("user=None"), "{body}");
    let (parts, ()) = Request::get("/")
        .header("x-user-id", "ada")
        .body(())
        .unwrap()
        .into_parts();
    assert_eq!(default_context(&parts).targeting_key(), None);
}

#[tokio::test]
async fn the_default_context_reads_user_ip_and_headers() {
    let app = Router::new()
        .route("/", get(report))
        .layer(FlagsLayer::new(flag_store().await).with_user_header(X_USER_ID));
    let mut request = Request::get("/")
        .header("x-user-id", "ada")
        .header("x-client", "ios")
        .body(Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([10, 1, 2, 3], 5555))));
    let body = text(app.clone().oneshot(request).await.unwrap()).await;
    assert_eq!(body, r#"beta=true office=true ios=true user=Some("ada")"#);

    // A plain SocketAddr extension works too (any hyper server can insert one).
    let mut request = Request::get("/").body(Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert(SocketAddr::from(([192, 168, 0, 1], 5555)));
    let body = text(app.oneshot(request).await.unwrap()).await;
    assert_eq!(body, "beta=false office=false ios=false user=None");
}

#[tokio::test]
async fn custom_context_and_user_header() {
    let store = flag_store().await;
    let app = Router::new().route("/", get(report)).layer(
        FlagsLayer::new(store.clone()).with_user_header(http::HeaderName::from_static("x-user")),
    );
    let request = Request::get("/")
        .header("x-user", "ada")
        .body(Body::empty())
        .unwrap();
    assert!(text(app.oneshot(request).await.unwrap())
        .await
        .starts_with("beta=true"));

    let app = Router::new()
        .route("/", get(report))
        .layer(
            FlagsLayer::new(store).with_context(|parts: &http::request::Parts| {
                let mut context = default_context(parts);
                if parts.uri.path() == "/" {
                    context.set_targeting_key(Some("ada".to_owned()));
                }
                context
            }),
        );
    let request = Request::get("/").body(Body::empty()).unwrap();
    assert!(text(app.oneshot(request).await.unwrap())
        .await
        .starts_with("beta=true"));
}

#[tokio::test]
async fn the_user_comes_from_the_session() {
    let store = Store::new(MemoryBackend::new());
    let sessions = SessionLayer::new(store.namespace("SESSIONS").await.unwrap()).with_secure(false);
    async fn login(session: Session) -> &'static str {
        session.insert("user", "ada").await.unwrap();
        "in"
    }
    let app = Router::new()
        .route("/", get(report))
        .route("/login", post(login))
        .layer(
            FlagsLayer::new(flag_store().await)
                .with_user_header(X_USER_ID)
                .with_session_user("user"),
        )
        .layer(sessions);
    // No session yet: the opted-in header stands.
    let request = Request::get("/")
        .header("x-user-id", "bob")
        .body(Body::empty())
        .unwrap();
    let body = text(app.clone().oneshot(request).await.unwrap()).await;
    assert!(body.ends_with(r#"user=Some("bob")"#), "{body}");
    // Log in, then the session's user is the targeting key.
    let response = app
        .clone()
        .oneshot(Request::post("/login").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let request = Request::get("/")
        .header(header::COOKIE, &cookie)
        .header("x-user-id", "bob")
        .body(Body::empty())
        .unwrap();
    let body = text(app.oneshot(request).await.unwrap()).await;
    assert!(body.starts_with("beta=true"), "{body}");
    assert!(body.ends_with(r#"user=Some("ada")"#), "{body}");
}

#[tokio::test]
async fn require_flag_hides_routes() {
    let app = Router::new()
        .route("/beta", get(|| async { "beta page" }))
        .route_layer(RequireFlagLayer::new("beta"))
        .route("/", get(|| async { "home" }))
        .layer(FlagsLayer::new(flag_store().await).with_user_header(X_USER_ID));
    let call = |user: &str, path: &str| {
        Request::get(path)
            .header("x-user-id", user)
            .body(Body::empty())
            .unwrap()
    };
    let response = app.clone().oneshot(call("bob", "/beta")).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(text(response).await, "");
    let response = app.clone().oneshot(call("ada", "/beta")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "beta page");
    let response = app.oneshot(call("bob", "/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Another status, and no flags layer at all: 500.
    let forbidden = Router::new()
        .route("/beta", get(|| async { "beta page" }))
        .route_layer(RequireFlagLayer::new("beta").with_status(StatusCode::FORBIDDEN))
        .layer(FlagsLayer::new(flag_store().await).with_user_header(X_USER_ID));
    let response = forbidden.oneshot(call("bob", "/beta")).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let missing = Router::new()
        .route("/beta", get(|| async { "beta page" }))
        .route_layer(RequireFlagLayer::new("beta"));
    let response = missing.oneshot(call("ada", "/beta")).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn the_extractor_without_the_layer_is_a_500_naming_it() {
    let app = Router::new().route("/", get(report)).route(
        "/optional",
        get(|flags: Option<Flags>| async move { format!("{}", flags.is_some()) }),
    );
    let response = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text(response).await.contains("FlagsLayer"));
    let response = app
        .oneshot(Request::get("/optional").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(text(response).await, "false");
}

#[tokio::test]
async fn works_with_plain_tower_services() {
    let service = ServiceBuilder::new()
        .layer(FlagsLayer::new(flag_store().await).with_user_header(X_USER_ID))
        .service_fn(|request: Request<String>| async move {
            let flags = request.extensions().get::<Flags>().cloned();
            let on = flags.is_some_and(|f| f.is_enabled("beta"));
            Ok::<_, Infallible>(Response::new(format!("{on}")))
        });
    let request = Request::get("/")
        .header("x-user-id", "ada")
        .body(String::new())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.into_body(), "true");
}

#[tokio::test]
async fn a_flag_change_reaches_the_next_request() {
    let flags = flag_store().await;
    let app = Router::new()
        .route("/", get(report))
        .layer(FlagsLayer::new(flags.clone()).with_user_header(X_USER_ID));
    let call = || {
        Request::get("/")
            .header("x-user-id", "bob")
            .body(Body::empty())
            .unwrap()
    };
    assert!(text(app.clone().oneshot(call()).await.unwrap())
        .await
        .starts_with("beta=false"));
    flags
        .update_flag("beta", |f| f.default_variant = Some("on".into()))
        .await
        .unwrap();
    assert!(text(app.oneshot(call()).await.unwrap())
        .await
        .starts_with("beta=true"));
    let _ = json!(null);
}

#[tokio::test]
async fn the_default_context_copies_only_the_headers_rules_read() {
    let app = Router::new()
        .route(
            "/",
            get(|flags: Flags| async move {
                let mut names: Vec<String> = flags
                    .context()
                    .headers()
                    .keys()
                    .map(|k| k.to_string())
                    .collect();
                names.sort();
                names.join(",")
            }),
        )
        .layer(FlagsLayer::new(flag_store().await).with_user_header(X_USER_ID));
    let request = Request::get("/")
        .header("x-client", "ios")
        .header("user-agent", "test")
        .header(header::COOKIE, "secret=1")
        .body(Body::empty())
        .unwrap();
    assert_eq!(text(app.oneshot(request).await.unwrap()).await, "x-client");
    // `default_context` itself (for custom context functions) copies them all.
    let (parts, ()) = Request::get("/")
        .header("x-client", "ios")
        .header("user-agent", "test")
        .body(())
        .unwrap()
        .into_parts();
    assert_eq!(default_context(&parts).headers().len(), 2);
}
