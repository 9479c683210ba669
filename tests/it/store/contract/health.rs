//! The circuit breaker in the store (`store::health`'s rules, kept by each backend): results
//! move it in the transaction that records them, a claim takes nothing while it is open and
//! one probe after its cool-down, an enable closes it (releasing or discarding what it held),
//! and time held is not charged to `max_age`. Every backend keeps these.

use std::collections::HashSet;

use hookgate::model::event::DeliveryStatus::*;
use hookgate::model::{BreakerPolicy, HealthPolicy};
use hookgate::store::health::{State, Transition};
use hookgate::store::{ClaimLimits, Completed, DISCARDED_ON_ENABLE, DueBatch, DueDelivery};

use super::super::*;

const COOL_DOWN: u64 = 30_000;

/// A breaker that opens at 4 attempts, half of them failed, for 30 s; disabled after
/// `disable_after` of failing, if given.
fn policy(disable_after: Option<u64>) -> HealthPolicy {
    HealthPolicy {
        breaker: Some(BreakerPolicy {
            window_ms: 60_000,
            min_attempts: 4,
            failure_rate: 0.5,
            cool_down_ms: COOL_DOWN,
        }),
        disable_after_ms: disable_after,
    }
}

impl Fixture {
    /// A claim of endpoint `e` with its breaker consulted, at `now`.
    async fn guarded(&self, now: u64, limit: usize) -> DueBatch {
        let limits = ClaimLimits {
            breaker: true,
            ..Default::default()
        };
        let batch = self
            .store
            .claim("e", now, limit, HashSet::new(), now + LEASE_MS, limits)
            .await
            .expect("claim");
        self.store.probe().await.expect("committed");
        batch
    }

    /// Records an attempt of `item` at the clock's time, counted for the breaker.
    async fn counted(&self, item: &DueDelivery, ok: bool, h: &HealthPolicy) -> Completed {
        let next = if ok {
            Next::Delivered
        } else {
            Next::RetryAt(self.now() + 1)
        };
        let c = Completion {
            delivery_id: item.delivery_id,
            lease_token: item.lease_token,
            attempt: Attempt {
                at_ms: self.now(),
                status_code: Some(if ok { 200 } else { 503 }),
                latency_ms: 1,
                error: (!ok).then(|| "HTTP 503".to_string()),
                response_excerpt: Vec::new(),
            },
            next,
            health: Some(*h),
            strict: false,
            waited_on: false,
        };
        self.store.complete(c).await.expect("complete")
    }

    /// Opens `e`'s breaker at the clock's time: four failed attempts.
    async fn trip(&self, h: &HealthPolicy) {
        for _ in 0..4 {
            self.one("e").await;
        }
        let batch = self.guarded(self.now(), 4).await;
        assert_eq!(batch.items.len(), 4);
        let mut transitions = Vec::new();
        let mut last = Completed::default();
        for item in &batch.items {
            last = self.counted(item, false, h).await;
            transitions.extend(last.transition);
        }
        assert_eq!(transitions, [Transition::Failing], "one per spell");
        assert_eq!(last.health.map(|h| h.state), Some(State::Open));
    }
}

pub(in crate::store) async fn a_breaker_opens_at_its_rate_and_then_claims_nothing(
    b: &impl Backend,
) {
    let f = Fixture::open(b).await;
    let h = policy(None);
    // A failure and three successes: under the minimum, then under the rate.
    for _ in 0..4 {
        f.one("e").await;
    }
    let batch = f.guarded(T0, 4).await;
    for (i, item) in batch.items.iter().enumerate() {
        let done = f.counted(item, i > 0, &h).await;
        assert_eq!(done.transition, None);
        assert_eq!(done.health.map(|h| h.state), Some(State::Closed));
    }
    f.clock.set(T0 + 1_000);
    f.trip(&h).await;
    // Open: nothing is read or leased, and the claim says when it may probe.
    let waiting = f.one("e").await;
    let held = f.guarded(T0 + 1_000, 10).await;
    assert!(held.items.is_empty());
    assert_eq!(held.next_due_ms, Some(T0 + 1_000 + COOL_DOWN));
    assert_eq!(held.health.map(|h| h.state), Some(State::Open));
    let d = f.get(waiting).await;
    assert_eq!((d.status, d.attempts), (Pending, 0), "no attempt spent");
    assert!(f.guarded(T0 + COOL_DOWN, 10).await.items.is_empty());
    // Known to the store, as operators see it.
    let healths = f.store.healths().await.expect("healths");
    assert_eq!(healths.len(), 1);
    assert_eq!(
        (healths[0].0.as_str(), healths[0].1.state),
        ("e", State::Open)
    );
    // A claim that does not consult the breaker (it is off) takes everything.
    assert!(!f.due("e", T0 + 1_000).await.is_empty());
}

pub(in crate::store) async fn one_probe_per_cool_down_and_its_result_closes_or_reopens(
    b: &impl Backend,
) {
    let f = Fixture::open(b).await;
    let h = policy(None);
    f.trip(&h).await;
    for _ in 0..3 {
        f.one("e").await;
    }
    // The cool-down is over: one probe, and no second one while it is out.
    let t1 = T0 + COOL_DOWN;
    f.clock.set(t1);
    let probe = f.guarded(t1, 10).await;
    assert_eq!(probe.items.len(), 1);
    assert!(probe.items[0].probe);
    assert_eq!(probe.health.map(|h| h.state), Some(State::HalfOpen));
    assert!(
        f.guarded(t1, 10).await.items.is_empty(),
        "one probe at a time"
    );
    // It fails: open again, for twice as long.
    let done = f.counted(&probe.items[0], false, &h).await;
    assert_eq!(done.transition, None, "the same spell: no second failing");
    let reopened = done.health.expect("counted");
    assert_eq!(
        (reopened.state, reopened.until_ms),
        (State::Open, t1 + 2 * COOL_DOWN)
    );
    assert!(f.guarded(t1 + 2 * COOL_DOWN - 1, 10).await.items.is_empty());
    // The next probe is delivered: closed, and everything due goes again.
    let t2 = t1 + 2 * COOL_DOWN;
    f.clock.set(t2);
    let probe = f.guarded(t2, 10).await;
    assert_eq!(probe.items.len(), 1);
    let done = f.counted(&probe.items[0], true, &h).await;
    assert_eq!(done.transition, Some(Transition::Recovered));
    assert_eq!(done.health.map(|h| h.state), Some(State::Closed));
    let all = f.guarded(t2, 10).await;
    assert!(all.items.len() >= 3, "{:?}", all.items.len());
    assert!(all.items.iter().all(|i| !i.probe));
}

pub(in crate::store) async fn time_held_is_not_charged_to_max_age(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let h = policy(None);
    f.trip(&h).await;
    // Made at T0, as the breaker opened (the others retry from T0 + 1), and held until the
    // probe at T0 + 30 s: its cycle counts from there.
    let waiting = f.one("e").await;
    let t1 = T0 + COOL_DOWN;
    f.clock.set(t1);
    let probe = f.guarded(t1, 10).await;
    let item = probe.items.first().expect("a probe");
    assert_eq!(item.delivery_id, waiting, "the earliest due");
    assert_eq!(item.cycle_started_ms, T0 + COOL_DOWN);
}

pub(in crate::store) async fn a_failing_endpoint_is_disabled_and_holds_what_comes(
    b: &impl Backend,
) {
    let f = Fixture::open(b).await;
    let h = policy(Some(COOL_DOWN));
    f.trip(&h).await;
    // The first probe fails a cool-down after the spell began: disabled.
    let t1 = T0 + COOL_DOWN;
    f.clock.set(t1);
    let probe = f.guarded(t1, 10).await;
    let done = f.counted(&probe.items[0], false, &h).await;
    assert_eq!(done.transition, Some(Transition::Disabled));
    assert_eq!(done.health.map(|h| h.state), Some(State::Disabled));
    // New events are stored and queued, and nothing is sent or dead-lettered.
    let (_, new) = f.accept(f.event(&["e"])).await;
    let held = f.guarded(t1 + 10 * COOL_DOWN, 10).await;
    assert!(held.items.is_empty());
    assert_eq!(held.next_due_ms, None, "until an operator enables it");
    assert_eq!(f.status(new[0]).await, Pending);
    assert!(f.dead_letters().await.is_empty());
    // Enabled: everything it held goes, and the breaker is closed.
    let enabled = f.store.enable("e", false).await.expect("enable");
    assert_eq!((enabled.held, enabled.discarded), (5, 0));
    let all = f.guarded(t1 + 10 * COOL_DOWN, 10).await;
    assert_eq!(all.items.len(), 5);
    assert_eq!(all.health.map(|h| h.state), Some(State::Closed));
    // Enabling a closed endpoint changes nothing.
    let again = f.store.enable("e", true).await.expect("enable");
    assert_eq!((again.held, again.discarded), (0, 0));
}

pub(in crate::store) async fn an_enable_may_discard_what_was_held(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let h = policy(None);
    f.trip(&h).await;
    let other = f.one("other").await;
    let enabled = f.store.enable("e", true).await.expect("enable");
    assert_eq!((enabled.held, enabled.discarded), (4, 4));
    let dead = f.dead_letters().await;
    assert_eq!(dead.len(), 4);
    for id in dead {
        let d = f.get(id).await;
        assert_eq!(
            (d.status, d.last_error.as_deref()),
            (Dead, Some(DISCARDED_ON_ENABLE))
        );
    }
    assert_eq!(f.status(other).await, Pending, "only that endpoint's");
    assert_eq!(
        f.guarded(T0, 10).await.health.map(|h| h.state),
        Some(State::Closed)
    );
}

pub(in crate::store) async fn an_open_breaker_survives_a_restart(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let h = policy(None);
    f.trip(&h).await;
    let f = f.restart(b, T0 + 1).await;
    let held = f.guarded(T0 + 1, 10).await;
    assert!(held.items.is_empty());
    assert_eq!(held.next_due_ms, Some(T0 + COOL_DOWN));
    f.clock.set(T0 + COOL_DOWN);
    assert_eq!(
        f.guarded(T0 + COOL_DOWN, 10).await.items.len(),
        1,
        "one probe"
    );
}

pub(in crate::store) async fn operational_events_are_written_with_the_change_they_report(
    b: &impl Backend,
) {
    let f = Fixture::open(b).await;
    let h = policy(None);
    assert!(f.store.ops_pending(10).await.expect("outbox").is_empty());
    f.trip(&h).await;
    // A death by the retry policy is reported too, with its event's source and type.
    let doomed = f.one("d").await;
    f.kill(doomed).await;
    f.store.enable("e", false).await.expect("enable");
    let rows = f.store.ops_pending(10).await.expect("outbox");
    let seen: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|r| (r.event_type.as_str(), r.subject.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("endpoint.failing", Some("e")),
            ("delivery.dead", Some("d")),
            ("endpoint.enabled", Some("e")),
        ]
    );
    let dead: serde_json::Value = serde_json::from_slice(&rows[1].body).expect("json");
    assert_eq!(dead["data"]["source"], "shop");
    assert_eq!(dead["data"]["event_type"], "order.paid");
    assert_eq!(dead["data"]["delivery_id"], doomed.to_string());
    assert!(
        rows.windows(2).all(|w| w[0].id < w[1].id),
        "in the order written"
    );
    // Published ones leave the outbox.
    f.store
        .ops_done(rows.iter().take(2).map(|r| r.id).collect())
        .await
        .expect("done");
    let left = f.store.ops_pending(10).await.expect("outbox");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event_type, "endpoint.enabled");
}

pub(in crate::store) async fn a_deleted_endpoints_breaker_goes_with_it(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let h = policy(None);
    f.trip(&h).await;
    f.store
        .delete_entry(hookgate::store::EntryKind::Endpoint, "e")
        .await
        .expect("delete");
    assert!(f.store.healths().await.expect("healths").is_empty());
    // One made again with its id starts closed: its work goes at once.
    f.one("e").await;
    let batch = f.guarded(T0, 10).await;
    assert_eq!(batch.items.len(), 1);
    assert_eq!(batch.health.map(|h| h.state), Some(State::Closed));
}
