//! The origin check through axum: forged cross-site requests are refused with 403 before the
//! handler runs; the site's own requests, non-browser clients and safe methods pass.
#![cfg(all(feature = "origin", feature = "axum"))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::routing::{any, post};
use axum::Router;
use http::uri::Scheme;
use http::{header, Method, Request, StatusCode};
use kv_middleware::origin::{CrossOriginRefusal, OriginCheckLayer};
use proptest::prelude::*;
use tower::ServiceExt;

/// An app whose every route counts the requests that reach a handler.
struct App {
    router: Router,
    reached: Arc<AtomicUsize>,
}

fn app(layer: OriginCheckLayer) -> App {
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let handler = move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            "done"
        }
    };
    let router = Router::new()
        .route("/login", any(handler.clone()))
        .route("/transfer", any(handler))
        .layer(layer);
    App { router, reached }
}

/// A request to `https://shop.example/login` (as `Host`), with these headers.
fn request(method: Method, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri("/login")
        .header(header::HOST, "shop.example");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).unwrap()
}

/// The status and body of `request` through `app`.
async fn status(app: &App, request: Request<Body>) -> StatusCode {
    answer(app, request).await.0
}

async fn answer(app: &App, request: Request<Body>) -> (StatusCode, String, Option<String>) {
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (
        status,
        String::from_utf8(body.to_vec()).unwrap(),
        content_type,
    )
}

const CROSS_SITE: &[(&str, &str)] = &[
    ("sec-fetch-site", "cross-site"),
    ("origin", "https://evil.example"),
];

#[tokio::test]
async fn cross_site_post_is_refused_before_the_handler() {
    let layer = OriginCheckLayer::new();
    let app = app(layer.clone());
    let (status, body, content_type) = answer(&app, request(Method::POST, CROSS_SITE)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], 403);
    assert_eq!(body["title"], "Forbidden");
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .starts_with("Cross-origin request refused"));
    assert_eq!(
        app.reached.load(Ordering::SeqCst),
        0,
        "the handler never ran"
    );

    // Sec-Fetch-Site alone decides, whatever Origin says (or without one).
    let lying = [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://shop.example"),
    ];
    assert_eq!(status_of(&app, &lying).await, StatusCode::FORBIDDEN);
    assert_eq!(
        status_of(&app, &[("sec-fetch-site", "cross-site")]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.reached.load(Ordering::SeqCst), 0);
    let stats = layer.stats();
    assert_eq!((stats.checked, stats.refused), (3, 3));
}

async fn status_of(app: &App, headers: &[(&str, &str)]) -> StatusCode {
    status(app, request(Method::POST, headers)).await
}

#[tokio::test]
async fn the_sites_own_requests_pass() {
    let app = app(OriginCheckLayer::new());
    for headers in [
        &[
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://shop.example"),
        ][..],
        &[("sec-fetch-site", "same-origin")],
        // A navigation the user started (typed URL, bookmark).
        &[("sec-fetch-site", "none")],
        // A browser sending only Origin: it must be the request's own.
        &[("origin", "https://shop.example")],
        &[("origin", "https://SHOP.example")],
        &[("origin", "https://shop.example:443")],
    ] {
        assert_eq!(
            status_of(&app, headers).await,
            StatusCode::OK,
            "{headers:?}"
        );
    }
    assert_eq!(app.reached.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn same_site_subdomain_is_refused_unless_allowed() {
    let headers = [
        ("sec-fetch-site", "same-site"),
        ("origin", "https://blog.shop.example"),
    ];
    let app_default = app(OriginCheckLayer::new());
    assert_eq!(
        status_of(&app_default, &headers).await,
        StatusCode::FORBIDDEN
    );
    // Without Sec-Fetch-Site, the sibling's Origin is not the request's own.
    assert_eq!(
        status_of(&app_default, &[("origin", "https://blog.shop.example")]).await,
        StatusCode::FORBIDDEN
    );

    let layer = OriginCheckLayer::new().with_allow_same_site(true);
    let app_same_site = app(layer.clone());
    assert_eq!(status_of(&app_same_site, &headers).await, StatusCode::OK);
    assert_eq!(
        status_of(&app_same_site, CROSS_SITE).await,
        StatusCode::FORBIDDEN,
        "cross-site is still refused"
    );
    assert_eq!(
        layer.check(&request(Method::POST, CROSS_SITE)),
        Err(CrossOriginRefusal::CrossSite)
    );
    assert_eq!(
        OriginCheckLayer::new().check(&request(Method::POST, &headers)),
        Err(CrossOriginRefusal::SameSite)
    );
}

#[tokio::test]
async fn a_foreign_origin_is_refused() {
    let app = app(OriginCheckLayer::new());
    for origin in [
        "https://evil.example",
        "https://shop.example.evil.example",
        "https://shop.example:8443",
        "https://evilshop.example",
    ] {
        let headers = [("origin", origin)];
        assert_eq!(
            status_of(&app, &headers).await,
            StatusCode::FORBIDDEN,
            "{origin}"
        );
    }
    assert_eq!(app.reached.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_configured_scheme_is_compared() {
    let app = app(OriginCheckLayer::new().with_scheme(Scheme::HTTPS));
    assert_eq!(
        status_of(&app, &[("origin", "https://shop.example")]).await,
        StatusCode::OK
    );
    // The site's plain-HTTP origin is another origin.
    assert_eq!(
        status_of(&app, &[("origin", "http://shop.example")]).await,
        StatusCode::FORBIDDEN
    );
    // Without the setting, an HTTP/1.1 request does not say its scheme: host and port decide.
    let unknown = self::app(OriginCheckLayer::new());
    assert_eq!(
        status_of(&unknown, &[("origin", "http://shop.example")]).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn null_origin_is_refused() {
    let layer = OriginCheckLayer::new();
    let app = app(layer.clone());
    assert_eq!(
        status_of(&app, &[("origin", "null")]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        layer.check(&request(Method::POST, &[("origin", "null")])),
        Err(CrossOriginRefusal::NullOrigin)
    );
    assert_eq!(
        status_of(
            &app,
            &[("sec-fetch-site", "cross-site"), ("origin", "null")]
        )
        .await,
        StatusCode::FORBIDDEN
    );
    // The site's own form under `Referrer-Policy: no-referrer` sends `Origin: null` with
    // `Sec-Fetch-Site: same-origin`: the browser's verdict decides.
    assert_eq!(
        status_of(
            &app,
            &[("sec-fetch-site", "same-origin"), ("origin", "null")]
        )
        .await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn requests_without_browser_headers_pass() {
    let app = app(OriginCheckLayer::new());
    // curl, a server, a webhook: no Sec-Fetch-Site, no Origin (and here no Host either).
    let request = Request::post("/transfer").body(Body::empty()).unwrap();
    assert_eq!(status(&app, request).await, StatusCode::OK);
    assert_eq!(status_of(&app, &[]).await, StatusCode::OK);
    assert_eq!(app.reached.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn safe_methods_pass_cross_site_and_every_other_method_is_checked() {
    let layer = OriginCheckLayer::new();
    let app = app(layer.clone());
    for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
        let status = status(&app, request(method.clone(), CROSS_SITE)).await;
        assert_eq!(status, StatusCode::OK, "{method}");
    }
    assert_eq!(layer.stats().checked, 0, "safe methods are not checked");
    for method in [
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::from_bytes(b"PURGE").unwrap(),
    ] {
        let status = status(&app, request(method.clone(), CROSS_SITE)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method}");
    }
    assert_eq!(layer.stats().refused, 5);
}

#[tokio::test]
async fn allowed_origins_pass_and_others_do_not() {
    let layer = OriginCheckLayer::new()
        .with_allowed_origins(["https://app.example", "HTTPS://Admin.Example:443"])
        .with_allowed_origins(["http://localhost:5173"]);
    let app = app(layer);
    for origin in [
        "https://app.example",
        "https://admin.example",
        "http://localhost:5173",
    ] {
        for site in ["cross-site", "same-site"] {
            let headers = [("sec-fetch-site", site), ("origin", origin)];
            assert_eq!(
                status_of(&app, &headers).await,
                StatusCode::OK,
                "{headers:?}"
            );
        }
        assert_eq!(
            status_of(&app, &[("origin", origin)]).await,
            StatusCode::OK,
            "{origin}"
        );
    }
    for origin in [
        "http://app.example",
        "https://app.example:8443",
        "https://evil.app.example",
        "http://localhost:5174",
    ] {
        let headers = [("sec-fetch-site", "cross-site"), ("origin", origin)];
        assert_eq!(
            status_of(&app, &headers).await,
            StatusCode::FORBIDDEN,
            "{origin}"
        );
        assert_eq!(
            status_of(&app, &[("origin", origin)]).await,
            StatusCode::FORBIDDEN,
            "{origin}"
        );
    }
    // The request's own origin still passes.
    assert_eq!(
        status_of(&app, &[("origin", "https://shop.example")]).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn behind_a_proxy_that_rewrites_host_the_public_origin_is_listed() {
    let proxied = |origin: &'static str| {
        Request::post("/login")
            .header(header::HOST, "127.0.0.1:3000")
            .header("origin", origin)
            .body(Body::empty())
            .unwrap()
    };
    let unlisted = app(OriginCheckLayer::new());
    assert_eq!(
        status(&unlisted, proxied("https://shop.example")).await,
        StatusCode::FORBIDDEN
    );
    let listed = app(OriginCheckLayer::new().with_allowed_origins(["https://shop.example"]));
    assert_eq!(
        status(&listed, proxied("https://shop.example")).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&listed, proxied("https://evil.example")).await,
        StatusCode::FORBIDDEN
    );
    // Forwarding headers are anyone's to send: not read.
    let forwarded = Request::post("/login")
        .header(header::HOST, "127.0.0.1:3000")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .header("origin", "https://evil.example")
        .body(Body::empty())
        .unwrap();
    assert_eq!(status(&unlisted, forwarded).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_uri_authority_is_the_requests_own_origin() {
    // HTTP/2 (and an absolute-form request line) carry scheme and authority in the URI.
    let app = app(OriginCheckLayer::new());
    let h2 = |origin: &'static str| {
        Request::post("https://api.example/login")
            .header("origin", origin)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        status(&app, h2("https://api.example")).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&app, h2("http://api.example")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&app, h2("https://shop.example")).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn malformed_headers_are_refused() {
    let layer = OriginCheckLayer::new();
    let app = app(layer.clone());
    let cases: &[&[(&str, &str)]] = &[
        &[
            ("origin", "https://shop.example"),
            ("origin", "https://shop.example"),
        ],
        &[
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-site", "same-origin"),
        ],
        &[("sec-fetch-site", "SAME-ORIGIN")],
        &[("sec-fetch-site", "")],
        &[("origin", "https://shop.example/")],
        &[("origin", "https://shop.example/login")],
        &[("origin", "shop.example")],
        &[("origin", "https://user@shop.example")],
        &[("origin", "")],
    ];
    for headers in cases {
        assert_eq!(
            status_of(&app, headers).await,
            StatusCode::FORBIDDEN,
            "{headers:?}"
        );
        assert_eq!(
            layer.check(&request(Method::POST, headers)),
            Err(CrossOriginRefusal::Malformed),
            "{headers:?}"
        );
    }
    let mut bytes = request(Method::POST, &[]);
    bytes.headers_mut().insert(
        "origin",
        http::HeaderValue::from_bytes(b"https://sh\xf6p.example").unwrap(),
    );
    assert_eq!(status(&app, bytes).await, StatusCode::FORBIDDEN);
    assert_eq!(app.reached.load(Ordering::SeqCst), 0);
}

#[test]
fn invalid_allowed_origins_are_errors() {
    for bad in [
        "https://shop.example/",
        "shop.example",
        "https://*.shop.example",
        "null",
        "https://shop.example:99999",
    ] {
        let error = OriginCheckLayer::new()
            .try_with_allowed_origins([bad])
            .unwrap_err();
        assert!(error.to_string().contains(bad), "{error}");
    }
}

#[test]
#[should_panic(expected = "invalid allowed origin")]
fn with_allowed_origins_panics_on_a_path() {
    let _ = OriginCheckLayer::new().with_allowed_origins(["https://shop.example/app"]);
}

#[tokio::test]
async fn route_layer_protects_only_its_routes() {
    let router = Router::new()
        .route("/login", post(|| async { "signed in" }))
        .route_layer(OriginCheckLayer::new())
        .route("/webhook", post(|| async { "received" }));
    for (path, expected) in [
        ("/login", StatusCode::FORBIDDEN),
        ("/webhook", StatusCode::OK),
    ] {
        let mut request = request(Method::POST, CROSS_SITE);
        *request.uri_mut() = path.parse().unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), expected, "{path}");
    }
}

// ---- a model of the rules, against generated header combinations ----

/// `Sec-Fetch-Site` values: absent, the four known, and others.
fn fetch_site() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some("same-origin".to_owned())),
        1 => Just(Some("same-site".to_owned())),
        2 => Just(Some("cross-site".to_owned())),
        1 => Just(Some("none".to_owned())),
        1 => "[ -~]{0,12}".prop_map(Some),
    ]
}

/// `Origin` values, each with the origin a correct parser makes of it (`None`: none).
fn origin() -> impl Strategy<Value = Option<(String, Option<&'static str>)>> {
    let known: Vec<(&'static str, Option<&'static str>)> = vec![
        ("https://shop.example", Some("https://shop.example")),
        ("https://SHOP.example:443", Some("https://shop.example")),
        ("http://shop.example", Some("http://shop.example")),
        (
            "https://shop.example:8443",
            Some("https://shop.example:8443"),
        ),
        ("https://app.example", Some("https://app.example")),
        ("https://evil.example", Some("https://evil.example")),
        ("http://127.0.0.1:3000", Some("http://127.0.0.1:3000")),
        ("null", None),
        ("https://shop.example/", None),
    ];
    prop_oneof![
        1 => Just(None),
        4 => proptest::sample::select(known)
            .prop_map(|(text, parsed)| Some((text.to_owned(), parsed))),
        // Random text: practically never a well-formed origin of these hosts.
        1 => "[ -~]{0,30}"
            .prop_filter("not an origin", |s| !s.contains("://"))
            .prop_map(|s| Some((s, None))),
    ]
}

/// `Host` values, each with the origin it makes under `https`.
fn host() -> impl Strategy<Value = (&'static str, &'static str)> {
    proptest::sample::select(vec![
        ("shop.example", "https://shop.example"),
        ("Shop.Example", "https://shop.example"),
        ("shop.example:443", "https://shop.example"),
        ("shop.example:8443", "https://shop.example:8443"),
        ("127.0.0.1:3000", "https://127.0.0.1:3000"),
    ])
}

fn method() -> impl Strategy<Value = Method> {
    proptest::sample::select(vec![
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::from_bytes(b"PURGE").unwrap(),
    ])
}

/// What the rules say, written out independently of the layer.
fn expected(
    method: &Method,
    fetch_site: Option<&str>,
    origin: Option<&(String, Option<&str>)>,
    own: &str,
) -> bool {
    const ALLOWED: &str = "https://app.example";
    let safe = matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    let origin_is = |target: &str| origin.is_some_and(|(_, parsed)| *parsed == Some(target));
    if safe {
        return true;
    }
    // Servers strip the whitespace around header values; so does the check.
    match fetch_site.map(str::trim) {
        Some("same-origin" | "none") => true,
        Some(_) => origin_is(ALLOWED),
        None => match origin {
            None => true,
            Some(_) => origin_is(own) || origin_is(ALLOWED),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn verdicts_follow_the_rules(
        method in method(),
        fetch_site in fetch_site(),
        origin in origin(),
        (host, own) in host(),
    ) {
        let layer = OriginCheckLayer::new()
            .with_scheme(Scheme::HTTPS)
            .with_allowed_origins(["https://app.example"]);
        let mut builder = Request::builder().method(method.clone()).uri("/x").header("host", host);
        if let Some(site) = &fetch_site {
            builder = builder.header("sec-fetch-site", site.as_str());
        }
        if let Some((text, _)) = &origin {
            builder = builder.header("origin", text.as_str());
        }
        let request = builder.body(()).unwrap();
        let want = expected(&method, fetch_site.as_deref(), origin.as_ref(), own);
        prop_assert_eq!(layer.check(&request).is_ok(), want, "{:?}", request);
    }
}

#[tokio::test]
async fn the_model_agrees_with_the_service() {
    // The proptest drives `check`; the service must give the same verdict.
    let layer = OriginCheckLayer::new().with_allowed_origins(["https://app.example"]);
    let app = app(layer.clone());
    for headers in [
        CROSS_SITE,
        &[("origin", "https://app.example")],
        &[
            ("sec-fetch-site", "bogus"),
            ("origin", "https://app.example"),
        ],
        &[("sec-fetch-site", "bogus")],
        &[],
    ] {
        let verdict = layer.check(&request(Method::POST, headers));
        let status = status_of(&app, headers).await;
        assert_eq!(verdict.is_ok(), status == StatusCode::OK, "{headers:?}");
    }
}
