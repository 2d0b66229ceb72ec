//! The host allow-list: which request hosts may become part of a cache key.

use std::borrow::Cow;

/// What the cache does with a request for a host that is not on the allow-list
/// ([`CacheLayer::with_allowed_hosts`](super::CacheLayer::with_allowed_hosts),
/// [`CacheLayer::with_other_hosts`](super::CacheLayer::with_other_hosts)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtherHosts {
    /// Not cached: the request goes to the origin untouched and its response carries
    /// `Cache-Status: kv; fwd=bypass; ...; detail=host-not-allowed` (the default).
    #[default]
    Bypass,
    /// Cached as if it were for this host: every unlisted host shares this host's entries.
    /// Fits an origin whose default virtual host answers every unknown name alike.
    KeyAs(String),
}

/// The allow-list and the policy for other hosts, lowercased once at configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPolicy {
    allowed: Vec<String>,
    others: OtherHosts,
}

impl HostPolicy {
    pub fn new(allowed: impl IntoIterator<Item = String>, others: OtherHosts) -> Self {
        let others = match others {
            OtherHosts::KeyAs(host) => OtherHosts::KeyAs(host.to_ascii_lowercase()),
            bypass => bypass,
        };
        HostPolicy {
            allowed: allowed
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            others,
        }
    }

    pub fn with_others(mut self, others: OtherHosts) -> Self {
        self = HostPolicy::new(self.allowed, others);
        self
    }

    /// The host a request for `host` is keyed under, or `None` when it bypasses the cache.
    /// Hosts compare without regard to ASCII case; the port is part of the name, so
    /// `example.com` matches only requests without a port.
    pub fn resolve(&self, host: &str) -> Option<Cow<'_, str>> {
        if let Some(listed) = self.allowed.iter().find(|h| h.eq_ignore_ascii_case(host)) {
            return Some(Cow::Borrowed(listed));
        }
        match &self.others {
            OtherHosts::Bypass => None,
            OtherHosts::KeyAs(fixed) => Some(Cow::Borrowed(fixed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_hosts_case_and_ports() {
        let policy = HostPolicy::new(
            ["Example.com".to_owned(), "api.example.com:8443".to_owned()],
            OtherHosts::Bypass,
        );
        assert_eq!(
            policy.resolve("EXAMPLE.COM").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            policy.resolve("api.example.com:8443").as_deref(),
            Some("api.example.com:8443")
        );
        assert_eq!(policy.resolve("example.com:8080"), None);
        assert_eq!(policy.resolve("api.example.com"), None);
        assert_eq!(policy.resolve(""), None);
        let policy = policy.with_others(OtherHosts::KeyAs("Default.Example".into()));
        assert_eq!(
            policy.resolve("evil.test").as_deref(),
            Some("default.example")
        );
        assert_eq!(
            policy.resolve("example.com").as_deref(),
            Some("example.com")
        );
    }
}
