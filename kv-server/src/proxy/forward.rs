//! The innermost service: sends a request to the upstream with hyper's pooled client and turns
//! what comes back (or does not) into a response, streamed both ways.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{HeaderName, HeaderValue};
use http::{Request, StatusCode, Version};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower::Service;
use tower_http::timeout::TimeoutBody;

use super::headers::{append_via, remove_hop_by_hop, PSEUDONYM};
use super::{codes, Upstream};
use crate::error::ApiError;

type HyperClient = Client<HttpsConnector<HttpConnector>, Body>;

/// Sends requests to the upstream. Cheap to clone (one `Arc`); clones share the connection
/// pool.
#[derive(Clone)]
pub(crate) struct Forwarder {
    inner: Arc<Inner>,
}

struct Inner {
    client: HyperClient,
    upstream: Upstream,
    timeout: Duration,
}

impl Forwarder {
    pub(crate) fn new(upstream: Upstream, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        // The scheme is checked by the TLS wrapper, which passes `http` through.
        connector.enforce_http(false);
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config().as_ref().clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Forwarder {
            inner: Arc::new(Inner {
                client,
                upstream,
                timeout,
            }),
        }
    }
}

impl Service<Request<Body>> for Forwarder {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The pool opens connections on demand; there is no capacity to wait for.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(inner.forward(request).await) })
    }
}

impl Inner {
    async fn forward(&self, mut request: Request<Body>) -> Response {
        let Some(uri) = self.upstream.target(request.uri()) else {
            return ApiError::bad_request(
                crate::error::codes::BAD_REQUEST,
                "the request target must be a path starting with `/`",
            )
            .into_response();
        };
        *request.uri_mut() = uri;
        // The upstream connection is HTTP/1.1 whatever the client spoke.
        *request.version_mut() = Version::HTTP_11;
        // `Host` is the client's; hyper adds the upstream's only when the client sent none.
        let response = tokio::time::timeout(self.timeout, self.client.request(request)).await;
        match response {
            Err(_elapsed) => {
                tracing::warn!(timeout = ?self.timeout, "the upstream did not answer in time");
                gateway_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    codes::UPSTREAM_TIMEOUT,
                    "http_response_timeout",
                    format!(
                        "the upstream did not answer within {}",
                        seconds(self.timeout)
                    ),
                )
            }
            Ok(Err(error)) => {
                let kind = failure_kind(&error);
                tracing::warn!(error = %error_chain(&error), kind, "the upstream failed");
                gateway_error(
                    StatusCode::BAD_GATEWAY,
                    codes::UPSTREAM_FAILED,
                    kind,
                    format!("the upstream failed: {}", kind.replace('_', " ")),
                )
            }
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                remove_hop_by_hop(&mut parts.headers);
                append_via(&mut parts.headers, parts.version);
                parts.version = Version::HTTP_11;
                // A body that stalls for the upstream timeout ends with an error instead of
                // holding the client (and the cache's buffer) forever.
                let body = Body::new(TimeoutBody::new(self.timeout, body));
                Response::from_parts(parts, body)
            }
        }
    }
}

/// A 502 or 504 answered by the proxy itself: the JSON envelope, and `Proxy-Status`
/// (RFC 9209) naming the error type, so a client can tell the proxy's answer from the
/// upstream's. The cache layer serves a stale response instead where stale-if-error allows.
fn gateway_error(status: StatusCode, code: u32, kind: &str, message: String) -> Response {
    let mut response = ApiError::new(status, code, message).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("{PSEUDONYM}; error={kind}")) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("proxy-status"), value);
    }
    response
}

/// The RFC 9209 error type of a failed exchange.
fn failure_kind(error: &hyper_util::client::legacy::Error) -> &'static str {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection_refused",
                std::io::ErrorKind::TimedOut => return "connection_timeout",
                _ => {}
            }
        }
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            if hyper.is_parse() || hyper.is_parse_status() {
                return "http_protocol_error";
            }
            if hyper.is_incomplete_message() {
                return "connection_terminated";
            }
        }
        source = cause.source();
    }
    if error.is_connect() {
        "destination_unavailable"
    } else {
        "http_protocol_error"
    }
}

/// An error and its causes on one line, for the log.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

/// System roots, else the bundled Mozilla roots, with ring (as the http backend).
fn tls_config() -> &'static Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    })
}
