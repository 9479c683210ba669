//! An endpoint's `breaker`, `disable_after` and `ordering` keys (issue 17), and the `[delivery]`
//! defaults of the first two: their shapes, each a word (`"off"`, `"endpoint"`) or a table, and
//! their validation into [`HealthPolicy`] and [`Ordering`].
//!
//! The shapes behave as untagged enums, but are read by hand: serde's untagged enums buffer the
//! value and answer only "data did not match any variant", which would lose the key path of an
//! unknown or mistyped key inside the table. Here a word is matched directly and a table is
//! handed to its derived `Deserialize` (with `deny_unknown_fields`), whose errors keep their
//! full path (`endpoints[0].breaker.windw`).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};

use super::{ConfigError, Duration, check_field_ref};
use crate::model::{BreakerPolicy, HealthPolicy, Ordering};
use crate::verify::FieldRef;

/// The shortest and longest breaker `window` and `cool_down`.
pub const BREAKER_MIN_MS: u64 = 1_000;
pub const BREAKER_MAX_MS: u64 = 3_600_000;

const BREAKER_SHAPE: &str =
    "must be \"off\" or a table { window, min_attempts, failure_rate, cool_down }";
const ORDERING_SHAPE: &str = "must be \"endpoint\" or { key = … }";

/// `breaker = { window = "1m", min_attempts = 20, failure_rate = 0.5, cool_down = "30s" }` or
/// `breaker = "off"`.
#[derive(Debug, Clone, PartialEq)]
pub enum BreakerConfig {
    Off,
    On(BreakerTable),
}

/// A breaker's table; a missing field falls back to `[delivery]`'s, then to
/// [`BreakerPolicy::DEFAULT`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerTable {
    pub window: Option<Duration>,
    pub min_attempts: Option<u32>,
    pub failure_rate: Option<f64>,
    pub cool_down: Option<Duration>,
}

/// `disable_after = "3d"` or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DisableAfter {
    Off,
    After(Duration),
}

/// `ordering = "endpoint"` or `ordering = { key = { json = "/customer_id" } }` (or
/// `{ header = … }`).
#[derive(Debug, Clone, PartialEq)]
pub enum OrderingConfig {
    Endpoint,
    Key(FieldRef),
}

/// The table form of `ordering`; `key` is optional here only so that its absence gets the
/// shape's own message rather than serde's "missing field".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderingTable {
    key: Option<FieldRef>,
}

impl<'de> Deserialize<'de> for BreakerConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BreakerConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"off\" or a table { window, min_attempts, failure_rate, cool_down }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BreakerConfig, E> {
                if v == "off" {
                    Ok(BreakerConfig::Off)
                } else {
                    Err(E::custom(BREAKER_SHAPE))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<BreakerConfig, A::Error> {
                BreakerTable::deserialize(MapAccessDeserializer::new(map)).map(BreakerConfig::On)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for DisableAfter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "off" {
            return Ok(DisableAfter::Off);
        }
        s.parse()
            .map(DisableAfter::After)
            .map_err(|e: String| de::Error::custom(format!("{e}, or \"off\"")))
    }
}

impl<'de> Deserialize<'de> for OrderingConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderingConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"endpoint\" or { key = … }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OrderingConfig, E> {
                if v == "endpoint" {
                    Ok(OrderingConfig::Endpoint)
                } else {
                    Err(E::custom(ORDERING_SHAPE))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OrderingConfig, A::Error> {
                match OrderingTable::deserialize(MapAccessDeserializer::new(map))?.key {
                    Some(key) => Ok(OrderingConfig::Key(key)),
                    None => Err(de::Error::custom(ORDERING_SHAPE)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// What an endpoint's health keys fall back on: `[delivery]`'s, resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthDefaults {
    /// `delivery.breaker` resolved; `None`: `"off"`.
    pub breaker: Option<BreakerPolicy>,
    /// `delivery.disable_after` as written; `None`: not written (three days, with a breaker).
    /// Kept unresolved because a `[delivery]` without a breaker has no disable_after, yet an
    /// endpoint that turns its breaker on still gets the default.
    pub disable_after: Option<DisableAfter>,
}

impl Default for HealthDefaults {
    fn default() -> Self {
        HealthDefaults {
            breaker: Some(BreakerPolicy::DEFAULT),
            disable_after: None,
        }
    }
}

/// Resolves a `breaker` key (`key` is its path) against the breaker it falls back on.
fn resolve_breaker(
    key: &str,
    c: Option<&BreakerConfig>,
    fallback: Option<BreakerPolicy>,
) -> Result<Option<BreakerPolicy>, ConfigError> {
    let t = match c {
        None => return Ok(fallback),
        Some(BreakerConfig::Off) => return Ok(None),
        Some(BreakerConfig::On(t)) => t,
    };
    // A table over `"off"` starts from the built-in values, not from nothing.
    let d = fallback.unwrap_or(BreakerPolicy::DEFAULT);
    let p = BreakerPolicy {
        window_ms: t.window.map_or(d.window_ms, Duration::as_millis_u64),
        min_attempts: t.min_attempts.unwrap_or(d.min_attempts),
        failure_rate: t.failure_rate.unwrap_or(d.failure_rate),
        cool_down_ms: t.cool_down.map_or(d.cool_down_ms, Duration::as_millis_u64),
    };
    for (name, ms) in [("window", p.window_ms), ("cool_down", p.cool_down_ms)] {
        if !(BREAKER_MIN_MS..=BREAKER_MAX_MS).contains(&ms) {
            return Err(ConfigError::new(
                format!("{key}.{name}"),
                "must be 1s to 1h",
            ));
        }
    }
    if p.min_attempts == 0 {
        return Err(ConfigError::new(
            format!("{key}.min_attempts"),
            "must be >= 1",
        ));
    }
    // Written so that NaN fails too.
    if !(p.failure_rate > 0.0 && p.failure_rate <= 1.0) {
        return Err(ConfigError::new(
            format!("{key}.failure_rate"),
            "must be > 0 and <= 1",
        ));
    }
    Ok(Some(p))
}

/// Resolves an entry's `breaker` and `disable_after` (`key` is the entry's path: `delivery`,
/// `endpoints[0]`, or empty for an API body) against `defaults`.
///
/// Without a breaker there is nothing to disable by: `disable_after` written beside
/// `breaker = "off"` is an error, and one left to its default becomes none.
pub(super) fn resolve_health(
    key: &str,
    breaker: Option<&BreakerConfig>,
    disable_after: Option<DisableAfter>,
    defaults: &HealthDefaults,
) -> Result<HealthPolicy, ConfigError> {
    let breaker = resolve_breaker(&format!("{key}.breaker"), breaker, defaults.breaker)?;
    let da_key = format!("{key}.disable_after");
    let disable_after_ms = match breaker {
        None => match disable_after {
            Some(DisableAfter::After(_)) => {
                return Err(ConfigError::new(
                    da_key,
                    "needs a breaker (breaker is \"off\")",
                ));
            }
            None | Some(DisableAfter::Off) => None,
        },
        Some(p) => {
            let ms = match disable_after.or(defaults.disable_after) {
                None => Some(HealthPolicy::DEFAULT_DISABLE_AFTER_MS),
                Some(DisableAfter::Off) => None,
                Some(DisableAfter::After(d)) => Some(d.as_millis_u64()),
            };
            // Disabling needs a failed probe after a cool-down, so a shorter time could never
            // be what was meant.
            if ms.is_some_and(|ms| ms <= p.cool_down_ms) {
                return Err(ConfigError::new(
                    da_key,
                    "must be longer than breaker.cool_down, or \"off\"",
                ));
            }
            ms
        }
    };
    Ok(HealthPolicy {
        breaker,
        disable_after_ms,
    })
}

/// Resolves an endpoint's `ordering` (`key` is the endpoint's path); there is no default.
pub(super) fn resolve_ordering(
    key: &str,
    c: Option<&OrderingConfig>,
) -> Result<Option<Ordering>, ConfigError> {
    match c {
        None => Ok(None),
        Some(OrderingConfig::Endpoint) => Ok(Some(Ordering::Endpoint)),
        Some(OrderingConfig::Key(f)) => {
            check_field_ref(&format!("{key}.ordering.key"), f)?;
            Ok(Some(Ordering::Key(f.clone())))
        }
    }
}

#[cfg(test)]
mod tests;
