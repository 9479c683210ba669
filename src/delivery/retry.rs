//! The retry policy: what follows an attempt, as a pure function of (policy, attempts made,
//! outcome, now, when the event arrived, rng). Exponential backoff with full jitter; a
//! delay the receiver asked for (HTTP's `Retry-After`) is honoured, capped at `max_delay`.
//!
//! The policy sees only the transport-neutral [`Outcome`] a delivery target reports:
//! - delivered, or dropped by the endpoint's transform: done;
//! - failed: retried until `max_attempts` attempts were made or the next attempt would fall
//!   after `max_age` from when the retry cycle began; then dead, with the last error kept. A
//!   delay the receiver asked for is a floor, capped at `max_delay`;
//! - refused (e.g. an address the SSRF guard blocks): dead at once; retrying cannot help.

use std::time::Duration;

use rand::Rng;

use crate::model::endpoint::RetryPolicy;
use crate::store::Next;

/// What an attempt came to, whatever carried it: a target classifies its own transport's
/// answers into these (for HTTP, see `delivery::http`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Not sent, by the endpoint's own rule (its transform output null): final, like a
    /// delivery, but the receiver was never asked.
    Dropped,
    /// Worth trying again. `retry_after` is the receiver's own request for a delay.
    Failed {
        retry_after: Option<Duration>,
        error: String,
    },
    /// Never worth trying again.
    Refused {
        error: String,
    },
}

/// The backoff ceiling before the attempt after `attempts_made` attempts: `base · 2^(n−1)`,
/// capped at `max_delay`.
pub fn backoff_ceiling(policy: &RetryPolicy, attempts_made: u32) -> Duration {
    let exp = attempts_made.saturating_sub(1).min(32);
    policy
        .base
        .checked_mul(1u32 << exp.min(31))
        .map_or(policy.max_delay, |d| d.min(policy.max_delay))
}

/// What follows an attempt. `attempts_made` counts the attempt that just ended, and
/// `received_ms` is when the retry cycle began (the event's arrival, or its last replay).
pub fn decide(
    policy: &RetryPolicy,
    attempts_made: u32,
    outcome: &Outcome,
    now_ms: u64,
    received_ms: u64,
    rng: &mut impl Rng,
) -> Next {
    let error = match outcome {
        Outcome::Delivered | Outcome::Dropped => return Next::Delivered,
        Outcome::Refused { error } => return Next::Dead(error.clone()),
        Outcome::Failed { error, .. } => error,
    };
    if attempts_made >= policy.max_attempts {
        return retry_at(policy, attempts_made, now_ms, received_ms, error);
    }
    let ceiling = backoff_ceiling(policy, attempts_made);
    let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    let mut delay_ms = rng.random_range(0..=ceiling_ms);
    if let Outcome::Failed {
        retry_after: Some(ra),
        ..
    } = outcome
    {
        let max_ms = u64::try_from(policy.max_delay.as_millis()).unwrap_or(u64::MAX);
        let ra_ms = u64::try_from(ra.as_millis()).unwrap_or(u64::MAX);
        delay_ms = delay_ms.max(ra_ms.min(max_ms));
    }
    retry_at(
        policy,
        attempts_made,
        now_ms.saturating_add(delay_ms),
        received_ms,
        error,
    )
}

/// A failed attempt to be tried again at `at`: dead once `max_attempts` attempts were made, or
/// when `at` falls after `max_age` from when the retry cycle began (`cycle_started_ms`); else
/// due then. [`decide`] picks `at` by the backoff; a pull consumer's nack may name it.
pub fn retry_at(
    policy: &RetryPolicy,
    attempts_made: u32,
    at: u64,
    cycle_started_ms: u64,
    error: &str,
) -> Next {
    if attempts_made >= policy.max_attempts {
        return Next::Dead(format!(
            "gave up after {attempts_made} attempts; last error: {error}"
        ));
    }
    let deadline = cycle_started_ms
        .saturating_add(u64::try_from(policy.max_age.as_millis()).unwrap_or(u64::MAX));
    if at > deadline {
        return Next::Dead(format!(
            "max_age exceeded after {attempts_made} attempts; last error: {error}"
        ));
    }
    Next::RetryAt(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base: Duration::from_secs(5),
            max_delay: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
        }
    }

    fn failed(retry_after: Option<u64>) -> Outcome {
        Outcome::Failed {
            retry_after: retry_after.map(Duration::from_secs),
            error: "HTTP 503".into(),
        }
    }

    #[test]
    fn dead_after_max_attempts_with_the_last_error() {
        let mut rng = StdRng::seed_from_u64(1);
        match decide(&policy(), 5, &failed(None), 0, 0, &mut rng) {
            Next::Dead(reason) => assert!(
                reason.contains("5 attempts") && reason.contains("HTTP 503"),
                "{reason}"
            ),
            other => panic!("expected dead, got {other:?}"),
        }
        assert!(matches!(
            decide(&policy(), 4, &failed(None), 0, 0, &mut rng),
            Next::RetryAt(_)
        ));
    }

    #[test]
    fn refused_is_dead_at_once_and_success_is_delivered() {
        let mut rng = StdRng::seed_from_u64(1);
        let refused = Outcome::Refused {
            error: "blocked: private address 127.0.0.1".into(),
        };
        assert_eq!(
            decide(&policy(), 1, &refused, 0, 0, &mut rng),
            Next::Dead("blocked: private address 127.0.0.1".into())
        );
        assert_eq!(
            decide(&policy(), 1, &Outcome::Delivered, 0, 0, &mut rng),
            Next::Delivered
        );
    }

    #[test]
    fn dead_when_the_next_attempt_would_pass_max_age() {
        let mut rng = StdRng::seed_from_u64(1);
        let now = 3_600_000; // the event arrived at 0 and max_age is 1h
        assert!(
            matches!(decide(&policy(), 1, &failed(Some(1)), now, 0, &mut rng), Next::Dead(r) if r.contains("max_age"))
        );
    }

    proptest! {
        #[test]
        fn delay_stays_within_the_jitter_bounds(attempts in 1u32..5, seed: u64, now in 0u64..1_000_000) {
            let p = policy();
            let mut rng = StdRng::seed_from_u64(seed);
            if let Next::RetryAt(at) = decide(&p, attempts, &failed(None), now, now, &mut rng) {
                let ceiling = backoff_ceiling(&p, attempts).as_millis() as u64;
                prop_assert!(at >= now && at - now <= ceiling);
                prop_assert!(at - now <= p.max_delay.as_millis() as u64);
            } else {
                prop_assert!(false, "a failure before max_attempts within max_age must be retried");
            }
        }

        #[test]
        fn retry_after_is_a_floor_capped_at_max_delay(attempts in 1u32..5, seed: u64, ra in 0u64..1000) {
            let p = policy();
            let mut rng = StdRng::seed_from_u64(seed);
            if let Next::RetryAt(at) = decide(&p, attempts, &failed(Some(ra)), 0, 0, &mut rng) {
                prop_assert!(at >= ra.min(60) * 1000);
                prop_assert!(at <= 60_000);
            } else {
                prop_assert!(false, "expected a retry");
            }
        }

        #[test]
        fn ceiling_grows_then_caps(a in 1u32..200) {
            let p = policy();
            prop_assert!(backoff_ceiling(&p, a) <= p.max_delay);
            prop_assert!(backoff_ceiling(&p, a) <= backoff_ceiling(&p, a + 1));
        }
    }
}
