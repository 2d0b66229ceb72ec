//! [`EarlyResponseFuture`]: the inner service's answer, or the layer's own.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

pin_project! {
    /// The response future of a layer that either passes a request on or answers it itself
    /// at once (a refusal): [`OriginCheckService`](crate::origin::OriginCheckService),
    /// [`ApiKeyService`](crate::config::ApiKeyService) and
    /// [`RequireFlagService`](crate::flags::RequireFlagService), whose future types are
    /// aliases of this one.
    pub struct EarlyResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner { #[pin] future: F },
        Early { response: Option<Response<B>> },
    }
}

impl<F, B> EarlyResponseFuture<F, B> {
    /// The inner service's future, passed through.
    pub(crate) fn inner(future: F) -> Self {
        EarlyResponseFuture {
            state: State::Inner { future },
        }
    }

    /// The layer's own answer, ready at the first poll.
    pub(crate) fn early(response: Response<B>) -> Self {
        EarlyResponseFuture {
            state: State::Early {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for EarlyResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future.poll(cx),
            StateProj::Early { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after completion: nothing more to give.
                None => Poll::Pending,
            },
        }
    }
}

impl<F, B> fmt::Debug for EarlyResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Inner { .. } => "inner",
            State::Early { .. } => "early",
        };
        f.debug_struct("EarlyResponseFuture")
            .field("state", &state)
            .finish()
    }
}
