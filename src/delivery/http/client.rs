//! The one pooled HTTP client for every delivery, and the SSRF guard.
//!
//! **Redirects are never followed** (a receiver could otherwise bounce us anywhere).
//! **Unless `allow_private_networks` is set, no request reaches a loopback, private,
//! link-local or otherwise internal address**: names are resolved by [`GuardedResolver`],
//! which drops such addresses after lookup, so the address checked is the address connected
//! to (no DNS rebinding between check and connect); literal IPs are checked before sending.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

pub use crate::model::reach::{Blocked, Reach, check_literal};

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
