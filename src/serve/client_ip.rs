//! The client's address when sealgate runs behind load balancers or
//! proxies: without this every client shares the balancer's address, so
//! logs name the balancer and one client's failed logins count against
//! all of them (`auth_failures`).
//!
//! Only proxies listed in `[security] trusted_proxies` are believed: from a
//! trusted peer, `X-Forwarded-For` is read right to left and the first
//! address that is not itself a trusted proxy is the client. From any other
//! peer the header is ignored, so a client cannot choose its own address.

use http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// Networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.5`) and networks (`10.0.0.0/8`).
    pub fn parse(list: &[String]) -> Result<TrustedProxies, String> {
        crate::config::trusted_proxy_networks(list).map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client behind `peer`, per the rules above.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // A malformed entry: nothing left of it can be believed.
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

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(canonical)
}

/// IPv4-mapped IPv6 (`::ffff:10.0.0.1`, as a dual-stack socket reports
/// IPv4 peers) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_trusted_peers_are_believed_and_the_first_untrusted_hop_is_the_client() {
        let p = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.9".into()]).unwrap();
        // An untrusted peer cannot choose its address.
        assert_eq!(
            p.client(ip("198.51.100.4"), &xff(&["1.1.1.1"])),
            ip("198.51.100.4")
        );
        // A trusted balancer: the client it saw.
        assert_eq!(
            p.client(ip("10.1.2.3"), &xff(&["203.0.113.7"])),
            ip("203.0.113.7")
        );
        // A forged entry on the left does not win: the rightmost untrusted does.
        assert_eq!(
            p.client(ip("10.1.2.3"), &xff(&["6.6.6.6, 203.0.113.7, 192.0.2.9"])),
            ip("203.0.113.7")
        );
        // Repeated headers read as one list; ports and brackets are fine.
        assert_eq!(
            p.client(ip("10.1.2.3"), &xff(&["[2001:db8::1]:443", "10.9.9.9:80"])),
            ip("2001:db8::1")
        );
        // Garbage stops the walk at the last believable hop.
        assert_eq!(
            p.client(ip("10.1.2.3"), &xff(&["1.1.1.1, junk"])),
            ip("10.1.2.3")
        );
        // No header: the peer.
        assert_eq!(p.client(ip("10.1.2.3"), &HeaderMap::new()), ip("10.1.2.3"));
        // All hops trusted: the leftmost.
        assert_eq!(
            p.client(ip("10.1.2.3"), &xff(&["10.7.7.7"])),
            ip("10.7.7.7")
        );
        // IPv4-mapped peers count as IPv4.
        assert_eq!(
            p.client(ip("::ffff:10.0.0.1"), &xff(&["203.0.113.8"])),
            ip("203.0.113.8")
        );
        // Nothing trusted: the header is never read.
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("10.1.2.3"), &xff(&["1.1.1.1"])),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn a_bad_entry_names_itself() {
        let e = TrustedProxies::parse(&["10.0.0.0/8".into(), "lb.internal".into()]).unwrap_err();
        assert!(e.contains("\"lb.internal\""), "{e}");
    }
}
