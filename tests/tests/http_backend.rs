//! The HTTP backend beyond the conformance suite: authentication, capability detection,
//! retries, timeouts, unreachable servers, error mapping, percent-encoding, store URLs and a
//! Cloudflare-like server (no capabilities, no ETag, no metadata header, paged namespaces).

mod http_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_support::{closed_port::ClosedPort, quick_retries, Server};
use kv_backends::http::{HttpBackend, RemoteError, RetryPolicy};
use kv_backends::memory::MemoryBackend;
use kv_core::{
    async_trait, Backend, Capabilities, DeleteOutcome, Entry, KvError, Limits, ListOptions,
    ListPage, ManualClock, NamespaceInfo, NamespaceStore, NewEntry, PutOptions, PutOutcome,
    SharedClock, Store, Version, WriteMode,
};
use kv_server::ServerConfig;
use serde_json::{json, Value};

fn clock() -> ManualClock {
    ManualClock::at_unix_secs(1_700_000_000)
}

async fn memory_server(config: ServerConfig, clock: &ManualClock) -> Server {
    let backend = MemoryBackend::builder().clock(clock.shared()).build();
    Server::start(Store::new(backend), config).await
}

fn remote_status(error: &KvError) -> Option<(u16, u32)> {
    match error {
        KvError::Remote { status, code, .. } => Some((*status, *code)),
        _ => None,
    }
}

/// The status a 5xx / 429 that ended as `Unavailable` carried.
fn unavailable_status(error: &KvError) -> Option<u16> {
    match error {
        KvError::Unavailable { source, .. } => {
            source.downcast_ref::<RemoteError>().map(|e| e.status)
        }
        _ => None,
    }
}

// ---- authentication ------------------------------------------------------------------------

#[tokio::test]
async fn bearer_token_is_sent_and_its_absence_is_a_typed_401() {
    let clock = clock();
    let server = memory_server(ServerConfig::default().with_token("s3cret"), &clock).await;

    let without = Store::new(server.client(&clock).build().unwrap());
    let error = without.namespace("NS").await.unwrap_err();
    assert_eq!(remote_status(&error), Some((401, 10000)), "{error}");

    let wrong = Store::new(server.client(&clock).token("nope").build().unwrap());
    let error = wrong.list_namespaces().await.unwrap_err();
    assert_eq!(remote_status(&error), Some((401, 10000)), "{error}");

    let right = Store::new(server.client(&clock).token("s3cret").build().unwrap());
    let ns = right.namespace("NS").await.unwrap();
    ns.put_text("k", "v").await.unwrap();
    assert_eq!(ns.get_text("k").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test]
async fn connect_checks_the_token_up_front() {
    let clock = clock();
    let server = memory_server(ServerConfig::default().with_token("s3cret"), &clock).await;
    let error = server.client(&clock).connect().await.unwrap_err();
    assert_eq!(remote_status(&error), Some((401, 10000)), "{error}");
    let backend = server
        .client(&clock)
        .token("s3cret")
        .connect()
        .await
        .unwrap();
    assert_eq!(backend.capabilities(), Capabilities::atomic());
}

#[tokio::test]
async fn a_server_without_a_token_accepts_requests_without_one() {
    let clock = clock();
    let server = memory_server(ServerConfig::default(), &clock).await;
    let store = Store::new(server.client(&clock).build().unwrap());
    store
        .namespace("NS")
        .await
        .unwrap()
        .put_text("k", "v")
        .await
        .unwrap();
}

#[tokio::test]
async fn the_token_is_not_in_debug_output() {
    let backend = HttpBackend::builder("http://127.0.0.1:1/api")
        .token("very-secret-token")
        .build()
        .unwrap();
    assert!(!format!("{backend:?}").contains("very-secret-token"));
}

// ---- capabilities --------------------------------------------------------------------------

#[tokio::test]
async fn compare_and_swap_is_claimed_only_when_advertised() {
    let clock = clock();
    let server = memory_server(ServerConfig::default(), &clock).await;
    let backend = server.client(&clock).build().unwrap();
    assert!(
        !backend.capabilities().atomic_conditional_writes,
        "nothing is claimed before the server answered"
    );
    assert_eq!(backend.probe().await.unwrap(), Capabilities::atomic());
    let ns = Store::new(backend).namespace("NS").await.unwrap();
    assert!(ns.capabilities().atomic_conditional_writes);
    let outcome = ns
        .put_with("k", "v", PutOptions::new().only_if_absent())
        .await
        .unwrap();
    assert!(matches!(outcome, PutOutcome::Written(_)));
}

/// A backend whose stores claim no atomic compare-and-swap, so kv-server advertises nothing.
#[derive(Debug)]
struct Plain(MemoryBackend);

#[derive(Debug)]
struct PlainNamespace(Arc<dyn NamespaceStore>);

#[async_trait]
impl Backend for Plain {
    fn kind(&self) -> &'static str {
        "plain"
    }
    fn clock(&self) -> SharedClock {
        self.0.clock()
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::plain()
    }
    async fn create_namespace(&self, title: &str) -> kv_core::Result<NamespaceInfo> {
        self.0.create_namespace(title).await
    }
    async fn list_namespaces(&self) -> kv_core::Result<Vec<NamespaceInfo>> {
        self.0.list_namespaces().await
    }
    async fn rename_namespace(&self, id: &str, title: &str) -> kv_core::Result<()> {
        self.0.rename_namespace(id, title).await
    }
    async fn delete_namespace(&self, id: &str) -> kv_core::Result<bool> {
        self.0.delete_namespace(id).await
    }
    async fn open_namespace(&self, id: &str) -> kv_core::Result<Arc<dyn NamespaceStore>> {
        Ok(Arc::new(PlainNamespace(self.0.open_namespace(id).await?)))
    }
}

#[async_trait]
impl NamespaceStore for PlainNamespace {
    fn kind(&self) -> &'static str {
        "plain"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::plain()
    }
    async fn get(&self, key: &str) -> kv_core::Result<Option<Entry>> {
        self.0.get(key).await
    }
    async fn put(
        &self,
        key: &str,
        entry: NewEntry,
        mode: WriteMode,
    ) -> kv_core::Result<PutOutcome> {
        self.0.put(key, entry, mode).await
    }
    async fn delete(&self, key: &str, mode: WriteMode) -> kv_core::Result<DeleteOutcome> {
        self.0.delete(key, mode).await
    }
    async fn list(&self, options: &ListOptions) -> kv_core::Result<ListPage> {
        self.0.list(options).await
    }
}

#[tokio::test]
async fn a_server_without_compare_and_swap_gets_unsupported_conditional_writes() {
    let clock = clock();
    let plain = Plain(MemoryBackend::builder().clock(clock.shared()).build());
    let server = Server::start(Store::new(plain), ServerConfig::default()).await;
    let store = Store::new(server.client(&clock).build().unwrap());
    let ns = store.namespace("NS").await.unwrap();
    assert_eq!(ns.capabilities(), Capabilities::plain());

    let refused = ns
        .put_with("k", "v", PutOptions::new().only_if_absent())
        .await;
    assert!(
        matches!(
            refused,
            Err(KvError::Unsupported {
                backend: "http",
                ..
            })
        ),
        "{refused:?}"
    );
    let refused = ns
        .delete_with("k", WriteMode::OnlyIfVersion(Version::from_raw(1)))
        .await;
    assert!(
        matches!(refused, Err(KvError::Unsupported { .. })),
        "{refused:?}"
    );

    // Everything else works; metadata comes from the metadata endpoint.
    let options = PutOptions::new()
        .metadata(json!({"owner": "billing"}))
        .ttl(Duration::from_secs(120));
    let _ = ns.put_with("k", "v", options).await.unwrap();
    let entry = ns.get_entry("k").await.unwrap().unwrap();
    assert_eq!(&entry.value[..], b"v");
    assert_eq!(entry.metadata, Some(json!({"owner": "billing"})));
    assert_eq!(entry.expiration, Some(1_700_000_120));
    ns.delete("k").await.unwrap();
    assert_eq!(ns.get("k").await.unwrap(), None);
}

// ---- retries -------------------------------------------------------------------------------

/// Counts requests by method and answers with `respond(method, count, headers)`.
#[derive(Clone, Default)]
struct Counter(Arc<Mutex<Vec<(Method, String)>>>);

impl Counter {
    fn record(&self, method: &Method, uri: &str) -> usize {
        let mut seen = self.0.lock().unwrap();
        seen.push((method.clone(), uri.to_owned()));
        seen.iter().filter(|(m, _)| m == method).count()
    }

    fn count(&self, method: &Method) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m == method)
            .count()
    }

    fn uris(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, u)| u.clone())
            .collect()
    }
}

fn envelope(status: StatusCode, code: u32, message: &str) -> Response {
    let body = if status.is_success() {
        json!({"success": true, "errors": [], "messages": [], "result": {}})
    } else {
        json!({"success": false, "errors": [{"code": code, "message": message}],
               "messages": [], "result": null})
    };
    (status, axum::Json(body)).into_response()
}

fn with_cas(mut response: Response) -> Response {
    response.headers_mut().insert(
        "x-kv-capabilities",
        HeaderValue::from_static("compare-and-swap"),
    );
    response
}

/// A stub kv-server: one namespace `ns`; `values` answers come from `values`.
async fn stub(
    counter: Counter,
    values: impl Fn(&Method, usize, &HeaderMap) -> Response + Clone + Send + Sync + 'static,
) -> Server {
    let router = Router::new().fallback(move |request: Request| {
        let counter = counter.clone();
        let values = values.clone();
        async move {
            let method = request.method().clone();
            let uri = request.uri().to_string();
            let path = request.uri().path().to_owned();
            if path.contains("/values/") {
                let n = counter.record(&method, &uri);
                return with_cas(values(&method, n, request.headers()));
            }
            with_cas(match path.rsplit('/').next() {
                Some("ns") => envelope(StatusCode::OK, 0, ""),
                _ => envelope(StatusCode::NOT_FOUND, 10013, "namespace not found"),
            })
        }
    });
    Server::serve(router).await
}

async fn stub_namespace(server: &Server, policy: RetryPolicy) -> kv_core::Namespace {
    let backend = HttpBackend::builder(format!("{}/api", server.url()))
        .retry(policy)
        .build()
        .unwrap();
    Store::new(backend).namespace_by_id("ns").await.unwrap()
}

#[tokio::test]
async fn idempotent_requests_are_retried_after_5xx() {
    let counter = Counter::default();
    let server = stub(counter.clone(), |method, n, _| match (method, n) {
        (&Method::GET, 1 | 2) => envelope(StatusCode::SERVICE_UNAVAILABLE, 10001, "busy"),
        (&Method::GET, _) => {
            let mut response = "v".into_response();
            response
                .headers_mut()
                .insert("etag", HeaderValue::from_static("\"0000000000000007\""));
            response
        }
        _ => envelope(StatusCode::BAD_GATEWAY, 0, "down"),
    })
    .await;
    let ns = stub_namespace(&server, quick_retries()).await;

    let entry = ns.get_entry("k").await.unwrap().unwrap();
    assert_eq!(&entry.value[..], b"v");
    assert_eq!(entry.version, Version::from_raw(7));
    assert_eq!(
        counter.count(&Method::GET),
        3,
        "failed twice, then succeeded"
    );

    // An unconditional put is idempotent: sent 1 + 3 times, then Unavailable.
    let error = ns.put_text("k", "v").await.unwrap_err();
    assert_eq!(unavailable_status(&error), Some(502), "{error:?}");
    assert!(error.is_transient());
    assert_eq!(counter.count(&Method::PUT), 4);
}

#[tokio::test]
async fn conditional_writes_are_not_retried_after_a_5xx() {
    let counter = Counter::default();
    let server = stub(counter.clone(), |_, _, _| {
        envelope(StatusCode::SERVICE_UNAVAILABLE, 10001, "busy")
    })
    .await;
    let ns = stub_namespace(&server, quick_retries()).await;

    let error = ns
        .put_with(
            "k",
            "v",
            PutOptions::new().only_if_version(Version::from_raw(3)),
        )
        .await
        .unwrap_err();
    assert_eq!(unavailable_status(&error), Some(503), "{error:?}");
    assert_eq!(counter.count(&Method::PUT), 1, "sent once");

    let error = ns
        .delete_with("k", WriteMode::OnlyIfAbsent)
        .await
        .unwrap_err();
    assert_eq!(unavailable_status(&error), Some(503), "{error:?}");
    assert_eq!(counter.count(&Method::DELETE), 1, "sent once");
}

#[tokio::test]
async fn retry_after_is_honoured_and_a_long_one_ends_the_retries() {
    let counter = Counter::default();
    let server = stub(counter.clone(), |method, n, _| {
        let wait = if method == Method::GET { "0" } else { "3600" };
        if n == 1 || method != Method::GET {
            let mut response = envelope(StatusCode::TOO_MANY_REQUESTS, 10429, "slow down");
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static(wait));
            return response;
        }
        "v".into_response()
    })
    .await;
    let ns = stub_namespace(&server, quick_retries()).await;
    assert_eq!(ns.get_text("k").await.unwrap().as_deref(), Some("v"));
    assert_eq!(counter.count(&Method::GET), 2);

    let started = std::time::Instant::now();
    let error = ns.put_text("k", "v").await.unwrap_err();
    assert_eq!(unavailable_status(&error), Some(429), "{error:?}");
    assert_eq!(
        counter.count(&Method::PUT),
        1,
        "an hour's wait is not taken"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn client_errors_are_not_retried_and_are_typed() {
    let counter = Counter::default();
    let server = stub(counter.clone(), |_, _, _| {
        envelope(StatusCode::FORBIDDEN, 10000, "token lacks KV write rights")
    })
    .await;
    let ns = stub_namespace(&server, quick_retries()).await;
    let error = ns.put_text("k", "v").await.unwrap_err();
    match &error {
        KvError::Remote {
            status,
            code,
            message,
        } => {
            assert_eq!((*status, *code), (403, 10000));
            assert_eq!(message, "token lacks KV write rights");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    assert_eq!(counter.count(&Method::PUT), 1);
}

#[tokio::test]
async fn a_slow_server_times_out_as_unavailable() {
    let router = Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        "late"
    });
    let server = Server::serve(router).await;
    let backend = HttpBackend::builder(format!("{}/api", server.url()))
        .timeout(Duration::from_millis(200))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let error = Store::new(backend).list_namespaces().await.unwrap_err();
    assert!(
        matches!(
            error,
            KvError::Unavailable {
                backend: "http",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    let closed = ClosedPort::new();
    let backend = HttpBackend::for_server(&closed.http_url())
        .unwrap()
        .retry(quick_retries())
        .build()
        .unwrap();
    let store = Store::new(backend);
    for result in [
        store.list_namespaces().await.map(|_| ()),
        store.namespace("NS").await.map(|_| ()),
        store.create_namespace("NS").await.map(|_| ()),
    ] {
        let error = result.unwrap_err();
        assert!(
            matches!(
                error,
                KvError::Unavailable {
                    backend: "http",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.is_transient());
    }
    let error = kv_backends::open(&closed.http_url()).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
}

// ---- errors and encoding -------------------------------------------------------------------

#[tokio::test]
async fn server_side_limits_come_back_as_remote_errors() {
    let clock = clock();
    let backend = MemoryBackend::builder().clock(clock.shared()).build();
    let strict = Limits {
        max_value_bytes: 10,
        ..Limits::default()
    };
    let server = Server::start(
        Store::new(backend).with_limits(strict),
        ServerConfig::default(),
    )
    .await;
    let ns = Store::new(server.client(&clock).build().unwrap())
        .namespace("NS")
        .await
        .unwrap();
    let error = ns.put_text("k", "more than ten bytes").await.unwrap_err();
    assert_eq!(remote_status(&error), Some((413, 10024)), "{error:?}");
}

#[tokio::test]
async fn answers_larger_than_the_maximum_are_refused() {
    let clock = clock();
    let server = memory_server(ServerConfig::default(), &clock).await;
    let store = Store::new(server.client(&clock).build().unwrap());
    store
        .namespace("NS")
        .await
        .unwrap()
        .put("big", vec![7u8; 100_000])
        .await
        .unwrap();
    let small = server
        .client(&clock)
        .max_response_bytes(64 * 1024)
        .build()
        .unwrap();
    let ns = Store::new(small).namespace("NS").await.unwrap();
    let error = ns.get("big").await.unwrap_err();
    assert!(
        matches!(
            error,
            KvError::Backend {
                backend: "http",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_transient());
}

#[tokio::test]
async fn keys_and_prefixes_are_percent_encoded() {
    let counter = Counter::default();
    let seen = counter.clone();
    let router = Router::new().fallback(move |request: Request| {
        let counter = counter.clone();
        async move {
            counter.record(request.method(), &request.uri().to_string());
            let path = request.uri().path();
            let response = if path.ends_with("/api/ns") {
                envelope(StatusCode::OK, 0, "")
            } else if path.contains("/keys") {
                let body = json!({"success": true, "errors": [], "messages": [], "result": [],
                                  "result_info": {"count": 0, "cursor": ""}});
                axum::Json(body).into_response()
            } else {
                envelope(StatusCode::NOT_FOUND, 10009, "key not found")
            };
            with_cas(response)
        }
    });
    let server = Server::serve(router).await;
    let ns = stub_namespace(&server, RetryPolicy::none()).await;
    assert_eq!(ns.get("a/b c?d#é%+&=~._-").await.unwrap(), None);
    let page = ns
        .list(
            &ListOptions::new()
                .prefix("dir/ sub?")
                .limit(7)
                .cursor("c+/=="),
        )
        .await
        .unwrap();
    assert!(page.list_complete);
    let uris = seen.uris();
    assert!(
        uris.contains(&"/api/ns/values/a%2Fb%20c%3Fd%23%C3%A9%25%2B%26%3D~._-".to_owned()),
        "{uris:?}"
    );
    assert!(
        uris.contains(
            &"/api/ns/keys?limit=7&prefix=dir%2F%20sub%3F&cursor=c%2B%2F%3D%3D".to_owned()
        ),
        "{uris:?}"
    );
}

#[tokio::test]
async fn odd_keys_round_trip_through_the_server() {
    let clock = clock();
    let server = memory_server(ServerConfig::default(), &clock).await;
    let ns = Store::new(server.client(&clock).build().unwrap())
        .namespace("odd namespace title / é")
        .await
        .unwrap();
    let keys = [
        "a/b",
        "with space",
        "%2F",
        "é/ü",
        "日本語",
        "a+b",
        "tab\there",
        "q?x=1#f",
    ];
    for key in keys {
        ns.put_text(key, key).await.unwrap();
    }
    for key in keys {
        assert_eq!(ns.get_text(key).await.unwrap().as_deref(), Some(key));
    }
    let page = ns.list(&ListOptions::new().prefix("a")).await.unwrap();
    let names: Vec<&str> = page.keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["a+b", "a/b"]);
    ns.delete_many(&keys).await.unwrap();
    assert!(ns.list(&ListOptions::new()).await.unwrap().keys.is_empty());
}

// ---- store URLs and TLS ----------------------------------------------------------------------

#[tokio::test]
async fn an_http_store_url_opens_the_backend() {
    let clock = clock();
    let server = memory_server(ServerConfig::default(), &clock).await;
    let store = kv_backends::open(&server.url()).await.unwrap();
    assert_eq!(store.kind(), "http");
    assert!(
        store.capabilities().atomic_conditional_writes,
        "opening asked the server what it can do"
    );
    let ns = store.namespace("NS").await.unwrap();
    ns.put_text("k", "v").await.unwrap();
    // The same entry through the full API base as the URL.
    let same = kv_backends::open(&server.base()).await.unwrap();
    let ns = same.namespace("NS").await.unwrap();
    assert_eq!(ns.get_text("k").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test]
async fn https_and_cloudflare_clients_can_be_built() {
    let backend = HttpBackend::builder(
        "https://kv.example.invalid/client/v4/accounts/a/storage/kv/namespaces",
    )
    .token("t")
    .build()
    .unwrap();
    assert!(backend.base_url().starts_with("https://"));
    let cloudflare = HttpBackend::cloudflare("0123abcd")
        .token("t")
        .build()
        .unwrap();
    assert_eq!(
        cloudflare.base_url(),
        "https://api.cloudflare.com/client/v4/accounts/0123abcd/storage/kv/namespaces"
    );
    assert!(matches!(
        HttpBackend::builder("ftp://host/x").build(),
        Err(KvError::InvalidStoreUrl { .. })
    ));
    assert!(matches!(
        HttpBackend::builder("not a url").build(),
        Err(KvError::InvalidStoreUrl { .. })
    ));
    if std::env::var_os(kv_backends::http::CLOUDFLARE_TOKEN_ENV).is_none() {
        assert!(matches!(
            kv_backends::open("cloudflare://0123abcd").await,
            Err(KvError::BackendNotAvailable {
                backend: "cloudflare",
                ..
            })
        ));
    }
}

// ---- a Cloudflare-like server ----------------------------------------------------------------

/// Imitates Cloudflare's API as far as the client can tell: no capabilities header, no ETag,
/// no metadata header, namespaces listed in pages.
async fn cloudflare_like(counter: Counter) -> Server {
    let router = Router::new().fallback(move |request: Request| {
        let counter = counter.clone();
        async move {
            let uri = request.uri().clone();
            counter.record(request.method(), &uri.to_string());
            let path = uri.path();
            let query = uri.query().unwrap_or("");
            let json = |value: Value| axum::Json(value).into_response();
            if path == "/api" {
                let (items, page) = if query.contains("page=2") {
                    (json!([{"id": "bbb", "title": "B"}]), 2)
                } else {
                    (json!([{"id": "zzz", "title": "Z"}, {"id": "aaa", "title": "A"}]), 1)
                };
                return json(json!({"success": true, "errors": [], "messages": [],
                    "result": items,
                    "result_info": {"page": page, "per_page": 2, "count": 2, "total_count": 3, "total_pages": 2}}));
            }
            if path == "/api/aaa" {
                return json(json!({"success": true, "errors": [], "messages": [],
                    "result": {"id": "aaa", "title": "A"}}));
            }
            if path == "/api/aaa/values/k" {
                let mut response = Response::new(Body::from("value"));
                response
                    .headers_mut()
                    .insert("expiration", HeaderValue::from_static("1700000600"));
                return response;
            }
            if path == "/api/aaa/metadata/k" {
                return json(json!({"success": true, "errors": [], "messages": [],
                    "result": {"owner": "cf"}}));
            }
            envelope(StatusCode::NOT_FOUND, 10009, "get: 'key not found'")
        }
    });
    Server::serve(router).await
}

#[tokio::test]
async fn a_cloudflare_like_server_is_read_faithfully() {
    let counter = Counter::default();
    let server = cloudflare_like(counter.clone()).await;
    let backend = HttpBackend::builder(format!("{}/api", server.url()))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let store = Store::new(backend);

    let titles: Vec<String> = store
        .list_namespaces()
        .await
        .unwrap()
        .into_iter()
        .map(|ns| ns.title)
        .collect();
    assert_eq!(titles, ["A", "B", "Z"], "every page, sorted by title");

    let ns = store.namespace("A").await.unwrap();
    assert_eq!(ns.capabilities(), Capabilities::plain());
    let gets_before = counter.count(&Method::GET);
    let entry = ns.get_entry("k").await.unwrap().unwrap();
    assert_eq!(&entry.value[..], b"value");
    assert_eq!(entry.expiration, Some(1_700_000_600));
    assert_eq!(entry.metadata, Some(json!({"owner": "cf"})));
    assert_eq!(
        counter.count(&Method::GET) - gets_before,
        2,
        "the value, then the metadata endpoint"
    );
    let again = ns.get_entry("k").await.unwrap().unwrap();
    assert_eq!(
        entry.version, again.version,
        "content-derived versions are stable"
    );
    assert_eq!(ns.get("missing").await.unwrap(), None);
    assert!(matches!(
        ns.put_with("k", "v", PutOptions::new().only_if_absent())
            .await,
        Err(KvError::Unsupported { .. })
    ));
}

// ---- bulk ------------------------------------------------------------------------------------

#[tokio::test]
async fn bulk_writes_of_binary_values_round_trip() {
    let clock = clock();
    let server = memory_server(ServerConfig::default(), &clock).await;
    let ns = Store::new(server.client(&clock).build().unwrap())
        .namespace("NS")
        .await
        .unwrap();
    let items: Vec<kv_core::BulkPut> = (0..300u32)
        .map(|i| {
            let value = if i % 2 == 0 {
                bytes::Bytes::from(vec![0xff, 0x00, i as u8])
            } else {
                bytes::Bytes::from(format!("text {i}"))
            };
            kv_core::BulkPut::new(format!("b:{i:03}"), value)
                .with_options(PutOptions::new().metadata(json!({"i": i})))
        })
        .collect();
    ns.put_many(items).await.unwrap();
    let keys: Vec<String> = (0..100u32).map(|i| format!("b:{i:03}")).collect();
    let got = ns.get_many(&keys).await.unwrap();
    assert_eq!(&got[0].as_ref().unwrap().value[..], &[0xff, 0x00, 0]);
    assert_eq!(&got[1].as_ref().unwrap().value[..], b"text 1");
    assert_eq!(got[99].as_ref().unwrap().metadata, Some(json!({"i": 99})));
    let all: Vec<String> = (0..300u32).map(|i| format!("b:{i:03}")).collect();
    ns.delete_many(&all).await.unwrap();
    assert!(ns
        .get_many(&keys)
        .await
        .unwrap()
        .iter()
        .all(Option::is_none));
}
