//! An endpoint's rate limiter (governor's GCRA on tokio time), kept across lane replacements
//! while its settings are unchanged, and emptied when it must not hand out a burst: a changed
//! limit, or a breaker that just closed over a backlog.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{
    Quota, RateLimiter, clock::Clock as GovClock, state::InMemoryState, state::NotKeyed,
};

use crate::model::RateLimit as RateLimitConfig;

/// Governor's clock on tokio time, so that rate limits follow `tokio::time::pause()` in tests.
#[derive(Debug, Clone)]
pub(super) struct TokioTime {
    start: tokio::time::Instant,
}

impl GovClock for TokioTime {
    type Instant = Duration;
    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

type Limiter =
    RateLimiter<NotKeyed, InMemoryState, TokioTime, governor::middleware::NoOpMiddleware<Duration>>;

/// An endpoint's rate limiter and the settings it was made for.
pub struct RateLimit {
    pub(super) config: RateLimitConfig,
    pub(super) limiter: Limiter,
    pub(super) clock: TokioTime,
}

impl RateLimit {
    pub(super) fn new(config: RateLimitConfig, start_empty: bool) -> Option<Self> {
        let per_second = NonZeroU32::new(config.per_second)?;
        let burst = config.burst.and_then(NonZeroU32::new).unwrap_or(per_second);
        let clock = TokioTime {
            start: tokio::time::Instant::now(),
        };
        let limiter = RateLimiter::direct_with_clock(
            Quota::per_second(per_second).allow_burst(burst),
            clock.clone(),
        );
        let rl = RateLimit {
            config,
            limiter,
            clock,
        };
        if start_empty {
            // A changed limit must not hand out a fresh burst on top of what the old one
            // already let through: the new bucket starts empty and fills at the new rate.
            rl.empty();
        }
        Some(rl)
    }

    /// Spends the whole burst: from now on requests go at the rate, not in a burst (a new
    /// limit, or a breaker that just closed over a backlog).
    pub(super) fn empty(&self) {
        let burst = self.config.burst.unwrap_or(self.config.per_second);
        // One token at a time: `check_n(burst)` takes nothing unless the whole burst is
        // there, and a bucket a probe just drew from holds less.
        for _ in 0..burst {
            if self.limiter.check().is_err() {
                break;
            }
        }
    }
}
