//! `GET /console/sources`: every source in force with the inbound URL to paste into the
//! provider (a copy button, wired by the console's script, sits beside it), its verification
//! scheme, and the last 24 hours of requests: accepted, duplicates, and refusals **by code**
//! (`bad_signature`, `stale_timestamp`, ...), highlighted, so a wrong secret shows at a glance.
//!
//! The URL is `ingress.public_url` when configured, else the ingress listener's bound address
//! (`AdminState::ingress_url`). The counts are this node's since it started
//! (`telemetry::recent`); requests for no known source are counted under one name.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::page::{self, Chrome};
use super::{Shared, Signed};
use crate::catalog::Origin;
use crate::store::EntryKind;

/// A source's last day of requests, split as the page shows them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Day {
    pub accepted: u64,
    pub duplicate: u64,
    /// Handshakes answered (subscription checks, pings).
    pub handshakes: u64,
    /// Refusals by code, most frequent first.
    pub refused: Vec<(String, u64)>,
}

impl Day {
    pub fn refused_total(&self) -> u64 {
        self.refused.iter().map(|(_, n)| n).sum()
    }
}

/// Splits a source's outcomes into accepted, duplicates, handshakes and refusals by code.
pub fn split(outcomes: &BTreeMap<String, u64>) -> Day {
    let mut day = Day::default();
    for (outcome, n) in outcomes {
        match outcome.as_str() {
            "accepted" => day.accepted += n,
            "duplicate" => day.duplicate += n,
            o if o.starts_with("handshake_") => day.handshakes += n,
            o => day.refused.push((o.to_string(), *n)),
        }
    }
    day.refused
        .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    day
}

/// Whether a URL's host is a wildcard listen address, which no provider can reach.
fn unspecified_host(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host().map(|h| match h {
                url::Host::Ipv4(a) => a.is_unspecified(),
                url::Host::Ipv6(a) => a.is_unspecified(),
                url::Host::Domain(_) => false,
            })
        })
        .unwrap_or(false)
}

struct Row {
    id: String,
    scheme: &'static str,
    from_file: bool,
    url: String,
    day: Day,
}

#[derive(Template)]
#[template(path = "console/sources.html")]
struct Sources {
    chrome: Chrome,
    rows: Vec<Row>,
    /// Requests for no known source, if any came.
    unknown: Option<Day>,
    wildcard: bool,
    since: String,
}

pub async fn list(State(st): State<Shared>, user: Signed) -> Response {
    let routes = st.admin.routes.current();
    let mut inbound = st.admin.metrics.recent.inbound();
    let base = &st.admin.ingress_url;
    let rows = routes
        .sources
        .values()
        .map(|s| Row {
            id: s.id.clone(),
            scheme: s.scheme.name(),
            from_file: st.admin.catalog.origin(EntryKind::Source, &s.id) != Some(Origin::Api),
            url: format!("{base}/in/{}", s.id),
            day: inbound
                .per_source
                .remove(&s.id)
                .map(|o| split(&o))
                .unwrap_or_default(),
        })
        .collect();
    let unknown = inbound
        .per_source
        .remove(crate::telemetry::UNKNOWN_SOURCE)
        .map(|o| split(&o));
    page::render(
        StatusCode::OK,
        &Sources {
            chrome: Chrome::new("sources", "Sources", &user),
            rows,
            unknown,
            wildcard: unspecified_host(base),
            since: page::time(inbound.since_ms),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_split_into_accepted_duplicates_handshakes_and_refusals() {
        let outcomes: BTreeMap<String, u64> = [
            ("accepted", 5),
            ("duplicate", 2),
            ("handshake_challenge", 1),
            ("bad_signature", 3),
            ("stale_timestamp", 3),
            ("payload_too_large", 7),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let day = split(&outcomes);
        assert_eq!((day.accepted, day.duplicate, day.handshakes), (5, 2, 1));
        let codes: Vec<(&str, u64)> = day.refused.iter().map(|(c, n)| (c.as_str(), *n)).collect();
        assert_eq!(
            codes,
            [
                ("payload_too_large", 7),
                ("bad_signature", 3),
                ("stale_timestamp", 3)
            ]
        );
        assert_eq!(day.refused_total(), 13);
        assert_eq!(split(&BTreeMap::new()), Day::default());
    }

    #[test]
    fn wildcard_listen_addresses_are_noticed() {
        assert!(unspecified_host("http://0.0.0.0:8080"));
        assert!(unspecified_host("http://[::]:8080"));
        assert!(!unspecified_host("http://127.0.0.1:8080"));
        assert!(!unspecified_host("https://hooks.example.com"));
    }
}
