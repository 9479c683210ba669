//! `GET /console/overview`, the console's front page: events in and deliveries out per
//! minute over the last hour (an inline SVG drawn by `chart`, with the numbers as text
//! too), pending and dead counts, and the endpoints that need attention (failing, paused or
//! lagging), each linked.
//!
//! **The per-minute figures are this node's, since it started** (`telemetry::recent`, in
//! memory, so the page reads no rows); pending and dead come from the store, by counters and
//! a bounded count, so the page stays fast whatever the store holds.

mod chart;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::endpoints::{Health, health};
use super::page::{self, Chrome};
use super::{Shared, Signed};
use crate::telemetry::health::State as EndpointState;
use crate::telemetry::recent::MinuteTotals;

/// Dead letters counted at most: the overview says "10000+" beyond, and the count stays a
/// bounded read on PostgreSQL.
pub const DEAD_COUNT_CAP: u64 = 10_000;

/// The dead count as shown: exact up to the cap, then the cap and a plus.
fn dead_text(counted: u64) -> String {
    if counted > DEAD_COUNT_CAP {
        format!("{DEAD_COUNT_CAP}+")
    } else {
        counted.to_string()
    }
}

/// An endpoint that needs attention.
struct Attention {
    id: String,
    health: Health,
}

/// A minute with any activity, for the table under the chart.
struct MinuteRow {
    at: String,
    totals: MinuteTotals,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct Overview {
    chrome: Chrome,
    chart: chart::Chart,
    width: u32,
    height: u32,
    /// The chart's numbers in words, for its `<desc>` and for everyone.
    summary: String,
    minutes: Vec<MinuteRow>,
    totals: MinuteTotals,
    pending: Option<i64>,
    /// Dead letters the store holds, as text (`12`, or `10,000+` past the count's bound).
    dead_stored: Option<String>,
    dead_any: bool,
    store_error: Option<String>,
    endpoints: usize,
    attention: Vec<Attention>,
    since: String,
}

/// The hour's totals, and the sentence that sums it up.
fn summarize(minutes: &[MinuteTotals]) -> (MinuteTotals, String) {
    let mut t = MinuteTotals::default();
    for m in minutes {
        t.accepted += m.accepted;
        t.attempts += m.attempts;
        t.delivered += m.delivered;
        t.dead += m.dead;
    }
    let busiest = minutes.iter().map(|m| m.accepted).max().unwrap_or(0);
    let mut text = format!(
        "In the last hour: {} events in, {} delivered, {} dead, {} attempts.",
        t.accepted, t.delivered, t.dead, t.attempts
    );
    if busiest > 0 {
        text.push_str(&format!(" The busiest minute had {busiest} events in."));
    }
    (t, text)
}

pub async fn show(State(st): State<Shared>, user: Signed) -> Response {
    let routes = st.admin.routes.current();
    let ids: Vec<String> = routes.endpoints.iter().map(|e| e.id.clone()).collect();
    let activity = st.admin.metrics.recent.activity();
    let (gauges, pending, store_error) = match st.admin.store.gauges(&ids, st.now_ms()).await {
        // A backend that failed to read says -1.
        Ok(g) if g.pending_deliveries >= 0 => (g.per_endpoint, Some(g.pending_deliveries), None),
        Ok(_) => (
            Vec::new(),
            None,
            Some("The store's counts are unavailable.".to_string()),
        ),
        Err(e) => (
            Vec::new(),
            None,
            Some(format!("The store's counts are unavailable: {e}")),
        ),
    };
    // One more than the cap tells "exactly the cap" from "beyond it".
    let dead_stored = match st.admin.store.dead_count(DEAD_COUNT_CAP + 1).await {
        Ok(n) => Some(dead_text(n)),
        Err(e) => {
            tracing::debug!(error = %e, "cannot count dead letters");
            None
        }
    };
    let attention = routes
        .endpoints
        .iter()
        .map(|e| {
            let paused = st.admin.dispatcher.is_paused(&e.id).unwrap_or(false);
            let gauge = gauges
                .iter()
                .find(|(id, _, _)| *id == e.id)
                .map(|(_, n, lag)| (*n, *lag));
            Attention {
                id: e.id.clone(),
                health: health(paused, gauge, activity.endpoints.get(&e.id)),
            }
        })
        .filter(|a| a.health.state != EndpointState::Active || a.health.lagging)
        .collect();
    let (totals, summary) = summarize(&activity.minutes);
    let minutes = activity
        .minutes
        .iter()
        .enumerate()
        .filter(|(_, m)| **m != MinuteTotals::default())
        .map(|(i, m)| MinuteRow {
            at: chart::clock_minute(activity.first_minute_ms + i as u64 * 60_000),
            totals: *m,
        })
        .collect();
    page::render(
        StatusCode::OK,
        &Overview {
            chrome: Chrome::new("overview", "Overview", &user),
            chart: chart::draw(&activity),
            width: chart::WIDTH,
            height: chart::HEIGHT,
            summary,
            minutes,
            totals,
            pending,
            dead_any: dead_stored.as_deref().is_some_and(|d| d != "0"),
            dead_stored,
            store_error,
            endpoints: routes.endpoints.len(),
            attention,
            since: page::time(activity.since_ms),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_counts_beyond_the_cap_read_as_the_cap_and_a_plus() {
        assert_eq!(dead_text(0), "0");
        assert_eq!(dead_text(DEAD_COUNT_CAP), "10000");
        assert_eq!(dead_text(DEAD_COUNT_CAP + 1), "10000+");
    }

    #[test]
    fn the_summary_adds_up_the_hour() {
        let mut minutes = vec![MinuteTotals::default(); 60];
        minutes[3] = MinuteTotals {
            accepted: 4,
            attempts: 5,
            delivered: 3,
            dead: 1,
        };
        minutes[9].accepted = 7;
        let (t, text) = summarize(&minutes);
        assert_eq!((t.accepted, t.attempts, t.delivered, t.dead), (11, 5, 3, 1));
        assert_eq!(
            text,
            "In the last hour: 11 events in, 3 delivered, 1 dead, 5 attempts. \
             The busiest minute had 7 events in."
        );
        let (_, quiet) = summarize(&[MinuteTotals::default(); 60]);
        assert!(!quiet.contains("busiest"), "{quiet}");
    }
}
