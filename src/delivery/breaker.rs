//! A lane's view of its endpoint's breaker, as the store last answered it (a claim's or a
//! result's answer). The store decides; the view only stops the lane starting what it
//! already holds once the breaker opened (**a lane that hears `open` starts nothing more but
//! the probe**), and drains the rate limiter when the breaker closes, so what was held goes
//! out at the endpoint's rate, not in a burst.

use std::sync::Mutex;

use crate::store::health::{Health, State, Transition};
use crate::telemetry::{EndpointLabel, Metrics};

/// The breaker as heard, shared by an endpoint's lanes across replacements.
#[derive(Debug, Default)]
pub struct BreakerView {
    heard: Mutex<Option<Health>>,
}

impl BreakerView {
    /// Takes the store's answer, if it gave one, and shows it in the metrics.
    pub fn heard(&self, health: Option<Health>, endpoint: &str, metrics: &Metrics) {
        let Some(h) = health else {
            return;
        };
        *self.heard.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
        metrics
            .breaker_state
            .get_or_create(&EndpointLabel {
                endpoint: endpoint.to_string(),
            })
            .set(i64::from(h.state.code()));
    }

    /// Whether the lane must hold back what it claimed (all but the probe).
    pub fn holds(&self) -> bool {
        self.heard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|h| h.state != State::Closed)
    }
}

/// Whether a result's transition closed the breaker: then the held deliveries go out, paced.
pub fn recovered(transition: Option<Transition>) -> bool {
    transition == Some(Transition::Recovered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_holds_back_only_while_it_heard_a_breaker_not_closed() {
        let metrics = Metrics::new();
        let view = BreakerView::default();
        assert!(!view.holds(), "nothing heard: closed");
        view.heard(None, "e", &metrics);
        assert!(!view.holds());
        let open = Health {
            state: State::Open,
            ..Health::closed()
        };
        view.heard(Some(open), "e", &metrics);
        assert!(view.holds());
        assert!(
            metrics
                .encode(Default::default())
                .contains(r#"hookgate_endpoint_breaker_state{endpoint="e"} 1"#)
        );
        view.heard(None, "e", &metrics);
        assert!(view.holds(), "no answer changes nothing");
        view.heard(Some(Health::closed()), "e", &metrics);
        assert!(!view.holds());
        assert!(recovered(Some(Transition::Recovered)));
        assert!(!recovered(Some(Transition::Failing)) && !recovered(None));
    }
}
