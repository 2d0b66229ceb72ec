//! Oversized bodies and headers, and slow clients, against a real server on a loopback socket.
//!
//! - A value over 25 MiB is 413 with the envelope; a bulk body over its limit likewise. A body
//!   whose `Content-Length` is over the limit is refused before any of it is read, and a
//!   chunked one as soon as it passes the limit (measured: what the client could send).
//! - A huge header is answered 431 or the connection is closed: never a hang.
//! - A client that sends part of a header and stalls, trickles it, or sends nothing is
//!   disconnected after the header read timeout; a prompt client is not; shutdown is not held
//!   up by such a client.
//!
//! No test waits more than about two seconds.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kv_server::error::codes;
use kv_server::{router, serve_with_config, ServerConfig, DEFAULT_HEADER_READ_TIMEOUT};
use serde_json::Value;
use support::{error_code, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;
/// The header read timeout of the servers that test it.
const SHORT: Duration = Duration::from_millis(400);
/// Longer than any answer or disconnection here may take.
const PATIENCE: Duration = Duration::from_secs(2);

async fn setup(config: ServerConfig) -> (TestServer, reqwest::Client, String) {
    let server = TestServer::start(config).await;
    let client = reqwest::Client::new();
    let id = server.create_namespace(&client, "BIG").await;
    let ns = format!("{}/{id}", server.base());
    (server, client, ns)
}

/// The path part of a namespace URL.
fn path_of(server: &TestServer, url: &str) -> String {
    url.split_once(&server.addr.to_string())
        .unwrap()
        .1
        .to_owned()
}

/// Reads until the peer closes (or resets) the connection; the bytes read. Panics after
/// [`PATIENCE`].
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    let result = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(
        result.is_ok(),
        "the server neither answered nor closed within {PATIENCE:?}; got {:?}",
        String::from_utf8_lossy(&received)
    );
    received
}

/// The status and JSON body of a complete HTTP/1.1 answer in `raw`.
fn parse_answer(raw: &[u8]) -> (u16, Option<Value>) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete header");
    let status = head[9..12].parse().unwrap();
    let json = serde_json::from_str(body).ok();
    (status, json)
}

// ---- bodies ----

#[tokio::test]
async fn values_up_to_25_mib_are_stored_and_larger_ones_are_413() {
    let (server, client, ns) = setup(ServerConfig::default()).await;
    let exactly = vec![b'x'; 25 * MIB];
    let response = client
        .put(format!("{ns}/values/edge"))
        .body(exactly)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let stored = client
        .get(format!("{ns}/values/edge"))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.bytes().await.unwrap().len(), 25 * MIB);

    let over = vec![b'x'; 25 * MIB + 1];
    let response = client
        .put(format!("{ns}/values/over"))
        .body(over)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response, 413).await, codes::PAYLOAD_TOO_LARGE);

    // The same in a multipart form.
    let form = reqwest::multipart::Form::new().part(
        "value",
        reqwest::multipart::Part::bytes(vec![b'y'; 25 * MIB + 1]),
    );
    let response = client
        .put(format!("{ns}/values/over"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response, 413).await, codes::PAYLOAD_TOO_LARGE);
    let missing = client
        .get(format!("{ns}/values/over"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(missing, 404).await, codes::KEY_NOT_FOUND);
    drop(server);
}

/// A server like [`TestServer::start`]'s whose accepted connections have a small receive
/// buffer, so that what a client manages to send is close to what the server read.
async fn tight_server(config: ServerConfig) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(64).unwrap();
    let addr = listener.local_addr().unwrap();
    let store = kv_core::Store::new(kv_backends::memory::MemoryBackend::new());
    let app = router(store, config.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        serve_with_config(listener, app, &config, async {
            let _ = stopped.await;
        })
        .await
    });
    (addr, stop)
}

/// Creates namespace `title` on the server at `addr` and returns its path.
async fn namespace_path(addr: SocketAddr, title: &str) -> String {
    let base = format!("http://{addr}/client/v4/accounts/acc/storage/kv/namespaces");
    let response = reqwest::Client::new()
        .post(&base)
        .json(&serde_json::json!({ "title": title }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let id = body["result"]["id"].as_str().unwrap();
    format!("/client/v4/accounts/acc/storage/kv/namespaces/{id}")
}

/// Sends `head` and then a chunked body of up to `offer` bytes, from a socket with a small send
/// buffer, until the server answers; the answer and how many body bytes the server took before
/// it answered and stopped reading (an upper bound: it includes what sits in socket buffers).
async fn chunked_until_answered(addr: SocketAddr, head: String, offer: usize) -> (Vec<u8>, usize) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(64 * 1024).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let sent = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let sender = tokio::spawn(async move {
        let chunk = vec![b'z'; 16 * 1024];
        let frame = format!("{:x}\r\n", chunk.len());
        while counter.load(Ordering::SeqCst) < offer {
            let wrote = async {
                writer.write_all(frame.as_bytes()).await?;
                writer.write_all(&chunk).await?;
                writer.write_all(b"\r\n").await
            };
            if wrote.await.is_err() {
                return;
            }
            counter.fetch_add(chunk.len(), Ordering::SeqCst);
        }
        let _ = writer.write_all(b"0\r\n\r\n").await;
    });
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    let answered = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let n = reader.read(&mut buffer).await.unwrap_or(0);
            received.extend_from_slice(&buffer[..n]);
            if n == 0 || String::from_utf8_lossy(&received).contains('}') {
                return;
            }
        }
    })
    .await;
    assert!(
        answered.is_ok(),
        "no answer to a chunked body over the limit"
    );
    // Whatever the sender still manages to push once the server stopped reading fills the
    // buffers and no more: give it a moment, then count.
    tokio::time::sleep(Duration::from_millis(200)).await;
    sender.abort();
    (received, sent.load(Ordering::SeqCst))
}

/// Socket buffers on both sides and hyper's read buffer: what a client can have sent beyond
/// what the server read.
const BUFFERED: usize = MIB;

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused_once_past_the_limit() {
    let config = ServerConfig {
        max_bulk_body_bytes: MIB,
        ..ServerConfig::default()
    };
    let (addr, _stop) = tight_server(config.clone()).await;
    let path = namespace_path(addr, "BIG").await;
    // (what, method and endpoint, the endpoint's limit)
    let cases = [
        (
            "a raw value",
            format!("PUT {path}/values/chunked"),
            25 * MIB,
        ),
        ("a bulk write", format!("PUT {path}/bulk"), MIB),
        ("a bulk delete", format!("POST {path}/bulk/delete"), MIB),
        (
            "a bulk get",
            format!("POST {path}/bulk/get"),
            config.max_bulk_get_body_bytes,
        ),
    ];
    for (what, request, limit) in cases {
        let head = format!("{request} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        // Offer 64 MiB; the server must answer (and stop reading) once the limit is passed.
        let (received, sent) = chunked_until_answered(addr, head, 64 * MIB).await;
        let (status, body) = parse_answer(&received);
        assert_eq!(status, 413, "{what}");
        let body = body.expect("an envelope");
        assert_eq!(body["success"], false);
        assert_eq!(
            body["errors"][0]["code"],
            codes::PAYLOAD_TOO_LARGE,
            "{what}"
        );
        assert!(
            sent <= limit + BUFFERED,
            "{what}: the server took {sent} bytes of a body limited to {limit}"
        );
        assert!(
            sent > limit,
            "{what}: answered before the limit ({sent} bytes)"
        );
    }
    let store_check = reqwest::get(format!("http://{addr}{path}/values/chunked")).await;
    assert_eq!(store_check.unwrap().status(), 404, "nothing stored");
}

/// Sends `head` (whose `Content-Length` promises more than the endpoint takes) and 10 bytes of
/// body, then waits: the answer must come at once, not after the body.
async fn declared_over_the_limit(addr: SocketAddr, head: String) -> (u16, Value, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"0123456789").await.unwrap();
    let received = read_until_closed(&mut stream).await;
    let text = String::from_utf8_lossy(&received).into_owned();
    let (status, body) = parse_answer(&received);
    (status, body.expect("an envelope"), text)
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_413_before_the_body_is_sent() {
    let config = ServerConfig {
        max_bulk_body_bytes: MIB,
        ..ServerConfig::default()
    };
    let (server, client, ns) = setup(config.clone()).await;
    let path = path_of(&server, &ns);
    let raw_limit = 25 * MIB;
    let multipart_limit = raw_limit + config.multipart_overhead_bytes;
    let json = "application/json";
    let multipart = "multipart/form-data; boundary=b";
    let cases = [
        (
            "a raw value",
            format!("PUT {path}/values/declared"),
            "application/octet-stream",
            raw_limit + 1,
        ),
        (
            "a multipart value",
            format!("PUT {path}/values/declared"),
            multipart,
            multipart_limit + 1,
        ),
        ("a bulk write", format!("PUT {path}/bulk"), json, MIB + 1),
        (
            "a bulk delete",
            format!("POST {path}/bulk/delete"),
            json,
            MIB + 1,
        ),
        (
            "an old-style bulk delete",
            format!("DELETE {path}/bulk"),
            json,
            MIB + 1,
        ),
        (
            "a bulk get",
            format!("POST {path}/bulk/get"),
            json,
            config.max_bulk_get_body_bytes + 1,
        ),
    ];
    for (what, request, content_type, length) in cases {
        let head = format!(
            "{request} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
        );
        let started = Instant::now();
        let (status, body, text) = declared_over_the_limit(server.addr, head).await;
        assert_eq!(status, 413, "{what}: {text}");
        assert_eq!(body["success"], false);
        assert_eq!(
            body["errors"][0]["code"],
            codes::PAYLOAD_TOO_LARGE,
            "{what}"
        );
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "{what}: the unread body ends the connection: {text}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{what}: answered late"
        );
    }
    let missing = client
        .get(format!("{ns}/values/declared"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(missing, 404).await, codes::KEY_NOT_FOUND);

    // A raw value of exactly the limit, declared and sent, is still stored.
    let exactly = vec![b'x'; raw_limit];
    let response = client
        .put(format!("{ns}/values/declared"))
        .body(exactly)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn bulk_bodies_over_the_bulk_limit_are_413() {
    let config = ServerConfig {
        max_bulk_body_bytes: MIB,
        ..ServerConfig::default()
    };
    let (_server, client, ns) = setup(config).await;
    let item = format!(r#"{{"key":"k","value":"{}"}}"#, "v".repeat(1000));
    let body = format!("[{}]", vec![item; 1100].join(","));
    assert!(body.len() > MIB);
    for (method, endpoint) in [
        (reqwest::Method::PUT, "bulk"),
        (reqwest::Method::POST, "bulk/delete"),
        (reqwest::Method::DELETE, "bulk"),
    ] {
        let response = client
            .request(method.clone(), format!("{ns}/{endpoint}"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(response, 413).await,
            codes::PAYLOAD_TOO_LARGE,
            "{method} {endpoint}"
        );
    }
}

#[tokio::test]
async fn metadata_over_1024_bytes_is_413() {
    let (_server, client, ns) = setup(ServerConfig::default()).await;
    let metadata = serde_json::json!({ "m": "m".repeat(1020) }).to_string();
    assert!(metadata.len() > 1024);
    let form = reqwest::multipart::Form::new()
        .text("value", "v")
        .text("metadata", metadata);
    let response = client
        .put(format!("{ns}/values/meta"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response, 413).await, codes::PAYLOAD_TOO_LARGE);
}

// ---- headers ----

/// Sends `head` (a request header without its final blank line) followed by `extra`, and
/// returns what the server sent before closing or answering.
async fn send_head(addr: SocketAddr, head: String) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.split();
    // Write while reading: the server may answer (and close) before it has read everything.
    let write = async {
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(b"\r\n").await;
    };
    let read = async {
        let mut received = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => return received,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    let (_, received) = tokio::time::timeout(PATIENCE, async { tokio::join!(write, read) })
        .await
        .expect("a huge header is answered or the connection closed, not left hanging");
    received
}

#[tokio::test]
async fn a_huge_header_is_431_or_closed_never_a_hang() {
    let (server, _client, ns) = setup(ServerConfig::default()).await;
    let path = path_of(&server, &ns);
    // One 1 MiB header field.
    let one_big = format!(
        "GET {path}/values/k HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n",
        "a".repeat(MIB)
    );
    // Many small fields.
    let many: String = (0..5000).map(|i| format!("X-F{i}: v\r\n")).collect();
    let many = format!("GET {path}/values/k HTTP/1.1\r\nHost: x\r\n{many}");
    // A 1 MiB request line.
    let long_line = format!(
        "GET {path}/values/{} HTTP/1.1\r\nHost: x\r\n",
        "k".repeat(MIB)
    );
    for (what, head) in [
        ("one big field", one_big),
        ("5000 fields", many),
        ("long URI", long_line),
    ] {
        let received = send_head(server.addr, head).await;
        if received.is_empty() {
            continue; // closed without an answer: acceptable
        }
        let text = String::from_utf8_lossy(&received);
        let status: u16 = text[9..12].parse().unwrap();
        assert!(
            status == 431 || status == 414,
            "{what}: answered {status}: {text}"
        );
    }
    // The server is still serving.
    let client = reqwest::Client::new();
    let response = client.get(format!("{ns}/keys")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_header_just_under_hypers_limit_is_served() {
    let (server, _client, ns) = setup(ServerConfig::default()).await;
    let path = path_of(&server, &ns);
    let head = format!(
        "GET {path}/keys HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: {}\r\n",
        "a".repeat(64 * 1024)
    );
    let received = send_head(server.addr, head).await;
    let (status, body) = parse_answer(&received);
    assert_eq!(status, 200);
    assert_eq!(body.unwrap()["success"], true);
}

// ---- slow clients ----

/// A server whose header read timeout is [`SHORT`].
async fn impatient_server() -> (TestServer, String) {
    let config = ServerConfig::default().with_header_read_timeout(SHORT);
    let store = kv_core::Store::new(kv_backends::memory::MemoryBackend::new());
    let clock = kv_core::ManualClock::at_unix_secs(1_700_000_000);
    let server = TestServer::over(store, clock, config).await;
    let client = reqwest::Client::new();
    let id = server.create_namespace(&client, "SLOW").await;
    let path = path_of(&server, &format!("{}/{id}", server.base()));
    (server, path)
}

#[test]
fn the_default_header_read_timeout_is_ten_seconds() {
    assert_eq!(DEFAULT_HEADER_READ_TIMEOUT, Duration::from_secs(10));
    assert_eq!(
        ServerConfig::default().header_read_timeout,
        Some(DEFAULT_HEADER_READ_TIMEOUT)
    );
    assert_eq!(
        ServerConfig::default()
            .with_header_read_timeout(None)
            .header_read_timeout,
        None
    );
}

#[tokio::test]
async fn a_stalled_partial_header_is_disconnected_after_the_timeout() {
    let (server, path) = impatient_server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let partial = format!("GET {path}/keys HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    stream.write_all(partial.as_bytes()).await.unwrap();
    let received = read_until_closed(&mut stream).await;
    let waited = started.elapsed();
    assert!(received.is_empty() || String::from_utf8_lossy(&received).starts_with("HTTP/1.1 408"));
    assert!(
        waited >= SHORT - Duration::from_millis(50),
        "closed early: {waited:?}"
    );
    assert!(
        waited < SHORT + Duration::from_secs(1),
        "closed late: {waited:?}"
    );
}

#[tokio::test]
async fn a_silent_connection_is_disconnected_after_the_timeout() {
    let (server, _path) = impatient_server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let received = read_until_closed(&mut stream).await;
    assert!(received.is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= SHORT - Duration::from_millis(50),
        "closed early: {waited:?}"
    );
    assert!(
        waited < SHORT + Duration::from_secs(1),
        "closed late: {waited:?}"
    );
}

#[tokio::test]
async fn a_trickling_header_is_disconnected_after_the_timeout() {
    let (server, path) = impatient_server().await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    // One byte every 50 ms: always sending, never finishing ("slowloris").
    let head = format!(
        "GET {path}/keys HTTP/1.1\r\nHost: x\r\nX-Trickle: {}",
        "a".repeat(200)
    );
    let trickle = tokio::spawn(async move {
        for byte in head.into_bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut buffer = [0u8; 1024];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a trickling client was kept for {PATIENCE:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited < SHORT + Duration::from_secs(1),
        "closed late: {waited:?}"
    );
    trickle.abort();
}

#[tokio::test]
async fn prompt_clients_are_served_and_keep_alive_until_idle_for_the_timeout() {
    let (server, path) = impatient_server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = format!("GET {path}/keys HTTP/1.1\r\nHost: x\r\n\r\n");
    // Three requests on one connection, 200 ms apart (each within the timeout).
    for _ in 0..3 {
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        while !String::from_utf8_lossy(&received).contains("\"result_info\"") {
            let n = tokio::time::timeout(PATIENCE, stream.read(&mut buffer))
                .await
                .expect("answered")
                .unwrap();
            assert!(n > 0, "closed while serving");
            received.extend_from_slice(&buffer[..n]);
        }
        assert!(String::from_utf8_lossy(&received).starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Then idle: closed once the timeout passes.
    let started = Instant::now();
    assert!(read_until_closed(&mut stream).await.is_empty());
    assert!(started.elapsed() < SHORT + Duration::from_secs(1));
}

#[tokio::test]
async fn a_stalled_client_does_not_hold_up_shutdown() {
    let config = ServerConfig::default().with_header_read_timeout(SHORT);
    let store = kv_core::Store::new(kv_backends::memory::MemoryBackend::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = router(store, config.clone());
    let server = tokio::spawn(async move {
        serve_with_config(listener, app, &config, async {
            let _ = stopped.await;
        })
        .await
    });
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(PATIENCE, server)
        .await
        .expect("shutdown finished")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < SHORT + Duration::from_secs(1));
    assert!(read_until_closed(&mut stalled).await.is_empty());
    assert!(read_until_closed(&mut idle).await.is_empty());
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

#[test]
fn the_default_body_read_timeout_is_thirty_seconds() {
    assert_eq!(
        kv_server::DEFAULT_BODY_READ_TIMEOUT,
        Duration::from_secs(30)
    );
    assert_eq!(
        ServerConfig::default().body_read_timeout,
        Some(kv_server::DEFAULT_BODY_READ_TIMEOUT)
    );
}

#[tokio::test]
async fn a_stalled_body_is_answered_400_after_the_body_timeout_and_nothing_is_stored() {
    let config = ServerConfig::default().with_body_read_timeout(SHORT);
    let store = kv_core::Store::new(kv_backends::memory::MemoryBackend::new());
    let clock = kv_core::ManualClock::at_unix_secs(1_700_000_000);
    let server = TestServer::over(store, clock, config).await;
    let client = reqwest::Client::new();
    let id = server.create_namespace(&client, "SLOWBODY").await;
    let path = path_of(&server, &format!("{}/{id}", server.base()));

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    // A header promising 1 000 bytes, then 10 of them, then nothing.
    let head = format!(
        "PUT {path}/values/k HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let received = read_until_closed(&mut stream).await;
    let waited = started.elapsed();
    let (status, body) = parse_answer(&received);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&received));
    assert_eq!(body.unwrap()["success"], false);
    assert!(
        waited >= SHORT - Duration::from_millis(50),
        "early: {waited:?}"
    );
    assert!(waited < SHORT + Duration::from_secs(1), "late: {waited:?}");

    let missing = client
        .get(format!("{}/{id}/values/k", server.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404, "the half-sent value was not stored");

    // A body that keeps coming, slower than the timeout in total but never idle that long,
    // is read whole.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!("PUT {path}/values/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    for byte in b"trickled" {
        tokio::time::sleep(SHORT / 4).await;
        stream.write_all(&[*byte]).await.unwrap();
    }
    let (status, _) = parse_answer(&read_until_closed(&mut stream).await);
    assert_eq!(status, 200);
    let stored = client
        .get(format!("{}/{id}/values/slow", server.base()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(stored, "trickled");
}
