//! The console's HTTP contract: sign-in with the token, cookie attributes, CSRF on every
//! change, the token never in a page or URL, compare-and-swap edits, typed confirmation, paging.

mod support;

use std::collections::BTreeMap;

use kv_server::console::ConsoleConfig;
use kv_server::ServerConfig;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{json, Value};
use support::TestServer;

const TOKEN: &str = "console-token-7c1d9e0f-not-for-pages";

fn config() -> ServerConfig {
    ServerConfig::default()
        .with_token(TOKEN)
        .with_console(ConsoleConfig::default())
}

/// A browser-like client: keeps the console's cookies and its CSRF token.
struct Browser {
    client: Client,
    origin: String,
    cookies: BTreeMap<String, String>,
    csrf: String,
    /// Every body, header and URL seen, to check for the token.
    seen: String,
}

impl Browser {
    fn new(server: &TestServer) -> Browser {
        Browser {
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            origin: format!("http://{}", server.addr),
            cookies: BTreeMap::new(),
            csrf: String::new(),
            seen: String::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
        csrf: bool,
    ) -> (StatusCode, Value) {
        let response = self.raw(method, path, body, csrf, &[]).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        self.seen.push_str(&text);
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, value)
    }

    async fn raw(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
        csrf: bool,
        headers: &[(&str, &str)],
    ) -> Response {
        let url = format!("{}{path}", self.origin);
        self.seen.push_str(&url);
        let mut request = self.client.request(method, &url);
        if !self.cookies.is_empty() {
            request = request.header(COOKIE, self.cookie_header());
        }
        if csrf {
            request = request.header("x-csrf-token", &self.csrf);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        for (name, value) in response.headers() {
            self.seen
                .push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("")));
        }
        for set in response.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, _) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        response
    }

    async fn sign_in(&mut self) {
        let (status, session) = self
            .send(Method::GET, "/console/api/session", None, false)
            .await;
        assert_eq!(status, 200);
        assert_eq!(session["result"]["signed_in"], false);
        self.csrf = session["result"]["csrf"].as_str().unwrap().to_owned();
        let (status, login) = self
            .send(
                Method::POST,
                "/console/api/login",
                Some(json!({ "token": TOKEN })),
                true,
            )
            .await;
        assert_eq!(status, 200, "{login}");
        self.csrf = login["result"]["csrf"].as_str().unwrap().to_owned();
        assert!(self.cookies.contains_key("kv_console"));
    }

    async fn namespace(&mut self, title: &str) -> String {
        let (status, created) = self
            .send(
                Method::POST,
                "/console/api/namespaces",
                Some(json!({ "title": title })),
                true,
            )
            .await;
        assert_eq!(status, 200, "{created}");
        created["result"]["id"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn the_front_door_redirects_and_the_page_has_a_strict_policy() {
    let server = TestServer::start(config()).await;
    let mut browser = Browser::new(&server);
    let response = browser.raw(Method::GET, "/", None, false, &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/console");
    for path in [
        "/console",
        "/console/assets/app.js",
        "/console/assets/style.css",
    ] {
        let response = browser.raw(Method::GET, path, None, false, &[]).await;
        assert_eq!(response.status(), 200, "{path}");
        let policy = response.headers()["content-security-policy"]
            .to_str()
            .unwrap();
        assert!(policy.contains("default-src 'none'"), "{policy}");
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(response.headers()["x-frame-options"], "DENY");
    }
    let missing = browser
        .raw(Method::GET, "/console/assets/other.js", None, false, &[])
        .await;
    assert_eq!(missing.status(), 404);
    // The REST API still needs the bearer token; the console's cookie is not accepted there.
    browser.sign_in().await;
    let api = browser
        .raw(
            Method::GET,
            "/client/v4/accounts/a/storage/kv/namespaces",
            None,
            true,
            &[],
        )
        .await;
    assert_eq!(api.status(), 401);
}

#[tokio::test]
async fn no_console_without_the_setting() {
    let server = TestServer::start(ServerConfig::default().with_token(TOKEN)).await;
    let mut browser = Browser::new(&server);
    for path in ["/console", "/console/api/session"] {
        let response = browser.raw(Method::GET, path, None, false, &[]).await;
        assert_eq!(
            response.status(),
            401,
            "{path}: behind the token, and absent"
        );
    }
    let open = TestServer::start(ServerConfig::default()).await;
    let mut browser = Browser::new(&open);
    let response = browser.raw(Method::GET, "/console", None, false, &[]).await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn sign_in_needs_the_token_and_its_csrf_token() {
    let server = TestServer::start(config()).await;
    let mut browser = Browser::new(&server);
    let (status, _) = browser
        .send(Method::GET, "/console/api/namespaces", None, false)
        .await;
    assert_eq!(status, 401, "not signed in");

    let (_, session) = browser
        .send(Method::GET, "/console/api/session", None, false)
        .await;
    browser.csrf = session["result"]["csrf"].as_str().unwrap().to_owned();
    // Without the form's CSRF token (a cross-site form post): refused, no cookie.
    let (status, _) = browser
        .send(
            Method::POST,
            "/console/api/login",
            Some(json!({ "token": TOKEN })),
            false,
        )
        .await;
    assert_eq!(status, 403);
    assert!(!browser.cookies.contains_key("kv_console"));
    // A wrong token: refused, no cookie.
    let (status, body) = browser
        .send(
            Method::POST,
            "/console/api/login",
            Some(json!({ "token": "wrong" })),
            true,
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(!browser.cookies.contains_key("kv_console"));

    let login = browser
        .raw(
            Method::POST,
            "/console/api/login",
            Some(json!({ "token": TOKEN })),
            true,
            &[],
        )
        .await;
    assert_eq!(login.status(), 200);
    let set_cookie = login
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("kv_console="))
        .unwrap();
    assert!(set_cookie.contains("; HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("; SameSite=Strict"), "{set_cookie}");
    assert!(set_cookie.contains("; Path=/console"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    assert!(
        !set_cookie.contains(TOKEN),
        "the cookie does not hold the token"
    );
    let body: Value = login.json().await.unwrap();
    browser.csrf = body["result"]["csrf"].as_str().unwrap().to_owned();
    let (status, _) = browser
        .send(Method::GET, "/console/api/namespaces", None, false)
        .await;
    assert_eq!(status, 200);

    // Sign-out kills the cookie, even a copy kept by someone.
    let copy = browser.cookies.clone();
    let (status, _) = browser
        .send(Method::POST, "/console/api/logout", None, true)
        .await;
    assert_eq!(status, 200);
    browser.cookies = copy;
    let (status, _) = browser
        .send(Method::GET, "/console/api/namespaces", None, false)
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_cookie_is_secure_behind_a_trusted_proxy_that_says_https() {
    let trusting = ServerConfig::default()
        .with_token(TOKEN)
        .with_console(ConsoleConfig {
            trust_forwarded_proto: true,
            ..ConsoleConfig::default()
        });
    for (config, secure) in [(trusting, true), (config(), false)] {
        let server = TestServer::start(config).await;
        let mut browser = Browser::new(&server);
        let https = [("x-forwarded-proto", "https")];
        let session = browser
            .raw(Method::GET, "/console/api/session", None, false, &https)
            .await;
        let body: Value = session.json().await.unwrap();
        browser.csrf = body["result"]["csrf"].as_str().unwrap().to_owned();
        let login = browser
            .raw(
                Method::POST,
                "/console/api/login",
                Some(json!({ "token": TOKEN })),
                true,
                &https,
            )
            .await;
        assert_eq!(login.status(), 200);
        let cookie = login.headers()[SET_COOKIE].to_str().unwrap();
        assert_eq!(cookie.ends_with("; Secure"), secure, "{cookie}");
    }
}

#[tokio::test]
async fn a_request_without_the_csrf_token_changes_nothing() {
    let server = TestServer::start(config()).await;
    let mut browser = Browser::new(&server);
    browser.sign_in().await;
    let id = browser.namespace("KEEP").await;
    let key = format!("/console/api/namespaces/{id}/entry");
    let (status, written) = browser
        .send(
            Method::PUT,
            &key,
            Some(json!({"key": "k", "value": "v1"})),
            true,
        )
        .await;
    assert_eq!(status, 200, "{written}");
    let version = written["result"]["version"].as_str().unwrap().to_owned();

    let good_csrf = browser.csrf.clone();
    for csrf in [None, Some("0".repeat(64))] {
        let with = csrf.is_some();
        browser.csrf = csrf.unwrap_or_default();
        let attempts: Vec<(Method, String, Option<Value>)> = vec![
            (
                Method::POST,
                "/console/api/namespaces".into(),
                Some(json!({"title": "NEW"})),
            ),
            (
                Method::PUT,
                format!("/console/api/namespaces/{id}"),
                Some(json!({"title": "RENAMED"})),
            ),
            (
                Method::DELETE,
                format!("/console/api/namespaces/{id}"),
                Some(json!({"confirm": "KEEP"})),
            ),
            (
                Method::PUT,
                key.clone(),
                Some(json!({"key": "k", "value": "v2", "version": version})),
            ),
            (
                Method::PUT,
                key.clone(),
                Some(json!({"key": "new", "value": "x"})),
            ),
            (Method::DELETE, format!("{key}?key=k"), None),
            (
                Method::POST,
                format!("/console/api/namespaces/{id}/bulk"),
                Some(json!([{"key": "b", "value": "x"}])),
            ),
        ];
        for (method, path, body) in attempts {
            let (status, answer) = browser.send(method.clone(), &path, body, with).await;
            assert_eq!(status, 403, "{method} {path}: {answer}");
            assert_eq!(answer["success"], false);
        }
    }
    browser.csrf = good_csrf;
    // Nothing changed.
    let titles: Vec<String> = server
        .store
        .list_namespaces()
        .await
        .unwrap()
        .into_iter()
        .map(|ns| ns.title)
        .collect();
    assert_eq!(titles, ["KEEP"]);
    let ns = server.store.namespace("KEEP").await.unwrap();
    assert_eq!(ns.get_text("k").await.unwrap().as_deref(), Some("v1"));
    assert_eq!(ns.get("new").await.unwrap(), None);
    assert_eq!(ns.get("b").await.unwrap(), None);

    // Another sign-in's CSRF token does not work with this cookie.
    let mut other = Browser::new(&server);
    other.sign_in().await;
    browser.csrf = other.csrf.clone();
    let (status, _) = browser
        .send(
            Method::POST,
            "/console/api/namespaces",
            Some(json!({"title": "NEW"})),
            true,
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(server.store.list_namespaces().await.unwrap().len(), 1);
}

#[tokio::test]
async fn keys_page_by_cursor_and_edits_are_compare_and_swap() {
    let server = TestServer::start(config()).await;
    let mut browser = Browser::new(&server);
    browser.sign_in().await;
    let id = browser.namespace("APP").await;
    let ns = server.store.namespace("APP").await.unwrap();
    for i in 0..120 {
        ns.put_text(&format!("user:{i:03}"), "x").await.unwrap();
    }
    ns.put_text("other", "y").await.unwrap();

    // Prefix search, 50 a page, following the cursor.
    let mut names = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let (status, page) = browser
            .send(
                Method::GET,
                &format!("/console/api/namespaces/{id}/keys?prefix=user:&cursor={cursor}"),
                None,
                false,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let page = &page["result"];
        names.extend(
            page["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["name"].as_str().unwrap().to_owned()),
        );
        if page["list_complete"] == true {
            break;
        }
        cursor = page["cursor"].as_str().unwrap().to_owned();
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 120);
    // Counted in /metrics as REST listings are.
    let metrics = reqwest::Client::new()
        .get(format!("http://{}/metrics", server.addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = format!("kv_operations_total{{namespace=\"{id}\",operation=\"list\"}} 3");
    assert!(metrics.contains(&line), "{metrics}");
    assert!(names.iter().all(|n| n.starts_with("user:")));
    let (_, count) = browser
        .send(
            Method::GET,
            &format!("/console/api/namespaces/{id}/count"),
            None,
            false,
        )
        .await;
    assert_eq!(count["result"], json!({"count": 121, "more": false}));

    // A new key with metadata and a TTL; creating it again is refused.
    let entry = format!("/console/api/namespaces/{id}/entry");
    let new =
        json!({"key": "cfg", "value": "{\"a\":1}", "metadata": {"owner": "ops"}, "ttl": 3600});
    let (status, _) = browser
        .send(Method::PUT, &entry, Some(new.clone()), true)
        .await;
    assert_eq!(status, 200);
    let (status, again) = browser.send(Method::PUT, &entry, Some(new), true).await;
    assert_eq!(status, 412, "{again}");
    let (_, view) = browser
        .send(Method::GET, &format!("{entry}?key=cfg"), None, false)
        .await;
    let view = &view["result"];
    assert_eq!(view["value"]["kind"], "json");
    assert_eq!(view["value"]["pretty"], "{\n  \"a\": 1\n}");
    assert_eq!(view["metadata"], json!({"owner": "ops"}));
    assert_eq!(view["expiration"], json!(1_700_000_000u64 + 3600));
    let opened = view["version"].as_str().unwrap().to_owned();

    // Someone else writes the key after it was opened: the edit is refused, with a message.
    ns.put_text("cfg", "theirs").await.unwrap();
    let edit = json!({"key": "cfg", "value": "mine", "version": opened});
    let (status, refused) = browser.send(Method::PUT, &entry, Some(edit), true).await;
    assert_eq!(status, 412);
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("changed since you opened it"), "{message}");
    assert_eq!(ns.get_text("cfg").await.unwrap().as_deref(), Some("theirs"));
    // Deleting with the stale version is refused too.
    let (status, _) = browser
        .send(
            Method::DELETE,
            &format!("{entry}?key=cfg&version={opened}"),
            None,
            true,
        )
        .await;
    assert_eq!(status, 412);
    assert!(ns.get("cfg").await.unwrap().is_some());

    // With the current version the edit goes through; metadata-only edits keep the value.
    let current = ns
        .get_entry("cfg")
        .await
        .unwrap()
        .unwrap()
        .version
        .to_string();
    let edit = json!({"key": "cfg", "value": "mine", "version": current, "metadata": {"v": 2}});
    let (status, saved) = browser.send(Method::PUT, &entry, Some(edit), true).await;
    assert_eq!(status, 200, "{saved}");
    let saved_version = saved["result"]["version"].as_str().unwrap().to_owned();
    let keep = json!({"key": "cfg", "value": "", "keep_value": true, "version": saved_version, "metadata": {"v": 3}});
    let (status, _) = browser.send(Method::PUT, &entry, Some(keep), true).await;
    assert_eq!(status, 200);
    let stored = ns.get_entry("cfg").await.unwrap().unwrap();
    assert_eq!(&stored.value[..], b"mine");
    assert_eq!(stored.metadata, Some(json!({"v": 3})));
    assert_eq!(stored.expiration, None, "no expiry asked for");

    // A too-short TTL is the store's typed error, as an envelope.
    let short = json!({"key": "s", "value": "x", "ttl": 5});
    let (status, body) = browser.send(Method::PUT, &entry, Some(short), true).await;
    assert_eq!(status, 400, "{body}");

    // Binary values: size, hex preview and a download.
    ns.put("bin", vec![0u8, 159, 146, 150]).await.unwrap();
    let (_, view) = browser
        .send(Method::GET, &format!("{entry}?key=bin"), None, false)
        .await;
    assert_eq!(view["result"]["value"]["kind"], "binary");
    assert_eq!(view["result"]["value"]["hex"], "00 9f 92 96");
    let download = browser
        .raw(
            Method::GET,
            &format!("/console/api/namespaces/{id}/download?key=bin"),
            None,
            false,
            &[],
        )
        .await;
    assert_eq!(
        download.headers()["content-disposition"],
        "attachment; filename=\"bin\""
    );
    assert_eq!(&download.bytes().await.unwrap()[..], &[0u8, 159, 146, 150]);

    // Delete at the current version.
    let current = ns
        .get_entry("cfg")
        .await
        .unwrap()
        .unwrap()
        .version
        .to_string();
    let (status, _) = browser
        .send(
            Method::DELETE,
            &format!("{entry}?key=cfg&version={current}"),
            None,
            true,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ns.get("cfg").await.unwrap(), None);
    let (status, _) = browser
        .send(Method::GET, &format!("{entry}?key=cfg"), None, false)
        .await;
    assert_eq!(status, 404);

    // Bulk chunks, in the bulk format.
    let items: Vec<Value> = (0..10)
        .map(|i| json!({"key": format!("bulk:{i}"), "value": "v"}))
        .collect();
    let (status, _) = browser
        .send(
            Method::POST,
            &format!("/console/api/namespaces/{id}/bulk"),
            Some(Value::Array(items)),
            true,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ns.get_text("bulk:9").await.unwrap().as_deref(), Some("v"));

    assert!(!browser.seen.contains(TOKEN), "the token never comes back");
}

#[tokio::test]
async fn namespaces_are_renamed_and_deleted_only_with_their_title_typed() {
    let server = TestServer::start(config()).await;
    let mut browser = Browser::new(&server);
    browser.sign_in().await;
    let id = browser.namespace("ORDERS").await;
    let path = format!("/console/api/namespaces/{id}");
    let (status, _) = browser
        .send(Method::PUT, &path, Some(json!({"title": "SALES"})), true)
        .await;
    assert_eq!(status, 200);
    let (status, refused) = browser
        .send(
            Method::DELETE,
            &path,
            Some(json!({"confirm": "ORDERS"})),
            true,
        )
        .await;
    assert_eq!(status, 400);
    assert!(refused["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("\"SALES\""));
    assert_eq!(server.store.list_namespaces().await.unwrap().len(), 1);
    let (status, _) = browser
        .send(
            Method::DELETE,
            &path,
            Some(json!({"confirm": "SALES"})),
            true,
        )
        .await;
    assert_eq!(status, 200);
    assert!(server.store.list_namespaces().await.unwrap().is_empty());
    let (status, _) = browser
        .send(
            Method::DELETE,
            &path,
            Some(json!({"confirm": "SALES"})),
            true,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_open_server_signs_the_console_in_but_still_needs_csrf() {
    let server =
        TestServer::start(ServerConfig::default().with_console(ConsoleConfig::default())).await;
    let mut browser = Browser::new(&server);
    let (_, session) = browser
        .send(Method::GET, "/console/api/session", None, false)
        .await;
    assert_eq!(session["result"]["signed_in"], true);
    assert_eq!(session["result"]["token_required"], false);
    let (status, _) = browser
        .send(
            Method::POST,
            "/console/api/namespaces",
            Some(json!({"title": "X"})),
            false,
        )
        .await;
    assert_eq!(status, 403);
    browser.csrf = session["result"]["csrf"].as_str().unwrap().to_owned();
    let (status, _) = browser
        .send(
            Method::POST,
            "/console/api/namespaces",
            Some(json!({"title": "X"})),
            true,
        )
        .await;
    assert_eq!(status, 200);
}

/// A boolean flag `new-ui`: `on` for `ada`, `off` for everyone else.
async fn seed_flag(server: &TestServer) {
    let ns = server.store.namespace("FLAGS").await.unwrap();
    let flags = kv_middleware::flags::FlagStore::builder(ns)
        .with_manual_refresh()
        .build();
    let definition = serde_json::from_value(json!({
        "state": "ENABLED",
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "targets": {"on": ["ada"]},
    }))
    .unwrap();
    flags.set_flag("new-ui", &definition).await.unwrap();
}

#[tokio::test]
async fn flags_show_evaluate_and_change_with_compare_and_swap() {
    let server = TestServer::start(config()).await;
    let mut browser = Browser::new(&server);
    browser.sign_in().await;
    let (_, none) = browser
        .send(Method::GET, "/console/api/flags", None, false)
        .await;
    assert_eq!(
        none["result"]["exists"], false,
        "no FLAGS namespace: said, not created"
    );
    assert!(server
        .store
        .find_namespace("FLAGS")
        .await
        .unwrap()
        .is_none());

    seed_flag(&server).await;
    let (status, list) = browser
        .send(Method::GET, "/console/api/flags", None, false)
        .await;
    assert_eq!(status, 200, "{list}");
    let flag = &list["result"]["flags"][0];
    assert_eq!(flag["key"], "new-ui");
    assert_eq!(flag["definition"]["targets"], json!({"on": ["ada"]}));
    let version = flag["version"].as_str().unwrap().to_owned();

    let evaluate = |who: &str| json!({"targetingKey": who});
    let path = "/console/api/flags/new-ui/evaluate";
    let (_, ada) = browser
        .send(Method::POST, path, Some(evaluate("ada")), true)
        .await;
    assert_eq!(ada["result"]["value"], true);
    assert_eq!(ada["result"]["reason"], "TARGETING_MATCH");
    let (_, bob) = browser
        .send(Method::POST, path, Some(evaluate("bob")), true)
        .await;
    assert_eq!(bob["result"]["value"], false);
    assert_eq!(bob["result"]["variant"], "off");

    // Default variant `on`, at the version read: bob now gets `on`.
    let (status, changed) = browser
        .send(
            Method::PUT,
            "/console/api/flags/new-ui",
            Some(json!({"version": version, "default_variant": "on"})),
            true,
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    let (_, bob) = browser
        .send(Method::POST, path, Some(evaluate("bob")), true)
        .await;
    assert_eq!(bob["result"]["value"], true);

    // The stale version is refused and changes nothing.
    let (status, refused) = browser
        .send(
            Method::PUT,
            "/console/api/flags/new-ui",
            Some(json!({"version": version, "state": "DISABLED"})),
            true,
        )
        .await;
    assert_eq!(status, 412, "{refused}");
    let (_, bob) = browser
        .send(Method::POST, path, Some(evaluate("bob")), true)
        .await;
    assert_eq!(bob["result"]["value"], true);

    // Toggled off at the current version: everyone gets the caller's default, reason DISABLED.
    let current = changed["result"]["version"].as_str().unwrap();
    let (status, _) = browser
        .send(
            Method::PUT,
            "/console/api/flags/new-ui",
            Some(json!({"version": current, "state": "DISABLED"})),
            true,
        )
        .await;
    assert_eq!(status, 200);
    let (_, ada) = browser
        .send(Method::POST, path, Some(evaluate("ada")), true)
        .await;
    assert_eq!(ada["result"]["reason"], "DISABLED");
    assert_eq!(ada["result"]["value"], Value::Null);

    // An unknown variant is refused; without the CSRF token nothing is evaluated or changed.
    let (status, _) = browser
        .send(
            Method::PUT,
            "/console/api/flags/new-ui",
            Some(json!({"version": current, "default_variant": "maybe"})),
            true,
        )
        .await;
    assert!(status == 400 || status == 412, "{status}");
    let (status, _) = browser
        .send(Method::POST, path, Some(evaluate("ada")), false)
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn config_history_versions_and_rollback() {
    let server = TestServer::start(config()).await;
    let mut browser = Browser::new(&server);
    browser.sign_in().await;
    let ns = server.store.namespace("CONFIG").await.unwrap();
    let site = kv_middleware::config::Config::<Value>::builder(ns, "site")
        .with_default_value(Value::Null)
        .with_manual_refresh()
        .load()
        .await
        .unwrap();
    let v1 = site.set(&json!({"title": "A", "items": 5})).await.unwrap();
    let v2 = site.set(&json!({"title": "B", "items": 5})).await.unwrap();

    let (_, list) = browser
        .send(Method::GET, "/console/api/config", None, false)
        .await;
    assert_eq!(
        list["result"]["documents"].as_array().unwrap().len(),
        1,
        "{list}"
    );
    assert_eq!(list["result"]["documents"][0]["key"], "site");

    let (_, doc) = browser
        .send(Method::GET, "/console/api/config/site", None, false)
        .await;
    assert_eq!(doc["result"]["version"], v2);
    assert_eq!(doc["result"]["live"]["title"], "B");
    assert_eq!(doc["result"]["versions"].as_array().unwrap().len(), 2);
    let (_, old) = browser
        .send(
            Method::GET,
            &format!("/console/api/config/site/versions/{v1}"),
            None,
            false,
        )
        .await;
    assert_eq!(old["result"]["value"]["title"], "A");
    let (status, _) = browser
        .send(
            Method::GET,
            "/console/api/config/site/versions/99",
            None,
            false,
        )
        .await;
    assert_eq!(status, 404);

    let rollback = "/console/api/config/site/rollback";
    let (status, _) = browser
        .send(Method::POST, rollback, Some(json!({"version": v1})), false)
        .await;
    assert_eq!(status, 403, "no CSRF token: no rollback");
    site.refresh().await.unwrap();
    assert_eq!(site.get()["title"], "B");
    let (status, rolled) = browser
        .send(Method::POST, rollback, Some(json!({"version": v1})), true)
        .await;
    assert_eq!(status, 200, "{rolled}");
    site.refresh().await.unwrap();
    assert_eq!(site.get()["title"], "A");
    assert_eq!(
        Some(rolled["result"]["version"].as_u64().unwrap()),
        site.version()
    );
}

#[tokio::test]
async fn sessions_are_counted_and_found_by_id_never_listed() {
    let server = TestServer::start(config()).await;
    let mut browser = Browser::new(&server);
    browser.sign_in().await;
    let manager = kv_middleware::session::SessionManager::new(
        server.store.namespace("SESSIONS").await.unwrap(),
    );
    let mut ids = Vec::new();
    for user in ["ada", "bob", "cyd"] {
        let session = manager.create();
        session.insert("user", user).await.unwrap();
        session.save().await.unwrap();
        ids.push(session.id().await.unwrap().to_string());
    }
    let (_, count) = browser
        .send(Method::GET, "/console/api/sessions", None, false)
        .await;
    assert_eq!(count["result"]["count"], 3);
    for id in &ids {
        assert!(
            !count.to_string().contains(id.as_str()),
            "no IDs in the count"
        );
    }

    let lookup = "/console/api/sessions/lookup";
    let (status, found) = browser
        .send(Method::POST, lookup, Some(json!({"id": ids[1]})), true)
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["result"]["data"], json!({"user": "bob"}));
    let (status, _) = browser
        .send(Method::POST, lookup, Some(json!({"id": "not-an-id"})), true)
        .await;
    assert_eq!(status, 400);
    let unknown = kv_middleware::session::SessionId::generate()
        .unwrap()
        .to_string();
    let (status, _) = browser
        .send(Method::POST, lookup, Some(json!({"id": unknown})), true)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn rate_limits_show_remaining_allowance_per_key() {
    let server = TestServer::start(config()).await;
    let mut browser = Browser::new(&server);
    browser.sign_in().await;
    let limiter = kv_middleware::rate_limit::RateLimiter::builder(
        server.store.namespace("RATE_LIMITS").await.unwrap(),
    )
    .with_quota("api", "3/min".parse().unwrap())
    .build()
    .unwrap();
    for _ in 0..3 {
        assert!(limiter.check("10.0.0.1", 1).await.unwrap().is_allowed());
    }
    assert!(limiter.check("10.0.0.2", 1).await.unwrap().is_allowed());

    let path = "/console/api/rate-limits?quota=api&rate=3/min";
    let (status, all) = browser.send(Method::GET, path, None, false).await;
    assert_eq!(status, 200, "{all}");
    let keys = all["result"]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["key"], "10.0.0.1");
    assert_eq!(keys[0]["remaining"], 0);
    assert_eq!(keys[0]["limited"], true);
    assert_eq!(keys[1]["remaining"], 2);
    let (_, limited) = browser
        .send(Method::GET, &format!("{path}&limited=true"), None, false)
        .await;
    assert_eq!(limited["result"]["keys"].as_array().unwrap().len(), 1);

    // Time refills the allowance (the manual clock, no sleeping).
    server.clock.advance(std::time::Duration::from_secs(20));
    let (_, later) = browser.send(Method::GET, path, None, false).await;
    assert_eq!(later["result"]["keys"][0]["remaining"], 1);
    let (status, _) = browser
        .send(
            Method::GET,
            "/console/api/rate-limits?quota=api&rate=lots",
            None,
            false,
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn cache_entries_by_url_prefix_and_purge() {
    let server = TestServer::start(config()).await;
    let mut browser = Browser::new(&server);
    browser.sign_in().await;
    let ns = server.store.namespace("HTTP_CACHE").await.unwrap();
    let stored_at = 1_700_000_000_000u64 - 30_000;
    // Written as the cache layer writes them: /api/a fresh for 60 s (30 s left), /api/b past
    // its freshness but within stale-while-revalidate, /home without the state fields.
    let windows = |fresh: u64| {
        let fresh_until = stored_at + fresh * 1000;
        json!({"stored_at": stored_at, "bytes": 42, "fresh_until": fresh_until,
               "revalidate_until": fresh_until + 60_000, "error_until": fresh_until + 60_000})
    };
    for (key, metadata) in [
        ("/api/a#GET@shop", windows(60)),
        ("/api/b?x=1#GET@shop", windows(10)),
        (
            "/home#GET@shop",
            json!({"stored_at": stored_at, "bytes": 42}),
        ),
    ] {
        let options = kv_core::PutOptions::new()
            .ttl(std::time::Duration::from_secs(600))
            .metadata(metadata);
        ns.put_with(key, "entry", options)
            .await
            .unwrap()
            .version()
            .unwrap();
    }
    let (status, listed) = browser
        .send(Method::GET, "/console/api/cache?prefix=/api/", None, false)
        .await;
    assert_eq!(status, 200, "{listed}");
    let entries = listed["result"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["url"], "/api/a");
    assert_eq!(entries[0]["method"], "GET");
    assert_eq!(entries[0]["age_secs"], 30);
    assert_eq!(entries[0]["state"], "fresh");
    assert_eq!(entries[1]["url"], "/api/b?x=1");
    assert_eq!(entries[1]["state"], "stale-while-revalidate");
    server.clock.advance(std::time::Duration::from_secs(60));
    let (_, later) = browser
        .send(Method::GET, "/console/api/cache?prefix=/api/", None, false)
        .await;
    let states: Vec<&Value> = later["result"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| &entry["state"])
        .collect();
    assert_eq!(
        states,
        [&json!("stale-while-revalidate"), &json!("expired")]
    );

    let (status, _) = browser
        .send(
            Method::POST,
            "/console/api/cache/purge",
            Some(json!({"prefix": "/api/"})),
            false,
        )
        .await;
    assert_eq!(status, 403, "no CSRF token: no purge");
    assert!(ns.get("/api/a#GET@shop").await.unwrap().is_some());
    let (status, purged) = browser
        .send(
            Method::POST,
            "/console/api/cache/purge",
            Some(json!({"prefix": "/api/"})),
            true,
        )
        .await;
    assert_eq!(status, 200, "{purged}");
    assert_eq!(purged["result"]["deleted"], 2);
    assert_eq!(ns.get("/api/a#GET@shop").await.unwrap(), None);
    assert!(ns.get("/home#GET@shop").await.unwrap().is_some());
    let (status, _) = browser
        .send(
            Method::POST,
            "/console/api/cache/purge",
            Some(json!({"prefix": "api"})),
            true,
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn wrong_tokens_pause_sign_in_for_a_minute() {
    let server = TestServer::start(config()).await;
    let mut browser = Browser::new(&server);
    let (_, session) = browser
        .send(Method::GET, "/console/api/session", None, false)
        .await;
    browser.csrf = session["result"]["csrf"].as_str().unwrap().to_owned();
    let login = |token: &str| Some(json!({ "token": token }));
    for _ in 0..kv_server::console::auth::MAX_FAILED_SIGN_INS {
        let (status, _) = browser
            .send(Method::POST, "/console/api/login", login("guess"), true)
            .await;
        assert_eq!(status, 401);
    }
    // Paused: even the right token waits, so guessing cannot go faster.
    let response = browser
        .raw(Method::POST, "/console/api/login", login(TOKEN), true, &[])
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "60");
    assert!(!browser.cookies.contains_key("kv_console"));
    server.clock.advance(std::time::Duration::from_secs(60));
    let (status, _) = browser
        .send(Method::POST, "/console/api/login", login(TOKEN), true)
        .await;
    assert_eq!(status, 200);
}
