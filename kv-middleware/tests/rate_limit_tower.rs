//! The rate-limit layer around a plain tower service, without axum: `ServiceBuilder`, a
//! `service_fn` answering `http_body_util::Full`, and the peer address as a `SocketAddr`
//! extension (what any hyper server can insert).
#![cfg(feature = "rate_limit")]

mod rate_limit_support;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kv_middleware::rate_limit::{RateLimitLayer, RateLimiter};
use rate_limit_support::Fixture;
use tower::{service_fn, ServiceBuilder, ServiceExt};

fn request(peer: &str) -> Request<Full<Bytes>> {
    let mut request = Request::get("/").body(Full::new(Bytes::new())).unwrap();
    request
        .extensions_mut()
        .insert(peer.parse::<SocketAddr>().unwrap());
    request
}

#[tokio::test]
async fn a_plain_tower_service() {
    let fx = Fixture::memory().await;
    let limiter = RateLimiter::new(fx.namespace.clone(), "api", "2/min".parse().unwrap()).unwrap();
    let service = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter))
        .service(service_fn(|_request: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
        }));

    for remaining in [1, 0] {
        let response = service
            .clone()
            .oneshot(request("192.0.2.1:1"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["ratelimit"],
            format!(r#""api";r={remaining};t={}"#, 30 * (2 - remaining))
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");
    }
    let response = service
        .clone()
        .oneshot(request("192.0.2.1:1"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "30");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["violated-policies"], serde_json::json!(["api"]));

    // Another client has its own quota.
    let response = service.oneshot(request("192.0.2.2:1")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_inner_service_is_called_only_when_admitted() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let fx = Fixture::memory().await;
    let limiter = RateLimiter::new(fx.namespace.clone(), "api", "1/h".parse().unwrap()).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let mut service = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter))
        .service(service_fn(move |_request: Request<Full<Bytes>>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))) }
        }));
    for _ in 0..5 {
        let ready = service.ready().await.unwrap();
        let _ = tower::Service::call(ready, request("192.0.2.1:1"))
            .await
            .unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
