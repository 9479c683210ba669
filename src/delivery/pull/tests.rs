use super::*;
use crate::model::RetryPolicy;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base: Duration::from_secs(5),
        max_delay: Duration::from_secs(60),
        max_age: Duration::from_secs(3600),
    }
}

#[test]
fn a_receipt_reads_back_as_written_and_nothing_else_reads() {
    let r = Receipt {
        delivery_id: DeliveryId(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        token: 0xdead_beef_0000_0001,
    };
    let text = r.encode();
    assert!(text.ends_with(".deadbeef00000001"), "{text}");
    assert_eq!(Receipt::parse(&text), Some(r));
    for bad in [
        "",
        ".",
        "x.deadbeef00000001",
        &text[..text.len() - 1],
        &format!("{text}0"),
        &text.replace(".dead", ".zead"),
        &text.replace('.', ""),
    ] {
        assert_eq!(Receipt::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn a_nack_with_a_delay_is_due_exactly_then() {
    let mut rng = StdRng::seed_from_u64(7);
    let next = after_nack(
        &policy(),
        1,
        Some(Duration::from_secs(5)),
        "no",
        (1_000, 0),
        &mut rng,
    );
    assert_eq!(next, Next::RetryAt(6_000));
}

#[test]
fn a_nack_without_a_delay_takes_the_backoff() {
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..50 {
        match after_nack(&policy(), 1, None, "no", (1_000, 0), &mut rng) {
            // The first backoff's ceiling is `base`.
            Next::RetryAt(at) => assert!((1_000..=6_000).contains(&at), "{at}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn the_last_attempt_nacked_is_dead_with_its_reason_whatever_the_delay() {
    let mut rng = StdRng::seed_from_u64(7);
    for delay in [None, Some(Duration::ZERO), Some(Duration::from_secs(1))] {
        match after_nack(
            &policy(),
            3,
            delay,
            "nacked: bad input",
            (1_000, 0),
            &mut rng,
        ) {
            Next::Dead(reason) => {
                assert!(reason.contains("3 attempts"), "{reason}");
                assert!(reason.contains("nacked: bad input"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_delay_past_max_age_is_dead() {
    let mut rng = StdRng::seed_from_u64(7);
    let next = after_nack(
        &policy(),
        1,
        Some(Duration::from_secs(3600)),
        "no",
        (1_000, 0),
        &mut rng,
    );
    assert!(
        matches!(next, Next::Dead(ref r) if r.contains("max_age")),
        "{next:?}"
    );
}
