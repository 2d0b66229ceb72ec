//! [`ConfigLayer`]: puts a [`Config`] handle into every request.

use std::task::{Context, Poll};

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use super::handle::Config;

/// Inserts a clone of a [`Config<T>`] handle into every request's extensions, where handlers
/// find it (with the `axum` feature, as an extractor). Costs one reference-count increment per
/// request; never touches the store.
///
/// ```
/// # async fn example(config: kv_middleware::config::Config<Limits>) {
/// use axum::{routing::get, Router};
/// use kv_middleware::config::{Config, ConfigLayer};
///
/// #[derive(serde::Deserialize, serde::Serialize)]
/// struct Limits { max_items: usize }
///
/// async fn items(config: Config<Limits>) -> String {
///     format!("up to {} items", config.get().max_items)
/// }
///
/// let app: Router = Router::new().route("/items", get(items)).layer(ConfigLayer::new(config));
/// # let _ = app;
/// # }
/// # #[derive(serde::Deserialize, serde::Serialize)] struct Limits { max_items: usize }
/// ```
#[derive(Debug)]
pub struct ConfigLayer<T> {
    config: Config<T>,
}

impl<T> Clone for ConfigLayer<T> {
    fn clone(&self) -> Self {
        ConfigLayer {
            config: self.config.clone(),
        }
    }
}

impl<T> ConfigLayer<T> {
    /// Puts `config` into every request.
    pub fn new(config: Config<T>) -> Self {
        ConfigLayer { config }
    }
}

impl<S, T> Layer<S> for ConfigLayer<T> {
    type Service = ConfigService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        ConfigService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`ConfigLayer`].
#[derive(Debug)]
pub struct ConfigService<S, T> {
    inner: S,
    config: Config<T>,
}

impl<S: Clone, T> Clone for ConfigService<S, T> {
    fn clone(&self) -> Self {
        ConfigService {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S, T> ConfigService<S, T> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, T, B> Service<Request<B>> for ConfigService<S, T>
where
    S: Service<Request<B>>,
    T: Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.config.clone());
        self.inner.call(request)
    }
}
