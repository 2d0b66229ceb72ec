//! [`ResponseFuture`]: the inner response, then the session's save.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::header::SET_COOKIE;
use http::{HeaderValue, Response, StatusCode};
use pin_project_lite::pin_project;

use super::handle::Session;

type Finish = Pin<Box<dyn Future<Output = Result<Option<HeaderValue>, ()>> + Send>>;

pin_project! {
    /// The response future of [`SessionService`](super::SessionService).
    ///
    /// For a request whose handler never touched the session it is the inner future and
    /// nothing more (no allocation, no store access); otherwise it then saves the session and
    /// adds the `Set-Cookie` header, or answers 500 when the store failed.
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner {
            #[pin]
            future: F,
            session: Option<Session>,
        },
        Finishing {
            finish: Finish,
            response: Option<Response<B>>,
        },
        Done,
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn new(future: F, session: Session) -> Self {
        ResponseFuture {
            state: State::Inner {
                future,
                session: Some(session),
            },
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { future, session } => {
                    let response = ready!(future.poll(cx))?;
                    let session = match session.take() {
                        Some(session) if session.is_touched() => session,
                        _ => {
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(response));
                        }
                    };
                    let status = response.status();
                    if let Some(outcome) = session.finish_now(status) {
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(complete(response, outcome)));
                    }
                    let finish: Finish = Box::pin(async move { session.finish(status).await });
                    this.state.set(State::Finishing {
                        finish,
                        response: Some(response),
                    });
                }
                StateProj::Finishing { finish, response } => {
                    let outcome = ready!(finish.as_mut().poll(cx));
                    let response = response.take();
                    this.state.set(State::Done);
                    let Some(response) = response else {
                        // Unreachable: the response is stored with the finishing step.
                        return Poll::Ready(Ok(internal_error()));
                    };
                    return Poll::Ready(Ok(complete(response, outcome)));
                }
                StateProj::Done => panic!("session ResponseFuture polled after completion"),
            }
        }
    }
}

/// Adds the session's cookie to the response, or replaces the response by a 500.
fn complete<B: Default>(
    mut response: Response<B>,
    outcome: Result<Option<HeaderValue>, ()>,
) -> Response<B> {
    match outcome {
        Ok(Some(cookie)) => {
            response.headers_mut().append(SET_COOKIE, cookie);
            response
        }
        Ok(None) => response,
        Err(()) => internal_error(),
    }
}

fn internal_error<B: Default>() -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
