//! The HTTP backend: a client of the Cloudflare KV REST API v4 shape, as served by kv-server,
//! by Cloudflare Workers KV itself and by Miniflare's local explorer API.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> kv_core::Result<()> {
//! use kv_backends::http::HttpBackend;
//! use kv_core::{PutOptions, Store};
//! use std::time::Duration;
//!
//! // A kv-server (`kv serve`): the URL without a path gets the default API path.
//! let backend = HttpBackend::for_server("http://127.0.0.1:8787")?
//!     .token("s3cret")
//!     .timeout(Duration::from_secs(10))
//!     .build()?;
//! let store = Store::new(backend);
//! let sessions = store.namespace("SESSIONS").await?;
//! sessions.put_text("greeting", "hello").await?;
//! assert_eq!(sessions.get_text("greeting").await?.as_deref(), Some("hello"));
//!
//! // Compare-and-swap works against a server that advertises it (kv-server does).
//! let created = sessions
//!     .put_with("lock", "me", PutOptions::new().only_if_absent())
//!     .await?;
//! # let _ = created;
//!
//! // Cloudflare Workers KV: the same code, another base URL.
//! let cloudflare = HttpBackend::cloudflare("0123456789abcdef")
//!     .token(std::env::var("CLOUDFLARE_API_TOKEN").unwrap_or_default())
//!     .build()?;
//! # let _ = cloudflare;
//! # Ok(()) }
//! ```
//!
//! Store URLs open it too (see [`open`](crate::open)): `http://HOST:PORT` and `https://...`
//! (token from `KV_TOKEN`; the URL's path, when it has one, is the API base, so Miniflare's
//! `http://127.0.0.1:8787/cdn-cgi/explorer/api/storage/kv/namespaces` works as it is), and
//! `cloudflare://ACCOUNT_ID` (token from `CLOUDFLARE_API_TOKEN`); opening one
//! [connects](HttpBackendBuilder::connect), so an unreachable server or a refused token fails
//! there.
//!
//! # Requests
//!
//! | operation | request |
//! | --- | --- |
//! | get | `GET values/{key}`: value, `ETag`, `expiration`, `x-kv-metadata`; against a server without the metadata header a second `GET metadata/{key}` (or a one-key listing, see below) |
//! | put | `PUT values/{key}?expiration=`: the raw value, or multipart `value` + `metadata`; `If-Match` / `If-None-Match: *` for conditional writes |
//! | delete | `DELETE values/{key}`, with the same conditions |
//! | list | `GET keys?prefix=&limit=&cursor=` |
//! | get_many | parallel `GET values/{key}`, at most [`get_many_concurrency`](HttpBackendBuilder::get_many_concurrency) at once (see below) |
//! | put_many | `PUT bulk`, 10 000 items or about 64 MiB per request; binary values in base64 (or item by item, see below) |
//! | delete_many | `POST bulk/delete`, 10 000 keys per request (or item by item) |
//! | namespaces | `GET /?page=N&per_page=1000&order=id&direction=asc` (every page), `POST /`, `GET /{id}`, `PUT /{id}`, `DELETE /{id}` |
//!
//! The namespace listing pages as Cloudflare's API does and stops at an empty page, at a
//! page shorter than its `per_page`, or when `result_info` says the last page was returned
//! (`page >= total_pages`, or `total_count` namespaces seen); a server whose `result_info`
//! has no page fields (Miniflare's explorer API returns every namespace at once) is asked
//! once, and a server that ignores `page` and repeats itself is not asked again.
//!
//! A server is known to send `x-kv-metadata` whenever an entry has metadata when its
//! `x-kv-capabilities` header lists `metadata-header` (kv-server, when its store reads
//! metadata); for any other server a value read without that header costs the second request.
//!
//! Keys, namespace ids and query values are percent-encoded byte by byte (everything but
//! `A-Z a-z 0-9 - . _ ~`), so `/`, spaces, `%`, `?` and unicode keys round-trip.
//!
//! **Bulk get is parallel single reads**, not `POST bulk/get`: that endpoint returns values as
//! text or JSON, so it cannot carry binary values, and it returns no versions. One connection
//! per concurrent read is reused from the pool; the result keeps the order of the keys and
//! reads a repeated key once.
//!
//! **Bulk writes are chunked**, so a put_many larger than one request is not all-or-nothing:
//! an error may leave the earlier chunks written.
//!
//! # Servers with fewer routes (Miniflare)
//!
//! Miniflare's local explorer API (`http://HOST:PORT/cdn-cgi/explorer/api/storage/kv/namespaces`)
//! serves namespace listing, values (get, put with metadata, delete), key listing and bulk
//! get, and nothing else: it answers every other route with `404`, `text/plain`, `404 Not
//! Found`, not the JSON envelope. The backend tells such an answer (a 404, 405 or 501 without
//! an error code, or kv-server's 10025 / 10038 / 10042, or Cloudflare's 7000) from a missing
//! key or namespace (404 with code 10009 / 10013), remembers per backend which routes the
//! server lacks, and from then on goes straight to the fallback:
//!
//! | missing route | fallback |
//! | --- | --- |
//! | `GET metadata/{key}` | a one-key listing, `GET keys?prefix={key}&limit=10`, whose entry named exactly `key` gives the metadata and the expiration (Miniflare's value reads carry neither); with [`metadata_from_listing(false)`](HttpBackendBuilder::metadata_from_listing) the metadata is omitted, a warning is logged once, and [`Capabilities::metadata`] turns false. Also how a delete learns whether the key existed. |
//! | `PUT bulk` | `PUT values/{key}` per item, [`get_many_concurrency`](HttpBackendBuilder::get_many_concurrency) at once |
//! | `POST bulk/delete` | `DELETE values/{key}` per key, as many at once |
//! | `GET /{id}` | the id is looked up in the namespace listing |
//! | `POST /`, `PUT /{id}`, `DELETE /{id}` | none: [`KvError::NotServed`] |
//!
//! **Expirations.** Miniflare's explorer accepts `expiration` and `expiration_ttl` on a value
//! write and drops them (the entry never expires), and nothing in its answer says so. The
//! backend therefore treats a server as dropping expirations when its base URL's path contains
//! `/cdn-cgi/explorer/api` and its answers carry no `x-kv-capabilities` header (a kv-server
//! behind such a path would send one); [`server_keeps_expirations`](HttpBackendBuilder::server_keeps_expirations)
//! overrides the detection. Against such a server [`Capabilities::expirations`] is false, and a
//! put or bulk put with an expiration is refused with [`KvError::Unsupported`] before anything
//! is sent (a bulk put as a whole), rather than stored forever.
//!
//! # Versions and compare-and-swap
//!
//! An entry's version is its `ETag`. Conditional writes are sent as `If-Match: "<version>"` or
//! `If-None-Match: *`, and 412 is [`PutOutcome::ConditionFailed`]. The backend claims atomic
//! compare-and-swap only when the server advertised `x-kv-capabilities: compare-and-swap` on
//! its first successful answer (every namespace is opened by a request, so this is known
//! before any write); against any other server (Cloudflare, Miniflare, a kv-server over a
//! store without compare-and-swap) [`Capabilities::plain`] makes the
//! [`Namespace`](kv_core::Namespace) handle refuse conditional writes with
//! [`KvError::Unsupported`].
//!
//! A server that sends no `ETag` gets versions derived from a hash of the entry's value,
//! metadata and expiration: stable across reads, but unchanged by a rewrite of the same
//! content, which is one more reason compare-and-swap is never claimed there.
//!
//! An unconditional delete reports whether an entry existed from the server's answer
//! (`result.existed`); a server that does not say so is asked first with a
//! `GET metadata/{key}`, so the flag is then not atomic with the delete.
//!
//! # Time
//!
//! Expirations are sent as lifetimes (`expiration_ttl=`): the entry's expiration less the
//! backend's [`clock`](HttpBackendBuilder::clock) at the time of sending. The server turns the
//! lifetime into an expiration with its own clock, so a TTL at the 60 s minimum is never
//! refused for a second boundary crossed on the way or a skew between the two clocks; the
//! price is that an absolute expiration lands shifted by that skew (as on Redis, whose
//! expiries are relative too).
//!
//! # Errors
//!
//! - No connection, a connection lost, a timeout, or 429 / 5xx after the retries:
//!   [`KvError::Unavailable`] (for an answer, with a [`RemoteError`] as its source). A
//!   conditional write that fails this way may or may not have happened.
//! - 404 with code 10013: [`KvError::NamespaceNotFound`] for writes; reads of a namespace
//!   deleted under an open handle see nothing, as with the other backends. Code 10014:
//!   [`KvError::NamespaceExists`]. 412: the `ConditionFailed` outcome. 400 with code 10033:
//!   [`KvError::InvalidCursor`]. 501 with code 10039: [`KvError::Unsupported`].
//! - An answer that the server has no route for the request (see "Servers with fewer
//!   routes"), where no fallback exists: [`KvError::NotServed`], never a missing key and never
//!   [`KvError::Remote`]. A kv-server's 502 with code 10042 (its own store has no such route)
//!   is the same, and like its 502 with code 10043 is not retried.
//! - A write with an expiration to a server that drops expirations: [`KvError::Unsupported`].
//! - Any other error answer: [`KvError::Remote`] with the status and the envelope's first
//!   code and message (401 for a missing or wrong token).
//!
//! Retries follow the [`RetryPolicy`]: only requests that are safe to repeat are retried
//! after they may have reached the server.
//!
//! # TLS
//!
//! `https://` uses rustls with the ring provider (no C toolchain needed) and the system's root
//! certificates, or Mozilla's bundled roots when the system has none. HTTP/1.1 only; idle
//! connections are kept for reuse ([`pool_idle_timeout`](HttpBackendBuilder::pool_idle_timeout)).
//!
//! [`PutOutcome::ConditionFailed`]: kv_core::PutOutcome::ConditionFailed
//! [`Capabilities::metadata`]: kv_core::Capabilities::metadata
//! [`Capabilities::expirations`]: kv_core::Capabilities::expirations

mod namespace;
mod retry;
mod transport;
mod wire;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use kv_core::{
    async_trait, Backend, Capabilities, KvError, NamespaceInfo, NamespaceStore, Result,
    SharedClock, SystemClock,
};
use serde_json::json;

pub use self::namespace::HttpNamespace;
pub use self::retry::RetryPolicy;
use self::transport::{Answer, Call, Route, Safety, Transport, TransportConfig};
pub use self::wire::RemoteError;
use self::wire::{
    encode, parse_envelope, NamespaceItem, ResultInfo, NAMESPACE_EXISTS, NAMESPACE_NOT_FOUND,
};

/// The backend's name in errors and logs.
pub(crate) const BACKEND: &str = "http";

/// The API path a kv-server serves, appended to a server URL that has no path.
pub const DEFAULT_API_PATH: &str = "/client/v4/accounts/local/storage/kv/namespaces";

/// Cloudflare's API, to which `/{account_id}/storage/kv/namespaces` is appended.
pub const CLOUDFLARE_API: &str = "https://api.cloudflare.com/client/v4/accounts";

/// The environment variable holding the bearer token for `http(s)://` store URLs.
pub const TOKEN_ENV: &str = "KV_TOKEN";

/// The environment variable holding the API token for `cloudflare://` store URLs.
pub const CLOUDFLARE_TOKEN_ENV: &str = "CLOUDFLARE_API_TOKEN";

/// The API base URL for a server URL: the URL itself when it has a path (Miniflare's explorer
/// API, a reverse proxy's prefix), else the URL with [`DEFAULT_API_PATH`].
///
/// ```
/// use kv_backends::http::api_base_for_url;
///
/// assert_eq!(
///     api_base_for_url("http://127.0.0.1:8787/").unwrap(),
///     "http://127.0.0.1:8787/client/v4/accounts/local/storage/kv/namespaces"
/// );
/// assert_eq!(
///     api_base_for_url("http://localhost:8787/cdn-cgi/explorer/api/storage/kv/namespaces").unwrap(),
///     "http://localhost:8787/cdn-cgi/explorer/api/storage/kv/namespaces"
/// );
/// assert!(api_base_for_url("ftp://host").is_err());
/// ```
pub fn api_base_for_url(url: &str) -> Result<String> {
    let invalid = |reason: &str| KvError::InvalidStoreUrl {
        url: kv_core::redact_store_url(url),
        reason: reason.to_owned(),
    };
    let trimmed = url.trim().trim_end_matches('/');
    let uri: http::Uri = trimmed
        .parse()
        .map_err(|_| invalid("not a valid http(s) URL"))?;
    if !matches!(uri.scheme_str(), Some("http") | Some("https")) {
        return Err(invalid("the scheme must be http:// or https://"));
    }
    if uri.authority().is_none() {
        return Err(invalid("the URL has no host"));
    }
    if uri.query().is_some() {
        return Err(invalid("the URL must not have a query"));
    }
    if matches!(uri.path(), "" | "/") {
        Ok(format!("{trimmed}{DEFAULT_API_PATH}"))
    } else {
        Ok(trimmed.to_owned())
    }
}

/// The default of [`HttpBackendBuilder::pool_idle_timeout`].
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Configures an [`HttpBackend`].
#[derive(Clone)]
pub struct HttpBackendBuilder {
    base: String,
    token: Option<String>,
    clock: SharedClock,
    timeout: Duration,
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
    retry: RetryPolicy,
    get_many_concurrency: usize,
    max_response_bytes: usize,
    expirations: Option<bool>,
    metadata_from_listing: bool,
}

impl fmt::Debug for HttpBackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBackendBuilder")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl HttpBackendBuilder {
    /// A backend for the API at `base_url`, the URL under which `GET /` lists namespaces
    /// (for example `https://api.cloudflare.com/client/v4/accounts/ID/storage/kv/namespaces`).
    pub fn new(base_url: impl Into<String>) -> Self {
        HttpBackendBuilder {
            base: base_url.into(),
            token: None,
            clock: SystemClock::shared(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            retry: RetryPolicy::default(),
            get_many_concurrency: 16,
            max_response_bytes: 64 * 1024 * 1024,
            expirations: None,
            metadata_from_listing: true,
        }
    }

    /// Send `Authorization: Bearer <token>` with every request.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Decide expiry with this clock (the system clock by default). Tests share a
    /// [`ManualClock`](kv_core::ManualClock) with the server's backend.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The longest one attempt may take, from sending to the end of the answer (30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The longest connecting may take (5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an idle connection is kept for reuse (5 s by default: shorter than kv-server's
    /// 10 s idle close, so the client never sends on a connection the server is closing, which
    /// a conditional write could not safely retry).
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// How failed requests are retried ([`RetryPolicy::default`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How many reads a bulk get runs at once (16; at least 1).
    pub fn get_many_concurrency(mut self, concurrency: usize) -> Self {
        self.get_many_concurrency = concurrency.max(1);
        self
    }

    /// The largest answer body read (64 MiB; raise it with relaxed value limits).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Says whether the server keeps expirations, instead of the detection described in the
    /// module docs ("Servers with fewer routes"). With `false`, writes with an expiration are
    /// refused with [`KvError::Unsupported`] before anything is sent.
    pub fn server_keeps_expirations(mut self, keeps: bool) -> Self {
        self.expirations = Some(keeps);
        self
    }

    /// Whether metadata may be read from a one-key listing when the server neither sends the
    /// metadata header nor serves `GET metadata/{key}` (default `true`). With `false`, entries
    /// of such a server are read without metadata (a warning is logged once) and
    /// [`Backend::capabilities`] says so (`metadata: false`).
    pub fn metadata_from_listing(mut self, allowed: bool) -> Self {
        self.metadata_from_listing = allowed;
        self
    }

    /// Builds the backend without sending anything: the first successful answer (usually the
    /// namespace listing behind [`Store::namespace`](kv_core::Store::namespace)) tells what
    /// the server can do, and until then [`Backend::capabilities`] says plain. Fails on a base
    /// URL that is not an absolute `http(s)` URL or a token that cannot be a header.
    pub fn build(self) -> Result<HttpBackend> {
        let transport = Transport::new(TransportConfig {
            base: self.base,
            token: self.token,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            pool_idle_timeout: self.pool_idle_timeout,
            retry: self.retry,
            max_response_bytes: self.max_response_bytes,
            expirations: self.expirations,
            metadata_from_listing: self.metadata_from_listing,
        })?;
        Ok(HttpBackend {
            shared: Arc::new(Shared {
                transport,
                clock: self.clock,
                get_many_concurrency: self.get_many_concurrency,
            }),
        })
    }

    /// Builds the backend and asks the server what it can do (one namespace listing), so
    /// [`Backend::capabilities`] is right from the start; fails when the server cannot be
    /// reached ([`KvError::Unavailable`]) or refuses the token ([`KvError::Remote`], 401).
    pub async fn connect(self) -> Result<HttpBackend> {
        let backend = self.build()?;
        backend.probe().await?;
        Ok(backend)
    }
}

/// A backend that speaks the KV REST API to a remote store. Cheap to clone; clones share the
/// connection pool.
#[derive(Clone)]
pub struct HttpBackend {
    shared: Arc<Shared>,
}

impl fmt::Debug for HttpBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBackend")
            .field("transport", &self.shared.transport)
            .finish_non_exhaustive()
    }
}

/// What a backend and its namespaces share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub transport: Transport,
    pub clock: SharedClock,
    pub get_many_concurrency: usize,
}

impl Shared {
    /// The URL of the namespace with this id.
    fn namespace_url(&self, id: &str) -> String {
        format!("{}/{}", self.transport.base(), encode(id))
    }
}

impl HttpBackend {
    /// Configures a backend for the API at `base_url` (see [`HttpBackendBuilder::new`]).
    pub fn builder(base_url: impl Into<String>) -> HttpBackendBuilder {
        HttpBackendBuilder::new(base_url)
    }

    /// Configures a backend for a kv-server (or another server) at `url`; see
    /// [`api_base_for_url`] for how the API base is found.
    pub fn for_server(url: &str) -> Result<HttpBackendBuilder> {
        Ok(HttpBackendBuilder::new(api_base_for_url(url)?))
    }

    /// Configures a backend for Cloudflare Workers KV in this account; add the API token with
    /// [`HttpBackendBuilder::token`].
    pub fn cloudflare(account_id: &str) -> HttpBackendBuilder {
        HttpBackendBuilder::new(format!(
            "{CLOUDFLARE_API}/{}/storage/kv/namespaces",
            encode(account_id)
        ))
    }

    /// The API base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.shared.transport.base()
    }

    /// Asks the server what it can do (one namespace listing) unless an earlier answer told.
    pub async fn probe(&self) -> Result<Capabilities> {
        if self.shared.transport.traits().is_none() {
            // One namespace is enough to read the server's traits off the answer; a whole
            // listing would be a page per thousand namespaces on every start.
            self.list_page(1, 1).await?;
        }
        Ok(self.shared.transport.capabilities())
    }

    async fn list_page(
        &self,
        page: u64,
        per_page: u64,
    ) -> Result<(Vec<NamespaceItem>, ResultInfo)> {
        let url = format!(
            "{}?page={page}&per_page={per_page}&order=id&direction=asc",
            self.shared.transport.base()
        );
        let answer = self
            .shared
            .transport
            .execute(&Call::new(Method::GET, url, Safety::Idempotent))
            .await?;
        if !answer.status.is_success() {
            return Err(not_served_or(&answer, "namespace listing"));
        }
        let envelope = parse_envelope::<Vec<NamespaceItem>>(&answer.body, "namespace list")?;
        Ok((
            envelope.result.unwrap_or_default(),
            envelope.result_info.unwrap_or_default(),
        ))
    }

    /// Finds a namespace by id in the listing (for servers without `GET /{id}`).
    async fn find_in_list(&self, id: &str) -> Result<bool> {
        Ok(self.list_namespaces().await?.iter().any(|ns| ns.id == id))
    }
}

#[async_trait]
impl Backend for HttpBackend {
    fn kind(&self) -> &'static str {
        BACKEND
    }

    fn clock(&self) -> SharedClock {
        self.shared.clock.clone()
    }

    fn capabilities(&self) -> Capabilities {
        self.shared.transport.capabilities()
    }

    async fn create_namespace(&self, title: &str) -> Result<NamespaceInfo> {
        let call = Call::new(
            Method::POST,
            self.shared.transport.base().to_owned(),
            Safety::Once,
        )
        .json(&json!({ "title": title }));
        let answer = self.shared.transport.execute(&call).await?;
        if !answer.status.is_success() {
            if answer.not_served() {
                return Err(not_served(&answer, "namespace creation"));
            }
            let error = answer.error();
            return Err(match error.code {
                NAMESPACE_EXISTS => KvError::NamespaceExists {
                    title: title.to_owned(),
                },
                _ => error.into_kv_error(),
            });
        }
        let envelope = parse_envelope::<NamespaceItem>(&answer.body, "created namespace")?;
        let item = envelope
            .result
            .ok_or_else(|| wire::protocol("a namespace creation without a result"))?;
        Ok(NamespaceInfo {
            id: item.id,
            title: item.title,
        })
    }

    async fn list_namespaces(&self) -> Result<Vec<NamespaceInfo>> {
        let mut all: Vec<NamespaceInfo> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut page = 1;
        loop {
            let (items, info) = self.list_page(page, NAMESPACE_PAGE).await?;
            let returned = items.len() as u64;
            let mut new = 0;
            for item in items {
                if seen.insert(item.id.clone()) {
                    new += 1;
                    all.push(NamespaceInfo {
                        id: item.id,
                        title: item.title,
                    });
                }
            }
            if is_last_namespace_page(page, returned, new, &info, all.len() as u64) {
                break;
            }
            page += 1;
        }
        all.sort_by(|a, b| a.title.cmp(&b.title).then_with(|| a.id.cmp(&b.id)));
        Ok(all)
    }

    async fn rename_namespace(&self, id: &str, title: &str) -> Result<()> {
        let call = Call::new(
            Method::PUT,
            self.shared.namespace_url(id),
            Safety::Idempotent,
        )
        .json(&json!({ "title": title }));
        let answer = self.shared.transport.execute(&call).await?;
        if answer.status.is_success() {
            return Ok(());
        }
        if answer.not_served() {
            return Err(not_served(&answer, "namespace rename"));
        }
        let error = answer.error();
        Err(match error.code {
            NAMESPACE_NOT_FOUND => KvError::NamespaceNotFound {
                name: id.to_owned(),
            },
            NAMESPACE_EXISTS => KvError::NamespaceExists {
                title: title.to_owned(),
            },
            _ => error.into_kv_error(),
        })
    }

    async fn delete_namespace(&self, id: &str) -> Result<bool> {
        let call = Call::new(
            Method::DELETE,
            self.shared.namespace_url(id),
            Safety::Idempotent,
        );
        let answer = self.shared.transport.execute(&call).await?;
        if answer.status.is_success() {
            return Ok(true);
        }
        if answer.not_served() {
            return Err(not_served(&answer, "namespace deletion"));
        }
        let error = answer.error();
        match error.code {
            NAMESPACE_NOT_FOUND => Ok(false),
            _ => Err(error.into_kv_error()),
        }
    }

    async fn open_namespace(&self, id: &str) -> Result<Arc<dyn NamespaceStore>> {
        let transport = &self.shared.transport;
        let exists = if !transport.serves(Route::NamespaceGet) {
            self.find_in_list(id).await?
        } else {
            let call = Call::new(
                Method::GET,
                self.shared.namespace_url(id),
                Safety::Idempotent,
            );
            let answer = transport.execute(&call).await?;
            if answer.status.is_success() {
                true
            } else if answer.not_served() {
                // A server without `GET /{id}` (Miniflare): look for the id in the listing,
                // now and from now on.
                transport.learn_not_served(Route::NamespaceGet);
                self.find_in_list(id).await?
            } else {
                let error = answer.error();
                match (answer.status, error.code) {
                    (_, NAMESPACE_NOT_FOUND) => false,
                    // An older server that answers an unknown route with some other 404/405.
                    (StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED, _) => {
                        self.find_in_list(id).await?
                    }
                    _ => return Err(error.into_kv_error()),
                }
            }
        };
        if !exists {
            return Err(KvError::NamespaceNotFound {
                name: id.to_owned(),
            });
        }
        Ok(Arc::new(HttpNamespace::new(self.shared.clone(), id)))
    }
}

/// Namespaces asked for per page of the listing (Cloudflare's maximum).
const NAMESPACE_PAGE: u64 = 1000;

/// Whether a page of the namespace listing was the last: it was empty or brought nothing new
/// (a server that ignores `page` repeats itself), `result_info` says so (`page` is not the one
/// asked for, `page >= total_pages`, every one of `total_count` seen), it has no page fields
/// at all (a server that does not page, such as Miniflare's explorer API, returns everything
/// at once), or the page was shorter than its `per_page` (the server's, which may be lower
/// than the one asked for, else ours).
fn is_last_namespace_page(
    page: u64,
    returned: u64,
    new: u64,
    info: &ResultInfo,
    seen: u64,
) -> bool {
    returned == 0
        || new == 0
        || returned > NAMESPACE_PAGE
        || info.page.is_some_and(|answered| answered != page)
        || info.total_pages.is_some_and(|total| page >= total)
        || info.total_count.is_some_and(|total| seen >= total)
        || (info.page.is_none() && info.total_pages.is_none() && info.total_count.is_none())
        || returned < info.per_page.unwrap_or(NAMESPACE_PAGE).min(NAMESPACE_PAGE)
}

/// The typed error for an answer that says the server has no route for `operation`.
pub(crate) fn not_served(answer: &Answer, operation: &'static str) -> KvError {
    KvError::NotServed {
        backend: BACKEND,
        operation,
        status: answer.status.as_u16(),
    }
}

/// [`not_served`] when the answer says so, else the answer's error as [`KvError::Remote`].
pub(crate) fn not_served_or(answer: &Answer, operation: &'static str) -> KvError {
    if answer.not_served() {
        not_served(answer, operation)
    } else {
        answer.error().into_kv_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(page: Option<u64>, total_count: Option<u64>, total_pages: Option<u64>) -> ResultInfo {
        ResultInfo {
            cursor: None,
            page,
            per_page: None,
            total_count,
            total_pages,
        }
    }

    #[test]
    fn namespace_paging_stops_where_cloudflare_says() {
        let full = NAMESPACE_PAGE;
        // Cloudflare / kv-server: full pages continue until the totals are reached.
        assert!(!is_last_namespace_page(
            1,
            full,
            full,
            &info(Some(1), Some(2500), None),
            full
        ));
        assert!(is_last_namespace_page(
            3,
            500,
            500,
            &info(Some(3), Some(2500), None),
            2500
        ));
        assert!(is_last_namespace_page(
            2,
            full,
            full,
            &info(Some(2), None, Some(2)),
            2 * full
        ));
        // Exactly a multiple of the page size: total_count ends it without an empty page.
        assert!(is_last_namespace_page(
            1,
            full,
            full,
            &info(Some(1), Some(full), None),
            full
        ));
        // Only the page number: go on to the empty page.
        assert!(!is_last_namespace_page(
            1,
            full,
            full,
            &info(Some(1), None, None),
            full
        ));
        assert!(is_last_namespace_page(
            2,
            0,
            0,
            &info(Some(2), None, None),
            full
        ));
        // Miniflare: no page fields, everything at once.
        assert!(is_last_namespace_page(1, 2, 2, &info(None, None, None), 2));
        // A server that ignores `page` and repeats the same full page.
        assert!(is_last_namespace_page(
            2,
            full,
            0,
            &info(None, Some(5000), None),
            full
        ));
        assert!(is_last_namespace_page(
            2,
            full,
            full,
            &info(Some(1), Some(5000), None),
            full
        ));
        // A server with a smaller page than asked for: its `per_page` decides what is short.
        let small = ResultInfo {
            per_page: Some(2),
            ..info(Some(1), Some(3), Some(2))
        };
        assert!(!is_last_namespace_page(1, 2, 2, &small, 2));
        let small = ResultInfo {
            per_page: Some(2),
            ..info(Some(1), None, None)
        };
        assert!(!is_last_namespace_page(1, 2, 2, &small, 2));
        assert!(is_last_namespace_page(1, 1, 1, &small, 1));
    }
}
