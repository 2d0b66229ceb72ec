//! Store URLs: one string selects a backend everywhere (CLI flags, examples, `KV_STORE`).
//!
//! | form | backend |
//! | --- | --- |
//! | `memory:` | in-memory, gone when the process exits |
//! | `file:PATH`, `file://PATH` or a bare path | the durable file store at `PATH` |
//! | `redis://HOST:PORT/DB`, `rediss://...` | Redis |
//! | `redis+cluster://HOST:PORT[,HOST:PORT...]`, `rediss+cluster://...` | Redis Cluster (seed nodes) |
//! | `http://HOST:PORT`, `https://...` | a kv-server (token from `KV_TOKEN`) |
//! | `cloudflare://ACCOUNT_ID` | Cloudflare Workers KV (token from `CLOUDFLARE_API_TOKEN`) |

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::KvError;

/// The environment variable that names the store URL where a program takes one.
pub const STORE_URL_ENV: &str = "KV_STORE";

/// The store a program uses when it is given none: the file store in `./kv-data`.
pub const DEFAULT_STORE_URL: &str = "file:./kv-data";

/// A parsed store URL.
///
/// ```
/// use kv_core::StoreUrl;
///
/// assert_eq!("memory:".parse::<StoreUrl>().unwrap(), StoreUrl::Memory);
/// assert_eq!(
///     "file:./kv-data".parse::<StoreUrl>().unwrap(),
///     StoreUrl::File { path: "./kv-data".into() }
/// );
/// assert!("ftp://nope".parse::<StoreUrl>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// The in-memory backend.
    Memory,
    /// The durable file backend at this path.
    File {
        /// Where the store file lives.
        path: PathBuf,
    },
    /// A Redis server or a Redis Cluster; `url` is the whole `redis://`, `rediss://`,
    /// `redis+cluster://` or `rediss+cluster://` URL.
    Redis {
        /// The URL as given.
        url: String,
    },
    /// A kv-server (or another server speaking the REST protocol); `url` is its base URL.
    Http {
        /// The URL as given.
        url: String,
    },
    /// Cloudflare Workers KV for this account.
    Cloudflare {
        /// The Cloudflare account id.
        account_id: String,
    },
}

impl StoreUrl {
    /// The name of the backend this URL selects.
    pub fn backend(&self) -> &'static str {
        match self {
            StoreUrl::Memory => "memory",
            StoreUrl::File { .. } => "file",
            StoreUrl::Redis { .. } => "redis",
            StoreUrl::Http { .. } => "http",
            StoreUrl::Cloudflare { .. } => "cloudflare",
        }
    }
}

impl StoreUrl {
    /// The URL as [`Display`](fmt::Display) shows it, with passwords and tokens replaced by
    /// `***` (see [`redact_store_url`]): what banners and logs should print.
    pub fn redacted(&self) -> String {
        redact_store_url(&self.to_string())
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Memory => f.write_str("memory:"),
            StoreUrl::File { path } => {
                let path = path.display().to_string();
                // `file://` strips two leading slashes, so a path that starts with them
                // (`//srv/kv`) needs the `file://` form to read back as itself.
                let separator = if path.starts_with("//") { "//" } else { "" };
                write!(f, "file:{separator}{path}")
            }
            StoreUrl::Redis { url } | StoreUrl::Http { url } => f.write_str(url),
            StoreUrl::Cloudflare { account_id } => write!(f, "cloudflare://{account_id}"),
        }
    }
}

impl FromStr for StoreUrl {
    type Err = KvError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| KvError::InvalidStoreUrl {
            url: redact_store_url(input),
            reason: reason.to_owned(),
        };
        let url = input.trim();
        if url.is_empty() {
            return Err(invalid("it is empty"));
        }
        let Some((scheme, rest)) = split_scheme(url) else {
            // No scheme: a path to a file store.
            return Ok(StoreUrl::File { path: url.into() });
        };
        match scheme.to_ascii_lowercase().as_str() {
            "memory" => {
                if rest.is_empty() || rest == "//" {
                    Ok(StoreUrl::Memory)
                } else {
                    Err(invalid("`memory:` takes nothing after the colon"))
                }
            }
            "file" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                if path.is_empty() {
                    Err(invalid("`file:` needs a path, as in `file:./kv-data`"))
                } else {
                    Ok(StoreUrl::File { path: path.into() })
                }
            }
            "redis" | "rediss" => {
                require_host(rest).map_err(|reason| invalid(&reason))?;
                Ok(StoreUrl::Redis {
                    url: url.to_owned(),
                })
            }
            "redis+cluster" | "rediss+cluster" => {
                // Seed nodes separated by commas, each a host with a port.
                let (authority, tail) = match rest.strip_prefix("//") {
                    Some(after) => {
                        after.split_at(after.find(['/', '?', '#']).unwrap_or(after.len()))
                    }
                    None => return Err(invalid("expected `//` after the scheme")),
                };
                let (userinfo, hosts) = match authority.rsplit_once('@') {
                    Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
                    None => (String::new(), authority),
                };
                for host in hosts.split(',') {
                    require_host(&format!("//{userinfo}{host}{tail}"))
                        .map_err(|reason| invalid(&reason))?;
                    if host.rsplit_once(':').is_none() || host.ends_with(']') {
                        return Err(invalid(&format!("cluster node {host:?} needs a port")));
                    }
                }
                Ok(StoreUrl::Redis {
                    url: url.to_owned(),
                })
            }
            "http" | "https" => {
                require_host(rest).map_err(|reason| invalid(&reason))?;
                Ok(StoreUrl::Http {
                    url: url.trim_end_matches('/').to_owned(),
                })
            }
            "cloudflare" => {
                let account_id = rest
                    .strip_prefix("//")
                    .unwrap_or(rest)
                    .trim_end_matches('/');
                if account_id.is_empty() || !account_id.chars().all(|c| c.is_ascii_alphanumeric()) {
                    Err(invalid(
                        "`cloudflare://ACCOUNT_ID` needs an account id of letters and digits",
                    ))
                } else {
                    Ok(StoreUrl::Cloudflare {
                        account_id: account_id.to_owned(),
                    })
                }
            }
            other => Err(invalid(&format!(
                "unknown scheme `{other}:` (expected memory:, file:, redis://, rediss://, \
                 redis+cluster://, rediss+cluster://, http://, https:// or cloudflare://)"
            ))),
        }
    }
}

/// Query parameters whose values are secrets wherever a store URL carries them.
const SECRET_PARAMETERS: &[&str] = &[
    "password",
    "pass",
    "token",
    "secret",
    "api_key",
    "apikey",
    "access_token",
];

/// `url` fit for logs, banners and error messages: the user information (`user:password@`)
/// becomes `***@` and the values of secret query parameters (`password`, `token`, ...) become
/// `***`; everything else is kept, so the URL still says which store it is. Works on any text,
/// parsable or not, and never shortens what it cannot recognise.
///
/// ```
/// use kv_core::redact_store_url;
///
/// assert_eq!(redact_store_url("redis://:hunter2@cache:6379/0"), "redis://***@cache:6379/0");
/// assert_eq!(redact_store_url("rediss://app:pw@h/1?protocol=resp3"), "rediss://***@h/1?protocol=resp3");
/// assert_eq!(redact_store_url("http://h:8787?token=abc&x=1"), "http://h:8787?token=***&x=1");
/// assert_eq!(redact_store_url("file:./kv-data"), "file:./kv-data");
/// ```
pub fn redact_store_url(url: &str) -> String {
    let mut out = match (url.find("://"), url.rfind('@')) {
        // The last `@` ends the user information even when a password holds `/` or `@`; one in
        // a path or query hides a little more than needed, which is the safe side.
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    };
    if let Some(query_start) = out.find('?') {
        let (head, query) = out.split_at(query_start + 1);
        let (query, fragment) = match query.find('#') {
            Some(hash) => query.split_at(hash),
            None => (query, ""),
        };
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _))
                    if SECRET_PARAMETERS
                        .iter()
                        .any(|secret| name.eq_ignore_ascii_case(secret)) =>
                {
                    format!("{name}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{head}{}{fragment}", redacted.join("&"));
    }
    out
}

/// Splits `scheme:rest` when the text starts with a URL scheme (letters, digits, `+-.`, at
/// least two characters so that a Windows drive letter reads as a path).
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once(':')?;
    let valid = scheme.len() >= 2
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

fn require_host(rest: &str) -> Result<(), String> {
    let Some(authority) = rest.strip_prefix("//") else {
        return Err("expected `//` after the scheme".to_owned());
    };
    let host = authority
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .rsplit('@')
        .next()
        .unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("the URL has no host".to_owned());
    }
    // A network URL never holds whitespace or control characters (they would be
    // percent-encoded); letting one through would also make the URL display as text that no
    // longer parses (`http:// /` would print `http:// `).
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL contains whitespace or a control character".to_owned());
    }
    if let Some((_, port)) = host.rsplit_once(':').filter(|_| !host.ends_with(']')) {
        if port.parse::<u16>().is_err() {
            return Err(format!("port {port:?} is not a number from 0 to 65535"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<StoreUrl, KvError> {
        s.parse()
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(parse("memory:").unwrap(), StoreUrl::Memory);
        assert_eq!(parse("memory://").unwrap(), StoreUrl::Memory);
        assert_eq!(
            parse("file:/var/lib/kv").unwrap(),
            StoreUrl::File {
                path: "/var/lib/kv".into()
            }
        );
        assert_eq!(
            parse("file:///var/lib/kv").unwrap(),
            StoreUrl::File {
                path: "/var/lib/kv".into()
            }
        );
        assert_eq!(
            parse("./kv-data").unwrap(),
            StoreUrl::File {
                path: "./kv-data".into()
            }
        );
        assert_eq!(
            parse("redis://127.0.0.1:6379/0").unwrap().backend(),
            "redis"
        );
        assert_eq!(
            parse("rediss://cache.internal/2").unwrap().backend(),
            "redis"
        );
        assert_eq!(
            parse("http://127.0.0.1:8787/").unwrap(),
            StoreUrl::Http {
                url: "http://127.0.0.1:8787".into()
            }
        );
        assert_eq!(
            parse("cloudflare://0123abcd").unwrap(),
            StoreUrl::Cloudflare {
                account_id: "0123abcd".into()
            }
        );
    }

    #[test]
    fn cluster_urls_name_seed_nodes() {
        for url in [
            "redis+cluster://127.0.0.1:7000",
            "redis+cluster://a:7000,b:7001,[::1]:7002",
            "rediss+cluster://:pw@a:7000,b:7001/0?prefix=app",
            "REDIS+CLUSTER://a:7000",
        ] {
            let parsed = parse(url).unwrap();
            assert_eq!(parsed.backend(), "redis", "{url}");
            assert_eq!(parsed.to_string(), url, "displays as given");
            assert_eq!(parse(&parsed.to_string()).unwrap(), parsed);
        }
        assert_eq!(
            parse("rediss+cluster://:pw@a:7000,b:7001")
                .unwrap()
                .redacted(),
            "rediss+cluster://***@a:7000,b:7001"
        );
        for url in [
            "redis+cluster:",
            "redis+cluster://",
            "redis+cluster://a",
            "redis+cluster://a:7000,",
            "redis+cluster://a:7000,b",
            "redis+cluster://a:7000,:7001",
            "redis+cluster://a:x",
            "redis+cluster://a:7000, b:7001",
        ] {
            assert!(
                matches!(parse(url), Err(KvError::InvalidStoreUrl { .. })),
                "{url} is refused"
            );
        }
    }

    #[test]
    fn rejected_forms_say_why() {
        for bad in [
            "",
            "   ",
            "memory:x",
            "file:",
            "redis:",
            "redis://",
            "redis://:6379",
            "http://host:notaport",
            "http:// /",
            "http://a/ /",
            "redis://h\tost",
            "cloudflare://",
            "cloudflare://acc/../x",
            "s3://bucket",
        ] {
            match parse(bad) {
                Err(KvError::InvalidStoreUrl { url, reason }) => {
                    assert_eq!(url, bad);
                    assert!(!reason.is_empty());
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn secrets_never_reach_messages() {
        for (url, shown) in [
            ("redis://:pw@h:1/0", "redis://***@h:1/0"),
            ("redis://user:p%40ss@h:1/0", "redis://***@h:1/0"),
            ("redis://user:a/b@c@h:1", "redis://***@h:1"),
            ("https://tok@kv.example", "https://***@kv.example"),
            (
                "redis://h:1/0?password=pw&protocol=resp3",
                "redis://h:1/0?password=***&protocol=resp3",
            ),
            ("http://h?TOKEN=t#frag", "http://h?TOKEN=***#frag"),
            ("redis://h:1/0", "redis://h:1/0"),
            ("memory:", "memory:"),
        ] {
            assert_eq!(redact_store_url(url), shown, "{url}");
        }
        // A rejected URL's error names it without its secret.
        let error = parse("redis://:hunter2@:6379").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert!(!format!("{error:?}").contains("hunter2"), "{error:?}");
        let parsed = parse("redis://:hunter2@h:6379").unwrap();
        assert_eq!(parsed.redacted(), "redis://***@h:6379");
    }

    #[test]
    fn display_round_trips() {
        for url in [
            "memory:",
            "file:./kv-data",
            "file:////srv/kv",
            "redis://h:1/0",
            "cloudflare://abc",
        ] {
            assert_eq!(parse(url).unwrap().to_string(), url);
        }
        // Two leading slashes survive the round trip (they used to be read as `file://`).
        let doubled = parse("//srv/kv").unwrap();
        assert_eq!(doubled.to_string(), "file:////srv/kv");
        assert_eq!(parse(&doubled.to_string()).unwrap(), doubled);
    }
}
