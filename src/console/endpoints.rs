//! `GET /console/endpoints`: every endpoint in force with its state (active, paused or
//! failing), its success rate and latency over the last hour (this node's recent activity,
//! `telemetry::recent`), its pending deliveries and how long the oldest has waited, and pause
//! and resume buttons for operators. The rows are the API's own `EndpointView`s; [`health`]
//! is shared with the overview.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::page::{self, Chrome};
use super::{Shared, Signed};
use crate::api::access::Role;
use crate::api::views::EndpointView;
use crate::telemetry::health::{self, State as EndpointState};
use crate::telemetry::recent::EndpointHour;

pub struct Row {
    pub view: EndpointView,
    pub health: Health,
}

/// An endpoint's health as pages show it.
pub struct Health {
    pub state: EndpointState,
    pub lagging: bool,
    pub pending: i64,
    /// How long the delivery due first has waited, as text, when any is pending.
    pub lag: String,
    /// Attempts in the last hour.
    pub attempts: u64,
    /// `97 %` of them answered 2xx; empty without attempts.
    pub success: String,
    /// `mean 120 ms, p95 ≤ 256 ms`; empty without attempts.
    pub latency: String,
    pub failed_in_a_row: u32,
}

impl Health {
    /// Why it needs attention, in a few words; empty when it does not.
    pub fn reasons(&self) -> String {
        let mut why = Vec::new();
        match self.state {
            EndpointState::Paused => why.push("paused by an operator".to_string()),
            EndpointState::Failing if self.failed_in_a_row >= health::FAILING_IN_A_ROW => {
                why.push(format!("its last {} attempts failed", self.failed_in_a_row));
            }
            EndpointState::Failing => why.push(format!(
                "{} of {} attempts succeeded in the last hour",
                self.success, self.attempts
            )),
            EndpointState::Active => {}
        }
        if self.lagging {
            why.push(format!("oldest pending waited {}", self.lag));
        }
        why.join("; ")
    }
}

/// The health of one endpoint from its pause flag, its store gauges (pending, lag in
/// seconds) and its last hour.
pub fn health(paused: bool, gauge: Option<(i64, f64)>, hour: Option<&EndpointHour>) -> Health {
    let (pending, lag) = gauge.unwrap_or((0, 0.0));
    let stats = hour.map(|h| &h.stats);
    Health {
        state: health::state(paused, hour),
        lagging: health::lagging(pending, lag),
        pending,
        lag: if pending > 0 {
            lag_text(lag)
        } else {
            String::new()
        },
        attempts: stats.map_or(0, |s| s.attempts),
        success: stats
            .and_then(|s| s.success_rate())
            .map_or_else(String::new, percent),
        latency: stats.map_or_else(String::new, |s| {
            match (s.mean_ms(), s.quantile_bound_ms(0.95)) {
                (Some(mean), Some(Some(p95))) => {
                    format!("mean {}, p95 ≤ {}", ms_text(mean), ms_text(p95))
                }
                (Some(mean), Some(None)) => format!(
                    "mean {}, p95 > {}",
                    ms_text(mean),
                    ms_text(crate::telemetry::recent::LATENCY_BOUNDS_MS[15])
                ),
                _ => String::new(),
            }
        }),
        failed_in_a_row: hour.map_or(0, |h| h.failed_in_a_row),
    }
}

/// A share as a whole percentage (a no-break space before the sign), never rounded up to 100 % nor down to 0 % when it is not.
fn percent(rate: f64) -> String {
    let p = (rate * 100.0).round();
    let p = if p >= 100.0 && rate < 1.0 {
        99.0
    } else if p <= 0.0 && rate > 0.0 {
        1.0
    } else {
        p
    };
    format!("{p:.0}\u{a0}%")
}

/// Milliseconds as people read them: `120 ms`, `2.5 s`, number and unit kept on one line.
fn ms_text(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}\u{a0}ms")
    } else {
        format!("{:.1}\u{a0}s", ms as f64 / 1000.0)
    }
}

#[derive(Template)]
#[template(path = "console/endpoints.html")]
struct List {
    chrome: Chrome,
    rows: Vec<Row>,
    can_operate: bool,
    gauges_error: Option<String>,
    /// When this node began counting the last hour's figures.
    since: String,
}

/// Seconds as a short duration (`42 s`, `3 min`, `2 h`).
fn lag_text(secs: f64) -> String {
    match secs {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.0} h", s / 3600.0),
    }
}

pub async fn list(State(st): State<Shared>, user: Signed) -> Response {
    let routes = st.admin.routes.current();
    let ids: Vec<String> = routes.endpoints.iter().map(|e| e.id.clone()).collect();
    let (gauges, gauges_error) = match st.admin.store.gauges(&ids, st.now_ms()).await {
        Ok(g) => (g.per_endpoint, None),
        Err(e) => (
            Vec::new(),
            Some(format!("Pending counts are unavailable: {e}")),
        ),
    };
    let activity = st.admin.metrics.recent.activity();
    let mut views: Vec<_> = routes
        .endpoints
        .iter()
        .map(|e| crate::api::endpoints::view(&st.admin, e))
        .collect();
    // The breakers, as the API shows them; without them the page still shows the rest.
    let _ = crate::api::endpoint_health::fill(&st.admin, &mut views).await;
    let rows = routes
        .endpoints
        .iter()
        .zip(views)
        .map(|(e, view)| {
            let gauge = gauges
                .iter()
                .find(|(id, _, _)| *id == e.id)
                .map(|(_, n, lag)| (*n, *lag));
            Row {
                health: health(view.paused, gauge, activity.endpoints.get(&e.id)),
                view,
            }
        })
        .collect();
    page::render(
        StatusCode::OK,
        &List {
            chrome: Chrome::new("endpoints", "Endpoints", &user),
            rows,
            can_operate: user.may(Role::Operator),
            gauges_error,
            since: page::time(activity.since_ms),
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn lags_read_as_people_say_them() {
        assert_eq!(super::lag_text(5.2), "5 s");
        assert_eq!(super::lag_text(600.0), "10 min");
        assert_eq!(super::lag_text(36_000.0), "10 h");
    }

    #[test]
    fn rates_and_latencies_read_plainly() {
        assert_eq!(super::percent(1.0), "100\u{a0}%");
        assert_eq!(super::percent(0.999), "99\u{a0}%");
        assert_eq!(super::percent(0.001), "1\u{a0}%");
        assert_eq!(super::percent(0.0), "0\u{a0}%");
        assert_eq!(super::percent(0.5), "50\u{a0}%");
        assert_eq!(super::ms_text(120), "120\u{a0}ms");
        assert_eq!(super::ms_text(2500), "2.5\u{a0}s");
    }

    #[test]
    fn health_says_why_an_endpoint_needs_attention() {
        use crate::telemetry::health::State;
        use crate::telemetry::recent::{EndpointHour, EndpointStats};
        let mut stats = EndpointStats {
            attempts: 10,
            succeeded: 2,
            latency_sum_ms: 1000,
            ..EndpointStats::default()
        };
        stats.latency[7] = 10;
        let hour = EndpointHour {
            stats,
            failed_in_a_row: 1,
        };
        let h = super::health(false, Some((4, 900.0)), Some(&hour));
        assert_eq!(h.state, State::Failing);
        assert!(h.lagging);
        assert_eq!(h.success, "20\u{a0}%");
        assert_eq!(h.latency, "mean 100\u{a0}ms, p95 ≤ 128\u{a0}ms");
        assert_eq!(
            h.reasons(),
            "20\u{a0}% of 10 attempts succeeded in the last hour; oldest pending waited 15 min"
        );
        let h = super::health(true, None, None);
        assert_eq!(
            (h.state, h.reasons().as_str()),
            (State::Paused, "paused by an operator")
        );
        let h = super::health(false, Some((0, 0.0)), None);
        assert_eq!(
            (h.state, h.reasons().as_str(), h.success.as_str()),
            (State::Active, "", "")
        );
    }
}
