use super::*;

const T0: u64 = 1_800_000_000_000; // a whole hour, so minute and hour boundaries line up
const MIN: u64 = MINUTE_MS;

fn failed(w: &mut Window, now: u64, endpoint: &str) {
    w.attempt(now, endpoint, "5xx", 40, Settled::Retried);
}

#[test]
fn counts_land_in_their_minute_and_the_current_minute_is_last() {
    let mut w = Window::new(T0);
    w.received(T0 + 5, "orders", "accepted");
    w.received(T0 + 10 * MIN, "orders", "accepted");
    w.received(T0 + 10 * MIN + 59_999, "orders", "accepted");
    w.received(T0 + 10 * MIN, "orders", "duplicate");
    w.attempt(
        T0 + 10 * MIN,
        "r",
        "2xx",
        12,
        Settled::Delivered { end_to_end_ms: 30 },
    );
    let a = w.activity(T0 + 10 * MIN + 1);
    assert_eq!(a.minutes.len(), MINUTES);
    assert_eq!(a.first_minute_ms, T0 + 10 * MIN - 59 * MIN);
    let last = a.minutes[MINUTES - 1];
    assert_eq!(
        last,
        MinuteTotals {
            accepted: 2,
            attempts: 1,
            delivered: 1,
            dead: 0
        }
    );
    assert_eq!(a.minutes[MINUTES - 11].accepted, 1, "minute 0");
    assert_eq!(a.minutes.iter().map(|m| m.accepted).sum::<u64>(), 3);
}

#[test]
fn minutes_older_than_an_hour_drop_out_even_across_a_long_gap() {
    let mut w = Window::new(T0);
    w.received(T0, "orders", "accepted");
    failed(&mut w, T0, "r");
    // 59 minutes on, the first minute is still the oldest shown.
    let a = w.activity(T0 + 59 * MIN);
    assert_eq!(a.minutes[0].accepted, 1);
    assert_eq!(a.endpoints["r"].stats.attempts, 1);
    // One more minute and it is gone; so after a gap of many laps.
    for later in [T0 + 60 * MIN, T0 + 61 * MIN, T0 + 600 * MIN + 7] {
        let a = w.activity(later);
        assert!(a.minutes.iter().all(|m| *m == MinuteTotals::default()));
        assert!(a.endpoints.is_empty(), "{:?}", a.endpoints);
    }
    // A bucket reused a lap later starts from zero.
    w.received(T0 + 60 * MIN, "orders", "accepted");
    let a = w.activity(T0 + 60 * MIN);
    assert_eq!(a.minutes.iter().map(|m| m.accepted).sum::<u64>(), 1);
}

#[test]
fn a_clock_going_backwards_stands_still_instead() {
    let mut w = Window::new(T0);
    w.received(T0 + 90 * MIN, "orders", "accepted");
    // Back by more than an hour: counted in the latest minute, not in a reused bucket.
    w.received(T0 + 5 * MIN, "orders", "accepted");
    let a = w.activity(T0 + 5 * MIN);
    assert_eq!(a.minutes[MINUTES - 1].accepted, 2);
    assert_eq!(a.first_minute_ms, T0 + 31 * MIN);
    let day = w.inbound(T0);
    assert_eq!(day.per_source["orders"]["accepted"], 2);
}

#[test]
fn inbound_outcomes_add_up_by_source_and_code_over_a_day() {
    let mut w = Window::new(T0);
    w.received(T0, "orders", "accepted");
    w.received(T0 + 3 * HOUR_MS, "orders", "bad_signature");
    w.received(T0 + 3 * HOUR_MS, "orders", "bad_signature");
    w.received(T0 + 23 * HOUR_MS, UNKNOWN, "unknown_source");
    let day = w.inbound(T0 + 23 * HOUR_MS + 1);
    assert_eq!(day.per_source["orders"]["accepted"], 1);
    assert_eq!(day.per_source["orders"]["bad_signature"], 2);
    assert_eq!(day.per_source[UNKNOWN]["unknown_source"], 1);
    // The first hour leaves the day.
    let day = w.inbound(T0 + 24 * HOUR_MS);
    assert!(!day.per_source["orders"].contains_key("accepted"));
    assert_eq!(day.per_source["orders"]["bad_signature"], 2);
    let day = w.inbound(T0 + 48 * HOUR_MS);
    assert!(day.per_source.is_empty());
}

const UNKNOWN: &str = crate::telemetry::UNKNOWN_SOURCE;

#[test]
fn names_and_codes_beyond_the_caps_count_as_other() {
    let mut w = Window::new(T0);
    for i in 0..MAX_NAMES + 10 {
        w.received(T0, &format!("s{i}"), "accepted");
    }
    for i in 0..MAX_CODES + 3 {
        w.received(T0, "s0", &format!("code{i}"));
    }
    let day = w.inbound(T0);
    assert_eq!(day.per_source.len(), MAX_NAMES + 1);
    assert_eq!(day.per_source[OTHER]["accepted"], 10);
    // "accepted" took one of the code slots.
    assert_eq!(day.per_source["s0"][OTHER], 4);
    assert_eq!(w.sources.len(), MAX_NAMES + 1);
    // Sources past their cap do not take an endpoint's place: it is still told apart.
    w.attempt(T0, "r", "5xx", 10, Settled::Retried);
    assert_eq!(w.activity(T0).endpoints["r"].stats.attempts, 1);
}

#[test]
fn endpoint_stats_give_rates_latency_and_streaks() {
    let mut w = Window::new(T0);
    for ms in [10, 20, 30, 40, 50, 60, 70, 80, 90, 5000] {
        w.attempt(T0, "r", "2xx", ms, Settled::Delivered { end_to_end_ms: 1 });
    }
    failed(&mut w, T0 + MIN, "r");
    failed(&mut w, T0 + MIN, "r");
    w.attempt(T0 + MIN, "r", "timeout", 30_000, Settled::Dead);
    let a = w.activity(T0 + MIN);
    let r = &a.endpoints["r"];
    assert_eq!(r.stats.attempts, 13);
    assert_eq!(r.stats.succeeded, 10);
    assert_eq!(r.stats.delivered, 10);
    assert_eq!(r.stats.dead, 1);
    assert_eq!(r.failed_in_a_row, 3);
    assert_eq!(r.stats.success_rate(), Some(10.0 / 13.0));
    assert_eq!(r.stats.mean_ms(), Some((450 + 5000 + 80 + 30_000) / 13));
    // The median (7th of 13) took 50 ms: within the 64 ms bucket.
    assert_eq!(r.stats.quantile_bound_ms(0.5), Some(Some(64)));
    // The 95th percentile (13th) took 30 s.
    assert_eq!(r.stats.quantile_bound_ms(0.95), Some(Some(32_768)));
    assert_eq!(a.minutes[MINUTES - 2].delivered, 10);
    assert_eq!(a.minutes[MINUTES - 1].dead, 1);
    // A success ends the streak.
    w.attempt(
        T0 + MIN,
        "r",
        "2xx",
        1,
        Settled::Delivered { end_to_end_ms: 1 },
    );
    assert_eq!(w.activity(T0 + MIN).endpoints["r"].failed_in_a_row, 0);
}

#[test]
fn a_streak_older_than_the_hour_is_forgotten() {
    let mut w = Window::new(T0);
    for _ in 0..5 {
        failed(&mut w, T0, "r");
    }
    assert_eq!(w.activity(T0 + 59 * MIN).endpoints["r"].failed_in_a_row, 5);
    assert!(!w.activity(T0 + 60 * MIN).endpoints.contains_key("r"));
}

#[test]
fn latency_buckets_and_quantiles_at_the_edges() {
    assert_eq!(latency_bucket(0), 0);
    assert_eq!(latency_bucket(1), 0);
    assert_eq!(latency_bucket(2), 1);
    assert_eq!(latency_bucket(3), 2);
    assert_eq!(latency_bucket(32_768), 15);
    assert_eq!(latency_bucket(32_769), 16);
    let empty = EndpointStats::default();
    assert_eq!(empty.quantile_bound_ms(0.95), None);
    assert_eq!(empty.success_rate(), None);
    let mut slow = EndpointStats {
        attempts: 1,
        ..EndpointStats::default()
    };
    slow.latency[16] = 1;
    assert_eq!(slow.quantile_bound_ms(0.5), Some(None));
}
