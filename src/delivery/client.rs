//! The one pooled HTTP client for every delivery, and the SSRF guard.
//!
//! **Redirects are never followed** (a receiver could otherwise bounce us anywhere).
//! **Unless `allow_private_networks` is set, no request reaches a loopback, private,
//! link-local or otherwise internal address**: names are resolved by [`GuardedResolver`],
//! which drops such addresses after lookup, so the address checked is the address connected
//! to (no DNS rebinding between check and connect); literal IPs are checked before sending.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A target the guard refused; its text is the reason kept with the dead delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("blocked: {0}")]
pub struct Blocked(pub String);

/// Whether `ip` is an address the internet-facing side must never reach.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg0 & 0xffc0) == 0xfe80 // link local fe80::/10
                || (seg0 & 0xffc0) == 0xfec0 // site local (deprecated) fec0::/10
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible ::a.b.c.d
                || (seg0 == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || (seg0 == 0x0064 && v6.segments()[1] == 0xff9b) // NAT64 64:ff9b::/96
                || seg0 == 0x2002 // 6to4, which embeds an IPv4 address
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

/// Which internal addresses deliveries may reach: all (`allow_private_networks`), or those in
/// `allowed_networks`; public addresses always.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    pub allow_private: bool,
    pub allowed: Vec<ipnet::IpNet>,
}

impl Reach {
    /// Whether a delivery may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        // `::ffff:10.0.0.1` is 10.0.0.1 to the network: match it against IPv4 ranges too.
        let ip = ip.to_canonical();
        self.allow_private || !is_internal(ip) || self.allowed.iter().any(|net| net.contains(&ip))
    }
}

/// Resolves names and drops the addresses the [`Reach`] does not permit; fails when none is
/// left.
#[derive(Debug, Default, Clone)]
pub struct GuardedResolver(pub Arc<Reach>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let reach = Arc::clone(&self.0);
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let first_refused = addrs.iter().find(|a| !reach.permits(a.ip())).copied();
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| reach.permits(a.ip()))
                .collect();
            if allowed.is_empty() {
                let reason = match first_refused {
                    Some(a) => format!("private address {} (from {host})", a.ip()),
                    None => format!("{host} has no address"),
                };
                return Err(Box::new(Blocked(reason)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Checks a URL's literal IP host, which no resolver sees.
pub fn check_literal(url: &reqwest::Url, reach: &Reach) -> Result<(), Blocked> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return Ok(()),
    };
    if reach.permits(ip) {
        Ok(())
    } else {
        Err(Blocked(format!("private address {ip}")))
    }
}

/// Whether a request error came from the guard (and so must not be retried).
pub fn blocked_reason(err: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(b) = e.downcast_ref::<Blocked>() {
            return Some(b.to_string());
        }
        source = e.source();
    }
    None
}

/// Builds the delivery client.
pub fn build(reach: &Reach) -> Result<reqwest::Client, reqwest::Error> {
    // reqwest is built without a default TLS provider; ring is ours. Installing twice is a
    // no-op error, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .user_agent(concat!("hookgate/", env!("CARGO_PKG_VERSION")));
    if !reach.allow_private {
        builder = builder.dns_resolver(Arc::new(GuardedResolver(Arc::new(reach.clone()))));
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "ff02::1",
        ] {
            let ip: IpAddr = s.parse().expect("ip");
            assert!(is_internal(ip), "{s} should be internal");
        }
        for s in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            let ip: IpAddr = s.parse().expect("ip");
            assert!(!is_internal(ip), "{s} should be public");
        }
    }

    #[test]
    fn literal_hosts_are_checked_unless_allowed() {
        let strict = Reach::default();
        let open = Reach {
            allow_private: true,
            allowed: vec![],
        };
        let url = reqwest::Url::parse("http://127.0.0.1:9/x").expect("url");
        assert_eq!(
            check_literal(&url, &strict),
            Err(Blocked("private address 127.0.0.1".into()))
        );
        assert_eq!(check_literal(&url, &open), Ok(()));
        let url = reqwest::Url::parse("http://[::ffff:10.0.0.1]/").expect("url");
        assert!(check_literal(&url, &strict).is_err());
        let url = reqwest::Url::parse("https://example.com/").expect("url");
        assert_eq!(check_literal(&url, &strict), Ok(()));
    }

    #[test]
    fn allowed_networks_open_only_their_ranges() {
        let reach = Reach {
            allow_private: false,
            allowed: vec![
                "10.1.0.0/16".parse().expect("net"),
                "fd00:1::/32".parse().expect("net"),
            ],
        };
        for ok in ["10.1.2.3", "::ffff:10.1.0.9", "fd00:1::5", "1.1.1.1"] {
            assert!(reach.permits(ok.parse().expect("ip")), "{ok}");
        }
        for refused in [
            "10.2.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "fd00:2::1",
            "::ffff:10.2.0.1",
        ] {
            assert!(!reach.permits(refused.parse().expect("ip")), "{refused}");
        }
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_inside() {
        let err = GuardedResolver::default()
            .resolve("localhost".parse().expect("name"))
            .await
            .err()
            .expect("refused");
        assert!(
            err.to_string().starts_with("blocked: private address"),
            "{err}"
        );
    }
}
