//! `GET /namespaces` pages as Cloudflare's does: `page` from 1, `per_page` 1..=1000 (20 when
//! absent), `order` `id` or `title`, `direction` `asc` or `desc`, a `result_info` describing the
//! page returned, an empty page past the end, and 400 with the envelope for bad values.

mod support;

use kv_server::error::codes;
use kv_server::ServerConfig;
use reqwest::Client;
use serde_json::{json, Value};
use support::{assert_envelope, error_code, TestServer};

async fn page(client: &Client, url: &str) -> Value {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let body: Value = response.json().await.unwrap();
    assert_envelope(&body);
    assert_eq!(body["success"], true);
    body
}

fn titles(body: &Value) -> Vec<String> {
    body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ns| ns["title"].as_str().unwrap().to_owned())
        .collect()
}

fn ids(body: &Value) -> Vec<String> {
    body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ns| ns["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A server holding `n` namespaces titled `ns-00` ... and their ids.
async fn server_with(n: usize) -> (TestServer, Client, Vec<String>) {
    let server = TestServer::start(ServerConfig::default()).await;
    let client = Client::new();
    let mut ids = Vec::new();
    // Created out of title order, so that the listing's order is its own doing.
    for i in (0..n).rev() {
        ids.push(
            server
                .create_namespace(&client, &format!("ns-{i:02}"))
                .await,
        );
    }
    (server, client, ids)
}

#[tokio::test]
async fn default_page_is_the_first_20_by_title() {
    let (server, client, _) = server_with(45).await;
    let body = page(&client, &server.base()).await;
    let expected: Vec<String> = (0..20).map(|i| format!("ns-{i:02}")).collect();
    assert_eq!(titles(&body), expected);
    assert_eq!(
        body["result_info"],
        json!({"page": 1, "per_page": 20, "count": 20, "total_count": 45, "total_pages": 3})
    );
    // Empty parameters count as absent.
    let empty = page(
        &client,
        &format!("{}?page=&per_page=&order=&direction=", server.base()),
    )
    .await;
    assert_eq!(empty, body);
}

#[tokio::test]
async fn pages_cover_every_namespace_once_and_end_with_an_empty_page() {
    let (server, client, mut all) = server_with(45).await;
    let mut seen = Vec::new();
    let mut counts = Vec::new();
    for number in 1.. {
        let url = format!("{}?page={number}&per_page=20", server.base());
        let body = page(&client, &url).await;
        let info = &body["result_info"];
        assert_eq!(info["page"], number);
        assert_eq!(info["per_page"], 20);
        assert_eq!(info["total_count"], 45);
        assert_eq!(info["total_pages"], 3);
        assert_eq!(info["count"], body["result"].as_array().unwrap().len());
        if body["result"].as_array().unwrap().is_empty() {
            assert_eq!(number, 4, "the page after the last is empty");
            break;
        }
        counts.push(info["count"].as_u64().unwrap());
        seen.extend(ids(&body));
    }
    assert_eq!(counts, [20, 20, 5]);
    assert_eq!(seen.len(), 45);
    seen.sort();
    all.sort();
    assert_eq!(seen, all, "every namespace exactly once");

    // A full last page is followed by an empty one (a client stopping at a short page
    // asks for it).
    let body = page(&client, &format!("{}?per_page=15&page=3", server.base())).await;
    assert_eq!(body["result_info"]["count"], 15);
    let body = page(&client, &format!("{}?per_page=15&page=4", server.base())).await;
    assert_eq!(body["result"], json!([]));
    assert_eq!(
        body["result_info"],
        json!({"page": 4, "per_page": 15, "count": 0, "total_count": 45, "total_pages": 3})
    );

    // Far past the end, even past what a page offset can count, is empty too.
    let huge = format!("{}?page={}&per_page=1000", server.base(), u64::MAX);
    let body = page(&client, &huge).await;
    assert_eq!(body["result"], json!([]));
    assert_eq!(body["result_info"]["page"], u64::MAX);

    // One page of 1000 holds them all.
    let body = page(&client, &format!("{}?per_page=1000", server.base())).await;
    assert_eq!(body["result_info"]["count"], 45);
    assert_eq!(body["result_info"]["total_pages"], 1);
}

#[tokio::test]
async fn order_and_direction() {
    let (server, client, mut all) = server_with(12).await;
    let base = server.base();

    let body = page(&client, &format!("{base}?order=id&per_page=1000")).await;
    all.sort();
    assert_eq!(ids(&body), all);
    let body = page(
        &client,
        &format!("{base}?order=id&direction=desc&per_page=1000"),
    )
    .await;
    let mut descending = all.clone();
    descending.reverse();
    assert_eq!(ids(&body), descending);

    let body = page(
        &client,
        &format!("{base}?order=title&direction=desc&per_page=5"),
    )
    .await;
    assert_eq!(titles(&body), ["ns-11", "ns-10", "ns-09", "ns-08", "ns-07"]);
    let body = page(
        &client,
        &format!("{base}?order=title&direction=desc&per_page=5&page=3"),
    )
    .await;
    assert_eq!(titles(&body), ["ns-01", "ns-00"]);
    // What wrangler asks.
    let body = page(
        &client,
        &format!("{base}?per_page=1000&order=title&direction=asc&page=1"),
    )
    .await;
    let expected: Vec<String> = (0..12).map(|i| format!("ns-{i:02}")).collect();
    assert_eq!(titles(&body), expected);
}

#[tokio::test]
async fn an_empty_catalog_has_no_pages() {
    let server = TestServer::start(ServerConfig::default()).await;
    let client = Client::new();
    let body = page(&client, &server.base()).await;
    assert_eq!(body["result"], json!([]));
    assert_eq!(
        body["result_info"],
        json!({"page": 1, "per_page": 20, "count": 0, "total_count": 0, "total_pages": 0})
    );
}

#[tokio::test]
async fn bad_paging_values_are_400_with_a_code() {
    let (server, client, _) = server_with(3).await;
    let base = server.base();
    let cases = [
        ("page=0", codes::BAD_REQUEST),
        ("page=-1", codes::BAD_REQUEST),
        ("page=1.5", codes::BAD_REQUEST),
        ("page=abc", codes::BAD_REQUEST),
        ("page=99999999999999999999999", codes::BAD_REQUEST),
        ("per_page=0", codes::INVALID_LIMIT),
        ("per_page=1001", codes::INVALID_LIMIT),
        ("per_page=5000", codes::INVALID_LIMIT),
        ("per_page=ten", codes::INVALID_LIMIT),
        ("order=size", codes::BAD_REQUEST),
        ("order=TITLE", codes::BAD_REQUEST),
        ("direction=up", codes::BAD_REQUEST),
        ("page=1&page=2", codes::BAD_REQUEST),
    ];
    for (query, code) in cases {
        let response = client.get(format!("{base}?{query}")).send().await.unwrap();
        assert_eq!(error_code(response, 400).await, code, "{query}");
    }
    // The message names the parameter and the bounds.
    let body: Value = client
        .get(format!("{base}?per_page=5000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("per_page") && message.contains("1000"),
        "{message}"
    );
    // The bounds themselves are fine.
    for query in ["per_page=1", "per_page=1000", "page=1"] {
        page(&client, &format!("{base}?{query}")).await;
    }
}

/// The other listings and the bulk answers carry exactly Cloudflare's fields: the key listing
/// `result_info {count, cursor}`, the bulk writes `{successful_key_count, unsuccessful_keys}`
/// and no `result_info`.
#[tokio::test]
async fn key_listing_and_bulk_answers_have_cloudflares_fields() {
    let (server, client, ids) = server_with(1).await;
    let ns = format!("{}/{}", server.base(), ids[0]);
    let items: Vec<Value> = (0..25)
        .map(|i| json!({"key": format!("k{i:02}"), "value": "v"}))
        .collect();
    let written: Value = client
        .put(format!("{ns}/bulk"))
        .json(&items)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        written["result"],
        json!({"successful_key_count": 25, "unsuccessful_keys": []})
    );
    assert!(written.get("result_info").is_none(), "{written}");

    let first = page(&client, &format!("{ns}/keys?limit=10")).await;
    let info = first["result_info"].as_object().unwrap();
    let mut fields: Vec<&str> = info.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["count", "cursor"]);
    assert_eq!(info["count"], 10);
    assert!(!info["cursor"].as_str().unwrap().is_empty());
    let all = page(&client, &format!("{ns}/keys")).await;
    assert_eq!(all["result_info"]["count"], 25, "the default limit is 1000");
    assert_eq!(
        all["result_info"]["cursor"], "",
        "the last page has an empty cursor"
    );

    for (method, path) in [
        (reqwest::Method::POST, "bulk/delete"),
        (reqwest::Method::DELETE, "bulk"),
    ] {
        let deleted: Value = client
            .request(method, format!("{ns}/{path}"))
            .json(&["k00", "k01"])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            deleted["result"],
            json!({"successful_key_count": 2, "unsuccessful_keys": []}),
            "{path}"
        );
        assert!(deleted.get("result_info").is_none(), "{deleted}");
    }
    let read: Value = client
        .post(format!("{ns}/bulk/get"))
        .json(&json!({"keys": ["k02"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["result"], json!({"values": {"k02": "v"}}));
    assert!(read.get("result_info").is_none(), "{read}");
}
