//! Which addressing style a request uses, from its Host header.
//!
//! s3s's own domain matchers compare the Host header including its port and
//! treat any other name as a bucket (CNAME style), so with a domain
//! configured, `http://localhost:7070/bucket/key` would fail. Here a Host of
//! `bucket.DOMAIN` on any port is virtual-host style and every other Host
//! (an IP, localhost, a load balancer's name) is path-style.

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// Virtual-host addressing under the configured domains, on any port.
#[derive(Debug, Clone)]
pub struct GatewayHost {
    domains: Vec<String>,
}

impl GatewayHost {
    /// Domains are matched case-insensitively and without a port.
    pub fn new(domains: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let domains: Vec<String> = domains
            .into_iter()
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .collect();
        for d in &domains {
            let valid = !d.is_empty()
                && d.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !valid {
                return Err(format!(
                    "domain {d:?}: expected a DNS name without port (e.g. s3.example.internal)"
                ));
            }
        }
        Ok(GatewayHost { domains })
    }
}

/// `host[:port]` → `host`; IPv6 literals keep their brackets.
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        // A bare IPv6 literal without brackets has no port to strip.
        Some((name, _)) if !name.ends_with(']') && name.contains(':') => host,
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

impl S3Host for GatewayHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
        for d in &self.domains {
            if name == *d {
                return Ok(VirtualHost::new(d.as_str()));
            }
            if let Some(bucket) = name
                .strip_suffix(d.as_str())
                .and_then(|b| b.strip_suffix('.'))
                .filter(|b| !b.is_empty())
            {
                return Ok(VirtualHost::new(d.as_str()).with_bucket(bucket.to_owned()));
            }
        }
        Ok(VirtualHost::new(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_under_the_domain_on_any_port_and_path_style_elsewhere() {
        let h = GatewayHost::new(["S3.Example.internal".to_owned()]).unwrap();
        let bucket = |host: &str| {
            h.parse_host_header(host)
                .unwrap()
                .bucket()
                .map(str::to_owned)
        };
        assert_eq!(bucket("photos.s3.example.internal"), Some("photos".into()));
        assert_eq!(
            bucket("photos.s3.example.internal:7070"),
            Some("photos".into())
        );
        assert_eq!(bucket("a.b.s3.example.internal"), Some("a.b".into()));
        assert_eq!(bucket("s3.example.internal:443"), None);
        assert_eq!(bucket("localhost:7070"), None);
        assert_eq!(bucket("lb.example.com"), None);
        assert_eq!(bucket("[::1]:7070"), None);
        assert_eq!(bucket("xs3.example.internal"), None);
        assert!(GatewayHost::new(["s3.example:7070".to_owned()]).is_err());
        assert!(GatewayHost::new(["".to_owned()]).is_err());
    }
}
