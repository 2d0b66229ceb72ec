//! [`ObserveLayer`]: what the server does around every answer, in one layer: the latency
//! histogram, the error count by status, and the [`CAPABILITIES_HEADER`].
//!
//! One hand-written layer rather than axum's `from_fn` and `map_response` middlewares: those
//! box a future per request each (and `from_fn` clones and boxes the inner service again),
//! where this one's future is the inner future plus a start time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::http::{HeaderName, Request, Response};
use kv_core::Store;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::metrics::Metrics;
use crate::{capabilities_value, CAPABILITIES_HEADER};

/// The header's name, parsed once.
const CAPABILITIES: HeaderName = HeaderName::from_static(CAPABILITIES_HEADER);

/// Records every answer's latency and error status in the metrics and adds the capabilities
/// header to it.
#[derive(Clone)]
pub(crate) struct ObserveLayer {
    /// One `Arc` for both, so a request clones one.
    shared: Arc<Shared>,
}

struct Shared {
    metrics: Arc<Metrics>,
    store: Store,
}

impl ObserveLayer {
    /// Observes into `metrics`; the capabilities header describes `store`.
    pub(crate) fn new(metrics: Arc<Metrics>, store: Store) -> Self {
        ObserveLayer {
            shared: Arc::new(Shared { metrics, store }),
        }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = ObserveService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ObserveService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`ObserveLayer`].
#[derive(Clone)]
pub(crate) struct ObserveService<S> {
    inner: S,
    layer: ObserveLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ObserveService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        ObserveFuture {
            started: Instant::now(),
            inner: self.inner.call(request),
            layer: self.layer.clone(),
        }
    }
}

pin_project! {
    /// The inner response future, then the observation.
    pub(crate) struct ObserveFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        layer: ObserveLayer,
    }
}

impl<F, B, E> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        let shared = &this.layer.shared;
        shared.metrics.observe_latency(this.started.elapsed());
        shared.metrics.count_status(response.status());
        // Asked per answer: a remote store's capabilities may change as it learns routes.
        let capabilities = capabilities_value(shared.store.capabilities());
        response.headers_mut().insert(CAPABILITIES, capabilities);
        Poll::Ready(Ok(response))
    }
}
