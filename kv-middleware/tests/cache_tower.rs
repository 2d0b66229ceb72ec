//! The HTTP cache layer over a plain tower service (no axum): bodies of `http-body-util`, an
//! inner service that fails with an error, and a streamed body larger than the cap.
#![cfg(feature = "cache")]

#[macro_use]
mod cache_support;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cache_support::{cache_control, Fixture, Origin};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use kv_core::BoxError;
use kv_middleware::cache::CacheLayer;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

backend_tests!(
    tower_service_without_axum,
    stale_if_error_on_an_inner_error,
    streamed_bodies
);

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "tower.test")
        .body(Full::default())
        .unwrap()
}

/// An origin as a tower service whose errors are errors (not 500 responses).
fn origin_service(
    origin: &Origin,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = BoxError,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    let origin = origin.clone();
    service_fn(move |request: Request<Full<Bytes>>| {
        let origin = origin.clone();
        async move {
            let response = origin.answer(request).await?;
            Ok::<_, BoxError>(response.map(|body| Full::new(Bytes::from(body))))
        }
    })
}

async fn text<B>(response: Response<B>) -> String
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn tower_service_without_axum(fx: Fixture) {
    let origin = Origin::new(cache_control("max-age=30"));
    let mut service = ServiceBuilder::new()
        .layer(CacheLayer::new(fx.ns.clone()).with_x_cache(true))
        .service(origin_service(&origin));

    let response = service
        .ready()
        .await
        .unwrap()
        .call(get("/t"))
        .await
        .unwrap();
    assert_eq!(response.headers()["x-cache"], "MISS");
    assert_eq!(text(response).await, "v1");
    fx.advance(10);
    let response = service
        .ready()
        .await
        .unwrap()
        .call(get("/t"))
        .await
        .unwrap();
    assert_eq!(response.headers()["x-cache"], "HIT");
    assert_eq!(response.headers()["age"], "10");
    assert_eq!(response.headers()["cache-status"], "kv; hit; ttl=20");
    assert_eq!(text(response).await, "v1");
    assert_eq!(origin.calls(), 1);
    assert_eq!(service.stats().hits, 1);
}

async fn stale_if_error_on_an_inner_error(fx: Fixture) {
    let origin = Origin::new(cache_control("max-age=10, stale-if-error=30"));
    let service = ServiceBuilder::new()
        .layer(CacheLayer::new(fx.ns.clone()).with_backoff(Duration::ZERO, Duration::ZERO))
        .service(origin_service(&origin));
    service.clone().oneshot(get("/e")).await.unwrap();

    fx.advance(20);
    origin.update(|s| s.fail = true);
    let response = service.clone().oneshot(get("/e")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["cache-status"],
        "kv; fwd=stale; ttl=-10; detail=stale-if-error"
    );
    assert_eq!(text(response).await, "v1");
    // Backoff off: every request tries the origin.
    service.clone().oneshot(get("/e")).await.unwrap();
    assert_eq!(origin.calls(), 3);

    // After the window the inner error is the caller's.
    fx.advance(25);
    let error = service.clone().oneshot(get("/e")).await.unwrap_err();
    assert!(error.to_string().contains("origin failure"));
}

/// A body of `n` chunks of 10 bytes with no size hint.
struct Chunks(usize);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.0 == 0 {
            return Poll::Ready(None);
        }
        self.0 -= 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"0123456789")))))
    }
}

async fn streamed_bodies(fx: Fixture) {
    let inner = service_fn(|request: Request<Full<Bytes>>| async move {
        let chunks = if request.uri().path() == "/big" {
            100
        } else {
            2
        };
        let response = Response::builder()
            .header("cache-control", "max-age=60")
            .body(Chunks(chunks))
            .unwrap();
        Ok::<_, Infallible>(response)
    });
    let service = ServiceBuilder::new()
        .layer(CacheLayer::new(fx.ns.clone()).with_max_body_size(100))
        .service(inner);
    let big = service.clone().oneshot(get("/big")).await.unwrap();
    assert!(big.headers()["cache-status"]
        .to_str()
        .unwrap()
        .ends_with("detail=too-large"));
    assert_eq!(text(big).await.len(), 1000, "streamed through whole");
    let small = service.clone().oneshot(get("/small")).await.unwrap();
    assert!(small.headers()["cache-status"]
        .to_str()
        .unwrap()
        .contains("stored"));
    let small = service.clone().oneshot(get("/small")).await.unwrap();
    assert_eq!(small.headers()["cache-status"], "kv; hit; ttl=60");
    assert_eq!(text(small).await, "01234567890123456789");
}
