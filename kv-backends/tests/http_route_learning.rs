//! Route learning of the http backend against a tiny fake server with Miniflare's gaps (no
//! metadata route, no bulk writes or deletes, no `GET /{id}`, unknown routes answered with a
//! `text/plain` 404): each missing route is asked for once per backend, then the fallback is
//! used directly; a 404 envelope for a missing key is never taken for a missing route.
#![cfg(feature = "http")]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kv_backends::http::{HttpBackend, RetryPolicy};
use kv_core::{BulkPut, KvError, PutOptions, Store};
use serde_json::json;

/// Requests seen, as `METHOD /path` (no query) → count.
type Seen = Arc<Mutex<HashMap<String, usize>>>;

/// A one-thread HTTP/1.1 server that closes every connection after one answer.
struct Fake {
    url: String,
    seen: Seen,
}

impl Fake {
    fn start(answer: fn(&str, &str, &str) -> (u16, &'static str, String)) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Seen = Arc::default();
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let record = record.clone();
                std::thread::spawn(move || serve_one(stream, answer, &record));
            }
        });
        Fake { url, seen }
    }

    fn count(&self, request: &str) -> usize {
        self.seen.lock().unwrap().get(request).copied().unwrap_or(0)
    }
}

fn serve_one(
    stream: TcpStream,
    answer: fn(&str, &str, &str) -> (u16, &'static str, String),
    seen: &Seen,
) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    *seen
        .lock()
        .unwrap()
        .entry(format!("{method} {path}"))
        .or_default() += 1;
    let (status, content_type, text) = answer(&method, path, query);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=UTF-8";

fn envelope(result: serde_json::Value, info: Option<serde_json::Value>) -> String {
    let mut body = json!({"success": true, "errors": [], "messages": [], "result": result});
    if let Some(info) = info {
        body["result_info"] = info;
    }
    body.to_string()
}

/// Miniflare's gaps: everything not listed is a text 404.
fn miniflare_like(method: &str, path: &str, query: &str) -> (u16, &'static str, String) {
    match (method, path) {
        ("GET", "/api") => (
            200,
            JSON,
            envelope(json!([{"id": "ns", "title": "NS"}]), Some(json!({"count": 1}))),
        ),
        ("GET", "/api/ns/values/k") => (200, "application/octet-stream", "v".into()),
        ("GET", "/api/ns/values/missing") => (
            404,
            JSON,
            json!({"success": false, "errors": [{"code": 10009, "message": "get: 'key not found'"}], "messages": [], "result": null}).to_string(),
        ),
        ("GET", "/api/ns/keys") if query.contains("prefix=k&") => (
            200,
            JSON,
            envelope(
                json!([{"name": "k", "metadata": {"a": 1}, "expiration": 4102444800u64}, {"name": "k2"}]),
                Some(json!({"count": 2, "cursor": ""})),
            ),
        ),
        ("PUT" | "DELETE", p) if p.starts_with("/api/ns/values/") => {
            (200, JSON, envelope(json!({}), None))
        }
        _ => (404, TEXT, "404 Not Found".into()),
    }
}

fn backend(fake: &Fake) -> Store {
    Store::new(
        HttpBackend::builder(format!("{}/api", fake.url))
            .retry(RetryPolicy::none())
            .build()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_routes_are_asked_for_once_then_fallen_back_from() {
    let fake = Fake::start(miniflare_like);
    let store = backend(&fake);

    // `GET /{id}` is missing: the listing finds the id, and the route is not asked again.
    let ns = store.namespace_by_id("ns").await.unwrap();
    let _again = store.namespace_by_id("ns").await.unwrap();
    assert_eq!(fake.count("GET /api/ns"), 1);
    assert_eq!(fake.count("GET /api"), 2);

    // The metadata route is missing: the one-key listing gives metadata and expiration.
    for _ in 0..3 {
        let entry = ns.get_entry("k").await.unwrap().unwrap();
        assert_eq!(&entry.value[..], b"v");
        assert_eq!(entry.metadata, Some(json!({"a": 1})));
        assert_eq!(entry.expiration, Some(4_102_444_800));
    }
    assert_eq!(fake.count("GET /api/ns/metadata/k"), 1, "asked once");
    assert_eq!(fake.count("GET /api/ns/keys"), 3);
    // A missing key (404 with code 10009) is a missing key, not a missing route.
    assert_eq!(ns.get("missing").await.unwrap(), None);
    assert_eq!(fake.count("GET /api/ns/metadata/missing"), 0);

    // Bulk put and delete: asked once, then item by item.
    for round in 0..2 {
        let items = (0..3)
            .map(|i| BulkPut::new(format!("b{i}"), "v"))
            .collect::<Vec<_>>();
        ns.put_many(items).await.unwrap();
        ns.delete_many(&["b0", "b1", "b2"]).await.unwrap();
        assert_eq!(fake.count("PUT /api/ns/bulk"), 1, "round {round}");
        assert_eq!(fake.count("POST /api/ns/bulk/delete"), 1, "round {round}");
        assert_eq!(fake.count("PUT /api/ns/values/b1"), round + 1);
        assert_eq!(fake.count("DELETE /api/ns/values/b1"), round + 1);
    }

    // Namespace administration: typed, with the status; never "namespace not found".
    match store.create_namespace("NEW").await {
        Err(KvError::NotServed {
            operation: "namespace creation",
            status: 404,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    match store.delete_namespace("ns").await {
        Err(KvError::NotServed { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }
    // A base path that is not Miniflare's explorer keeps expirations.
    assert!(store.capabilities().expirations);
    ns.put_with("t", "v", PutOptions::new().ttl(Duration::from_secs(600)))
        .await
        .unwrap()
        .version()
        .expect("sent");
}

/// Pages of at most 2 (the server's own `per_page`), ending with a short page.
fn paging(method: &str, path: &str, query: &str) -> (u16, &'static str, String) {
    if method != "GET" || path != "/api" {
        return (404, TEXT, "404 Not Found".into());
    }
    let page: u64 = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("page="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let all = ["a", "b", "c"];
    let items: Vec<_> = all
        .iter()
        .skip(((page - 1) * 2) as usize)
        .take(2)
        .map(|id| json!({"id": id, "title": id.to_uppercase()}))
        .collect();
    let count = items.len();
    (
        200,
        JSON,
        envelope(
            json!(items),
            Some(json!({"page": page, "per_page": 2, "count": count})),
        ),
    )
}

/// Ignores `page`: every page is the same full page, with a page number that never changes.
fn ignores_page(method: &str, path: &str, _query: &str) -> (u16, &'static str, String) {
    if method != "GET" || path != "/api" {
        return (404, TEXT, "404 Not Found".into());
    }
    let items: Vec<_> = (0..1000)
        .map(|i| json!({"id": format!("id{i:04}"), "title": format!("T{i:04}")}))
        .collect();
    (
        200,
        JSON,
        envelope(
            json!(items),
            Some(json!({"page": 1, "per_page": 1000, "count": 1000})),
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_listing_pages_and_always_ends() {
    let fake = Fake::start(paging);
    let titles: Vec<String> = backend(&fake)
        .list_namespaces()
        .await
        .unwrap()
        .into_iter()
        .map(|ns| ns.title)
        .collect();
    assert_eq!(titles, ["A", "B", "C"]);
    assert_eq!(
        fake.count("GET /api"),
        2,
        "the short second page is the last"
    );

    let fake = Fake::start(ignores_page);
    let listed = tokio::time::timeout(Duration::from_secs(30), backend(&fake).list_namespaces())
        .await
        .expect("a server that ignores `page` does not make the listing loop")
        .unwrap();
    assert_eq!(listed.len(), 1000);
    assert!(fake.count("GET /api") <= 2, "{}", fake.count("GET /api"));
}
