//! The reach policy: which addresses deliveries may connect to. **Unless
//! `allow_private_networks` is set, no delivery reaches a loopback, private, link-local or
//! otherwise internal address**; `allowed_networks` opens chosen ranges. The HTTP target
//! enforces it (`delivery::http::client`): on every resolved address, and on literal IPs before
//! sending; config uses [`check_literal`] to refuse an endpoint that could only be
//! dead-lettered.

use std::net::IpAddr;

/// A target the guard refused; its text is the reason kept with the dead delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("blocked: {0}")]
pub struct Blocked(pub String);

/// IPv4 ranges no delivery may reach unless allowed: every block of IANA's IPv4
/// Special-Purpose Address Registry that is not globally reachable, plus multicast and the
/// deprecated 6to4 relay anycast. Whole blocks are listed even where a few addresses inside
/// are global (e.g. 192.0.0.9/32): a webhook has no business there.
const V4_INTERNAL: &[&str] = &[
    "0.0.0.0/8",       // "this network"
    "10.0.0.0/8",      // private
    "100.64.0.0/10",   // shared address space (CGNAT)
    "127.0.0.0/8",     // loopback
    "169.254.0.0/16",  // link local, cloud metadata
    "172.16.0.0/12",   // private
    "192.0.0.0/24",    // IETF protocol assignments
    "192.0.2.0/24",    // documentation (TEST-NET-1)
    "192.88.99.0/24",  // 6to4 relay anycast (deprecated)
    "192.168.0.0/16",  // private
    "198.18.0.0/15",   // benchmarking
    "198.51.100.0/24", // documentation (TEST-NET-2)
    "203.0.113.0/24",  // documentation (TEST-NET-3)
    "224.0.0.0/4",     // multicast
    "240.0.0.0/4",     // reserved, and the limited broadcast address
];

/// IPv6 ranges no delivery may reach unless allowed, from IANA's IPv6 Special-Purpose Address
/// Registry and the address architecture. Every prefix that embeds an IPv4 address (mapped,
/// compatible, SIIT, NAT64, 6to4, Teredo) is refused whole: the IPv4 address inside could be
/// internal. (`::ffff:a.b.c.d` never reaches this table: it is checked as the IPv4 address.)
const V6_INTERNAL: &[&str] = &[
    "::/96",           // unspecified, loopback, IPv4-compatible (deprecated)
    "::ffff:0:0/96",   // IPv4-mapped
    "::ffff:0:0:0/96", // IPv4-translated (SIIT)
    "64:ff9b::/96",    // IPv4/IPv6 translation (NAT64)
    "64:ff9b:1::/48",  // local-use IPv4/IPv6 translation
    "100::/64",        // discard-only
    "100:0:0:1::/64",  // dummy prefix
    "2001::/23",       // IETF protocol assignments, Teredo (2001::/32) and benchmarking among them
    "2001:db8::/32",   // documentation
    "2002::/16",       // 6to4
    "3fff::/20",       // documentation
    "5f00::/16",       // segment routing (SRv6) SIDs
    "fc00::/7",        // unique local
    "fe80::/10",       // link local
    "fec0::/10",       // site local (deprecated)
    "ff00::/8",        // multicast
];

fn internal_nets() -> &'static [ipnet::IpNet] {
    static NETS: std::sync::OnceLock<Vec<ipnet::IpNet>> = std::sync::OnceLock::new();
    NETS.get_or_init(|| {
        V4_INTERNAL
            .iter()
            .chain(V6_INTERNAL)
            .filter_map(|n| n.parse().ok())
            .collect()
    })
}

/// Whether `ip` is an address the internet-facing side must never reach.
pub fn is_internal(ip: IpAddr) -> bool {
    // `::ffff:10.0.0.1` is 10.0.0.1 to the network.
    let ip = ip.to_canonical();
    internal_nets().iter().any(|net| net.contains(&ip))
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

/// Checks a URL's literal IP host, which no resolver sees.
pub fn check_literal(url: &url::Url, reach: &Reach) -> Result<(), Blocked> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        // One address from each range.
        for s in [
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0:a00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::a00:1",
            "100::1",
            "100:0:0:1::1",
            "2001::1",
            "2001:2::1",
            "2001:db8::1",
            "2002:a00:1::1",
            "3fff::1",
            "5f00::1",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            let ip: IpAddr = s.parse().expect("ip");
            assert!(is_internal(ip), "{s} should be internal");
        }
        for s in [
            "93.184.216.34",
            "1.1.1.1",
            "192.0.3.1",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "::ffff:1.1.1.1",
        ] {
            let ip: IpAddr = s.parse().expect("ip");
            assert!(!is_internal(ip), "{s} should be public");
        }
        assert_eq!(
            internal_nets().len(),
            V4_INTERNAL.len() + V6_INTERNAL.len(),
            "every range parses"
        );
    }

    #[test]
    fn literal_hosts_are_checked_unless_allowed() {
        let strict = Reach::default();
        let open = Reach {
            allow_private: true,
            allowed: vec![],
        };
        let url = url::Url::parse("http://127.0.0.1:9/x").expect("url");
        assert_eq!(
            check_literal(&url, &strict),
            Err(Blocked("private address 127.0.0.1".into()))
        );
        assert_eq!(check_literal(&url, &open), Ok(()));
        let url = url::Url::parse("http://[::ffff:10.0.0.1]/").expect("url");
        assert!(check_literal(&url, &strict).is_err());
        let url = url::Url::parse("https://example.com/").expect("url");
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
}
