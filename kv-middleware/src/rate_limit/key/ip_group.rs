//! How client addresses are grouped into keys ([`IpGrouping`]), and the address text of a key.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::shared::cidr::{v4_mask, v6_mask};
use crate::shared::text::StackText;

/// How client addresses are grouped into keys: IPv6 clients usually hold a whole /64, so by
/// default every address of a /64 shares one key, and each IPv4 address is its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpGrouping {
    v4_prefix: u8,
    v6_prefix: u8,
}

impl Default for IpGrouping {
    fn default() -> Self {
        IpGrouping {
            v4_prefix: 32,
            v6_prefix: 64,
        }
    }
}

impl IpGrouping {
    /// IPv4 by /32 (each address), IPv6 by /64.
    pub fn new() -> Self {
        Self::default()
    }

    /// Renamed [`with_ipv4_prefix`](Self::with_ipv4_prefix).
    #[deprecated(note = "renamed `with_ipv4_prefix`")]
    #[doc(hidden)]
    pub fn ipv4_prefix(self, prefix: u8) -> Self {
        self.with_ipv4_prefix(prefix)
    }

    /// Groups IPv4 addresses by this prefix length (clamped to 0..=32).
    pub fn with_ipv4_prefix(mut self, prefix: u8) -> Self {
        self.v4_prefix = prefix.min(32);
        self
    }

    /// Renamed [`with_ipv6_prefix`](Self::with_ipv6_prefix).
    #[deprecated(note = "renamed `with_ipv6_prefix`")]
    #[doc(hidden)]
    pub fn ipv6_prefix(self, prefix: u8) -> Self {
        self.with_ipv6_prefix(prefix)
    }

    /// Groups IPv6 addresses by this prefix length (clamped to 0..=128).
    pub fn with_ipv6_prefix(mut self, prefix: u8) -> Self {
        self.v6_prefix = prefix.min(128);
        self
    }

    /// The group of an address: the address itself at a full-length prefix, else the network
    /// in CIDR form (`2001:db8:1:2::/64`). An IPv4-mapped IPv6 address counts as IPv4.
    pub fn group(&self, ip: IpAddr) -> String {
        let mut text = StackText::<48>::new();
        self.write_group(ip, &mut text);
        text.as_str().to_owned()
    }

    pub(super) fn write_group<const N: usize>(&self, ip: IpAddr, out: &mut StackText<N>) {
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = match ip.to_canonical() {
            IpAddr::V4(v4) if self.v4_prefix >= 32 => {
                push_ipv4(out, v4);
                Ok(())
            }
            IpAddr::V4(v4) => {
                let network = Ipv4Addr::from(u32::from(v4) & v4_mask(self.v4_prefix));
                write!(out, "{network}/{}", self.v4_prefix)
            }
            IpAddr::V6(v6) if self.v6_prefix >= 128 => write!(out, "{v6}"),
            IpAddr::V6(v6) => {
                let network = Ipv6Addr::from(u128::from(v6) & v6_mask(self.v6_prefix));
                write!(out, "{network}/{}", self.v6_prefix)
            }
        };
    }
}

/// Writes an IPv4 address in dotted decimal (what its `Display` writes, without the
/// formatting machinery: this runs for every request).
fn push_ipv4<const N: usize>(out: &mut StackText<N>, ip: Ipv4Addr) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push_str(".");
        }
        out.push_u8(octet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv4_text_is_dotted_decimal() {
        for text in [
            "0.0.0.0",
            "1.2.3.4",
            "10.100.99.255",
            "255.255.255.255",
            "192.0.2.10",
        ] {
            let mut out = StackText::<16>::new();
            push_ipv4(&mut out, text.parse().unwrap());
            assert_eq!(out.as_str(), text);
        }
    }

    #[test]
    fn ipv6_grouping() {
        let grouping = IpGrouping::default();
        assert_eq!(
            grouping.group(ip("2001:db8:1:2:3:4:5:6")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            grouping.group(ip("2001:db8:1:2:ffff::1")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(grouping.group(ip("203.0.113.7")), "203.0.113.7");
        assert_eq!(grouping.group(ip("::ffff:203.0.113.7")), "203.0.113.7");
        let wide = grouping.with_ipv6_prefix(48).with_ipv4_prefix(24);
        assert_eq!(wide.group(ip("2001:db8:1:2::1")), "2001:db8:1::/48");
        assert_eq!(wide.group(ip("203.0.113.7")), "203.0.113.0/24");
        let exact = IpGrouping::new().with_ipv6_prefix(200);
        assert_eq!(exact.group(ip("2001:db8::1")), "2001:db8::1");
    }
}
