//! [`ResponseFuture`]: the check, then the inner service or the layer's own answer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use kv_core::Bytes;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::headers::LimitHeaders;

/// What a check decided.
pub(crate) enum Verdict {
    /// Call the inner service; add these headers to its response.
    Allow(Option<LimitHeaders>),
    /// Answer this instead.
    Reject(Response<Bytes>),
}

pub(crate) type CheckFuture = Pin<Box<dyn Future<Output = Verdict> + Send>>;

pin_project! {
    /// The response future of [`RateLimitService`](super::RateLimitService).
    ///
    /// For a request that bypasses the limiter it is the inner future; otherwise it first
    /// runs the check, then calls the inner service and adds the rate-limit headers, or
    /// answers with the rejection.
    pub struct ResponseFuture<S, F, ReqBody> {
        #[pin]
        state: State<S, F, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, ReqBody> {
        Checking {
            check: CheckFuture,
            service: Option<S>,
            request: Option<Request<ReqBody>>,
        },
        Inner {
            #[pin]
            future: F,
            headers: Option<LimitHeaders>,
        },
        Rejected {
            response: Option<Response<Bytes>>,
        },
        Done,
    }
}

impl<S, F, ReqBody> ResponseFuture<S, F, ReqBody> {
    pub(crate) fn inner(future: F, headers: Option<LimitHeaders>) -> Self {
        ResponseFuture {
            state: State::Inner { future, headers },
        }
    }

    pub(crate) fn rejected(response: Response<Bytes>) -> Self {
        ResponseFuture {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    pub(crate) fn checking(check: CheckFuture, service: S, request: Request<ReqBody>) -> Self {
        ResponseFuture {
            state: State::Checking {
                check,
                service: Some(service),
                request: Some(request),
            },
        }
    }
}

impl<S, F, ReqBody> fmt::Debug for ResponseFuture<S, F, ReqBody> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, F, ReqBody, ResBody, E> Future for ResponseFuture<S, F, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>, Error = E, Future = F>,
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: From<Bytes>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Checking {
                    check,
                    service,
                    request,
                } => {
                    let verdict = ready!(check.as_mut().poll(cx));
                    match (verdict, service.take(), request.take()) {
                        (Verdict::Allow(headers), Some(mut service), Some(request)) => {
                            let future = service.call(request);
                            this.state.set(State::Inner { future, headers });
                        }
                        (Verdict::Reject(response), _, _) => {
                            this.state.set(State::Rejected {
                                response: Some(response),
                            });
                        }
                        // Unreachable: the service and request are taken only here.
                        _ => this.state.set(State::Done),
                    }
                }
                StateProj::Inner { future, headers } => {
                    let mut response = ready!(future.poll(cx))?;
                    let headers = headers.take();
                    this.state.set(State::Done);
                    if let Some(headers) = headers {
                        headers.apply(response.headers_mut());
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Rejected { response } => {
                    let response = response.take();
                    this.state.set(State::Done);
                    if let Some(response) = response {
                        return Poll::Ready(Ok(response.map(ResBody::from)));
                    }
                }
                StateProj::Done => panic!("rate limit ResponseFuture polled after completion"),
            }
        }
    }
}
