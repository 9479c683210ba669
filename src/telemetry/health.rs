//! An endpoint's health as the console shows it: active, paused or failing, and whether it
//! lags. Pure functions of the recent activity ([`super::recent`]) and the store's gauges,
//! with the thresholds as named constants.

use super::recent::EndpointHour;

/// Attempts in the last hour below which a success rate says too little to call it failing.
pub const FAILING_MIN_ATTEMPTS: u64 = 5;
/// With at least [`FAILING_MIN_ATTEMPTS`], a success rate below this is failing.
pub const FAILING_SUCCESS_BELOW: f64 = 0.5;
/// This many latest attempts failed in a row is failing, however few there were: an
/// endpoint that just broke shows at once.
pub const FAILING_IN_A_ROW: u32 = 3;
/// Pending work whose oldest delivery has waited longer than this (seconds) is lagging.
pub const LAGGING_AFTER_SECS: f64 = 300.0;

/// An endpoint's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Active,
    /// Paused by an operator: nothing is attempted, work waits.
    Paused,
    /// Its recent attempts mostly fail.
    Failing,
}

impl State {
    /// The word pages show (and the badge's CSS class).
    pub fn name(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Paused => "paused",
            State::Failing => "failing",
        }
    }
}

/// Whether an endpoint's last hour is failing: its latest [`FAILING_IN_A_ROW`] attempts
/// failed, or at least [`FAILING_MIN_ATTEMPTS`] attempts succeeded less than
/// [`FAILING_SUCCESS_BELOW`] of the time.
pub fn failing(hour: &EndpointHour) -> bool {
    let s = &hour.stats;
    hour.failed_in_a_row >= FAILING_IN_A_ROW
        || (s.attempts >= FAILING_MIN_ATTEMPTS
            && s.success_rate().is_some_and(|r| r < FAILING_SUCCESS_BELOW))
}

/// An endpoint's state: paused wins (an operator's choice explains what follows), then
/// failing, else active.
pub fn state(paused: bool, hour: Option<&EndpointHour>) -> State {
    if paused {
        State::Paused
    } else if hour.is_some_and(failing) {
        State::Failing
    } else {
        State::Active
    }
}

/// Whether pending work has waited longer than [`LAGGING_AFTER_SECS`].
pub fn lagging(pending: i64, oldest_secs: f64) -> bool {
    pending > 0 && oldest_secs > LAGGING_AFTER_SECS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::recent::EndpointStats;

    fn hour(attempts: u64, succeeded: u64, failed_in_a_row: u32) -> EndpointHour {
        EndpointHour {
            stats: EndpointStats {
                attempts,
                succeeded,
                ..EndpointStats::default()
            },
            failed_in_a_row,
        }
    }

    #[test]
    fn failing_needs_a_streak_or_enough_attempts_mostly_failed() {
        assert!(!failing(&hour(0, 0, 0)));
        // Too few attempts to judge by the rate, and no streak.
        assert!(!failing(&hour(4, 0, 2)));
        // A streak is enough on its own.
        assert!(failing(&hour(3, 0, 3)));
        assert!(failing(&hour(100, 97, 3)));
        // The rate, with enough attempts: just below half fails, half does not.
        assert!(failing(&hour(10, 4, 0)));
        assert!(!failing(&hour(10, 5, 0)));
        assert!(!failing(&hour(5, 5, 0)));
    }

    #[test]
    fn paused_wins_over_failing() {
        let bad = hour(10, 0, 10);
        assert_eq!(state(true, Some(&bad)), State::Paused);
        assert_eq!(state(false, Some(&bad)), State::Failing);
        assert_eq!(state(false, Some(&hour(10, 10, 0))), State::Active);
        assert_eq!(state(false, None), State::Active);
        assert_eq!(state(true, None).name(), "paused");
    }

    #[test]
    fn lagging_is_pending_work_waiting_past_the_threshold() {
        assert!(!lagging(0, 10_000.0), "nothing pending: nothing lags");
        assert!(!lagging(3, LAGGING_AFTER_SECS));
        assert!(lagging(3, LAGGING_AFTER_SECS + 1.0));
    }
}
