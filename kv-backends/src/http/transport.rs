//! Sending one request: the pooled client, authentication, timeouts, retries, and what the
//! server's answers teach us about it.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kv_core::{Capabilities, KvError, Message};

use super::retry::RetryPolicy;
use super::wire::{self, RemoteError};
use super::BACKEND;

type HyperClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Whether a request may be sent again after it may have reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Safety {
    /// Sending it twice leaves the same state as once: retried on any transient failure.
    Idempotent,
    /// Retried only when the connection could not be made, so the first attempt never left.
    Once,
}

/// One request, rebuilt for every attempt.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    pub safety: Safety,
}

impl Call {
    pub fn new(method: Method, url: String, safety: Safety) -> Self {
        Call {
            method,
            url,
            headers: Vec::new(),
            body: Bytes::new(),
            safety,
        }
    }

    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn body(mut self, content_type: &str, body: Bytes) -> Self {
        if let Ok(value) = HeaderValue::from_str(content_type) {
            self.headers.push((CONTENT_TYPE, value));
        }
        self.body = body;
        self
    }

    pub fn json(self, value: &serde_json::Value) -> Self {
        let body = serde_json::to_vec(value).expect("a JSON value serializes");
        self.body("application/json", Bytes::from(body))
    }
}

/// A whole answer: status, headers and the body read to its end.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The first error of the answer's envelope.
    pub fn error(&self) -> RemoteError {
        RemoteError::from_answer(self.status, &self.body)
    }

    /// Whether this error answer says the server has no route for the request, rather than
    /// anything about the data (see [`wire::is_not_served`]).
    pub fn not_served(&self) -> bool {
        !self.status.is_success() && wire::is_not_served(self.status, &self.error())
    }
}

/// A route some Cloudflare-shaped servers do not serve, and that has a fallback here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// `GET {ns}/metadata/{key}` (Miniflare's explorer API has none).
    Metadata = 1,
    /// `PUT {ns}/bulk`.
    BulkPut = 2,
    /// `POST {ns}/bulk/delete`.
    BulkDelete = 4,
    /// `GET {ns}` (one namespace).
    NamespaceGet = 8,
}

impl Route {
    fn describe(self) -> &'static str {
        match self {
            Route::Metadata => "GET metadata/{key}",
            Route::BulkPut => "PUT bulk",
            Route::BulkDelete => "POST bulk/delete",
            Route::NamespaceGet => "GET {namespace_id}",
        }
    }
}

/// What the first successful answer said about the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerTraits {
    /// It sent the capabilities header at all (a kv-server, which serves every route and
    /// keeps expirations when its store does).
    pub advertised: bool,
    /// It advertised atomic conditional writes.
    pub compare_and_swap: bool,
    /// Its value reads always carry the metadata header when there is metadata.
    pub metadata_header: bool,
}

const UNKNOWN: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;

/// The settings [`Transport::new`] needs.
pub(crate) struct TransportConfig {
    pub base: String,
    pub token: Option<String>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub retry: RetryPolicy,
    pub max_response_bytes: usize,
    /// Whether the server keeps expirations, when the builder was told.
    pub expirations: Option<bool>,
    /// Whether metadata may be read from a one-key listing when the server has no other way.
    pub metadata_from_listing: bool,
}

/// The path under which Miniflare serves its local explorer API, which accepts `expiration`
/// and `expiration_ttl` on writes and drops them.
pub(crate) const MINIFLARE_EXPLORER_PATH: &str = "/cdn-cgi/explorer/api";

/// The pooled HTTP client of one backend and what it learned about its server.
pub(crate) struct Transport {
    client: HyperClient,
    base: String,
    authorization: Option<HeaderValue>,
    timeout: Duration,
    retry: RetryPolicy,
    max_response_bytes: usize,
    traits: OnceLock<ServerTraits>,
    /// Whether the server's delete answers say if an entry existed (`UNKNOWN` until one did or
    /// did not).
    delete_reports_existed: AtomicU8,
    /// The base URL is Miniflare's explorer API (see [`MINIFLARE_EXPLORER_PATH`]).
    explorer: bool,
    expirations: Option<bool>,
    metadata_from_listing: bool,
    /// The [`Route`]s the server answered "no such route" for, as bits.
    missing_routes: AtomicU8,
    /// Whether the note that metadata is omitted was logged.
    noted_metadata_omitted: AtomicBool,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("base", &self.base)
            .field("token", &self.authorization.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("traits", &self.traits.get())
            .field(
                "missing_routes",
                &self.missing_routes.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

impl Transport {
    pub fn new(config: TransportConfig) -> Result<Self, KvError> {
        let base = config.base.trim_end_matches('/').to_owned();
        let uri: Uri = base
            .parse()
            .map_err(|e| invalid_base(&base, format!("{e}")))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => return Err(invalid_base(&base, "the scheme must be http or https")),
        }
        if uri.authority().is_none() {
            return Err(invalid_base(&base, "the URL has no host"));
        }
        if uri.query().is_some() {
            return Err(invalid_base(&base, "the base URL must not have a query"));
        }
        let explorer = uri.path().contains(MINIFLARE_EXPLORER_PATH);
        let authorization = match config.token {
            None => None,
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                    .map_err(|_| {
                        KvError::backend(
                            BACKEND,
                            Message("the API token is not a valid HTTP header value".into()),
                        )
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
        };

        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config().as_ref().clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Transport {
            client,
            base,
            authorization,
            timeout: config.timeout,
            retry: config.retry,
            max_response_bytes: config.max_response_bytes,
            traits: OnceLock::new(),
            delete_reports_existed: AtomicU8::new(UNKNOWN),
            explorer,
            expirations: config.expirations,
            metadata_from_listing: config.metadata_from_listing,
            missing_routes: AtomicU8::new(0),
            noted_metadata_omitted: AtomicBool::new(false),
        })
    }

    /// The API base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// What the server advertised, once a request has succeeded.
    pub fn traits(&self) -> Option<ServerTraits> {
        self.traits.get().copied()
    }

    /// Atomic compare-and-swap only when the server advertised it; metadata unless the server
    /// has no way to read it and listings may not be used; expirations unless the server is
    /// known to drop them.
    pub fn capabilities(&self) -> Capabilities {
        let base = match self.traits() {
            Some(traits) if traits.compare_and_swap => Capabilities::atomic(),
            _ => Capabilities::plain(),
        };
        base.with_metadata(self.metadata_from_listing || self.serves(Route::Metadata))
            .with_expirations(self.keeps_expirations())
    }

    /// Whether the server keeps expirations: as the builder said, else not for Miniflare's
    /// explorer API (its base path, and no capabilities header once an answer came), which
    /// accepts them and drops them; else yes.
    pub fn keeps_expirations(&self) -> bool {
        if let Some(told) = self.expirations {
            return told;
        }
        let advertised = self.traits().is_some_and(|traits| traits.advertised);
        !self.explorer || advertised
    }

    /// Whether metadata may be read from a one-key listing.
    pub fn metadata_from_listing(&self) -> bool {
        self.metadata_from_listing
    }

    /// Whether the server is not yet known to lack `route`.
    pub fn serves(&self, route: Route) -> bool {
        self.missing_routes.load(Ordering::Relaxed) & route as u8 == 0
    }

    /// Remembers that the server has no `route`, so later calls go to the fallback at once.
    pub fn learn_not_served(&self, route: Route) {
        let before = self.missing_routes.fetch_or(route as u8, Ordering::Relaxed);
        if before & route as u8 == 0 {
            tracing::info!(
                base = %self.base,
                route = route.describe(),
                "the kv server does not serve this route; using the fallback from now on"
            );
        }
    }

    /// Logs, once per backend, that entries are read without their metadata.
    pub fn note_metadata_omitted(&self) {
        if !self.noted_metadata_omitted.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                base = %self.base,
                "the kv server serves no metadata route and listings may not be used \
                 (HttpBackendBuilder::metadata_from_listing): entries are read without metadata"
            );
        }
    }

    /// Whether delete answers are known to say if an entry existed (`None`: not known yet).
    pub fn delete_reports_existed(&self) -> Option<bool> {
        match self.delete_reports_existed.load(Ordering::Relaxed) {
            YES => Some(true),
            NO => Some(false),
            _ => None,
        }
    }

    /// Records whether a delete answer said if an entry existed.
    pub fn learn_delete_reports(&self, reports: bool) {
        let value = if reports { YES } else { NO };
        self.delete_reports_existed.store(value, Ordering::Relaxed);
    }

    /// Sends `call`, retrying as its safety and the policy allow, and reads the whole answer.
    ///
    /// An answer of 429 or 5xx (but 501) that is not retried, or still fails after the last
    /// retry, becomes [`KvError::Unavailable`] with a [`RemoteError`] as its source; so does a
    /// connection failure or a timeout. Every other answer is returned for the caller to read.
    pub async fn execute(&self, call: &Call) -> Result<Answer, KvError> {
        let uri: Uri = call.url.parse().map_err(|e| {
            KvError::backend(
                BACKEND,
                Message(format!(
                    "cannot build a request URL from {:?}: {e}",
                    call.url
                )),
            )
        })?;
        let mut attempt = 0u32;
        let mut waits = self.retry.waits();
        loop {
            let retries_left = attempt < self.retry.retries();
            let wait = match self.attempt(call, uri.clone()).await {
                Ok(answer)
                    if !is_transient_status(answer.status)
                        || is_definite_gateway_error(&answer) =>
                {
                    if answer.status.is_success() {
                        self.learn(&answer.headers);
                    }
                    return Ok(answer);
                }
                Ok(answer) => {
                    let error = answer.error();
                    if call.safety != Safety::Idempotent || !retries_left {
                        return Err(unavailable(error));
                    }
                    // A `Retry-After` replaces this retry's wait; the steps go on growing.
                    let computed = waits.next_pause();
                    match self.retry.retry_after(&answer.headers) {
                        Ok(Some(wait)) => wait,
                        Ok(None) => computed,
                        Err(()) => return Err(unavailable(error)),
                    }
                }
                Err(failure) => {
                    let may_resend = failure.never_sent()
                        || (failure.transient() && call.safety == Safety::Idempotent);
                    if !may_resend || !retries_left {
                        return Err(failure.into_kv_error());
                    }
                    waits.next_pause()
                }
            };
            attempt += 1;
            tracing::debug!(
                method = %call.method,
                url = %call.url,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "retrying a kv request"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt: send, then read the body, all within the timeout.
    async fn attempt(&self, call: &Call, uri: Uri) -> Result<Answer, Failure> {
        let mut request = Request::builder().method(call.method.clone()).uri(uri);
        let headers = request.headers_mut().expect("a fresh builder has headers");
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        if let Some(authorization) = &self.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        for (name, value) in &call.headers {
            headers.insert(name.clone(), value.clone());
        }
        let request = request
            .body(Full::new(call.body.clone()))
            .map_err(|e| Failure::new(FailureKind::Build, e))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|error| {
                let kind = if error.is_connect() {
                    FailureKind::Connect
                } else {
                    FailureKind::Exchange
                };
                Failure::new(kind, error)
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, self.max_response_bytes)
                .collect()
                .await
                .map_err(|error| {
                    if error.is::<http_body_util::LengthLimitError>() {
                        Failure::new(
                            FailureKind::TooLarge,
                            Message(format!(
                                "the answer is larger than {} bytes (see \
                                 HttpBackendBuilder::max_response_bytes)",
                                self.max_response_bytes
                            )),
                        )
                    } else {
                        Failure::new(FailureKind::Exchange, error)
                    }
                })?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Failure::new(
                FailureKind::Timeout,
                Message(format!("no complete answer within {:?}", self.timeout)),
            )),
        }
    }

    /// Remembers what the first successful answer advertised.
    fn learn(&self, headers: &HeaderMap) {
        if self.traits.get().is_some() {
            return;
        }
        let compare_and_swap = wire::has_capability(headers, wire::COMPARE_AND_SWAP);
        // Only `metadata-header` promises the header: a kv-server in front of a store that
        // cannot read metadata advertises compare-and-swap alone.
        let metadata_header = wire::has_capability(headers, wire::METADATA_CAPABILITY);
        let _ = self.traits.set(ServerTraits {
            advertised: headers.contains_key(wire::CAPABILITIES_HEADER),
            compare_and_swap,
            metadata_header,
        });
    }
}

const USER_AGENT_VALUE: &str = concat!("kv-backends/", env!("CARGO_PKG_VERSION"));

/// 429 and 5xx but 501 (Not Implemented) and 505 (Version Not Supported) may pass.
fn is_transient_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error()
            && status != StatusCode::NOT_IMPLEMENTED
            && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
}

/// A 502 from a kv-server saying its own store answered "no such route" or rejected the
/// request: asking again gets the same answer, so it is not retried.
fn is_definite_gateway_error(answer: &Answer) -> bool {
    answer.status == StatusCode::BAD_GATEWAY
        && matches!(
            answer.error().code,
            wire::UPSTREAM_NOT_SERVED | wire::UPSTREAM_REJECTED
        )
}

fn unavailable(error: RemoteError) -> KvError {
    KvError::Unavailable {
        backend: BACKEND,
        source: Box::new(error),
    }
}

fn invalid_base(base: &str, reason: impl Into<String>) -> KvError {
    KvError::InvalidStoreUrl {
        url: kv_core::redact_store_url(base),
        reason: reason.into(),
    }
}

/// The TLS settings every backend shares: ring's cryptography and the system's root
/// certificates (Mozilla's bundled ones when the system has none).
fn tls_config() -> &'static Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_roots();
        let (added, _ignored) = roots.add_parsable_certificates(native);
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

fn rustls_native_roots() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let result = rustls_native_certs::load_native_certs();
    for error in &result.errors {
        tracing::debug!(%error, "could not load some system root certificates");
    }
    result.certs
}

/// Why an attempt got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    /// The request could not be built (a bad URL or header).
    Build,
    /// No connection could be made: the request never left.
    Connect,
    /// The connection failed while sending or receiving.
    Exchange,
    /// No complete answer within the timeout.
    Timeout,
    /// The answer is larger than the configured maximum.
    TooLarge,
}

#[derive(Debug)]
struct Failure {
    kind: FailureKind,
    source: kv_core::BoxError,
}

impl Failure {
    fn new(kind: FailureKind, source: impl Into<kv_core::BoxError>) -> Self {
        Failure {
            kind,
            source: source.into(),
        }
    }

    /// The request certainly did not reach the server.
    fn never_sent(&self) -> bool {
        self.kind == FailureKind::Connect
    }

    /// Trying again later may work.
    fn transient(&self) -> bool {
        matches!(
            self.kind,
            FailureKind::Connect | FailureKind::Exchange | FailureKind::Timeout
        )
    }

    fn into_kv_error(self) -> KvError {
        match self.kind {
            FailureKind::Connect | FailureKind::Exchange | FailureKind::Timeout => {
                KvError::Unavailable {
                    backend: BACKEND,
                    source: self.source,
                }
            }
            FailureKind::Build | FailureKind::TooLarge => KvError::Backend {
                backend: BACKEND,
                source: self.source,
            },
        }
    }
}
