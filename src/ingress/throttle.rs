//! Throttling of requests that fail verification, per client address.
//!
//! A source's own `rate_limit` is charged only for verified requests, so a stranger sending
//! junk cannot use up a provider's quota and get its genuine webhooks refused. Junk is
//! throttled here instead, by where it comes from: each address may fail `burst` times, then
//! `per_second`; beyond that its requests are refused with 429 before their bodies are read.
//! IPv6 addresses are counted by their /64, which one host can fill.
//!
//! **The table is bounded** (`capacity` addresses). When it is full, addresses whose buckets
//! have refilled are forgotten; if none has, a new address is not tracked (memory stays
//! bounded; such an attacker is as costly to serve as before, never more). Pure logic over a
//! given time, so it is tested without a clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Counted per address: an IPv4 address, or an IPv6 /64.
type Key = u128;

fn key(ip: IpAddr) -> Key {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => (u128::from(v6) >> 64) | (1 << 127),
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

#[derive(Debug)]
pub struct FailureThrottle {
    per_ms: f64,
    burst: f64,
    capacity: usize,
    buckets: Mutex<HashMap<Key, Bucket>>,
}

impl FailureThrottle {
    pub fn new(per_second: u32, burst: u32, capacity: usize) -> Self {
        FailureThrottle {
            per_ms: f64::from(per_second) / 1000.0,
            burst: f64::from(burst.max(1)),
            capacity,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refilled(&self, b: Bucket, now_ms: u64) -> f64 {
        let elapsed = now_ms.saturating_sub(b.at_ms) as f64;
        (b.tokens + elapsed * self.per_ms).min(self.burst)
    }

    fn buckets(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Bucket>> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Before a request is read: `Err(seconds to wait)` when its address has no failures
    /// left.
    pub fn check(&self, ip: IpAddr, now_ms: u64) -> Result<(), u64> {
        let Some(b) = self.buckets().get(&key(ip)).copied() else {
            return Ok(());
        };
        let tokens = self.refilled(b, now_ms);
        if tokens >= 1.0 {
            return Ok(());
        }
        let wait_ms = (1.0 - tokens) / self.per_ms.max(f64::MIN_POSITIVE);
        Err((wait_ms / 1000.0).ceil().clamp(1.0, 3600.0) as u64)
    }

    /// A request from `ip` failed verification.
    pub fn charge(&self, ip: IpAddr, now_ms: u64) {
        let k = key(ip);
        let mut buckets = self.buckets();
        if !buckets.contains_key(&k) && buckets.len() >= self.capacity {
            // Forget the addresses that are back to a full bucket: they need no state.
            buckets.retain(|_, b| self.refilled(*b, now_ms) < self.burst);
            if buckets.len() >= self.capacity {
                return;
            }
        }
        let tokens = buckets
            .get(&k)
            .map_or(self.burst, |b| self.refilled(*b, now_ms));
        buckets.insert(
            k,
            Bucket {
                tokens: (tokens - 1.0).max(0.0),
                at_ms: now_ms,
            },
        );
    }

    /// Addresses tracked now.
    pub fn len(&self) -> usize {
        self.buckets().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The address a request came from: the peer, or, when the peer is a trusted proxy, the
/// nearest address in `X-Forwarded-For` that is not one (the rightmost untrusted hop, which a
/// client cannot forge).
pub fn client_address(
    peer: IpAddr,
    forwarded_for: Option<&str>,
    trusted: &[ipnet::IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(&ip.to_canonical()));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(list) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in list.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            // A hop we cannot read: stop at the last address we could.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn failures_are_counted_per_address_and_refill() {
        let t = FailureThrottle::new(1, 3, 100);
        let a = ip("203.0.113.7");
        for _ in 0..3 {
            assert_eq!(t.check(a, 0), Ok(()));
            t.charge(a, 0);
        }
        assert_eq!(t.check(a, 0), Err(1));
        // Another address is not affected.
        assert_eq!(t.check(ip("203.0.113.8"), 0), Ok(()));
        // One failure back per second.
        assert_eq!(t.check(a, 999), Err(1));
        assert_eq!(t.check(a, 1000), Ok(()));
    }

    #[test]
    fn ipv6_is_counted_by_its_64() {
        let t = FailureThrottle::new(1, 1, 100);
        t.charge(ip("2001:db8:1:2::1"), 0);
        assert!(t.check(ip("2001:db8:1:2::ffff"), 0).is_err());
        assert!(t.check(ip("2001:db8:1:3::1"), 0).is_ok());
    }

    #[test]
    fn the_table_is_bounded() {
        let t = FailureThrottle::new(1, 2, 3);
        for i in 0..10u8 {
            t.charge(IpAddr::from([198, 51, 100, i]), 0);
        }
        assert_eq!(t.len(), 3);
        // Once their buckets refill, old addresses make room.
        t.charge(ip("192.0.2.1"), 10_000);
        assert_eq!(t.len(), 1);
        assert!(t.check(ip("192.0.2.1"), 10_000).is_ok());
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let proxy = ip("10.0.0.2");
        assert_eq!(
            client_address(proxy, Some("198.51.100.1, 203.0.113.9, 10.0.0.1"), &trusted),
            ip("203.0.113.9")
        );
        // Not from a trusted proxy: the header is the client's own, and ignored.
        assert_eq!(
            client_address(ip("203.0.113.9"), Some("1.2.3.4"), &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(client_address(proxy, None, &trusted), proxy);
        assert_eq!(client_address(proxy, Some("junk"), &trusted), proxy);
    }
}
