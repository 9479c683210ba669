//! The circuit breaker's rules, as pure functions of an endpoint's [`Health`], its failure
//! [`Window`], its [`HealthPolicy`] and the time (`now_ms`, always injected). Both backends call
//! these in the transaction of the result, claim or lease that moves the state (redb's writer,
//! PostgreSQL's claim and results task), and store what they answer; **no backend changes an
//! endpoint's health except by asking a rule**, so the two cannot disagree on the rules, only on
//! how the state is stored. Every type here is plain data with documented fields, which each
//! backend encodes itself (no serde here: the on-disk forms are theirs).
//!
//! The life of an endpoint's health, rule by rule:
//!
//! ```text
//! rule              from                                    to                       transition
//! on_result         closed, a failure reaches the rate      open until now+cool_down  Failing
//! admit             open, from until                        (may probe)               -
//! grant_probe       open from until, or half_open whose     half_open with the probe  -
//!                   probe's lease ran out
//! on_result         half_open, the probe delivered          closed                    Recovered
//! on_result         half_open, the probe failed             open, backoff doubled     -
//!                   ... and failing for disable_after       disabled                  Disabled
//! enable            anything                                closed                    (the caller's)
//! recovered_at_open half_open (its probe's lease was        open until now            -
//!                   taken back at a restart)
//! ```
//!
//! - **At most one probe is out at a time**: only `open` from its `until`, or `half_open` whose
//!   probe's lease ran out (its node died), admits one, and granting it makes the state
//!   `half_open` with a live lease, which admits nothing.
//! - **Results that are not the probe's change nothing while the breaker is not closed**: they
//!   are stragglers that were in flight when it opened.
//! - **`Failing` is written once per spell**: a failed probe re-opens without one.
//! - **Held time** (time spent not closed) is a clock that runs only while the endpoint is not
//!   closed: `max_age` counts from [`effective_cycle_start`], so a delivery held back by the
//!   breaker is not charged for the wait.

use std::fmt;
use std::str::FromStr;

use crate::ids::DeliveryId;
use crate::model::health::{BreakerPolicy, HealthPolicy};

/// How many buckets a [`Window`] has: its resolution is `window_ms / BUCKETS`.
pub const BUCKETS: usize = 10;

/// The longest cool-down the backoff grows to, unless the policy's own is longer.
pub const MAX_COOL_DOWN_MS: u64 = 10 * 60_000;

/// One bucket of a [`Window`]: the results of the attempts that finished in
/// `[start_ms, start_ms + bucket_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bucket {
    /// The start of the bucket's span, a multiple of the bucket's length, so that buckets of
    /// several nodes' windows line up and merge by start. An empty bucket is all zeroes.
    pub start_ms: u64,
    /// Attempts that finished in the span.
    pub attempts: u32,
    /// Of those, the attempts that failed.
    pub failures: u32,
}

/// The sliding window the breaker measures an endpoint's failure rate over: a ring of
/// [`BUCKETS`] buckets of `window_ms / BUCKETS` each. A result finishing at `now` goes to the
/// bucket starting at `now - now % bucket_ms`, kept in slot `(start / bucket_ms) % BUCKETS`, so
/// that a slot is reused only once its bucket has left the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    /// Slot `i` holds the bucket whose `start_ms / bucket_ms % BUCKETS == i` (or an empty one).
    pub buckets: [Bucket; BUCKETS],
}

/// A bucket's length under a policy: a tenth of the window (at least 1 ms, so a window shorter
/// than 10 ms, which config refuses, cannot divide by zero).
pub fn bucket_ms(p: &BreakerPolicy) -> u64 {
    (p.window_ms / BUCKETS as u64).max(1)
}

impl Window {
    /// Counts one finished attempt (`failed` or not) at `now_ms`.
    pub fn add(&mut self, p: &BreakerPolicy, now_ms: u64, failed: bool) {
        let len = bucket_ms(p);
        let start = now_ms - now_ms % len;
        let bucket = &mut self.buckets[slot(start, len)];
        if bucket.start_ms < start || bucket.is_empty() {
            *bucket = Bucket {
                start_ms: start,
                ..Bucket::default()
            };
        } else if bucket.start_ms > start {
            // The slot already holds a bucket a whole window newer (the clock stepped back,
            // or a late result): this one is outside that window, so it is not counted.
            return;
        }
        bucket.attempts = bucket.attempts.saturating_add(1);
        if failed {
            bucket.failures = bucket.failures.saturating_add(1);
        }
    }

    /// `(attempts, failures)` in the window ending at `now_ms`: the current bucket and the
    /// nine before it. Older buckets are skipped; newer ones (another node's clock running a
    /// little ahead) count.
    pub fn totals(&self, p: &BreakerPolicy, now_ms: u64) -> (u32, u32) {
        let len = bucket_ms(p);
        let current = now_ms - now_ms % len;
        let oldest = current.saturating_sub(len * (BUCKETS as u64 - 1));
        self.buckets
            .iter()
            .filter(|b| !b.is_empty() && b.start_ms >= oldest)
            .fold((0u32, 0u32), |(a, f), b| {
                (a.saturating_add(b.attempts), f.saturating_add(b.failures))
            })
    }

    /// Several windows summed (PostgreSQL keeps one per node): buckets of a slot with the
    /// same start add up, and where starts differ, the newest wins (the others are at least a
    /// whole window older). Windows kept under the same policy line up; after a change of
    /// `window`, mismatched buckets only age out.
    pub fn merge(windows: &[Window]) -> Window {
        let mut merged = Window::default();
        for w in windows {
            for (into, b) in merged.buckets.iter_mut().zip(&w.buckets) {
                if b.is_empty() {
                    continue;
                }
                if into.is_empty() || b.start_ms > into.start_ms {
                    *into = *b;
                } else if b.start_ms == into.start_ms {
                    into.attempts = into.attempts.saturating_add(b.attempts);
                    into.failures = into.failures.saturating_add(b.failures);
                }
            }
        }
        merged
    }

    /// Forgets every result: what a breaker coming back to closed starts from.
    pub fn clear(&mut self) {
        *self = Window::default();
    }

    /// Drops the buckets that began before `ms`: results counted before the breaker last
    /// closed (another node's window, on PostgreSQL, which the close could not clear).
    pub fn forget_before(&mut self, ms: u64) {
        for b in &mut self.buckets {
            if b.start_ms < ms {
                *b = Bucket::default();
            }
        }
    }
}

impl Bucket {
    fn is_empty(&self) -> bool {
        self.attempts == 0 && self.failures == 0
    }
}

fn slot(start_ms: u64, len: u64) -> usize {
    // The remainder is below BUCKETS, so the cast cannot truncate.
    ((start_ms / len) % BUCKETS as u64) as usize
}

/// Where an endpoint's breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Deliveries flow; results are counted in the window.
    Closed,
    /// Failing: nothing is sent until `until_ms`, then one probe.
    Open,
    /// One probe is out; nothing else is sent until its result.
    HalfOpen,
    /// Failed for `disable_after`: nothing is sent until an operator enables it. Ingest still
    /// stores and queues.
    Disabled,
}

impl State {
    /// Every state, in code order.
    pub const ALL: [State; 4] = [State::Closed, State::Open, State::HalfOpen, State::Disabled];

    /// The name the API, the console and PostgreSQL's `state` column use.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::Disabled => "disabled",
        }
    }

    /// The stable number `hookgate_endpoint_breaker_state` shows (and a compact stored form):
    /// 0 closed, 1 open, 2 half_open, 3 disabled. Never renumber.
    pub fn code(self) -> u8 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
            State::Disabled => 3,
        }
    }

    /// The state of a [`code`](State::code), if it is one.
    pub fn from_code(code: u8) -> Option<State> {
        State::ALL.into_iter().find(|s| s.code() == code)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of [`State::as_str`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown breaker state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for State {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<State, UnknownState> {
        State::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// The one delivery a half-open breaker lets through to test the endpoint.
// `delivery_id` is a `DeliveryId` rather than the plan's bare `u128` so that nothing else of
// that type (a token, another id) can be passed in its place; its `.0` is the u128 to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The delivery sent as the probe.
    pub delivery_id: DeliveryId,
    /// The token of the probe's lease: a result under another lease is not the probe's.
    pub token: u64,
    /// When the probe's lease runs out. Past it, the node that held it is presumed gone and
    /// another probe may be granted.
    pub until_ms: u64,
}

/// An endpoint's breaker state, as a backend stores it (one record or row per endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Where the breaker stands.
    pub state: State,
    /// When it entered `state` (0: closed since the endpoint was made).
    pub since_ms: u64,
    /// `Open` only: when it may send a probe. 0 in every other state.
    pub until_ms: u64,
    /// How many times it opened in the current spell (the first opening and each failed
    /// probe); sets the backoff of [`cool_down`]. 0 when closed.
    pub trips: u32,
    /// When the current spell began (closed → open); `None` when closed. `disable_after`
    /// counts from it.
    pub failing_since_ms: Option<u64>,
    /// Total time spent not closed, up to `held_from_ms` (the finished spells).
    pub held_total_ms: u64,
    /// When the current not-closed spell began; `None` when closed.
    pub held_from_ms: Option<u64>,
    /// `HalfOpen` only: the probe out. `None` in every other state.
    pub probe: Option<Probe>,
}

impl Health {
    /// A breaker that has never opened: what an endpoint without a stored record has.
    pub const fn closed() -> Health {
        Health {
            state: State::Closed,
            since_ms: 0,
            until_ms: 0,
            trips: 0,
            failing_since_ms: None,
            held_total_ms: 0,
            held_from_ms: None,
            probe: None,
        }
    }

    /// Whether a result of `delivery_id` under `token` is the probe's: the same delivery, and
    /// the same lease when the result names one (a result without a token is unfenced, as
    /// in `Completion::lease_token`).
    pub fn is_probe(&self, delivery_id: DeliveryId, token: Option<u64>) -> bool {
        self.probe
            .is_some_and(|p| p.delivery_id == delivery_id && token.is_none_or(|t| t == p.token))
    }

    /// The same health, closed at `now_ms`: the spell's held time added, the spell forgotten.
    fn closing(&self, now_ms: u64) -> Health {
        Health {
            state: State::Closed,
            since_ms: now_ms,
            until_ms: 0,
            trips: 0,
            failing_since_ms: None,
            held_total_ms: held_at(self, now_ms),
            held_from_ms: None,
            probe: None,
        }
    }
}

impl Default for Health {
    fn default() -> Self {
        Health::closed()
    }
}

/// What a rule's change means to operators: the caller writes it as an operational event
/// (`endpoint.failing`, `endpoint.recovered`, `endpoint.disabled`) in the same transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Closed → open: the failure rate reached the policy's in the window.
    Failing,
    /// Half-open → closed: the probe was delivered.
    Recovered,
    /// Half-open → disabled: a probe failed after `disable_after` of failing.
    Disabled,
}

/// How long the breaker stays open after its `trips`-th opening: the policy's cool-down,
/// doubled at each trip after the first, capped at the larger of it and
/// [`MAX_COOL_DOWN_MS`]. Saturating, and monotone in `trips` (0 counts as 1).
pub fn cool_down(p: &BreakerPolicy, trips: u32) -> u64 {
    let cap = p.cool_down_ms.max(MAX_COOL_DOWN_MS);
    let doublings = trips.saturating_sub(1);
    1u64.checked_shl(doublings)
        .and_then(|factor| p.cool_down_ms.checked_mul(factor))
        .unwrap_or(u64::MAX)
        .min(cap)
}

/// Whether the window's totals open the breaker: enough attempts, and a failure rate at or
/// above the policy's.
fn tripped(p: &BreakerPolicy, (attempts, failures): (u32, u32)) -> bool {
    // Dividing the counts (rather than multiplying the rate) gives exactly the rate a policy
    // wrote as a decimal when the counts reach it exactly, e.g. 10/20 against 0.5.
    attempts > 0
        && attempts >= p.min_attempts
        && f64::from(failures) / f64::from(attempts) >= p.failure_rate
}

/// An attempt's result for the endpoint: the health after it, and the transition it made, if
/// any. `token` is the lease the attempt ran under (`None`: unfenced). `w` is the endpoint's
/// window (for PostgreSQL, the nodes' windows merged); it changes only while closed.
///
/// - Closed: the result is counted; a failure that brings the window to `min_attempts` and
///   `failure_rate` opens the breaker until `now + cool_down(1)` ([`Transition::Failing`]).
/// - Half-open, the probe's result: delivered closes it and clears the window
///   ([`Transition::Recovered`]); failed re-opens it with the backoff doubled, or disables it
///   ([`Transition::Disabled`]) once it has been failing for `disable_after`.
/// - Any other result while not closed (stragglers in flight when it opened, a probe's
///   result under a lease taken over), or with `breaker: None`: nothing changes.
pub fn on_result(
    h: &Health,
    w: &mut Window,
    policy: &HealthPolicy,
    now_ms: u64,
    delivery_id: DeliveryId,
    token: Option<u64>,
    failed: bool,
) -> (Health, Option<Transition>) {
    let Some(p) = &policy.breaker else {
        return (*h, None);
    };
    match h.state {
        State::Closed => {
            w.add(p, now_ms, failed);
            // Only a failure can open it: PostgreSQL looks at the merged windows only on a
            // failure (or the probe's result), so redb must not open on a success either.
            if !failed || !tripped(p, w.totals(p, now_ms)) {
                return (*h, None);
            }
            let opened = Health {
                state: State::Open,
                since_ms: now_ms,
                until_ms: now_ms.saturating_add(cool_down(p, 1)),
                trips: 1,
                failing_since_ms: Some(now_ms),
                held_total_ms: h.held_total_ms,
                held_from_ms: Some(now_ms),
                probe: None,
            };
            (opened, Some(Transition::Failing))
        }
        State::HalfOpen if h.is_probe(delivery_id, token) => {
            if !failed {
                w.clear();
                return (h.closing(now_ms), Some(Transition::Recovered));
            }
            // A spell with no recorded start (not one these rules made) counts from now, so
            // it is never disabled on a guess.
            let failing_for = now_ms.saturating_sub(h.failing_since_ms.unwrap_or(now_ms));
            if policy.disable_after_ms.is_some_and(|d| failing_for >= d) {
                let disabled = Health {
                    state: State::Disabled,
                    since_ms: now_ms,
                    until_ms: 0,
                    probe: None,
                    ..*h
                };
                return (disabled, Some(Transition::Disabled));
            }
            let trips = h.trips.saturating_add(1);
            let reopened = Health {
                state: State::Open,
                since_ms: now_ms,
                until_ms: now_ms.saturating_add(cool_down(p, trips)),
                trips,
                probe: None,
                ..*h
            };
            // Not a second `Failing`: the spell that began at `failing_since_ms` goes on.
            (reopened, None)
        }
        State::Open | State::HalfOpen | State::Disabled => (*h, None),
    }
}

/// What a claim may take for the endpoint now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Closed: everything due.
    All,
    /// Nothing, until `until_ms` (`None`: until an operator enables it). A claim answers no
    /// items with its next due time no earlier than this.
    None { until_ms: Option<u64> },
    /// One delivery, the earliest due, as the probe: the claim then asks [`grant_probe`].
    Probe,
}

/// What a claim at `now_ms` may take, by the breaker alone.
pub fn admit(h: &Health, now_ms: u64) -> Admit {
    match h.state {
        State::Closed => Admit::All,
        State::Open if now_ms < h.until_ms => Admit::None {
            until_ms: Some(h.until_ms),
        },
        State::Open => Admit::Probe,
        State::HalfOpen => match h.probe {
            Some(p) if now_ms < p.until_ms => Admit::None {
                until_ms: Some(p.until_ms),
            },
            // The probe's lease ran out (its node died), or there is none: probe again.
            _ => Admit::Probe,
        },
        State::Disabled => Admit::None { until_ms: None },
    }
}

/// Grants the probe to `delivery_id`, leased under `token` until `lease_until_ms`: the health
/// is then half-open with that probe. **It grants only what [`admit`] allows at `now_ms`**,
/// and otherwise answers `h` unchanged, so a caller whose read is stale (another claim got the
/// probe first, a result moved the state) learns it from `is_probe` on the answer rather than
/// granting a second probe.
pub fn grant_probe(
    h: &Health,
    delivery_id: DeliveryId,
    token: u64,
    lease_until_ms: u64,
    now_ms: u64,
) -> Health {
    if admit(h, now_ms) != Admit::Probe {
        return *h;
    }
    Health {
        state: State::HalfOpen,
        // A probe granted again after its predecessor's lease ran out keeps the half-open
        // spell's start.
        since_ms: if h.state == State::HalfOpen {
            h.since_ms
        } else {
            now_ms
        },
        until_ms: 0,
        probe: Some(Probe {
            delivery_id,
            token,
            until_ms: lease_until_ms,
        }),
        ..*h
    }
}

/// An operator enables the endpoint: closed now, the spell's held time added, trips and probe
/// forgotten, the window cleared. Already closed: unchanged (and the window kept).
// Takes the window, which the plan's `enable(h, now)` does not: PostgreSQL's nodes keep
// counting stragglers into their windows while the breaker is not closed, and a breaker
// coming back to closed over those would re-open on the first result. Every way into closed
// clears the window, as the probe's recovery does.
pub fn enable(h: &Health, w: &mut Window, now_ms: u64) -> Health {
    if h.state == State::Closed {
        return *h;
    }
    w.clear();
    h.closing(now_ms)
}

/// The endpoint's held-time clock at `now_ms`: its total time not closed, the current spell
/// included. Saturating (a clock stepping back charges nothing).
pub fn held_at(h: &Health, now_ms: u64) -> u64 {
    let current = h.held_from_ms.map_or(0, |from| now_ms.saturating_sub(from));
    h.held_total_ms.saturating_add(current)
}

/// Where a delivery's `max_age` counts from: its cycle's start, moved later by the held time
/// the endpoint accrued since (`held_now` − `cycle_held_ms`, the clock now and at the cycle's
/// start), so time held back by the breaker is not charged. Saturating.
pub fn effective_cycle_start(cycle_started_ms: u64, cycle_held_ms: u64, held_now: u64) -> u64 {
    cycle_started_ms.saturating_add(held_now.saturating_sub(cycle_held_ms))
}

/// At a redb store's open, every lease was taken back, the probe's too: a half-open breaker
/// becomes open with its cool-down over, so the next claim probes again. Anything else is
/// unchanged.
pub fn recovered_at_open(h: &Health, now_ms: u64) -> Health {
    if h.state != State::HalfOpen {
        return *h;
    }
    Health {
        state: State::Open,
        since_ms: now_ms,
        until_ms: now_ms,
        probe: None,
        ..*h
    }
}

/// The operational event a transition reports (`model::ops`), about the endpoint of `d`, the
/// delivery whose result made it: with what the breaker knew then (`before` the result,
/// `after` it, its window).
pub fn report(
    before: &Health,
    after: &Health,
    transition: Option<Transition>,
    window: &Window,
    policy: &HealthPolicy,
    d: &crate::model::event::Delivery,
    now_ms: u64,
) -> Option<crate::model::ops::OpsEvent> {
    use crate::model::ops::OpsEvent;
    let endpoint = d.endpoint_id.clone();
    Some(match transition? {
        Transition::Failing => {
            let p = policy.breaker?;
            let (attempts, failures) = window.totals(&p, now_ms);
            OpsEvent::Failing {
                endpoint,
                attempts,
                failures,
                window_ms: p.window_ms,
                cool_down_ms: cool_down(&p, 1),
                last_status_code: d.last_status_code,
                last_error: d.last_error.clone(),
            }
        }
        Transition::Recovered => OpsEvent::Recovered {
            endpoint,
            // Closing forgets when the spell began: the event says it from before.
            failing_since_ms: before.failing_since_ms,
        },
        Transition::Disabled => OpsEvent::Disabled {
            endpoint,
            failing_since_ms: after.failing_since_ms,
            disable_after_ms: policy.disable_after_ms.unwrap_or(0),
        },
    })
}

#[cfg(test)]
mod tests;
