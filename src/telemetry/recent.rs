//! Recent activity, in memory, for the console: what this node saw in the last hour (per
//! minute) and the last day (per hour), fed from the same calls that count the metrics.
//!
//! Prometheus counters only grow, so "the last hour" cannot be read from them without a
//! scraper; and the store cannot answer "attempts per minute" without scanning. This keeps
//! rings of fixed-size buckets instead: 60 one-minute buckets (events accepted; per endpoint
//! attempts by outcome, latency and finished deliveries) and 24 one-hour buckets (inbound
//! requests per source by outcome code). **Its memory is bounded**: at most [`MAX_NAMES`]
//! sources or endpoints and [`MAX_CODES`] outcome codes are told apart; later ones are counted
//! under [`OTHER`]. Every method takes the time, so the ring logic is pure and testable; a
//! clock that goes backwards is taken as standing still until it catches up, so no sample
//! ever lands in a bucket that was already reused for a later time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::Settled;

/// Minutes the per-minute ring covers.
pub const MINUTES: usize = 60;
/// Hours the per-hour ring covers.
pub const HOURS: usize = 24;
const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;
/// Distinct source names, and apart from them endpoint names, told apart; beyond it, they count
/// as [`OTHER`].
pub const MAX_NAMES: usize = 1024;
/// Distinct outcome codes told apart; beyond it, they count as [`OTHER`].
pub const MAX_CODES: usize = 128;
/// The name everything beyond the caps is counted under.
pub const OTHER: &str = "<other>";
/// Upper bounds (ms) of the latency buckets: 1 ms, 2 ms, ... 32.8 s; one more for slower.
pub const LATENCY_BOUNDS_MS: [u64; 16] = [
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16_384, 32_768,
];
const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// One endpoint's attempts and finished deliveries over some minutes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointStats {
    pub attempts: u64,
    /// Attempts answered 2xx.
    pub succeeded: u64,
    pub latency_sum_ms: u64,
    /// Attempts per latency bucket (see [`LATENCY_BOUNDS_MS`]).
    pub latency: [u64; LATENCY_BUCKETS],
    pub delivered: u64,
    pub dead: u64,
}

impl EndpointStats {
    fn add(&mut self, o: &EndpointStats) {
        self.attempts += o.attempts;
        self.succeeded += o.succeeded;
        self.latency_sum_ms += o.latency_sum_ms;
        for (a, b) in self.latency.iter_mut().zip(o.latency.iter()) {
            *a += b;
        }
        self.delivered += o.delivered;
        self.dead += o.dead;
    }

    /// The share of attempts answered 2xx, when there were any.
    pub fn success_rate(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.succeeded as f64 / self.attempts as f64)
    }

    /// The mean latency in ms, when there were attempts.
    pub fn mean_ms(&self) -> Option<u64> {
        (self.attempts > 0).then(|| self.latency_sum_ms / self.attempts)
    }

    /// An upper bound (ms) of the latency under which a share `q` of the attempts finished:
    /// the bound of the bucket that holds it. `Some(None)` when that is the open-ended bucket.
    pub fn quantile_bound_ms(&self, q: f64) -> Option<Option<u64>> {
        if self.attempts == 0 {
            return None;
        }
        // The rank of the attempt at q, 1-based: the 95th of 100 for 0.95.
        let rank = ((self.attempts as f64 * q).ceil() as u64).clamp(1, self.attempts);
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(LATENCY_BOUNDS_MS.get(i).copied());
            }
        }
        Some(None)
    }
}

/// The bucket a latency falls in.
fn latency_bucket(ms: u64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|b| ms <= *b)
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

#[derive(Debug, Clone, Default)]
struct MinuteSlot {
    accepted: u64,
    endpoints: HashMap<Arc<str>, EndpointStats>,
}

#[derive(Debug, Clone, Default)]
struct HourSlot {
    /// (source, outcome) → requests.
    inbound: HashMap<(Arc<str>, Arc<str>), u64>,
}

/// A ring of `N` buckets, each tagged with the period (minute or hour since the epoch) it
/// holds, so a bucket left over from an earlier lap reads as empty rather than as now.
#[derive(Debug, Clone)]
struct Ring<T> {
    slots: Vec<Option<(u64, T)>>,
}

impl<T: Default> Ring<T> {
    fn new(n: usize) -> Self {
        Ring {
            slots: (0..n).map(|_| None).collect(),
        }
    }

    fn index(&self, period: u64) -> usize {
        // The ring's length is a small constant: the remainder fits.
        usize::try_from(period % self.slots.len() as u64).unwrap_or(0)
    }

    /// The bucket of `period`, emptied first if it held an earlier one.
    fn at(&mut self, period: u64) -> &mut T {
        let i = self.index(period);
        let slot = self.slots[i].get_or_insert_with(|| (period, T::default()));
        if slot.0 != period {
            *slot = (period, T::default());
        }
        &mut slot.1
    }

    fn get(&self, period: u64) -> Option<&T> {
        match &self.slots[self.index(period)] {
            Some((p, t)) if *p == period => Some(t),
            _ => None,
        }
    }
}

/// An endpoint's latest attempts: how many failed in a row, and when the last was.
#[derive(Debug, Clone, Copy, Default)]
struct Streak {
    failures: u32,
    last_ms: u64,
}

/// Totals of one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinuteTotals {
    /// Events accepted (webhooks and published events; duplicates not counted).
    pub accepted: u64,
    pub attempts: u64,
    pub delivered: u64,
    pub dead: u64,
}

/// One endpoint over the last hour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointHour {
    pub stats: EndpointStats,
    /// Its latest attempts that failed in a row, counted when the last one is within the hour.
    pub failed_in_a_row: u32,
}

/// The last hour, for the overview and the endpoints list.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// When the recorder started counting (the node's start).
    pub since_ms: u64,
    /// When the first of [`Activity::minutes`] began.
    pub first_minute_ms: u64,
    /// [`MINUTES`] minutes, oldest first; the last is the current, partial one.
    pub minutes: Vec<MinuteTotals>,
    /// Per endpoint with any attempt in the hour, or a streak.
    pub endpoints: BTreeMap<String, EndpointHour>,
}

/// The last day of inbound requests, for the sources page.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub since_ms: u64,
    /// source → outcome (`accepted`, `duplicate`, a refusal's code, ...) → requests.
    pub per_source: BTreeMap<String, BTreeMap<String, u64>>,
}

/// The recorder's state. Every method takes "now" in Unix milliseconds.
#[derive(Debug, Clone)]
pub struct Window {
    started_ms: u64,
    /// The latest time seen: an earlier "now" is taken as this one.
    latest_ms: u64,
    /// Apart, so that sources (a publisher names its own) can never crowd out endpoints.
    sources: HashSet<Arc<str>>,
    endpoints: HashSet<Arc<str>>,
    codes: HashSet<Arc<str>>,
    minutes: Ring<MinuteSlot>,
    hours: Ring<HourSlot>,
    streaks: HashMap<Arc<str>, Streak>,
}

/// `name` from `set`, added while there is room, else [`OTHER`]: the caps bound memory
/// whatever names arrive.
fn intern(set: &mut HashSet<Arc<str>>, cap: usize, name: &str) -> Arc<str> {
    if let Some(known) = set.get(name) {
        return Arc::clone(known);
    }
    let name: Arc<str> = if set.len() < cap {
        Arc::from(name)
    } else {
        Arc::from(OTHER)
    };
    set.insert(Arc::clone(&name));
    name
}

impl Window {
    pub fn new(now_ms: u64) -> Self {
        Window {
            started_ms: now_ms,
            latest_ms: now_ms,
            sources: HashSet::new(),
            endpoints: HashSet::new(),
            codes: HashSet::new(),
            minutes: Ring::new(MINUTES),
            hours: Ring::new(HOURS),
            streaks: HashMap::new(),
        }
    }

    /// `now_ms`, or the latest time seen if that is later.
    fn advance(&mut self, now_ms: u64) -> u64 {
        self.latest_ms = self.latest_ms.max(now_ms);
        self.latest_ms
    }

    /// An inbound request's outcome: `accepted`, `duplicate`, or a refusal's code.
    pub fn received(&mut self, now_ms: u64, source: &str, outcome: &str) {
        let now = self.advance(now_ms);
        let source = intern(&mut self.sources, MAX_NAMES, source);
        let outcome = intern(&mut self.codes, MAX_CODES, outcome);
        if &*outcome == "accepted" {
            self.minutes.at(now / MINUTE_MS).accepted += 1;
        }
        *self
            .hours
            .at(now / HOUR_MS)
            .inbound
            .entry((source, outcome))
            .or_default() += 1;
    }

    /// A finished attempt: its class (`2xx`, `5xx`, `timeout`, ...), latency and what follows.
    pub fn attempt(
        &mut self,
        now_ms: u64,
        endpoint: &str,
        class: &str,
        latency_ms: u64,
        settled: Settled,
    ) {
        let now = self.advance(now_ms);
        let endpoint = intern(&mut self.endpoints, MAX_NAMES, endpoint);
        let ok = class == "2xx";
        let streak = self.streaks.entry(Arc::clone(&endpoint)).or_default();
        streak.failures = if ok {
            0
        } else {
            streak.failures.saturating_add(1)
        };
        streak.last_ms = now;
        let stats = self
            .minutes
            .at(now / MINUTE_MS)
            .endpoints
            .entry(endpoint)
            .or_default();
        stats.attempts += 1;
        stats.succeeded += u64::from(ok);
        stats.latency_sum_ms = stats.latency_sum_ms.saturating_add(latency_ms);
        stats.latency[latency_bucket(latency_ms)] += 1;
        match settled {
            Settled::Delivered { .. } => stats.delivered += 1,
            Settled::Dead => stats.dead += 1,
            Settled::Retried => {}
        }
    }

    /// The last [`MINUTES`] minutes up to `now_ms`.
    pub fn activity(&self, now_ms: u64) -> Activity {
        let now = self.latest_ms.max(now_ms);
        let last = now / MINUTE_MS;
        let first = (last + 1).saturating_sub(MINUTES as u64);
        let mut endpoints: BTreeMap<String, EndpointHour> = BTreeMap::new();
        let minutes = (first..=last)
            .map(|m| {
                let mut t = MinuteTotals::default();
                if let Some(slot) = self.minutes.get(m) {
                    t.accepted = slot.accepted;
                    for (name, s) in &slot.endpoints {
                        t.attempts += s.attempts;
                        t.delivered += s.delivered;
                        t.dead += s.dead;
                        endpoints.entry(name.to_string()).or_default().stats.add(s);
                    }
                }
                t
            })
            .collect();
        let hour_ago = now.saturating_sub(HOUR_MS);
        for (name, streak) in &self.streaks {
            if streak.failures > 0 && streak.last_ms > hour_ago {
                endpoints
                    .entry(name.to_string())
                    .or_default()
                    .failed_in_a_row = streak.failures;
            }
        }
        Activity {
            since_ms: self.started_ms,
            first_minute_ms: first * MINUTE_MS,
            minutes,
            endpoints,
        }
    }

    /// The last [`HOURS`] hours of inbound requests up to `now_ms`.
    pub fn inbound(&self, now_ms: u64) -> Inbound {
        let now = self.latest_ms.max(now_ms);
        let last = now / HOUR_MS;
        let first = (last + 1).saturating_sub(HOURS as u64);
        let mut per_source: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for slot in (first..=last).filter_map(|h| self.hours.get(h)) {
            for ((source, outcome), n) in &slot.inbound {
                *per_source
                    .entry(source.to_string())
                    .or_default()
                    .entry(outcome.to_string())
                    .or_default() += n;
            }
        }
        Inbound {
            since_ms: self.started_ms,
            per_source,
        }
    }
}

#[cfg(test)]
mod tests;
