//! The client's address, also behind reverse proxies.
//!
//! Behind a load balancer every connection comes from the proxy, so the per-IP socket limit
//! would count all visitors as one host. A proxy that the operator lists in
//! `trusted_proxies` may say who its client was in `X-Forwarded-For`; nobody else may, since
//! any client can send that header. The client is the rightmost address in the chain that is
//! not itself a trusted proxy: entries left of it were written by the client and prove nothing.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::error::ConfigError;

/// The networks whose `X-Forwarded-For` is believed. Empty (the default): the header is
/// ignored and the TCP peer is the client.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.7`) and networks (`10.0.0.0/8`, `fd00::/8`).
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<Self, ConfigError> {
        list.iter()
            .map(|s| {
                let s = s.as_ref().trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError::Invalid(format!(
                            "trusted_proxies: not an address or network: {s:?}"
                        ))
                    })
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`, given the request's `X-Forwarded-For` values in order.
    pub fn client_ip<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a str>) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        // Several headers count as one comma-separated list, in order; read it right to left.
        let hops: Vec<&str> = forwarded.flat_map(|v| v.split(',')).collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // Garbage: the trusted proxy that passed it on is as far as we can see.
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let t = TrustedProxies::default();
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), ["203.0.113.9"].into_iter()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn an_untrusted_peer_cannot_claim_another_address() {
        let t = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        assert_eq!(
            t.client_ip(ip("198.51.100.1"), ["203.0.113.9"].into_iter()),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let t = TrustedProxies::parse(&["10.0.0.0/8", "192.168.1.1"]).unwrap();
        // The client wrote "1.1.1.1" itself; 203.0.113.9 is what the first trusted proxy saw.
        let xff = ["1.1.1.1, 203.0.113.9", "10.2.3.4"];
        assert_eq!(
            t.client_ip(ip("192.168.1.1"), xff.into_iter()),
            ip("203.0.113.9")
        );
        // Ports and IPv6 brackets are taken off; IPv4-mapped addresses compare as IPv4.
        assert_eq!(
            t.client_ip(ip("::ffff:10.0.0.1"), ["203.0.113.9:5123"].into_iter()),
            ip("203.0.113.9")
        );
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), ["[2001:db8::1]:80"].into_iter()),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn a_missing_or_garbled_header_leaves_the_last_trusted_hop() {
        let t = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), std::iter::empty()),
            ip("10.0.0.1")
        );
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), ["unknown"].into_iter()),
            ip("10.0.0.1")
        );
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), ["203.0.113.9, junk, 10.0.0.2"].into_iter()),
            ip("10.0.0.2")
        );
        // A chain of nothing but trusted proxies ends at its leftmost.
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), ["10.9.9.9, 10.0.0.2"].into_iter()),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn bad_entries_are_refused_by_name() {
        let e = TrustedProxies::parse(&["10.0.0.0/8", "nginx"]).unwrap_err();
        assert!(e.to_string().contains("\"nginx\""), "{e}");
        assert!(TrustedProxies::parse(&["10.0.0.0/33"]).is_err());
    }
}
