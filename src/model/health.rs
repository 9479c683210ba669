//! An endpoint's health policy and its delivery order, as config and the admin API give them:
//! the circuit breaker's thresholds, when a failing endpoint is disabled, and how its
//! deliveries are ordered. The rules that apply them are the store's (`store::health`,
//! `store::outbox`); these are only the settings.

use crate::verify::FieldRef;

/// When an endpoint's breaker opens, and how long it stays open before a probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    /// The sliding window the failure rate is measured over.
    pub window_ms: u64,
    /// Attempts the window must hold before the rate counts.
    pub min_attempts: u32,
    /// Failed attempts / attempts at or above which it opens, in (0, 1].
    pub failure_rate: f64,
    /// How long it stays open before the first probe; doubled at each failed probe, capped.
    pub cool_down_ms: u64,
}

impl BreakerPolicy {
    /// The documented default: `{ window = "1m", min_attempts = 20, failure_rate = 0.5,
    /// cool_down = "30s" }`.
    pub const DEFAULT: BreakerPolicy = BreakerPolicy {
        window_ms: 60_000,
        min_attempts: 20,
        failure_rate: 0.5,
        cool_down_ms: 30_000,
    };
}

/// What an endpoint's health does: its breaker (`None`: `breaker = "off"`) and when an
/// endpoint failing without a break is disabled (`None`: `disable_after = "off"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthPolicy {
    pub breaker: Option<BreakerPolicy>,
    pub disable_after_ms: Option<u64>,
}

impl HealthPolicy {
    /// Three days: the documented default of `disable_after`.
    pub const DEFAULT_DISABLE_AFTER_MS: u64 = 3 * 24 * 3_600_000;

    /// Neither a breaker nor auto-disable.
    pub const OFF: HealthPolicy = HealthPolicy {
        breaker: None,
        disable_after_ms: None,
    };
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            breaker: Some(BreakerPolicy::DEFAULT),
            disable_after_ms: Some(Self::DEFAULT_DISABLE_AFTER_MS),
        }
    }
}

/// How an endpoint orders its deliveries (`ordering = …`); an endpoint without it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ordering {
    /// `"endpoint"`: one total order over all its deliveries.
    Endpoint,
    /// `{ key = { json = "/customer_id" } }` or `{ key = { header = "x-order-key" } }`: one
    /// order per value of that field.
    Key(FieldRef),
}
