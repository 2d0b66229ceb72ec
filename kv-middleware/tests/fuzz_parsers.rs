//! Property tests of the parsers that read client or operator input, each module behind its
//! feature:
//!
//! - `quota` (rate_limit): quota text (`"100/min"`) parses to exactly the generated values, or
//!   fails with a typed `QuotaError` naming the input; parsed quotas display and parse back.
//! - `forwarded` (rate_limit): `X-Forwarded-For` / `Forwarded` values behind trusted proxies
//!   give the key a model of the documented walk predicts, or the documented "no key"; whatever
//!   a client writes to the left of what trusted proxies appended, the client's real address is
//!   the key.
//! - `session_cookies` (session + axum): arbitrary `Cookie` headers and tampered IDs are "no
//!   session" (200, anonymous), a write gets a fresh server-chosen ID, the victim session is
//!   never reached; `SessionId` parsing accepts exactly the canonical form.
//! - `flags` (flags): arbitrary JSON flag and segment documents are a validation error naming
//!   the item, or a flag that evaluates, for arbitrary contexts, to one of its own variants
//!   with a reason that fits.
//!
//! Case counts are the `CASES` constants of each module.
#![cfg(any(
    feature = "rate_limit",
    all(feature = "session", feature = "axum"),
    feature = "flags"
))]

use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[allow(dead_code)]
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Bytes a header value may hold: visible ASCII, space, tab and obs-text (0x80..=0xff).
#[allow(dead_code)]
fn header_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        6 => 0x20u8..=0x7e,
        1 => Just(b'\t'),
        2 => 0x80u8..=0xff,
        1 => Just(b'"'),
        1 => Just(b','),
        1 => Just(b';'),
        1 => Just(b'='),
    ]
}

#[cfg(feature = "rate_limit")]
mod quota {
    use std::time::Duration;

    use kv_middleware::rate_limit::{Quota, QuotaError};
    use proptest::prelude::*;

    use super::config;

    const CASES: u32 = 2048;

    /// The units with their spellings and their length in seconds.
    const UNITS: &[(&[&str], u64)] = &[
        (&["s", "sec", "secs", "second", "seconds"], 1),
        (&["m", "min", "mins", "minute", "minutes"], 60),
        (&["h", "hr", "hrs", "hour", "hours"], 3600),
        (&["d", "day", "days"], 86_400),
    ];

    fn check(input: &str) -> Result<(), TestCaseError> {
        match input.parse::<Quota>() {
            Ok(quota) => {
                prop_assert!(quota.count() >= 1);
                prop_assert!(!quota.period().is_zero());
                prop_assert_eq!(
                    quota.period().subsec_nanos(),
                    0,
                    "text periods are whole seconds"
                );
                prop_assert_eq!(quota.burst(), quota.count());
                prop_assert!(quota.interval_nanos() >= 1);
                prop_assert_eq!(quota.window_secs(), quota.period().as_secs());
                let text = quota.to_string();
                prop_assert_eq!(
                    text.parse::<Quota>(),
                    Ok(quota),
                    "{:?} displays as {:?}",
                    input,
                    text
                );
            }
            Err(QuotaError::Syntax {
                input: given,
                reason,
            }) => {
                prop_assert_eq!(given, input);
                prop_assert!(!reason.is_empty());
            }
            Err(QuotaError::UnknownUnit { input: given, unit }) => {
                prop_assert_eq!(&given, input);
                prop_assert!(
                    input.to_ascii_lowercase().contains(&unit),
                    "{:?} in {:?}",
                    unit,
                    input
                );
            }
            Err(QuotaError::ZeroCount | QuotaError::ZeroPeriod | QuotaError::PeriodTooLong) => {}
            Err(other) => prop_assert!(false, "{:?}: unexpected error {:?}", input, other),
        }
        Ok(())
    }

    fn quota_like() -> impl Strategy<Value = String> {
        let count = prop_oneof![
            "[0-9]{0,12}",
            Just("-1".to_owned()),
            Just("1.5".to_owned()),
            Just("+7".to_owned()),
            Just("١٢".to_owned()),
            Just("4294967296".to_owned()),
            Just("0".to_owned()),
        ];
        let separator = prop_oneof![
            Just("/"),
            Just(" per "),
            Just(" PER "),
            Just("per"),
            Just("//"),
            Just(""),
            Just(" / "),
        ];
        let multiple = prop_oneof![Just(String::new()), "[0-9]{1,25}", Just("0".to_owned())];
        let unit = prop_oneof![
            4 => proptest::sample::select(
                UNITS.iter().flat_map(|(names, _)| names.iter().copied()).collect::<Vec<_>>()
            )
            .prop_map(str::to_owned),
            1 => "[a-zA-Z]{0,8}",
            1 => Just("ſ".to_owned()),
            1 => Just("MİN".to_owned()),
        ];
        let junk = prop_oneof![Just(String::new()), Just(" ".to_owned()), "[ -~]{0,4}"];
        (count, separator, multiple, " ?", unit, junk).prop_map(
            |(count, separator, multiple, space, unit, junk)| {
                format!("{count}{separator}{multiple}{space}{unit}{junk}")
            },
        )
    }

    /// A spelling with random letter case.
    fn spelled(name: &str, upper: &[bool]) -> String {
        name.chars()
            .zip(upper.iter().cycle())
            .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
            .collect()
    }

    proptest! {
        #![proptest_config(config(CASES))]

        #[test]
        fn arbitrary_text_parses_or_fails_typed(input in any::<String>()) {
            check(&input)?;
        }

        #[test]
        fn quota_like_text_parses_or_fails_typed(input in quota_like()) {
            check(&input)?;
        }

        #[test]
        fn generated_quotas_parse_to_their_values(
            count in prop_oneof![1u32..=1000, any::<u32>()],
            multiple in prop_oneof![
                3 => Just(None),
                3 => (1u64..100_000).prop_map(Some),
                1 => (10_000_000_000u64..=u64::MAX).prop_map(Some),
            ],
            unit in 0..UNITS.len(),
            spelling in any::<prop::sample::Index>(),
            upper in proptest::collection::vec(any::<bool>(), 1..8),
            per in any::<bool>(),
            spaces in proptest::collection::vec(
                proptest::sample::select(vec!["", " ", "  ", "\t"]),
                4,
            ),
        ) {
            let (names, unit_secs) = UNITS[unit];
            let name = spelled(names[spelling.index(names.len())], &upper);
            let multiple_text = multiple.map(|m| m.to_string()).unwrap_or_default();
            let text = if per {
                format!("{}{count} per {multiple_text}{}{name}{}", spaces[0], spaces[1], spaces[2])
            } else {
                format!("{}{count}{}/{}{multiple_text}{}{name}{}",
                    spaces[0], spaces[1], spaces[2], spaces[3], spaces[0])
            };
            let parsed = text.parse::<Quota>();
            let secs = u128::from(multiple.unwrap_or(1)) * u128::from(unit_secs);
            if secs > u128::from(u64::MAX) {
                let is_too_long = matches!(
                    &parsed,
                    Err(QuotaError::Syntax { reason, .. }) if reason.contains("too long")
                );
                prop_assert!(is_too_long, "{:?}: {:?}", text, parsed);
            } else if count == 0 {
                prop_assert_eq!(parsed, Err(QuotaError::ZeroCount));
            } else if secs == 0 {
                prop_assert_eq!(parsed, Err(QuotaError::ZeroPeriod));
            } else if secs * 1_000_000_000 > u128::from(u64::MAX) {
                prop_assert_eq!(parsed, Err(QuotaError::PeriodTooLong));
            } else {
                let quota = parsed.map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
                prop_assert_eq!(quota.count(), count);
                prop_assert_eq!(quota.period(), Duration::from_secs(secs as u64));
                prop_assert_eq!(quota.burst(), count);
                prop_assert_eq!(Quota::new(count, Duration::from_secs(secs as u64)), Ok(quota));
            }
        }
    }
}

#[cfg(feature = "rate_limit")]
mod forwarded {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

    use http::{HeaderMap, HeaderValue, Request};
    use kv_middleware::rate_limit::{
        forwarded_for, x_forwarded_for, ClientIp, Extraction, ForwardedHeader, IpGrouping,
        KeyExtractor, RateKey, RequestHead,
    };
    use proptest::prelude::*;

    use super::{config, header_byte};

    const CASES: u32 = 1024;
    const TRUSTED: [&str; 2] = ["10.0.0.0/8", "fd00::/8"];
    const NO_ADDRESS: &str = "a trusted proxy forwarded an entry that is not an address";

    fn is_trusted(ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(v4) => v4.octets()[0] == 10,
            IpAddr::V6(v6) => v6.octets()[0] == 0xfd,
        }
    }

    /// A client address outside the trusted networks.
    fn public_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            (1u8..=9, any::<u8>(), any::<u8>(), 1u8..=254)
                .prop_map(|(a, b, c, d)| IpAddr::V4(Ipv4Addr::new(a, b, c, d))),
            (any::<u16>(), any::<u16>(), any::<u64>()).prop_map(|(x, y, low)| {
                let bits = (0x2001_0db8u128 << 96)
                    | (u128::from(x) << 80)
                    | (u128::from(y) << 64)
                    | u128::from(low);
                IpAddr::V6(Ipv6Addr::from(bits))
            }),
        ]
    }

    fn trusted_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            (any::<u8>(), any::<u8>(), any::<u8>())
                .prop_map(|(b, c, d)| IpAddr::V4(Ipv4Addr::new(10, b, c, d))),
            any::<u128>()
                .prop_map(|low| { IpAddr::V6(Ipv6Addr::from((0xfdu128 << 120) | (low >> 8))) }),
        ]
    }

    fn any_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![public_ip(), trusted_ip(), any::<IpAddr>()]
    }

    /// How a proxy writes an address into X-Forwarded-For.
    fn xff_node(ip: IpAddr, style: u8, port: u16) -> String {
        match (ip, style % 3) {
            (IpAddr::V4(v4), 1) => format!("{v4}:{port}"),
            (IpAddr::V6(v6), 1) => format!("[{v6}]:{port}"),
            (IpAddr::V6(v6), 2) => format!("[{v6}]"),
            (ip, _) => ip.to_string(),
        }
    }

    /// How a proxy writes an element into Forwarded (RFC 7239).
    fn forwarded_element(ip: IpAddr, style: u8, port: u16) -> String {
        let node = match (ip, style % 4) {
            (IpAddr::V4(v4), 0) => v4.to_string(),
            (IpAddr::V4(v4), 1) => format!("\"{v4}:{port}\""),
            (IpAddr::V4(v4), _) => format!("\"{v4}\""),
            (IpAddr::V6(v6), 1) => format!("\"[{v6}]:{port}\""),
            (IpAddr::V6(v6), _) => format!("\"[{v6}]\""),
        };
        let name = if style & 0x10 != 0 { "For" } else { "for" };
        match style % 3 {
            0 => format!("{name}={node}"),
            1 => format!("{name}={node};proto=https;by=\"[fd00::1]\""),
            _ => format!("proto=http;{name}={node};host=\"a,b;c\""),
        }
    }

    /// What a client may have put in the header before the proxies appended theirs: random
    /// bytes, or pieces of the syntax (addresses, `for=`, quotes, separators) thrown together.
    fn client_junk() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            any_ip().prop_map(|ip| ip.to_string().into_bytes()),
            any_ip().prop_map(|ip| format!("for={ip}").into_bytes()),
            any_ip().prop_map(|ip| format!("for=\"[{ip}]:1\"").into_bytes()),
            Just(b"for=".to_vec()),
            Just(b"\"".to_vec()),
            Just(b";".to_vec()),
            Just(b",".to_vec()),
            Just(b", ".to_vec()),
            Just(b"x=\"".to_vec()),
            Just(b"unknown".to_vec()),
            Just(b"_hidden".to_vec()),
            Just(b"[".to_vec()),
            Just(b"]:".to_vec()),
            Just(b"\\\"".to_vec()),
            Just(vec![0xff, 0xfe]),
            proptest::collection::vec(header_byte(), 1..6),
        ];
        prop_oneof![
            1 => Just(Vec::new()),
            3 => proptest::collection::vec(piece, 1..8).prop_map(|p| p.concat()),
            2 => proptest::collection::vec(header_byte(), 0..48),
        ]
    }

    fn headers(name: &'static str, lines: &[Vec<u8>]) -> Option<HeaderMap> {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(name, HeaderValue::from_bytes(line).ok()?);
        }
        Some(map)
    }

    /// The documented walk: from the peer, right to left while the address is trusted.
    fn model(peer: IpAddr, hops: &[Option<IpAddr>]) -> Result<IpAddr, &'static str> {
        if !is_trusted(peer) {
            return Ok(peer);
        }
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                None => return Err(NO_ADDRESS),
                Some(ip) => {
                    client = *ip;
                    if !is_trusted(client) {
                        return Ok(client);
                    }
                }
            }
        }
        Ok(client)
    }

    fn extract(extractor: &ClientIp, peer: IpAddr, headers: &HeaderMap) -> Extraction {
        let mut request = Request::new(());
        *request.headers_mut() = headers.clone();
        request
            .extensions_mut()
            .insert(SocketAddr::new(peer, 40_000));
        extractor.extract(&RequestHead::from_request(&request))
    }

    fn assert_key(
        extraction: Extraction,
        expected: Result<IpAddr, &str>,
    ) -> Result<(), TestCaseError> {
        match (extraction, expected) {
            (Extraction::Key(key), Ok(ip)) => {
                prop_assert_eq!(key.clone(), RateKey::from_ip(ip, IpGrouping::default()));
                prop_assert_eq!(key.ip(), Some(ip));
            }
            (Extraction::Missing(reason), Err(expected)) => prop_assert_eq!(reason, expected),
            (other, expected) => prop_assert!(false, "{:?}, expected {:?}", other, expected),
        }
        Ok(())
    }

    fn extractors() -> [(ClientIp, &'static str); 2] {
        [
            (ClientIp::trusting(TRUSTED).unwrap(), "x-forwarded-for"),
            (
                ClientIp::trusting(TRUSTED)
                    .unwrap()
                    .with_header(ForwardedHeader::Forwarded),
                "forwarded",
            ),
        ]
    }

    proptest! {
        #![proptest_config(config(CASES))]

        /// Arbitrary header lines: the key is what the documented walk gives over the parsed
        /// hops, or the documented "no key"; an untrusted peer is always its own key.
        #[test]
        fn arbitrary_forwarding_headers_give_the_modelled_key(
            lines in proptest::collection::vec(
                prop_oneof![client_junk(), proptest::collection::vec(header_byte(), 0..64)],
                0..4,
            ),
            peer in any_ip(),
        ) {
            for (extractor, name) in extractors() {
                let Some(map) = headers(name, &lines) else { return Ok(()) };
                let hops = if name == "forwarded" {
                    forwarded_for(&map)
                } else {
                    x_forwarded_for(&map)
                };
                let expected = model(peer, &hops);
                prop_assert_eq!(extractor.client_ip(peer, &map), expected);
                if !is_trusted(peer) {
                    prop_assert_eq!(expected, Ok(peer));
                }
                assert_key(extract(&extractor, peer, &map), expected)?;
            }
        }

        /// Whatever the client wrote, it is left of the entries the trusted proxies appended,
        /// so the key is the client's real address: never a spoofed entry.
        #[test]
        fn spoofed_leftmost_entries_are_never_chosen(
            junk in client_junk(),
            real in public_ip(),
            proxies in proptest::collection::vec(trusted_ip(), 0..4),
            peer in trusted_ip(),
            styles in proptest::collection::vec((any::<u8>(), any::<u16>()), 5),
            separate_lines in any::<bool>(),
        ) {
            let chain: Vec<IpAddr> = std::iter::once(real).chain(proxies.iter().copied()).collect();
            for (extractor, name) in extractors() {
                let appended: Vec<String> = chain
                    .iter()
                    .zip(styles.iter().cycle())
                    .map(|(ip, (style, port))| {
                        if name == "forwarded" {
                            forwarded_element(*ip, *style, *port)
                        } else {
                            xff_node(*ip, *style, *port)
                        }
                    })
                    .collect();
                let lines: Vec<Vec<u8>> = if separate_lines {
                    // The client's own line, then one line per proxy.
                    let mut lines = vec![junk.clone()];
                    lines.extend(appended.iter().map(|a| a.clone().into_bytes()));
                    lines.retain(|l| !l.is_empty());
                    lines
                } else {
                    // Each proxy appends `, <entry>` to the one line.
                    let mut line = junk.clone();
                    for entry in &appended {
                        if !line.is_empty() {
                            line.extend_from_slice(b", ");
                        }
                        line.extend_from_slice(entry.as_bytes());
                    }
                    vec![line]
                };
                let Some(map) = headers(name, &lines) else { return Ok(()) };
                prop_assert_eq!(
                    extractor.client_ip(peer, &map),
                    Ok(real),
                    "{} lines {:?}",
                    name,
                    lines
                        .iter()
                        .map(|l| String::from_utf8_lossy(l).into_owned())
                        .collect::<Vec<_>>()
                );
                assert_key(extract(&extractor, peer, &map), Ok(real))?;
            }
        }
    }
}

#[cfg(all(feature = "session", feature = "axum"))]
mod session_cookies {
    use axum::body::Body;
    use axum::routing::{get, post};
    use axum::Router;
    use http::header::{COOKIE, SET_COOKIE};
    use http::{HeaderValue, Request, StatusCode};
    use kv_core::Store;
    use kv_middleware::session::{
        Key, ParseSessionIdError, Session, SessionError, SessionId, SessionLayer,
    };
    use proptest::prelude::*;
    use tower::ServiceExt;

    use super::{config, header_byte, runtime};

    const CASES: u32 = 256;
    const PARSE_CASES: u32 = 4096;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    async fn whoami(session: Session) -> Result<String, SessionError> {
        Ok(session
            .get::<String>("user")
            .await?
            .unwrap_or_else(|| "anonymous".to_owned()))
    }

    async fn login(session: Session) -> Result<String, SessionError> {
        session.insert("user", "mallory").await?;
        Ok(session.id().await?.to_string())
    }

    struct Fixture {
        app: Router,
        layer: SessionLayer,
        victim: SessionId,
        /// The victim's cookie value (its ID, signed when the layer signs).
        victim_cookie: String,
    }

    async fn fixture(signed: bool) -> Fixture {
        let store = Store::new(kv_backends::memory::MemoryBackend::new());
        let mut layer = SessionLayer::new(store.namespace("SESSIONS").await.unwrap());
        if signed {
            layer = layer.with_signing_key(Key::generate());
        }
        let manager = layer.manager();
        let session = manager.create();
        session.insert("user", "victim").await.unwrap();
        session.save().await.unwrap();
        let victim = session.id().await.unwrap();
        let header = manager.set_cookie_header(&session).await.unwrap().unwrap();
        let victim_cookie = cookie_value(header.to_str().unwrap()).to_owned();
        let app = Router::new()
            .route("/whoami", get(whoami))
            .route("/login", post(login))
            .layer(layer.clone());
        Fixture {
            app,
            layer,
            victim,
            victim_cookie,
        }
    }

    fn cookie_value(set_cookie: &str) -> &str {
        set_cookie
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
    }

    /// A cookie value near the victim's: one character replaced, one added or removed, quoted
    /// and changed, or one byte's bits flipped (when that stays a valid header).
    fn tampered(value: &str, how: u8, at: usize, with: u8) -> String {
        let mut bytes = value.as_bytes().to_vec();
        let at = at % bytes.len();
        match how % 5 {
            0 => {
                let replacement = ALPHABET[usize::from(with) % 64];
                bytes[at] = if replacement == bytes[at] {
                    ALPHABET[(usize::from(with) + 1) % 64]
                } else {
                    replacement
                };
            }
            1 => bytes.insert(at, ALPHABET[usize::from(with) % 64]),
            2 => {
                bytes.remove(at);
            }
            3 => {
                let replacement = if bytes[at] == b'A' { b'B' } else { b'A' };
                bytes[at] = replacement;
                return format!("\"{}\"", String::from_utf8(bytes).unwrap());
            }
            _ => {
                bytes[at] ^= 1 << (with % 7);
                if !(0x21..=0x7e).contains(&bytes[at])
                    || matches!(bytes[at], b';' | b',' | b'"' | b'\\')
                {
                    bytes[at] = if value.as_bytes()[at] == b'0' {
                        b'1'
                    } else {
                        b'0'
                    };
                }
            }
        }
        String::from_utf8(bytes).unwrap()
    }

    /// `Cookie` headers a client may send, none of them carrying the victim's cookie as is.
    fn cookie_headers(victim: String) -> impl Strategy<Value = Vec<Vec<u8>>> {
        let one = prop_oneof![
            2 => proptest::collection::vec(header_byte(), 0..120),
            2 => "[ -~]{0,120}".prop_map(String::into_bytes),
            2 => "[A-Za-z0-9_-]{43}".prop_map(|id| format!("session={id}").into_bytes()),
            1 => "[A-Za-z0-9_+/=-]{40,90}".prop_map(|id| format!("session={id}").into_bytes()),
            4 => (any::<u8>(), any::<usize>(), any::<u8>())
                .prop_map(move |(how, at, with)| {
                    format!("session={}", tampered(&victim, how, at, with)).into_bytes()
                }),
            1 => (44usize..5000).prop_map(|n| format!("session={}", "A".repeat(n)).into_bytes()),
            1 => "[a-z]{1,8}".prop_map(|v| {
                format!("theme=dark; session={v}; session=; session=\"\"").into_bytes()
            }),
            1 => Just(b"session".to_vec()),
            1 => Just(b"=session=; ;;;=".to_vec()),
            1 => Just(b"SESSION=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_vec()),
        ];
        proptest::collection::vec(one, 0..4)
    }

    struct Reply {
        status: StatusCode,
        body: String,
        set_cookies: Vec<String>,
    }

    async fn send(app: &Router, method: &str, path: &str, cookies: &[Vec<u8>]) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        for cookie in cookies {
            if let Ok(value) = HeaderValue::from_bytes(cookie) {
                request.headers_mut().append(COOKIE, value);
            }
        }
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let set_cookies = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        Reply {
            status,
            body: String::from_utf8(body.to_vec()).unwrap(),
            set_cookies,
        }
    }

    /// The 43-character runs of ID characters in the request: IDs a client may have chosen.
    fn id_shaped(cookies: &[Vec<u8>]) -> Vec<String> {
        let mut found = Vec::new();
        for cookie in cookies {
            for run in cookie.split(|b| !ALPHABET.contains(b)) {
                for window in run.windows(43) {
                    found.push(String::from_utf8(window.to_vec()).unwrap());
                }
            }
        }
        found
    }

    fn hostile_cookies(signed: bool) {
        let runtime = runtime();
        let fx = runtime.block_on(fixture(signed));
        let logins = std::cell::Cell::new(0u64);
        proptest!(config(CASES), |(cookies in cookie_headers(fx.victim_cookie.clone()))| {
            // Reading: no session, nothing set, the victim's data never shown.
            let reply = runtime.block_on(send(&fx.app, "GET", "/whoami", &cookies));
            prop_assert_eq!(reply.status, StatusCode::OK);
            prop_assert_eq!(&reply.body, "anonymous");
            for set_cookie in &reply.set_cookies {
                // At most the removal of a cookie that was not ours.
                prop_assert_eq!(cookie_value(set_cookie), "", "{}", set_cookie);
            }

            // Writing: a fresh session under an ID the server drew, never one the client sent.
            let reply = runtime.block_on(send(&fx.app, "POST", "/login", &cookies));
            prop_assert_eq!(reply.status, StatusCode::OK);
            let id: SessionId = reply
                .body
                .parse()
                .map_err(|e| TestCaseError::fail(format!("{e}")))?;
            prop_assert_ne!(&id, &fx.victim);
            prop_assert!(
                !id_shaped(&cookies).contains(&reply.body),
                "a client-chosen ID was adopted"
            );
            let set = reply.set_cookies.iter().find(|c| !cookie_value(c).is_empty());
            let set = set.ok_or_else(|| TestCaseError::fail("no cookie for the new session"))?;
            if signed {
                let value = cookie_value(set);
                prop_assert!(value.len() > 43 && value.ends_with(&reply.body));
            } else {
                prop_assert_eq!(cookie_value(set), reply.body.as_str());
            }
            logins.set(logins.get() + 1);
        });
        // The victim's session is untouched, and every login made its own session.
        runtime.block_on(async {
            let manager = fx.layer.manager();
            let victim = manager
                .load(&fx.victim)
                .await
                .unwrap()
                .expect("still there");
            assert_eq!(
                victim.get::<String>("user").await.unwrap().as_deref(),
                Some("victim")
            );
            let stored = manager
                .namespace()
                .list(&kv_core::ListOptions::new())
                .await
                .unwrap();
            assert_eq!(stored.keys.len() as u64, 1 + logins.get());
            // The victim's own cookie still works (the fixture is sound).
            let cookie = format!("session={}", fx.victim_cookie).into_bytes();
            let reply = send(&fx.app, "GET", "/whoami", &[cookie]).await;
            assert_eq!(reply.body, "victim");
        });
    }

    #[test]
    fn arbitrary_cookie_headers_are_no_session() {
        hostile_cookies(false);
    }

    #[test]
    fn arbitrary_and_tampered_signed_cookies_are_no_session() {
        hostile_cookies(true);
    }

    fn check_parse(text: &str) -> Result<(), TestCaseError> {
        match text.parse::<SessionId>() {
            Ok(id) => {
                prop_assert_eq!(id.to_string(), text, "one text form per ID");
                prop_assert_eq!(text.len(), 43);
                prop_assert!(text.bytes().all(|b| ALPHABET.contains(&b)));
                prop_assert_eq!(id.store_key().len(), 64);
                prop_assert!(!id.store_key().contains(text));
            }
            Err(error) => prop_assert_eq!(error, ParseSessionIdError),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(config(PARSE_CASES))]

        #[test]
        fn session_id_parsing_accepts_exactly_the_canonical_form(
            text in prop_oneof![
                any::<String>(),
                "[A-Za-z0-9_-]{43}",
                "[A-Za-z0-9_+/=-]{42,44}",
            ],
        ) {
            check_parse(&text)?;
        }

        #[test]
        fn tampered_ids_never_parse_to_the_original(
            how in any::<u8>(),
            at in any::<usize>(),
            with in any::<u8>(),
        ) {
            let id = SessionId::generate().unwrap();
            let text = tampered(&id.to_string(), how, at, with);
            check_parse(&text)?;
            prop_assert_ne!(text.parse::<SessionId>().ok(), Some(id));
        }
    }
}

#[cfg(feature = "flags")]
mod flags {
    use std::net::IpAddr;

    use http::{HeaderMap, HeaderValue};
    use kv_core::Store;
    use kv_middleware::flags::{
        ErrorCode, EvaluationContext, FlagState, FlagStore, ItemKind, Reason,
    };
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    use super::{config, runtime};

    const CASES: u32 = 512;
    /// Contexts each valid flag is evaluated for.
    const CONTEXTS: usize = 8;

    const VARIANT_NAMES: &[&str] = &["on", "off", "a", "b", ""];
    const ATTRIBUTES: &[&str] = &[
        "targetingKey",
        "ip",
        "email",
        "country",
        "app_version",
        "n",
        "tags",
        "header.x-beta",
        "header.bad name",
        "",
    ];
    const OPERATORS: &[&str] = &[
        "eq",
        "neq",
        "in",
        "not_in",
        "starts_with",
        "ends_with",
        "contains",
        "regex",
        "lt",
        "lte",
        "gt",
        "gte",
        "semver_lt",
        "semver_lte",
        "semver_gt",
        "semver_gte",
        "semver_eq",
        "in_cidr",
        "bogus",
        "EQ",
    ];

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            "[ -~]{0,12}".prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            proptest::sample::select(vec![
                "",
                "1.2.3",
                "v2.0.0-rc.1+build",
                "1.2",
                "10.0.0.0/8",
                "2001:db8::/32",
                "::1",
                "10.0.0.0/33",
                "^a.*z$",
                "(",
                "a{99999}{99999}",
                "[z-a]",
                "@example.com",
                "FR",
                "42",
                "true",
            ])
            .prop_map(Value::from),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{0,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => proptest::sample::select(VARIANT_NAMES).prop_map(str::to_owned),
            1 => Just("missing".to_owned()),
        ]
    }

    fn condition() -> impl Strategy<Value = Value> {
        let attribute = (
            proptest::sample::select(ATTRIBUTES),
            proptest::sample::select(OPERATORS),
            json_value(),
            any::<bool>(),
            0u8..10,
        )
            .prop_map(|(attribute, op, value, negate, shape)| {
                let mut c = json!({ "attribute": attribute, "op": op, "value": value });
                if negate {
                    c["negate"] = json!(true);
                }
                match shape {
                    0 => {
                        c.as_object_mut().unwrap().remove("op");
                    }
                    1 => {
                        c.as_object_mut().unwrap().remove("value");
                    }
                    2 => c["segment"] = json!("s"),
                    3 => c["extra"] = json!(1),
                    _ => {}
                }
                c
            });
        let segment = (
            proptest::sample::select(vec!["s", "missing", ""]),
            any::<bool>(),
        )
            .prop_map(|(name, negate)| json!({ "segment": name, "negate": negate }));
        prop_oneof![4 => attribute, 1 => segment, 1 => json_value()]
    }

    fn rule() -> impl Strategy<Value = Value> {
        (
            proptest::collection::vec(condition(), 0..3),
            prop_oneof![
                2 => name().prop_map(|v| json!({ "variant": v })),
                2 => proptest::collection::vec(
                    (name(), prop_oneof![0u64..100, Just(u64::from(u32::MAX)), Just(1u64 << 33)]),
                    0..4,
                )
                .prop_map(|split| json!({ "split": split })),
                1 => Just(json!({})),
                1 => name().prop_map(|v| json!({ "variant": v, "split": [[v, 1]] })),
            ],
            proptest::option::of(proptest::sample::select(ATTRIBUTES)),
            proptest::option::of("[ -~]{0,8}"),
        )
            .prop_map(|(conditions, serve, bucket_by, salt)| {
                let mut rule = serve;
                rule["conditions"] = Value::Array(conditions);
                if let Some(attribute) = bucket_by {
                    rule["bucketBy"] = json!(attribute);
                }
                if let Some(salt) = salt {
                    rule["salt"] = json!(salt);
                }
                rule
            })
    }

    /// Flag documents: mostly shaped like flags (valid or close to it), sometimes any JSON.
    fn flag_document() -> impl Strategy<Value = Value> {
        let variants = prop_oneof![
            proptest::collection::btree_map(name(), any::<bool>().prop_map(Value::from), 0..4),
            proptest::collection::btree_map(name(), "[a-z#0-9]{0,6}".prop_map(Value::from), 0..4),
            proptest::collection::btree_map(name(), any::<i32>().prop_map(Value::from), 0..4),
            proptest::collection::btree_map(name(), json_value(), 0..4),
        ];
        let shaped = (
            proptest::sample::select(vec![
                json!("ENABLED"),
                json!("DISABLED"),
                json!("enabled"),
                json!(1),
            ]),
            variants,
            name(),
            proptest::collection::btree_map(
                name(),
                proptest::collection::vec("[a-z0-9-]{0,6}", 0..3),
                0..3,
            ),
            proptest::collection::vec(rule(), 0..4),
            proptest::collection::btree_map("[a-z]{1,5}", json_value(), 0..2),
            0u8..12,
        )
            .prop_map(
                |(state, variants, default, targets, rules, metadata, shape)| {
                    let mut flag = json!({
                        "state": state,
                        "variants": variants.into_iter().collect::<Map<_, _>>(),
                        "defaultVariant": default,
                        "targets": targets,
                        "rules": rules,
                        "metadata": metadata.into_iter().collect::<Map<_, _>>(),
                    });
                    match shape {
                        0 => flag["extra"] = json!(true),
                        1 => {
                            flag.as_object_mut().unwrap().remove("defaultVariant");
                        }
                        2 => flag["rules"] = json!("not a list"),
                        _ => {}
                    }
                    flag
                },
            );
        prop_oneof![6 => shaped, 1 => json_value()]
    }

    /// An attribute condition that validates: an operand that suits its operator.
    fn valid_condition(with_segment: bool) -> impl Strategy<Value = Value> {
        let attribute = proptest::sample::select(&ATTRIBUTES[..8]);
        let scalar = prop_oneof![
            "[a-z0-9@.]{0,6}".prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
        ];
        let operand = prop_oneof![
            (
                proptest::sample::select(vec!["eq", "neq", "contains"]),
                scalar.clone()
            )
                .prop_map(|(op, v)| (op, v)),
            (
                proptest::sample::select(vec!["in", "not_in"]),
                proptest::collection::vec(scalar, 0..4).prop_map(Value::from),
            ),
            (
                proptest::sample::select(vec!["starts_with", "ends_with"]),
                "[a-z@.]{0,4}".prop_map(Value::from),
            ),
            (
                Just("regex"),
                proptest::sample::select(vec!["^a", "b$", ".*", "[0-9]+", "(?i)fr|de", "^$"])
                    .prop_map(Value::from),
            ),
            (
                proptest::sample::select(vec!["lt", "lte", "gt", "gte"]),
                prop_oneof![
                    any::<i64>().prop_map(Value::from),
                    "[a-z0-9]{0,4}".prop_map(Value::from)
                ],
            ),
            (
                proptest::sample::select(vec![
                    "semver_lt",
                    "semver_lte",
                    "semver_gt",
                    "semver_gte",
                    "semver_eq",
                ]),
                proptest::sample::select(vec!["1.2.3", "v2.0.0-rc.1", "0.0.1+b", "10.20.30"])
                    .prop_map(Value::from),
            ),
            (
                Just("in_cidr"),
                proptest::sample::select(vec![
                    json!("10.0.0.0/8"),
                    json!(["::/0", "192.168.0.0/16"]),
                    json!("2001:db8::1"),
                ]),
            ),
        ];
        let attribute = (attribute, operand, any::<bool>()).prop_map(
            |(attribute, (op, value), negate)| {
                json!({ "attribute": attribute, "op": op, "value": value, "negate": negate })
            },
        );
        let segment = any::<bool>().prop_map(|negate| json!({ "segment": "s", "negate": negate }));
        if with_segment {
            prop_oneof![4 => attribute, 1 => segment].boxed()
        } else {
            attribute.boxed()
        }
    }

    /// A flag document that validates (and, with `with_segment`, may use segment `s`).
    fn valid_flag(with_segment: bool) -> impl Strategy<Value = Value> {
        (
            proptest::sample::subsequence(vec!["on", "off", "a", "b"], 1..=4),
            // The variants' type: boolean, string, number or JSON.
            0u8..4,
            any::<prop::sample::Index>(),
            proptest::sample::select(vec!["ENABLED", "ENABLED", "ENABLED", "DISABLED"]),
            proptest::collection::btree_map("[a-z0-9-]{1,6}", any::<prop::sample::Index>(), 0..4),
            proptest::collection::vec(
                (
                    proptest::collection::vec(valid_condition(with_segment), 0..3),
                    any::<bool>(),
                    any::<prop::sample::Index>(),
                    proptest::collection::vec((any::<prop::sample::Index>(), 1u32..100), 1..4),
                    proptest::option::of(proptest::sample::select(&ATTRIBUTES[..8])),
                    proptest::option::of("[a-z]{0,6}"),
                ),
                0..4,
            ),
            json_value(),
        )
            .prop_map(
                move |(names, kind, default, state, targets, rules, value_seed)| {
                    let variants: Map<String, Value> = names
                        .iter()
                        .enumerate()
                        .map(|(i, name)| {
                            let value = match kind {
                                0 => json!(i % 2 == 0),
                                1 => json!(format!("#{i}")),
                                2 => json!(i as f64 * 1.5),
                                _ => json!({ "i": i, "seed": value_seed }),
                            };
                            ((*name).to_owned(), value)
                        })
                        .collect();
                    let pick = |index: &prop::sample::Index| names[index.index(names.len())];
                    let mut by_variant: std::collections::BTreeMap<&str, Vec<String>> =
                        Default::default();
                    for (key, variant) in &targets {
                        by_variant
                            .entry(pick(variant))
                            .or_default()
                            .push(key.clone());
                    }
                    let rules: Vec<Value> = rules
                        .iter()
                        .map(
                            |(conditions, serve_split, variant, split, bucket_by, salt)| {
                                let mut rule = json!({ "conditions": conditions });
                                if *serve_split {
                                    let mut seen = std::collections::BTreeSet::new();
                                    let split: Vec<Value> = split
                                        .iter()
                                        .filter(|(v, _)| seen.insert(pick(v)))
                                        .map(|(v, w)| json!([pick(v), w]))
                                        .collect();
                                    rule["split"] = json!(split);
                                    if let Some(attribute) = bucket_by {
                                        rule["bucketBy"] = json!(attribute);
                                    }
                                    if let Some(salt) = salt {
                                        rule["salt"] = json!(salt);
                                    }
                                } else {
                                    rule["variant"] = json!(pick(variant));
                                }
                                rule
                            },
                        )
                        .collect();
                    json!({
                        "state": state,
                        "variants": variants,
                        "defaultVariant": pick(&default),
                        "targets": by_variant,
                        "rules": rules,
                        "metadata": { "owner": "fuzz" },
                    })
                },
            )
    }

    /// `value` with the node at a random position replaced (by `with`) or removed.
    fn mutate(value: &mut Value, path: &[prop::sample::Index], with: Value, remove: bool) {
        let Some((step, rest)) = path.split_first() else {
            *value = with;
            return;
        };
        match value {
            Value::Object(map) if !map.is_empty() => {
                let key = map.keys().nth(step.index(map.len())).unwrap().clone();
                if rest.is_empty() && remove {
                    map.remove(&key);
                } else {
                    mutate(map.get_mut(&key).unwrap(), rest, with, remove);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                let i = step.index(items.len());
                if rest.is_empty() && remove {
                    items.remove(i);
                } else {
                    mutate(&mut items[i], rest, with, remove);
                }
            }
            other => *other = with,
        }
    }

    /// The documents of one case: the flag's bytes and the segment's, if any.
    fn documents() -> impl Strategy<Value = (Vec<u8>, Option<Value>)> {
        let segment = prop_oneof![
            1 => Just(None),
            2 => proptest::collection::vec(valid_condition(false), 0..3)
                .prop_map(|c| Some(json!({ "conditions": c, "description": "fuzz" }))),
        ];
        let to_bytes = |v: Value| serde_json::to_vec(&v).unwrap();
        segment.prop_flat_map(move |segment| {
            let with_segment = segment.is_some();
            let mutated = (
                valid_flag(with_segment),
                proptest::collection::vec(any::<prop::sample::Index>(), 1..5),
                json_value(),
                any::<bool>(),
            )
                .prop_map(move |(mut flag, path, with, remove)| {
                    mutate(&mut flag, &path, with, remove);
                    flag
                });
            let flag = prop_oneof![
                4 => valid_flag(with_segment).prop_map(to_bytes),
                3 => mutated.prop_map(to_bytes),
                2 => flag_document().prop_map(to_bytes),
                1 => proptest::collection::vec(any::<u8>(), 0..64),
            ];
            let segment_doc = prop_oneof![
                6 => Just(segment.clone()),
                1 => json_value().prop_map(Some),
                1 => proptest::collection::vec(condition(), 0..3)
                    .prop_map(|c| Some(json!({ "conditions": c }))),
            ];
            (flag, segment_doc)
        })
    }

    fn context() -> impl Strategy<Value = EvaluationContext> {
        (
            proptest::option::of(prop_oneof![
                Just("user-1".to_owned()),
                "[a-z0-9-]{0,6}",
                any::<String>(),
            ]),
            proptest::option::of(any::<IpAddr>()),
            proptest::collection::vec((proptest::sample::select(ATTRIBUTES), json_value()), 0..4),
            proptest::option::of("[ -~]{0,12}"),
        )
            .prop_map(|(key, ip, attributes, beta)| {
                let mut context = EvaluationContext::new();
                if let Some(key) = key {
                    context = context.with_targeting_key(key);
                }
                if let Some(ip) = ip {
                    context = context.with_ip(ip);
                }
                for (name, value) in attributes {
                    context = context.with_attribute(name, value);
                }
                if let Some(beta) = beta {
                    let mut headers = HeaderMap::new();
                    if let Ok(value) = HeaderValue::from_str(&beta) {
                        headers.insert("x-beta", value);
                    }
                    context = context.with_headers(headers);
                }
                context
            })
    }

    #[test]
    fn arbitrary_flag_documents_are_rejected_or_evaluate_to_their_own_variants() {
        let runtime = runtime();
        let valid = std::cell::Cell::new(0u32);
        let invalid = std::cell::Cell::new(0u32);
        let cases = (documents(), proptest::collection::vec(context(), CONTEXTS));
        proptest!(config(CASES), |(((flag, segment), contexts) in cases)| {
            let store = runtime.block_on(async {
                let store = Store::new(kv_backends::memory::MemoryBackend::new());
                let ns = store.namespace("FLAGS").await.unwrap();
                ns.put("flag:f", flag.clone()).await.unwrap();
                if let Some(segment) = &segment {
                    ns.put("segment:s", serde_json::to_vec(segment).unwrap()).await.unwrap();
                }
                FlagStore::builder(ns).with_manual_refresh().build()
            });
            match runtime.block_on(store.refresh()) {
                Err(other) => prop_assert!(false, "a refresh over a working store failed: {}", other),
                Ok(_) if store.definition("f").is_none() => {
                    // The flag does not validate: it fails alone, reported, answering PARSE_ERROR.
                    let errors = store.validation_errors();
                    invalid.set(invalid.get() + 1);
                    prop_assert!(!errors.is_empty());
                    for error in &errors {
                        match error.kind {
                            ItemKind::Flag => prop_assert_eq!(&error.key, "f"),
                            ItemKind::Segment => prop_assert_eq!(&error.key, "s"),
                            other => prop_assert!(false, "unexpected {:?}", other),
                        }
                        prop_assert!(
                            !error.field.is_empty() && !error.message.is_empty(),
                            "{:?} for {:?} / {:?}", error, String::from_utf8_lossy(&flag), segment
                        );
                    }
                    let flags = store.flags(EvaluationContext::new());
                    let details = flags.details("f");
                    prop_assert_eq!(details.error_code, Some(ErrorCode::ParseError));
                }
                Ok(_) => {
                    valid.set(valid.get() + 1);
                    let definition = store.definition("f").expect("the flag is loaded");
                    for context in contexts {
                        let targeting_key = context.targeting_key().map(str::to_owned);
                        let flags = store.flags(context);
                        let details = flags.details("f");
                        let missing = flags.details("no-such-flag");
                        prop_assert_eq!(missing.error_code, Some(ErrorCode::FlagNotFound));
                        if definition.state == FlagState::Disabled {
                            prop_assert_eq!(details.reason, Reason::Disabled);
                            prop_assert!(details.value.is_none() && details.variant.is_none());
                            prop_assert!(!flags.is_enabled("f"));
                            continue;
                        }
                        let Some(variant) = details.variant else {
                            // No default variant: the caller's default, reason DEFAULT.
                            prop_assert!(definition.default_variant.is_none());
                            prop_assert_eq!(details.reason, Reason::Default);
                            continue;
                        };
                        prop_assert_eq!(details.value, definition.variants.get(variant));
                        prop_assert_eq!(
                            flags.is_enabled("f"),
                            definition.variants[variant] == Value::Bool(true)
                        );
                        prop_assert_eq!(
                            flags.value::<Value>("f", Value::Null),
                            definition.variants[variant].clone()
                        );
                        let targeted = targeting_key.as_ref().and_then(|key| {
                            definition
                                .targets
                                .iter()
                                .find(|(_, keys)| keys.contains(key))
                                .map(|(v, _)| v)
                        });
                        match details.reason {
                            Reason::Static => {
                                prop_assert!(definition.targets.values().all(Vec::is_empty));
                                prop_assert!(definition.rules.is_empty());
                                prop_assert_eq!(Some(variant), definition.default_variant.as_deref());
                            }
                            Reason::Default => {
                                prop_assert_eq!(Some(variant), definition.default_variant.as_deref());
                                prop_assert!(targeted.is_none());
                            }
                            Reason::TargetingMatch => {
                                if let Some(target) = targeted {
                                    prop_assert_eq!(variant, target.as_str());
                                } else {
                                    let serves = definition
                                        .rules
                                        .iter()
                                        .any(|r| r.variant.as_deref() == Some(variant));
                                    prop_assert!(serves, "{} is served by no rule", variant);
                                }
                            }
                            Reason::Split => {
                                prop_assert!(targeted.is_none());
                                let in_split = definition.rules.iter().any(|r| {
                                    r.split.as_ref().is_some_and(|s| {
                                        s.iter().any(|(v, w)| v == variant && *w > 0)
                                    })
                                });
                                prop_assert!(in_split, "{} is in no split with a weight", variant);
                            }
                            other => prop_assert!(false, "reason {:?}", other),
                        }
                        match details.error_code {
                            None => {}
                            Some(ErrorCode::TargetingKeyMissing) => {
                                prop_assert_eq!(details.reason, Reason::Default);
                            }
                            Some(other) => prop_assert!(false, "error {:?}", other),
                        }
                    }
                }
            }
        });
        // Both outcomes were exercised.
        let (valid, invalid) = (valid.get(), invalid.get());
        assert!(valid >= CASES / 10, "only {valid} valid flags of {CASES}");
        assert!(
            invalid >= CASES / 10,
            "only {invalid} invalid flags of {CASES}"
        );
        eprintln!("flag documents: {valid} valid, {invalid} rejected");
    }
}
