//! Networks in CIDR notation ([`Cidr`]), one type for every layer that matches client
//! addresses: the rate limiter's trusted proxies and allow lists (public there as
//! `rate_limit::Cidr`), and the flags' `in_cidr` operator.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A network in CIDR notation: `10.0.0.0/8`, `2001:db8::/32`, or one address (`192.0.2.1`).
///
/// ```
/// # #[cfg(feature = "rate_limit")] {
/// use kv_middleware::rate_limit::Cidr;
///
/// let net: Cidr = "10.0.0.0/8".parse()?;
/// assert!(net.contains("10.1.2.3".parse()?));
/// assert!(!net.contains("11.0.0.1".parse()?));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network of `addr` with this prefix length (host bits are cleared).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(CidrError {
                input: format!("{addr}/{prefix}"),
                kind: CidrErrorKind::PrefixTooLong { max },
            });
        }
        let network = match addr {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & v4_mask(prefix))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & v6_mask(prefix))),
        };
        Ok(Cidr { network, prefix })
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & v4_mask(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & v6_mask(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }

    /// Loopback, private (RFC 1918), carrier-grade NAT, link-local and unique-local networks:
    /// where reverse proxies of one site usually live.
    pub fn private_networks() -> Vec<Cidr> {
        [
            "127.0.0.0/8",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "169.254.0.0/16",
            "::1/128",
            "fc00::/7",
            "fe80::/10",
        ]
        .into_iter()
        .filter_map(|text| text.parse().ok())
        .collect()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = |kind| CidrError {
            input: input.to_owned(),
            kind,
        };
        // Spaces around the address and around the prefix length are tolerated
        // (`10.0.0.0 / 8`): flag documents are written by hand.
        let (addr, prefix) = match input.split_once('/') {
            Some((addr, prefix)) => (addr.trim(), Some(prefix.trim())),
            None => (input.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| error(CidrErrorKind::NotAnAddress))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse()
                .map_err(|_| error(CidrErrorKind::PrefixNotANumber { max }))?,
            Some(_) => return Err(error(CidrErrorKind::PrefixNotANumber { max })),
        };
        Cidr::new(addr, prefix).map_err(|e| error(e.kind))
    }
}

impl TryFrom<&str> for Cidr {
    type Error = CidrError;

    fn try_from(text: &str) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// The network mask of an IPv4 prefix length (clamped to 32).
pub(crate) fn v4_mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

/// The network mask of an IPv6 prefix length (clamped to 128).
pub(crate) fn v6_mask(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => u128::MAX << (128 - u32::from(p.min(128))),
    }
}

impl From<IpAddr> for Cidr {
    fn from(addr: IpAddr) -> Self {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Cidr {
            network: addr,
            prefix,
        }
    }
}

/// A network that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid network {input:?}: {kind} (expected forms like \"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.1\")")]
pub struct CidrError {
    input: String,
    kind: CidrErrorKind,
}

impl CidrError {
    /// What is wrong with the text (the flags word their own messages from it).
    pub(crate) fn kind(&self) -> CidrErrorKind {
        self.kind
    }
}

/// What is wrong with a network's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CidrErrorKind {
    /// The part before the `/` is not an IP address.
    #[error("not an IP address")]
    NotAnAddress,
    /// The prefix length is not a decimal number (or not one that fits).
    #[error("the prefix length is not a number from 0 to {max}")]
    PrefixNotANumber {
        /// The address's length in bits.
        max: u8,
    },
    /// The prefix length is longer than the address.
    #[error("the prefix length is longer than the address")]
    PrefixTooLong {
        /// The address's length in bits.
        max: u8,
    },
}

/// Parses networks, failing on the first bad one.
pub(crate) fn parse_networks<I>(networks: I) -> Result<Vec<Cidr>, CidrError>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    networks.into_iter().map(|n| n.as_ref().parse()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn cidr_parsing_and_membership() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.255.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped counts");
        let host: Cidr = "192.0.2.1".parse().unwrap();
        assert_eq!(host.to_string(), "192.0.2.1/32");
        assert!(host.contains(ip("192.0.2.1")) && !host.contains(ip("192.0.2.2")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "nope/8",
            "10.0.0.0/",
            "10.0.0.0/x",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
        assert!(Cidr::private_networks().len() >= 9);
        assert_eq!(
            " 10.1.0.0 / 16 ".parse::<Cidr>().unwrap().to_string(),
            "10.1.0.0/16"
        );
        let kind = |text: &str| text.parse::<Cidr>().unwrap_err().kind();
        assert_eq!(kind("nope/8"), CidrErrorKind::NotAnAddress);
        assert_eq!(
            kind("10.0.0.0/x"),
            CidrErrorKind::PrefixNotANumber { max: 32 }
        );
        assert_eq!(kind("::/999"), CidrErrorKind::PrefixNotANumber { max: 128 });
        assert_eq!(
            kind("10.0.0.0/33"),
            CidrErrorKind::PrefixTooLong { max: 32 }
        );
        assert_eq!(
            kind("10.0.0.0/33").to_string(),
            "the prefix length is longer than the address"
        );
    }
}
