//! The [`AllowList`]: client networks and keys that bypass the limiter.

use super::{Cidr, CidrError, RateKey};
use crate::shared::cidr::parse_networks;

/// Requests that bypass the limiter: client networks and exact keys.
///
/// An allowed request is neither counted nor given rate-limit headers.
///
/// ```
/// use kv_middleware::rate_limit::AllowList;
///
/// let allow = AllowList::new()
///     .networks(["10.0.0.0/8", "::1"])?
///     .key("x-api-key:internal-batch-job");
/// # let _ = allow;
/// # Ok::<(), kv_middleware::rate_limit::CidrError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    networks: Vec<Cidr>,
    keys: Vec<String>,
}

impl AllowList {
    /// Allows nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also allows clients in these networks (CIDR strings or single addresses).
    pub fn networks<I>(mut self, networks: I) -> Result<Self, CidrError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.networks.extend(parse_networks(networks)?);
        Ok(self)
    }

    /// Also allows clients in this network.
    pub fn network(mut self, network: Cidr) -> Self {
        self.networks.push(network);
        self
    }

    /// Also allows this exact key (as an extractor produces it: `x-api-key:VALUE`, `ip:...`).
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.keys.is_empty()
    }

    /// Whether a request with this key bypasses the limiter.
    pub fn allows(&self, key: &RateKey) -> bool {
        if let Some(ip) = key.ip() {
            if self.networks.iter().any(|net| net.contains(ip)) {
                return true;
            }
        }
        self.keys.iter().any(|k| k == key.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::IpGrouping;
    use std::net::IpAddr;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn allow_list_matches_networks_and_keys() {
        let allow = AllowList::new()
            .networks(["10.0.0.0/8"])
            .unwrap()
            .key("x-api-key:internal");
        let grouping = IpGrouping::default();
        assert!(allow.allows(&RateKey::from_ip(ip("10.1.1.1"), grouping)));
        assert!(!allow.allows(&RateKey::from_ip(ip("11.1.1.1"), grouping)));
        assert!(allow.allows(&RateKey::new("x-api-key:internal")));
        assert!(!allow.allows(&RateKey::new("x-api-key:other")));
        assert!(!allow.is_empty() && AllowList::new().is_empty());
    }
}
