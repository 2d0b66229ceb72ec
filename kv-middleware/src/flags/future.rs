//! The response future of [`FlagsService`](super::FlagsService).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Request;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::handle::Flags;

type Lookup = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

pin_project! {
    /// The response future of [`FlagsService`](super::FlagsService): the inner service's,
    /// preceded (when the user comes from the session) by reading the user.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Resolving {
            lookup: Lookup,
            pending: Option<(S, Request<B>, Flags)>,
        },
        Called {
            #[pin]
            future: S::Future,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(crate) fn called(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Called { future },
        }
    }

    #[allow(dead_code)] // only with the `session` feature
    pub(crate) fn resolving(lookup: Lookup, inner: S, request: Request<B>, flags: Flags) -> Self {
        ResponseFuture {
            state: State::Resolving {
                lookup,
                pending: Some((inner, request, flags)),
            },
        }
    }
}

impl<S, B> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future } => return future.poll(cx),
                StateProj::Resolving { lookup, pending } => {
                    let user = ready!(lookup.as_mut().poll(cx));
                    let Some((mut inner, mut request, flags)) = pending.take() else {
                        // Unreachable: `pending` is taken once, right before the state changes.
                        return Poll::Pending;
                    };
                    let flags = match user {
                        Some(user) => flags.with_targeting_key(user),
                        None => flags,
                    };
                    request.extensions_mut().insert(flags);
                    let future = inner.call(request);
                    this.state.set(State::Called { future });
                }
            }
        }
    }
}

impl<S, B> std::fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
