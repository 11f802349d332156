//! Which address a request comes from, and which key limits count it by.
//!
//! The TCP peer, unless the peer is a configured trusted proxy: then the
//! right-most address of the one configured forwarding header
//! (`X-Forwarded-For` or `Forwarded: for=`, never both) that is not itself a
//! trusted proxy. A client that sends its own header straight to the service
//! changes nothing, one behind a trusted proxy can only prepend addresses
//! that are ignored, and the header the proxy does not write is never read.
//!
//! Limits count an IPv4 client by its address and an IPv6 client by its
//! network (`/64` by default): one ordinary host holds a whole /64.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::{IpNet, Ipv6Net};
use poem::http::HeaderMap;

/// The forwarding header trusted proxies write, from
/// `PORTCULLIS_CLIENT_IP_HEADER`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1` (the default).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

impl FromStr for ForwardedHeader {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            _ => Err("expected `x-forwarded-for` or `forwarded`".to_owned()),
        }
    }
}

/// The default IPv6 prefix length limits group clients by.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// The trusted proxies, from `PORTCULLIS_TRUSTED_PROXIES`, the header they
/// write, and the IPv6 prefix length limits group clients by.
#[derive(Debug, Clone)]
pub struct ClientIpPolicy {
    trusted: Vec<IpNet>,
    header: ForwardedHeader,
    ipv6_prefix: u8,
}

impl Default for ClientIpPolicy {
    fn default() -> Self {
        Self::new(Vec::new(), ForwardedHeader::default(), DEFAULT_IPV6_PREFIX)
    }
}

impl ClientIpPolicy {
    /// `ipv6_prefix` is clamped to 0..=128 (settings keep it in 32..=128).
    pub fn new(trusted: Vec<IpNet>, header: ForwardedHeader, ipv6_prefix: u8) -> Self {
        Self {
            trusted,
            header,
            ipv6_prefix: ipv6_prefix.min(128),
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request from `peer` with `headers`.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.map(canonical)?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let chain = match self.header {
            ForwardedHeader::XForwardedFor => x_forwarded_for_chain(headers),
            ForwardedHeader::Forwarded => forwarded_chain(headers),
        };
        let mut nearest = peer;
        for hop in chain.iter().rev() {
            match hop {
                Some(ip) if self.is_trusted(*ip) => nearest = *ip,
                Some(ip) => return Some(*ip),
                // An unreadable hop: stop at the last address we can vouch for.
                None => return Some(nearest),
            }
        }
        Some(nearest)
    }

    /// What limits count `ip` by: an IPv4 address itself, an IPv6 address
    /// by its network (`2001:db8:1:2::/64`), or itself at prefix 128.
    pub fn limit_key(&self, ip: IpAddr) -> String {
        match canonical(ip) {
            IpAddr::V6(v6) if self.ipv6_prefix < 128 => Ipv6Net::new(v6, self.ipv6_prefix)
                .map_or_else(|_| v6.to_string(), |net| net.trunc().to_string()),
            other => other.to_string(),
        }
    }
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The `X-Forwarded-For` chain, left (client) to right (nearest proxy);
/// `None` for an entry that is not an address.
fn x_forwarded_for_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|hop| parse_hop(hop.trim()))
        .collect()
}

/// The `Forwarded: for=` chain, in the same order. An element without `for`
/// names no address and is not a hop.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_hop(value.trim().trim_matches('"')))
            })
        })
        .collect()
}

/// `1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]:443` or `2001:db8::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(addr) = hop.parse::<std::net::SocketAddr>() {
        return Some(canonical(addr.ip()));
    }
    hop.strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(ip, _)| ip.parse::<IpAddr>().ok())
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy() -> ClientIpPolicy {
        policy_reading(ForwardedHeader::XForwardedFor)
    }

    fn policy_reading(header: ForwardedHeader) -> ClientIpPolicy {
        ClientIpPolicy::new(
            vec![
                "10.0.0.0/8".parse().unwrap(),
                "127.0.0.1/32".parse().unwrap(),
            ],
            header,
            DEFAULT_IPV6_PREFIX,
        )
    }

    #[test]
    fn untrusted_peers_cannot_choose_their_address() {
        let h = headers(&[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(
            policy().client_ip(Some(ip("203.0.113.9")), &h),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            ClientIpPolicy::default().client_ip(Some(ip("127.0.0.1")), &h),
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn trusted_proxies_yield_the_right_most_untrusted_hop() {
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")]);
        assert_eq!(
            policy().client_ip(Some(ip("127.0.0.1")), &h),
            Some(ip("198.51.100.7"))
        );
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7:4711"),
        ]);
        assert_eq!(
            policy().client_ip(Some(ip("10.0.0.2")), &h),
            Some(ip("198.51.100.7"))
        );
    }

    #[test]
    fn forwarded_header_and_odd_hops() {
        let h = headers(&[(
            "forwarded",
            r#"for=192.0.2.60;proto=http, for="[2001:db8::17]:4711""#,
        )]);
        assert_eq!(
            policy_reading(ForwardedHeader::Forwarded).client_ip(Some(ip("127.0.0.1")), &h),
            Some(ip("2001:db8::17"))
        );
        let h = headers(&[("x-forwarded-for", "garbage, 10.1.1.1")]);
        assert_eq!(
            policy().client_ip(Some(ip("127.0.0.1")), &h),
            Some(ip("10.1.1.1"))
        );
        let h = headers(&[]);
        assert_eq!(
            policy().client_ip(Some(ip("::ffff:127.0.0.1")), &h),
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let both = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=198.51.100.2"),
        ]);
        let peer = Some(ip("127.0.0.1"));
        assert_eq!(policy().client_ip(peer, &both), Some(ip("198.51.100.1")));
        assert_eq!(
            policy_reading(ForwardedHeader::Forwarded).client_ip(peer, &both),
            Some(ip("198.51.100.2"))
        );
        let xff_only = headers(&[("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(
            policy_reading(ForwardedHeader::Forwarded).client_ip(peer, &xff_only),
            Some(ip("127.0.0.1")),
            "a proxy that writes Forwarded never lets a client choose through X-Forwarded-For"
        );
        let fwd_only = headers(&[("forwarded", "for=198.51.100.2")]);
        assert_eq!(policy().client_ip(peer, &fwd_only), Some(ip("127.0.0.1")));
    }

    #[test]
    fn limits_group_ipv6_by_network_and_ipv4_by_address() {
        let p = policy();
        assert_eq!(p.limit_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(
            p.limit_key(ip("2001:db8:1:2:ffff:1:2:3")),
            "2001:db8:1:2::/64"
        );
        assert_ne!(p.limit_key(ip("2001:db8:1:3::1")), "2001:db8:1:2::/64");
        assert_eq!(p.limit_key(ip("192.0.2.7")), "192.0.2.7");
        assert_eq!(p.limit_key(ip("::ffff:192.0.2.7")), "192.0.2.7");
        let exact = ClientIpPolicy::new(Vec::new(), ForwardedHeader::default(), 128);
        assert_eq!(exact.limit_key(ip("2001:db8::1")), "2001:db8::1");
        let wide = ClientIpPolicy::new(Vec::new(), ForwardedHeader::default(), 48);
        assert_eq!(wide.limit_key(ip("2001:db8:1:2::1")), "2001:db8:1::/48");
    }
}
