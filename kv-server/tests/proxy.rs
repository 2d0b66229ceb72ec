//! `kv proxy` through the real binary, in front of a small origin that counts its requests:
//! hits and misses, streaming both ways, the fields a proxy adds and removes, the upstream's
//! failures (502, 504, stale-if-error), purging, and two proxies sharing one Redis.

#[path = "../../kv-backends/tests/support/redis_server.rs"]
mod redis_server;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use futures::StreamExt;
use http_body_util::BodyExt;
use reqwest::Method;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Notify};

/// Whatever a test guards with a timeout must happen well within it; nothing waits for it.
const GUARD: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- the origin

#[derive(Clone, Default)]
struct Origin {
    /// Requests per path.
    counts: Arc<Mutex<HashMap<String, usize>>>,
    /// Released by the test to let `/stream` send its second chunk.
    release: Arc<Notify>,
    /// Told when `/upload` has read its first chunk.
    first_chunk: Arc<Mutex<Option<oneshot::Sender<()>>>>,
}

impl Origin {
    fn count(&self, path: &str) -> usize {
        self.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// Counts every request by path.
async fn counted(
    State(origin): State<Origin>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    *origin
        .counts
        .lock()
        .unwrap()
        .entry(request.uri().path().to_owned())
        .or_default() += 1;
    next.run(request).await
}

/// Fresh for ten minutes, with a body naming how many times it was asked for.
async fn cacheable(State(origin): State<Origin>, request: Request) -> Response {
    let n = origin.count(request.uri().path());
    (
        [("cache-control", "max-age=600")],
        format!("{} #{n}", request.uri().path()),
    )
        .into_response()
}

/// The request's header section, as JSON (`name: [values]`).
async fn echo(request: Request) -> Response {
    let mut fields: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in request.headers() {
        fields
            .entry(name.as_str().to_owned())
            .or_default()
            .push(value.to_str().unwrap_or("?").to_owned());
    }
    let body = serde_json::json!({ "path": request.uri().to_string(), "headers": fields });
    ([("cache-control", "no-store")], axum::Json(body)).into_response()
}

/// A response with connection-specific fields the proxy must not pass on; stored unless the
/// query is `?no-store`.
async fn hop(request: Request) -> Response {
    let cache_control = if request.uri().query() == Some("no-store") {
        "no-store"
    } else {
        "max-age=600"
    };
    let mut headers = HeaderMap::new();
    headers.insert("connection", "x-internal".parse().unwrap());
    headers.insert("x-internal", "secret".parse().unwrap());
    headers.insert("keep-alive", "timeout=5".parse().unwrap());
    headers.insert("proxy-authenticate", "Basic".parse().unwrap());
    headers.insert("cache-control", cache_control.parse().unwrap());
    (headers, "hop").into_response()
}

/// One chunk at once, the second only once the test has seen the first.
async fn stream(State(origin): State<Origin>) -> Response {
    let release = origin.release.clone();
    let chunks = futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from("first;")) })
        .chain(futures::stream::once(async move {
            release.notified().await;
            Ok(Bytes::from("second"))
        }));
    ([("cache-control", "no-store")], Body::from_stream(chunks)).into_response()
}

/// Reads the request body frame by frame, saying when the first arrived; answers its length.
async fn upload(State(origin): State<Origin>, request: Request) -> Response {
    let mut body = request.into_body();
    let mut total = 0;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map(|f| f.into_data()) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        let data = data.unwrap_or_default();
        if total == 0 && !data.is_empty() {
            if let Some(tell) = origin.first_chunk.lock().unwrap().take() {
                let _ = tell.send(());
            }
        }
        total += data.len();
    }
    total.to_string().into_response()
}

/// Never answers.
async fn slow() -> Response {
    std::future::pending::<()>().await;
    unreachable!()
}

/// Already two minutes old on arrival, a minute past its freshness, but usable for ten more
/// minutes if the origin fails: stale-if-error without waiting for a clock.
async fn stale_if_error() -> Response {
    (
        [
            ("cache-control", "max-age=60, stale-if-error=600"),
            ("age", "120"),
        ],
        "kept for bad days",
    )
        .into_response()
}

struct RunningOrigin {
    state: Origin,
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningOrigin {
    async fn start() -> RunningOrigin {
        let state = Origin::default();
        let app = Router::new()
            .route("/page", get(cacheable))
            .route("/docs/{*rest}", get(cacheable))
            .route("/other", get(cacheable))
            .route("/echo", any(echo))
            .route("/hop", get(hop))
            .route("/stream", get(stream))
            .route("/upload", post(upload))
            .route("/slow", get(slow))
            .route("/stale", get(stale_if_error))
            .fallback(any(|| async { (StatusCode::NOT_FOUND, "no such page") }))
            .layer(axum::middleware::from_fn_with_state(state.clone(), counted))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        RunningOrigin {
            state,
            url,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the origin and waits until its port refuses connections.
    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(GUARD, task)
                .await
                .expect("the origin stops")
                .unwrap();
        }
    }
}

// ---------------------------------------------------------------- the proxy

struct Proxy {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    url: String,
    address: SocketAddr,
}

impl Proxy {
    /// `kv --store STORE proxy --listen 127.0.0.1:0 --upstream UPSTREAM EXTRA...`.
    fn start(store: &str, upstream: &str, extra: &[&str]) -> Proxy {
        let mut args = vec!["--store", store, "proxy"];
        args.extend(["--listen", "127.0.0.1:0", "--upstream", upstream]);
        args.extend(extra);
        Self::spawn(&args)
    }

    fn spawn(args: &[&str]) -> Proxy {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kv"))
            .args(args)
            .env_remove("KV_STORE")
            .env_remove("KV_PURGE_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kv runs");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        let address = url.trim_start_matches("http://").parse().unwrap();
        Proxy {
            child,
            _stdout: stdout,
            url,
            address,
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.send(Method::GET, path, &[]).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = client().request(method, format!("{}{path}", self.url));
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("host"))
        {
            request = request.header("host", "site.test");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        tokio::time::timeout(GUARD, request.send())
            .await
            .expect("the proxy answers in time")
            .expect("the proxy answers")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map_or("", |v| v.to_str().unwrap())
}

fn all<'a>(response: &'a reqwest::Response, name: &str) -> Vec<&'a str> {
    response
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[path = "../../kv-backends/tests/support/closed_port.rs"]
mod closed_port;

async fn json(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON envelope")
}

// ---------------------------------------------------------------- the tests

#[tokio::test(flavor = "multi_thread")]
async fn miss_then_hit_with_cache_status_and_via() {
    let origin = RunningOrigin::start().await;
    // The spelling of the issue: `kv proxy --listen ADDR --upstream URL --store URL`.
    let proxy = Proxy::spawn(&[
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &origin.url,
        "--store",
        "memory:",
    ]);

    let first = proxy.get("/page").await;
    assert_eq!(first.status(), 200);
    let status = header(&first, "cache-status").to_owned();
    assert!(
        status.starts_with("kv; fwd=uri-miss; fwd-status=200; stored"),
        "{status}"
    );
    assert_eq!(all(&first, "via"), ["1.1 kv"]);
    assert_eq!(first.text().await.unwrap(), "/page #1");

    let second = proxy.get("/page").await;
    assert_eq!(second.status(), 200);
    let status = header(&second, "cache-status").to_owned();
    assert!(status.starts_with("kv; hit; ttl="), "{status}");
    assert_eq!(header(&second, "age"), "0");
    // The stored response keeps the one Via it arrived with.
    assert_eq!(all(&second, "via"), ["1.1 kv"]);
    assert_eq!(second.text().await.unwrap(), "/page #1");
    assert_eq!(origin.state.count("/page"), 1);

    // Another host is another entry: the client's Host reaches the cache and the origin.
    let other = proxy
        .send(Method::GET, "/page", &[("host", "elsewhere.test")])
        .await;
    assert!(header(&other, "cache-status").contains("fwd=uri-miss"));
    assert_eq!(origin.state.count("/page"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_upstream_sees_forwarding_fields_and_no_hop_by_hop_ones() {
    let origin = RunningOrigin::start().await;
    let proxy = Proxy::start("memory:", &origin.url, &[]);

    // Raw HTTP/1.1, so the connection fields are exactly what is written here.
    let address = proxy.address;
    let raw = tokio::task::spawn_blocking(move || {
        let mut tcp = std::net::TcpStream::connect(address).unwrap();
        tcp.set_read_timeout(Some(GUARD)).unwrap();
        tcp.write_all(
            b"GET /echo HTTP/1.1\r\nHost: site.test\r\nConnection: close, x-drop, host\r\n\
              X-Drop: 1\r\nKeep-Alive: timeout=9\r\nTE: trailers\r\n\
              Proxy-Authorization: Basic eDp5\r\nVia: 1.1 edge\r\n\
              X-Forwarded-For: 203.0.113.7\r\nX-Kept: yes\r\n\r\n",
        )
        .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    let body = &raw[raw.find("\r\n\r\n").expect("a whole response") + 4..];
    let seen: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{raw}"));
    let fields = &seen["headers"];
    for gone in ["x-drop", "keep-alive", "te", "proxy-authorization"] {
        assert!(fields.get(gone).is_none(), "{gone} was forwarded: {fields}");
    }
    // Not `connection: close` either: the proxy's own connection to the upstream is kept.
    assert_ne!(fields["connection"], serde_json::json!(["close"]));
    assert_eq!(fields["host"], serde_json::json!(["site.test"]));
    assert_eq!(fields["x-kept"], serde_json::json!(["yes"]));
    assert_eq!(fields["via"], serde_json::json!(["1.1 edge", "1.1 kv"]));
    assert_eq!(
        fields["x-forwarded-for"],
        serde_json::json!(["203.0.113.7", "127.0.0.1"])
    );
    assert_eq!(
        fields["forwarded"],
        serde_json::json!(["for=127.0.0.1;host=site.test;proto=http"])
    );
    assert!(
        raw.to_ascii_lowercase().contains("\r\nvia: 1.1 kv\r\n"),
        "{raw}"
    );

    // An absolute-form target: its authority is the host, for the cache and the upstream.
    let absolute = tokio::task::spawn_blocking(move || {
        let mut tcp = std::net::TcpStream::connect(address).unwrap();
        tcp.set_read_timeout(Some(GUARD)).unwrap();
        tcp.write_all(
            b"GET http://other.test/echo?x=1 HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    let body = &absolute[absolute.find("\r\n\r\n").unwrap() + 4..];
    let seen: Value = serde_json::from_str(body).unwrap();
    assert_eq!(seen["path"], "/echo?x=1");
    assert_eq!(seen["headers"]["host"], serde_json::json!(["other.test"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_upstreams_hop_by_hop_fields_are_removed_before_storing() {
    let origin = RunningOrigin::start().await;
    let proxy = Proxy::start("memory:", &origin.url, &[]);
    // Passed through uncached, then stored and served.
    for (round, path) in ["/hop?no-store", "/hop", "/hop"].into_iter().enumerate() {
        let response = proxy.get(path).await;
        assert_eq!(response.status(), 200);
        for gone in ["x-internal", "keep-alive", "proxy-authenticate"] {
            assert!(
                response.headers().get(gone).is_none(),
                "{gone} in round {round}"
            );
        }
        assert_eq!(all(&response, "via"), ["1.1 kv"]);
    }
    assert_eq!(origin.state.count("/hop"), 2, "the third answer was stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn response_bodies_stream_through() {
    let origin = RunningOrigin::start().await;
    let proxy = Proxy::start("memory:", &origin.url, &[]);
    let mut response = proxy.get("/stream").await;
    assert_eq!(response.status(), 200);
    // The first chunk arrives while the origin still holds the second: nothing buffers it.
    let first = tokio::time::timeout(GUARD, response.chunk())
        .await
        .expect("the first chunk is passed on before the body ends")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first;");
    origin.state.release.notify_one();
    let rest = tokio::time::timeout(GUARD, response.bytes())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&rest[..], b"second");
}

#[tokio::test(flavor = "multi_thread")]
async fn request_bodies_stream_through() {
    use hyper::body::Frame;
    use hyper_util::rt::TokioIo;

    let origin = RunningOrigin::start().await;
    let proxy = Proxy::start("memory:", &origin.url, &[]);
    let (told, first_arrived) = oneshot::channel();
    *origin.state.first_chunk.lock().unwrap() = Some(told);

    let tcp = tokio::net::TcpStream::connect(proxy.address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    let (chunks, receiver) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    let body = http_body_util::StreamBody::new(tokio_stream(receiver));
    let request = http::Request::post("/upload")
        .header("host", "site.test")
        .body(body)
        .unwrap();
    let answer = tokio::spawn(async move { sender.send_request(request).await });

    chunks
        .send(Ok(Frame::data(Bytes::from(vec![b'a'; 1000]))))
        .await
        .unwrap();
    // The origin reads the first chunk before the client has sent the second.
    tokio::time::timeout(GUARD, first_arrived)
        .await
        .expect("the first chunk reaches the origin while the body is still open")
        .unwrap();
    chunks
        .send(Ok(Frame::data(Bytes::from(vec![b'b'; 500]))))
        .await
        .unwrap();
    drop(chunks);
    let response = tokio::time::timeout(GUARD, answer)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"1500");
}

/// An mpsc receiver as a stream.
fn tokio_stream<T: Send + 'static>(
    mut receiver: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_down_is_502_with_the_envelope() {
    // Held (bound, never listening) until the test ends: refused, and no one else can take it.
    let closed = closed_port::ClosedPort::new();
    let proxy = Proxy::start("memory:", &closed.http_url(), &[]);
    let response = proxy.get("/page").await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        header(&response, "proxy-status"),
        "kv; error=connection_refused"
    );
    let status = header(&response, "cache-status").to_owned();
    assert!(
        status.starts_with("kv; fwd=uri-miss; fwd-status=502"),
        "{status}"
    );
    let body = json(response).await;
    assert_eq!(body["success"], false);
    assert_eq!(body["errors"][0]["code"], 10044);
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_timeout_is_504() {
    let origin = RunningOrigin::start().await;
    let proxy = Proxy::start("memory:", &origin.url, &["--upstream-timeout", "0.5"]);
    let started = std::time::Instant::now();
    let response = proxy.get("/slow").await;
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        header(&response, "proxy-status"),
        "kv; error=http_response_timeout"
    );
    let body = json(response).await;
    assert_eq!(body["errors"][0]["code"], 10045);
    assert_eq!(origin.state.count("/slow"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_if_error_is_served_when_the_upstream_is_down() {
    let mut origin = RunningOrigin::start().await;
    let proxy = Proxy::start("memory:", &origin.url, &[]);
    let first = proxy.get("/stale").await;
    assert_eq!(first.status(), 200);
    assert!(
        header(&first, "cache-status").contains("stored"),
        "{:?}",
        first.headers()
    );
    origin.stop().await;

    let second = proxy.get("/stale").await;
    assert_eq!(second.status(), 200);
    let status = header(&second, "cache-status").to_owned();
    assert!(
        status.starts_with("kv; fwd=stale; fwd-status=502;")
            && status.ends_with("detail=stale-if-error"),
        "{status}"
    );
    assert_eq!(second.text().await.unwrap(), "kept for bad days");
    assert_eq!(origin.state.count("/stale"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_by_url_and_by_prefix_with_the_token() {
    let origin = RunningOrigin::start().await;
    let proxy = Proxy::start("memory:", &origin.url, &["--purge-token", "s3cret"]);
    let purge = Method::from_bytes(b"PURGE").unwrap();
    let bearer = [("authorization", "Bearer s3cret")];
    for path in ["/page", "/docs/a", "/docs/b", "/other"] {
        proxy.get(path).await;
    }

    // Without the token, or with another: 401, nothing purged, nothing forwarded.
    let refused = proxy.send(purge.clone(), "/page", &[]).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(header(&refused, "www-authenticate"), "Bearer");
    let wrong = proxy
        .send(purge.clone(), "/page", &[("authorization", "Bearer guess")])
        .await;
    assert_eq!(wrong.status(), 401);
    let refused = proxy.send(Method::POST, "/.kv/purge?prefix=/", &[]).await;
    assert_eq!(refused.status(), 401);
    assert!(header(&proxy.get("/page").await, "cache-status").contains("hit"));

    // By URL.
    let purged = proxy.send(purge.clone(), "/page", &bearer).await;
    assert_eq!(purged.status(), 200);
    let body = json(purged).await;
    assert_eq!(body["success"], true);
    assert!(body["result"]["purged"].as_u64().unwrap() >= 1, "{body}");
    assert!(header(&proxy.get("/page").await, "cache-status").contains("fwd=uri-miss"));
    assert_eq!(origin.state.count("/page"), 2);

    // By prefix: both documents, not the other page.
    let purged = proxy
        .send(Method::POST, "/.kv/purge?prefix=%2Fdocs%2F", &bearer)
        .await;
    assert_eq!(purged.status(), 200);
    assert_eq!(json(purged).await["result"]["purged"], 2);
    assert!(header(&proxy.get("/docs/a").await, "cache-status").contains("fwd=uri-miss"));
    assert!(header(&proxy.get("/docs/b").await, "cache-status").contains("fwd=uri-miss"));
    assert!(header(&proxy.get("/other").await, "cache-status").contains("hit"));

    // The purge path takes POST only, and a prefix that is a path.
    let wrong_method = proxy.send(Method::GET, "/.kv/purge", &bearer).await;
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(header(&wrong_method, "allow"), "POST");
    let no_prefix = proxy.send(Method::POST, "/.kv/purge", &bearer).await;
    assert_eq!(no_prefix.status(), 400);
    assert_eq!(json(no_prefix).await["success"], false);
    assert_eq!(origin.state.count("/.kv/purge"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_purges_are_refused_not_forwarded() {
    let origin = RunningOrigin::start().await;
    let proxy = Proxy::start("memory:", &origin.url, &[]);
    proxy.get("/page").await;
    let purge = Method::from_bytes(b"PURGE").unwrap();
    let refused = proxy
        .send(purge, "/page", &[("authorization", "Bearer anything")])
        .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(json(refused).await["success"], false);
    let refused = proxy.send(Method::POST, "/.kv/purge?prefix=/", &[]).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(origin.state.count("/page"), 1);
    assert_eq!(origin.state.count("/.kv/purge"), 0);
    assert!(header(&proxy.get("/page").await, "cache-status").contains("hit"));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_proxies_on_one_redis_share_the_cache_and_its_purges() {
    let redis = redis_server::RedisServer::start();
    let origin = RunningOrigin::start().await;
    let store = redis.url();
    let token = ["--purge-token", "s3cret"];
    let a = Proxy::start(&store, &origin.url, &token);
    let b = Proxy::start(&store, &origin.url, &token);

    let stored = a.get("/page").await;
    assert!(header(&stored, "cache-status").contains("stored"));
    let served = b.get("/page").await;
    let status = header(&served, "cache-status").to_owned();
    assert!(status.starts_with("kv; hit"), "{status}");
    assert_eq!(served.text().await.unwrap(), "/page #1");
    b.get("/other").await;
    assert!(header(&a.get("/other").await, "cache-status").starts_with("kv; hit"));
    assert_eq!(origin.state.count("/page"), 1);
    assert_eq!(origin.state.count("/other"), 1);

    // A purge through one is seen by the other.
    let purge = Method::from_bytes(b"PURGE").unwrap();
    let purged = a
        .send(purge, "/page", &[("authorization", "Bearer s3cret")])
        .await;
    assert_eq!(purged.status(), 200);
    let after = b.get("/page").await;
    assert!(header(&after, "cache-status").contains("fwd=uri-miss"));
    assert_eq!(after.text().await.unwrap(), "/page #2");
    let purged = b
        .send(
            Method::POST,
            "/.kv/purge?prefix=/",
            &[("authorization", "Bearer s3cret")],
        )
        .await;
    assert_eq!(purged.status(), 200);
    assert!(header(&a.get("/other").await, "cache-status").contains("fwd=uri-miss"));
    assert_eq!(origin.state.count("/other"), 2);
}
