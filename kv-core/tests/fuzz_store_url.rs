//! Store URL parsing on arbitrary input: a URL or a typed `InvalidStoreUrl` error naming the
//! input and a reason, never a panic; every URL that parses displays as text that parses back
//! to it; generated valid URLs parse to the right backend and fields.
//!
//! Case counts: 4 properties × 1024 (`CASES`).

use std::path::PathBuf;

use kv_core::{KvError, StoreUrl};
use proptest::prelude::*;

const CASES: u32 = 1024;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text shaped like store URLs, with hostile pieces: schemes (right, wrong, in odd case),
/// slashes, colons, ports out of range, `@`, brackets, whitespace, control characters and
/// non-ASCII.
fn url_like() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just("memory"),
        Just("MEMORY"),
        Just("file"),
        Just("File"),
        Just("redis"),
        Just("rediss"),
        Just("http"),
        Just("HTTPS"),
        Just("cloudflare"),
        Just("ftp"),
        Just("c"),
        Just(""),
        Just("1http"),
        Just("a+b.c-d"),
    ];
    let separator = prop_oneof![
        Just(":"),
        Just("://"),
        Just(":/"),
        Just(":///"),
        Just(":////"),
        Just(""),
    ];
    let rest = prop_oneof![
        "[a-z0-9.:/@\\[\\]?#%_ -]{0,24}",
        "[a-z]{1,8}(:[0-9]{0,7})?(/[0-9]{0,3})?",
        "\\[[0-9a-f:]{0,12}\\](:[0-9a-z]{0,6})?",
        any::<String>(),
    ];
    let padding = prop_oneof![Just(""), Just(" "), Just("\t"), Just("\n"), Just("\u{a0}")];
    (padding.clone(), scheme, separator, rest, padding).prop_map(
        |(before, scheme, sep, rest, after)| format!("{before}{scheme}{sep}{rest}{after}"),
    )
}

fn check(input: &str) -> Result<(), TestCaseError> {
    match input.parse::<StoreUrl>() {
        Ok(url) => {
            let text = url.to_string();
            let again = text.parse::<StoreUrl>();
            prop_assert_eq!(
                again.as_ref().ok(),
                Some(&url),
                "{:?} parsed to {:?}, displayed as {:?}, which parses to {:?}",
                input,
                url,
                text,
                again
            );
            prop_assert_eq!(text.parse::<StoreUrl>().unwrap().to_string(), text);
            // What the backend sees is what was given, trimmed.
            match &url {
                StoreUrl::Memory => {
                    prop_assert!(input.trim().to_ascii_lowercase().starts_with("memory:"))
                }
                StoreUrl::Redis { url: given } | StoreUrl::Http { url: given } => {
                    prop_assert!(input.trim().starts_with(given.as_str()));
                }
                StoreUrl::Cloudflare { account_id } => {
                    prop_assert!(!account_id.is_empty());
                    prop_assert!(account_id.chars().all(|c| c.is_ascii_alphanumeric()));
                }
                StoreUrl::File { path } => prop_assert!(!path.as_os_str().is_empty()),
                other => prop_assert!(false, "a new kind of URL: {:?}", other),
            }
        }
        Err(KvError::InvalidStoreUrl { url, reason }) => {
            prop_assert_eq!(
                url,
                kv_core::redact_store_url(input),
                "the error names the input as given, less any password"
            );
            prop_assert!(!reason.is_empty());
        }
        Err(other) => prop_assert!(false, "{:?}: untyped error {:?}", input, other),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_strings_parse_or_fail_typed(input in any::<String>()) {
        check(&input)?;
    }

    #[test]
    fn url_like_strings_parse_or_fail_typed(input in url_like()) {
        check(&input)?;
    }

    #[test]
    fn generated_valid_urls_parse_to_their_fields(
        host in "[a-z][a-z0-9-]{0,12}(\\.[a-z]{2,5})?",
        port in any::<u16>(),
        db in 0u8..16,
        secure in any::<bool>(),
        account in "[a-zA-Z0-9]{1,32}",
        path in "[a-zA-Z0-9_./ -]{1,24}",
        slashes in 0usize..3,
    ) {
        let scheme = if secure { "rediss" } else { "redis" };
        let redis = format!("{scheme}://{host}:{port}/{db}");
        prop_assert_eq!(redis.parse::<StoreUrl>().unwrap(), StoreUrl::Redis { url: redis.clone() });

        let scheme = if secure { "https" } else { "http" };
        let http = format!("{scheme}://{host}:{port}");
        prop_assert_eq!(
            format!("{http}{}", "/".repeat(slashes)).parse::<StoreUrl>().unwrap(),
            StoreUrl::Http { url: http.clone() }
        );
        let ipv6 = format!("{scheme}://[::1]:{port}");
        prop_assert_eq!(ipv6.parse::<StoreUrl>().unwrap(), StoreUrl::Http { url: ipv6.clone() });

        prop_assert_eq!(
            format!("cloudflare://{account}").parse::<StoreUrl>().unwrap(),
            StoreUrl::Cloudflare { account_id: account.clone() }
        );

        // `file:` takes the path as given, `file://` strips the two slashes, a path with no
        // scheme is a file path (when it does not look like `scheme:`).
        let path = path.trim().to_owned();
        prop_assume!(!path.is_empty());
        let expected = StoreUrl::File { path: PathBuf::from(&path) };
        if !path.starts_with("//") {
            prop_assert_eq!(format!("file:{path}").parse::<StoreUrl>().unwrap(), expected.clone());
        }
        prop_assert_eq!(format!("file://{path}").parse::<StoreUrl>().unwrap(), expected.clone());
        prop_assert_eq!(path.parse::<StoreUrl>().unwrap(), expected.clone());
        prop_assert_eq!(expected.to_string().parse::<StoreUrl>().unwrap(), expected);
    }

    #[test]
    fn out_of_range_ports_and_missing_hosts_are_refused(
        host in "[a-z]{1,8}",
        port in 65536u64..10_000_000_000,
        scheme in prop_oneof![Just("redis"), Just("rediss"), Just("http"), Just("https")],
    ) {
        for bad in [
            format!("{scheme}://{host}:{port}"),
            format!("{scheme}://{host}:-1"),
            format!("{scheme}://{host}:x{port}"),
            format!("{scheme}://:{port}"),
            format!("{scheme}://"),
            format!("{scheme}:{host}"),
            format!("{scheme}://user@:{port}/0"),
        ] {
            match bad.parse::<StoreUrl>() {
                Err(KvError::InvalidStoreUrl { url, reason }) => {
                    prop_assert_eq!(url, kv_core::redact_store_url(&bad));
                    prop_assert!(!reason.is_empty());
                }
                other => prop_assert!(false, "{:?} gave {:?}", bad, other),
            }
        }
    }
}

/// The round trip of a file path that starts with two slashes (a UNC-like or doubled root).
#[test]
fn file_paths_with_leading_double_slashes_round_trip() {
    for input in ["file:////srv/kv", "file:////x", "file:////"] {
        let url: StoreUrl = input.parse().unwrap();
        assert_eq!(url.to_string().parse::<StoreUrl>().unwrap(), url, "{input}");
    }
    let url: StoreUrl = "file:////srv/kv".parse().unwrap();
    assert_eq!(
        url,
        StoreUrl::File {
            path: "//srv/kv".into()
        }
    );
    let bare: StoreUrl = "//srv/kv".parse().unwrap();
    assert_eq!(bare, url);
}
