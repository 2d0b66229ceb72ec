//! The layers' decisions as `tracing` events and their `stats()` counters mirrored to the
//! `metrics` facade (feature `metrics`): a capturing recorder and a capturing subscriber see
//! what the layers did, and the metrics agree with `stats()`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use kv_middleware::rate_limit::{RateLimitLayer, RateLimiter};
use kv_middleware::session::{Session, SessionLayer};
use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use tower::{Layer, Service, ServiceExt};

/// Counter totals by name.
#[derive(Default, Clone)]
struct Capture(Arc<Mutex<HashMap<String, u64>>>);

struct Named(String, Capture);

impl CounterFn for Named {
    fn increment(&self, value: u64) {
        *self.1 .0.lock().unwrap().entry(self.0.clone()).or_default() += value;
    }

    fn absolute(&self, value: u64) {
        self.1 .0.lock().unwrap().insert(self.0.clone(), value);
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Named(key.name().to_owned(), self.clone())))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

impl Capture {
    fn get(&self, name: &str) -> u64 {
        self.0.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

/// Everything the fmt subscriber writes.
#[derive(Default, Clone)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs `f` on a current-thread runtime with the capturing recorder and subscriber in place.
fn observed<F: std::future::Future<Output = ()>>(f: impl FnOnce() -> F) -> (Capture, String) {
    let capture = Capture::default();
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&capture, || {
        tracing::subscriber::with_default(subscriber, || runtime.block_on(f()))
    });
    (capture, log.text())
}

fn ok_service() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone {
    tower::service_fn(|_request: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    })
}

#[test]
fn rate_limit_decisions_are_traced_and_counted_in_metrics_as_in_stats() {
    let (metrics, log) = observed(|| async {
        let store = kv_backends::open("memory:").await.unwrap();
        let ns = store.namespace("RATE_LIMITS").await.unwrap();
        let limiter = RateLimiter::new(ns, "api", "2/min".parse().unwrap()).unwrap();
        let layer = RateLimitLayer::new(limiter);
        let mut service = layer.layer(ok_service());
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let mut request = Request::new(Full::new(Bytes::new()));
            request
                .extensions_mut()
                .insert("192.0.2.7:4000".parse::<SocketAddr>().unwrap());
            let response = service.ready().await.unwrap().call(request).await.unwrap();
            statuses.push(response.status());
        }
        assert_eq!(
            statuses,
            [
                StatusCode::OK,
                StatusCode::OK,
                StatusCode::TOO_MANY_REQUESTS
            ]
        );
        let stats = layer.stats();
        assert_eq!((stats.allowed, stats.denied), (2, 1));
        STATS.with(|s| s.set((stats.allowed, stats.denied, stats.writes)));
    });
    let (allowed, denied, writes) = STATS.with(|s| s.get());
    assert_eq!(metrics.get("kv_rate_limit_allowed_total"), allowed);
    assert_eq!(metrics.get("kv_rate_limit_denied_total"), denied);
    assert_eq!(metrics.get("kv_rate_limit_writes_total"), writes);
    assert_eq!(log.matches("rate limit: admitted").count(), 2, "{log}");
    assert_eq!(log.matches("rate limit: denied").count(), 1, "{log}");
    // A client address key is logged as it is.
    assert!(log.contains("key=ip:192.0.2.7"), "{log}");
}

thread_local! {
    static STATS: std::cell::Cell<(u64, u64, u64)> = const { std::cell::Cell::new((0, 0, 0)) };
}

#[test]
fn session_loads_and_saves_are_traced_and_counted_in_metrics_as_in_stats() {
    let (metrics, log) = observed(|| async {
        let store = kv_backends::open("memory:").await.unwrap();
        let ns = store.namespace("SESSIONS").await.unwrap();
        let layer = SessionLayer::new(ns).with_secure(false);
        let mut service = layer.layer(tower::service_fn(
            |request: Request<Full<Bytes>>| async move {
                let session = request.extensions().get::<Session>().cloned().unwrap();
                let visits: u64 = session.get("visits").await.unwrap().unwrap_or(0);
                session.insert("visits", visits + 1).await.unwrap();
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(visits.to_string()))))
            },
        ));
        let first = service
            .ready()
            .await
            .unwrap()
            .call(Request::new(Full::new(Bytes::new())))
            .await
            .unwrap();
        let cookie = first.headers()[http::header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let mut second = Request::new(Full::new(Bytes::new()));
        second
            .headers_mut()
            .insert(http::header::COOKIE, cookie.parse().unwrap());
        service.ready().await.unwrap().call(second).await.unwrap();
        let stats = layer.stats();
        assert_eq!((stats.loads, stats.writes), (1, 2));
        STATS.with(|s| s.set((stats.loads, stats.writes, 0)));
    });
    let (loads, writes, _) = STATS.with(|s| s.get());
    assert_eq!(metrics.get("kv_session_loads_total"), loads);
    assert_eq!(metrics.get("kv_session_writes_total"), writes);
    assert_eq!(log.matches("session: saved").count(), 2, "{log}");
    assert!(log.contains("created=true"), "{log}");
    assert!(log.contains("created=false"), "{log}");
    assert_eq!(log.matches("session: loaded").count(), 1, "{log}");
}
