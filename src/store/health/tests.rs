//! The breaker's rules, one test per rule, then properties over random sequences.

use super::*;
use proptest::prelude::*;

/// Buckets of 6 s; opens at 4 attempts and half of them failed; 1 s cool-down; disabled after
/// 10 s of failing.
fn breaker() -> BreakerPolicy {
    BreakerPolicy {
        window_ms: 60_000,
        min_attempts: 4,
        failure_rate: 0.5,
        cool_down_ms: 1_000,
    }
}

fn policy() -> HealthPolicy {
    HealthPolicy {
        breaker: Some(breaker()),
        disable_after_ms: Some(10_000),
    }
}

fn id(n: u128) -> DeliveryId {
    DeliveryId(n)
}

/// Feeds results (`true` = failed) at `now`, each from its own delivery, returning the last
/// answer.
fn feed(h: &mut Health, w: &mut Window, now: u64, results: &[bool]) -> Option<Option<Transition>> {
    let mut last = None;
    for (n, &failed) in results.iter().enumerate() {
        let (next, t) = on_result(h, w, &policy(), now, id(1_000 + n as u128), None, failed);
        *h = next;
        last = Some(t);
    }
    last
}

/// A breaker opened at `at` (four failures), with its window.
fn opened(at: u64) -> (Health, Window) {
    let (mut h, mut w) = (Health::closed(), Window::default());
    feed(&mut h, &mut w, at, &[true; 4]);
    assert_eq!(h.state, State::Open);
    (h, w)
}

/// A breaker opened at `at`, its cool-down over at `probe_at`, the probe (delivery 7, token
/// 70) out until `probe_at + 500`.
fn probing(at: u64, probe_at: u64) -> (Health, Window) {
    let (h, w) = opened(at);
    assert_eq!(admit(&h, probe_at), Admit::Probe);
    let h = grant_probe(&h, id(7), 70, probe_at + 500, probe_at);
    assert!(h.is_probe(id(7), Some(70)));
    (h, w)
}

#[test]
fn opens_exactly_at_min_attempts() {
    let (mut h, mut w) = (Health::closed(), Window::default());
    assert_eq!(feed(&mut h, &mut w, 5_000, &[true; 3]), Some(None));
    assert_eq!(h, Health::closed(), "three failures are below min_attempts");
    let (h, t) = on_result(&h, &mut w, &policy(), 5_000, id(9), None, true);
    assert_eq!(t, Some(Transition::Failing));
    assert_eq!(
        h,
        Health {
            state: State::Open,
            since_ms: 5_000,
            until_ms: 6_000,
            trips: 1,
            failing_since_ms: Some(5_000),
            held_total_ms: 0,
            held_from_ms: Some(5_000),
            probe: None,
        }
    );
}

#[test]
fn opens_exactly_at_the_rate_not_below() {
    let (mut h, mut w) = (Health::closed(), Window::default());
    // 1/4, then 2/5: below half.
    assert_eq!(
        feed(&mut h, &mut w, 0, &[false, false, false, true, true]),
        Some(None)
    );
    assert_eq!(h.state, State::Closed);
    assert_eq!(w.totals(&breaker(), 0), (5, 2));
    // 3/6: exactly half.
    assert_eq!(
        feed(&mut h, &mut w, 0, &[true]),
        Some(Some(Transition::Failing))
    );
    assert_eq!(h.state, State::Open);
}

#[test]
fn a_success_never_opens_it() {
    let (mut h, mut w) = (Health::closed(), Window::default());
    // 3/4 failed once the success is in, but it is a success.
    assert_eq!(
        feed(&mut h, &mut w, 0, &[true, true, true, false]),
        Some(None)
    );
    assert_eq!(h.state, State::Closed);
    assert_eq!(
        feed(&mut h, &mut w, 0, &[true]),
        Some(Some(Transition::Failing))
    );
}

#[test]
fn stale_buckets_are_not_counted() {
    let p = breaker();
    let mut w = Window::default();
    for _ in 0..3 {
        w.add(&p, 5_999, true);
    }
    // The bucket [0, 6000) is in the window while the current one starts at most 9 buckets
    // later.
    assert_eq!(w.totals(&p, 59_999), (3, 3));
    assert_eq!(w.totals(&p, 60_000), (0, 0));

    // So three old failures and a new one (in another slot) do not open it, though all
    // four are stored.
    let mut h = Health::closed();
    assert_eq!(feed(&mut h, &mut w, 66_000, &[true]), Some(None));
    assert_eq!(w.buckets[0].attempts + w.buckets[1].attempts, 4);
    assert_eq!(h.state, State::Closed);
    assert_eq!(feed(&mut h, &mut w, 66_001, &[true; 2]), Some(None));
    assert_eq!(
        feed(&mut h, &mut w, 66_002, &[true]),
        Some(Some(Transition::Failing))
    );
}

#[test]
fn a_slot_is_reused_for_its_next_bucket_and_late_results_are_dropped() {
    let p = breaker();
    let mut w = Window::default();
    w.add(&p, 1_000, true);
    // 60 s later lands in the same slot: the old bucket is replaced, not added to.
    w.add(&p, 61_000, false);
    assert_eq!(
        w.buckets[0],
        Bucket {
            start_ms: 60_000,
            attempts: 1,
            failures: 0
        }
    );
    // A result a whole window older than the slot's bucket is not counted.
    w.add(&p, 2_000, true);
    assert_eq!(w.buckets[0].attempts, 1);
    assert_eq!(w.totals(&p, 61_000), (1, 0));
    w.clear();
    assert_eq!(w, Window::default());
}

#[test]
fn merge_sums_buckets_by_start_and_keeps_the_newest_of_a_slot() {
    let p = breaker();
    let (mut a, mut b) = (Window::default(), Window::default());
    a.add(&p, 6_500, true);
    b.add(&p, 7_000, false);
    b.add(&p, 7_000, true);
    // Slot 2: a's bucket at 12 s, b's at 72 s (a whole window newer).
    a.add(&p, 12_000, true);
    b.add(&p, 72_000, false);
    let m = Window::merge(&[a, b]);
    assert_eq!(
        m.buckets[1],
        Bucket {
            start_ms: 6_000,
            attempts: 3,
            failures: 2
        }
    );
    assert_eq!(
        m.buckets[2],
        Bucket {
            start_ms: 72_000,
            attempts: 1,
            failures: 0
        }
    );
    assert_eq!(m.totals(&p, 72_000), (1, 0));
    assert_eq!(Window::merge(&[]), Window::default());
}

#[test]
fn one_probe_per_cool_down() {
    let (h, _) = opened(5_000);
    assert_eq!(
        admit(&h, 5_999),
        Admit::None {
            until_ms: Some(6_000)
        }
    );
    // Before `until` nothing is granted, whatever the caller asks.
    assert_eq!(grant_probe(&h, id(7), 70, 6_500, 5_999), h);
    assert_eq!(admit(&h, 6_000), Admit::Probe);
    let h = grant_probe(&h, id(7), 70, 6_500, 6_000);
    assert_eq!(h.state, State::HalfOpen);
    assert_eq!(h.since_ms, 6_000);
    assert_eq!(
        admit(&h, 6_499),
        Admit::None {
            until_ms: Some(6_500)
        }
    );
    // A second claim that read the state before the grant gets nothing.
    let again = grant_probe(&h, id(8), 80, 7_000, 6_499);
    assert_eq!(again, h);
    assert!(!again.is_probe(id(8), Some(80)));
}

#[test]
fn a_probe_whose_lease_ran_out_is_granted_again() {
    let (h, _) = probing(0, 1_000);
    assert_eq!(admit(&h, 1_500), Admit::Probe);
    let h2 = grant_probe(&h, id(8), 80, 2_000, 1_500);
    assert!(h2.is_probe(id(8), Some(80)));
    assert!(!h2.is_probe(id(7), Some(70)));
    assert_eq!(h2.since_ms, 1_000, "the half-open spell goes on");
}

#[test]
fn the_probe_delivered_closes_it() {
    let (h, mut w) = probing(5_000, 6_000);
    assert_ne!(w, Window::default());
    let (h, t) = on_result(&h, &mut w, &policy(), 6_200, id(7), Some(70), false);
    assert_eq!(t, Some(Transition::Recovered));
    assert_eq!(
        h,
        Health {
            state: State::Closed,
            since_ms: 6_200,
            until_ms: 0,
            trips: 0,
            failing_since_ms: None,
            held_total_ms: 1_200,
            held_from_ms: None,
            probe: None,
        }
    );
    assert_eq!(w, Window::default(), "the window starts over");
    assert_eq!(admit(&h, 6_200), Admit::All);
}

#[test]
fn a_failed_probe_reopens_with_the_backoff_doubled_and_no_second_failing() {
    let (h, mut w) = probing(0, 1_000);
    let (h, t) = on_result(&h, &mut w, &policy(), 1_100, id(7), Some(70), true);
    assert_eq!(t, None);
    assert_eq!((h.state, h.trips, h.until_ms), (State::Open, 2, 3_100));
    assert_eq!(h.failing_since_ms, Some(0));
    assert_eq!(h.held_from_ms, Some(0));
    assert_eq!(h.probe, None);
    let h = grant_probe(&h, id(8), 80, 3_600, 3_100);
    let (h, t) = on_result(&h, &mut w, &policy(), 3_200, id(8), Some(80), true);
    assert_eq!((h.trips, h.until_ms, t), (3, 7_200, None));
}

#[test]
fn backoff_doubles_then_caps() {
    let p = BreakerPolicy {
        cool_down_ms: 30_000,
        ..breaker()
    };
    let got: Vec<u64> = (0..=7).map(|t| cool_down(&p, t)).collect();
    assert_eq!(
        got,
        [
            30_000, 30_000, 60_000, 120_000, 240_000, 480_000, 600_000, 600_000
        ]
    );
    assert_eq!(cool_down(&p, u32::MAX), MAX_COOL_DOWN_MS);
    // A cool-down above the cap is its own cap.
    let long = BreakerPolicy {
        cool_down_ms: 20 * 60_000,
        ..breaker()
    };
    assert_eq!(cool_down(&long, 1), 20 * 60_000);
    assert_eq!(cool_down(&long, 9), 20 * 60_000);
    let huge = BreakerPolicy {
        cool_down_ms: u64::MAX / 2,
        ..breaker()
    };
    assert_eq!(cool_down(&huge, 3), u64::MAX / 2, "saturates, then caps");
}

#[test]
fn disabled_once_failing_for_disable_after() {
    let (h, mut w) = probing(0, 1_000);
    // The probe failing 9,999 ms into the spell: re-opened.
    let (reopened, t) = on_result(&h, &mut w, &policy(), 9_999, id(7), Some(70), true);
    assert_eq!((reopened.state, t), (State::Open, None));
    // 10,000 ms: disabled.
    let (h, t) = on_result(&h, &mut w, &policy(), 10_000, id(7), Some(70), true);
    assert_eq!(t, Some(Transition::Disabled));
    assert_eq!(h.state, State::Disabled);
    assert_eq!(h.since_ms, 10_000);
    assert_eq!(h.probe, None);
    assert_eq!(h.failing_since_ms, Some(0));
    assert_eq!(held_at(&h, 12_000), 12_000, "still held");
    assert_eq!(admit(&h, u64::MAX), Admit::None { until_ms: None });
    // Nothing changes it but an operator.
    for failed in [true, false] {
        assert_eq!(
            on_result(&h, &mut w, &policy(), 20_000, id(8), Some(80), failed),
            (h, None)
        );
    }
    assert_eq!(grant_probe(&h, id(9), 90, 30_000, 20_000), h);
}

#[test]
fn never_disabled_without_disable_after() {
    let keep = HealthPolicy {
        disable_after_ms: None,
        ..policy()
    };
    let (h, mut w) = probing(0, 1_000);
    let (h, t) = on_result(&h, &mut w, &keep, 1_000_000_000, id(7), Some(70), true);
    assert_eq!((h.state, t), (State::Open, None));
}

#[test]
fn enable_closes_from_any_state_and_is_idempotent() {
    let (h, mut w) = opened(1_000);
    let enabled = enable(&h, &mut w, 4_000);
    assert_eq!(
        enabled,
        Health {
            state: State::Closed,
            since_ms: 4_000,
            until_ms: 0,
            trips: 0,
            failing_since_ms: None,
            held_total_ms: 3_000,
            held_from_ms: None,
            probe: None,
        }
    );
    assert_eq!(w, Window::default());

    // Closed: nothing changes, the window included.
    w.add(&breaker(), 5_000, true);
    let kept = w;
    assert_eq!(enable(&enabled, &mut w, 9_000), enabled);
    assert_eq!(w, kept);

    // From disabled (and with held time already banked).
    let disabled = Health {
        state: State::Disabled,
        since_ms: 50_000,
        held_total_ms: 3_000,
        held_from_ms: Some(40_000),
        failing_since_ms: Some(40_000),
        trips: 5,
        ..Health::closed()
    };
    let h = enable(&disabled, &mut w, 60_000);
    assert_eq!(
        (h.state, h.held_total_ms, h.trips),
        (State::Closed, 23_000, 0)
    );
    assert_eq!(w, Window::default());
}

#[test]
fn stragglers_change_nothing() {
    // Open: results of what was in flight when it opened.
    let (h, mut w) = opened(0);
    let before = w;
    for failed in [true, false] {
        assert_eq!(
            on_result(&h, &mut w, &policy(), 100, id(3), Some(30), failed),
            (h, None)
        );
    }
    assert_eq!(w, before, "not counted either");

    // Half-open: another delivery, or the probe's delivery under a lease taken over.
    let (h, mut w) = probing(0, 1_000);
    for (d, token) in [(id(3), Some(70)), (id(7), Some(71))] {
        for failed in [true, false] {
            assert_eq!(
                on_result(&h, &mut w, &policy(), 1_100, d, token, failed),
                (h, None)
            );
        }
    }
    // An unfenced result of the probe's delivery is the probe's.
    let (h, t) = on_result(&h, &mut w, &policy(), 1_100, id(7), None, false);
    assert_eq!((h.state, t), (State::Closed, Some(Transition::Recovered)));
}

#[test]
fn breaker_off_changes_nothing() {
    let (mut h, mut w) = (Health::closed(), Window::default());
    for n in 0..100 {
        let (next, t) = on_result(&h, &mut w, &HealthPolicy::OFF, n, id(n.into()), None, true);
        assert_eq!((next, t), (Health::closed(), None));
        h = next;
    }
    assert_eq!(w, Window::default());
    let (h, mut w) = probing(0, 1_000);
    assert_eq!(
        on_result(
            &h,
            &mut w,
            &HealthPolicy::OFF,
            1_100,
            id(7),
            Some(70),
            false
        ),
        (h, None)
    );
}

#[test]
fn held_time_and_the_effective_cycle_start() {
    let (h, mut w) = opened(1_000);
    assert_eq!(held_at(&Health::closed(), 5_000), 0);
    assert_eq!(held_at(&h, 4_000), 3_000);
    assert_eq!(held_at(&h, 500), 0, "a clock stepping back charges nothing");
    let closed = enable(&h, &mut w, 4_000);
    assert_eq!(
        held_at(&closed, 100_000),
        3_000,
        "the clock stops when closed"
    );

    // A delivery whose cycle began at 2 s, when the clock read 1 s of held time: 3 s held
    // since moves its start to 5 s.
    assert_eq!(effective_cycle_start(2_000, 1_000, 4_000), 5_000);
    assert_eq!(effective_cycle_start(2_000, 1_000, 1_000), 2_000);
    assert_eq!(effective_cycle_start(2_000, 9_000, 1_000), 2_000);
    assert_eq!(effective_cycle_start(u64::MAX, 0, 5), u64::MAX);
}

#[test]
fn a_half_open_breaker_recovered_at_open_probes_again() {
    let (h, _) = probing(0, 1_000);
    let h = recovered_at_open(&h, 1_200);
    assert_eq!((h.state, h.until_ms, h.probe), (State::Open, 1_200, None));
    assert_eq!((h.trips, h.failing_since_ms), (1, Some(0)));
    assert_eq!(admit(&h, 1_200), Admit::Probe);
    let (open, _) = opened(0);
    assert_eq!(recovered_at_open(&open, 500), open);
    assert_eq!(recovered_at_open(&Health::closed(), 500), Health::closed());
}

#[test]
fn states_have_stable_names_and_codes() {
    let names: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(names, ["closed", "open", "half_open", "disabled"]);
    let codes: Vec<u8> = State::ALL.iter().map(|s| s.code()).collect();
    assert_eq!(codes, [0, 1, 2, 3]);
    for s in State::ALL {
        assert_eq!(s.as_str().parse::<State>(), Ok(s));
        assert_eq!(State::from_code(s.code()), Some(s));
        assert_eq!(s.to_string(), s.as_str());
    }
    assert_eq!(
        "halfopen".parse::<State>(),
        Err(UnknownState("halfopen".into()))
    );
    assert_eq!(State::from_code(4), None);
    assert_eq!(Health::default(), Health::closed());
}

/// The bucket start of a time under [`breaker`].
fn start_of(t: u64) -> u64 {
    t - t % bucket_ms(&breaker())
}

proptest! {
    /// Whatever the order of results, the totals count only results whose bucket is in the
    /// window ending at `now`; with time moving forward, exactly those.
    #[test]
    fn stale_buckets_never_count(
        steps in prop::collection::vec((0u64..20_000, any::<bool>(), any::<bool>()), 1..200),
        back in 0u64..200_000,
    ) {
        let p = breaker();
        let (mut forward, mut shuffled) = (Window::default(), Window::default());
        let mut now = 0u64;
        let mut seen = Vec::new();
        for &(dt, failed, step_back) in &steps {
            now += dt;
            forward.add(&p, now, failed);
            // The same results, some at a time stepped back.
            let at = if step_back { now.saturating_sub(back) } else { now };
            shuffled.add(&p, at, failed);
            seen.push((now, at, failed));
        }
        let oldest = start_of(now).saturating_sub(9 * bucket_ms(&p));
        type Seen = (u64, u64, bool);
        let count = |pick: &dyn Fn(&Seen) -> u64| {
            let live: Vec<_> = seen.iter().filter(|e| start_of(pick(e)) >= oldest).collect();
            (live.len() as u32, live.iter().filter(|e| e.2).count() as u32)
        };
        prop_assert_eq!(forward.totals(&p, now), count(&|e: &Seen| e.0));
        let (a, f) = shuffled.totals(&p, now);
        let (ra, rf) = count(&|e: &Seen| e.1);
        prop_assert!(a <= ra && f <= rf, "({a}, {f}) counted of ({ra}, {rf}) in the window");
    }

    /// Nodes' windows merged are the window of all their results.
    #[test]
    fn merged_windows_are_the_window_of_all_results(
        steps in prop::collection::vec((0u64..20_000, any::<bool>(), 0usize..3), 0..200),
    ) {
        let p = breaker();
        let mut all = Window::default();
        let mut nodes = [Window::default(); 3];
        let mut now = 0;
        for (dt, failed, node) in steps {
            now += dt;
            all.add(&p, now, failed);
            nodes[node].add(&p, now, failed);
        }
        prop_assert_eq!(Window::merge(&nodes), all);
    }

    /// Claims that grant what `admit` allows never have two probes out at once: a probe is
    /// admitted only from the cool-down's end, and again only once the last one's lease ran
    /// out, whatever stragglers come back in between.
    #[test]
    fn at_most_one_probe_per_lease(
        opened_at in 0u64..10_000,
        lease in 1u64..5_000,
        steps in prop::collection::vec((0u64..3_000, any::<bool>(), any::<bool>()), 1..100),
    ) {
        let (mut h, mut w) = opened(opened_at);
        let mut now = opened_at;
        let mut last_grant: Option<u64> = None;
        for (n, (dt, straggler, failed)) in steps.into_iter().enumerate() {
            now += dt;
            if straggler {
                let (next, t) = on_result(&h, &mut w, &policy(), now, id(1), Some(1), failed);
                prop_assert_eq!((next, t), (h, None));
                continue;
            }
            if admit(&h, now) == Admit::Probe {
                prop_assert!(now >= h.until_ms || h.state == State::HalfOpen);
                if let Some(at) = last_grant {
                    prop_assert!(now >= at + lease, "second probe at {now}, first at {at}");
                }
                let token = 100 + n as u64;
                h = grant_probe(&h, id(50 + n as u128), token, now + lease, now);
                prop_assert!(h.is_probe(id(50 + n as u128), Some(token)));
                last_grant = Some(now);
            } else {
                // A stale claim's grant is refused.
                prop_assert_eq!(grant_probe(&h, id(999), 999, now + lease, now), h);
            }
        }
    }

    /// The backoff never shrinks as trips grow, starts at the policy's cool-down and never
    /// passes the cap.
    #[test]
    fn cool_down_is_monotone_and_capped(cd in 1u64..=u64::MAX, trips: u32) {
        let p = BreakerPolicy { cool_down_ms: cd, ..breaker() };
        let cap = cd.max(MAX_COOL_DOWN_MS);
        prop_assert_eq!(cool_down(&p, 1), cd);
        prop_assert!(cool_down(&p, trips) <= cool_down(&p, trips.saturating_add(1)));
        prop_assert!(cool_down(&p, trips) >= cd);
        prop_assert!(cool_down(&p, trips) <= cap);
    }
}

#[test]
fn a_window_forgets_what_was_counted_before_a_close() {
    let p = BreakerPolicy::DEFAULT;
    let mut w = Window::default();
    w.add(&p, 1_000, true);
    w.add(&p, 30_000, true);
    w.forget_before(20_000);
    assert_eq!(w.totals(&p, 31_000), (1, 1), "only what came after");
}
