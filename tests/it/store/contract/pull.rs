//! Pull consumers' leases (issue 19): taken once, committed before the claim answers, fenced
//! strictly by their token, prolonged only under it, marked when they ran out, and kept across
//! a restart.

use hookgate::store::{ClaimLimits, DueDelivery};

use super::*;

/// A consumer's claim of up to `limit` of `endpoint`'s due deliveries, leased for `lease_ms`.
async fn take(f: &Fixture, endpoint: &str, limit: usize, lease_ms: u64) -> Vec<DueDelivery> {
    let now = f.now();
    let limits = ClaimLimits {
        pull: true,
        ..Default::default()
    };
    f.store
        .claim(endpoint, now, limit, HashSet::new(), now + lease_ms, limits)
        .await
        .expect("claim")
        .items
}

/// A consumer's ack (`next` delivered) or nack under `token`.
async fn settle(f: &Fixture, id: DeliveryId, token: u64, next: Next) -> bool {
    let done = f
        .store
        .complete(Completion {
            delivery_id: id,
            lease_token: Some(token),
            attempt: Attempt {
                at_ms: f.now(),
                status_code: None,
                latency_ms: 0,
                error: (next != Next::Delivered).then(|| "nacked".to_string()),
                response_excerpt: Vec::new(),
            },
            next,
            health: None,
            strict: true,
            waited_on: false,
        })
        .await
        .expect("complete");
    !done.stale
}

async fn extend(f: &Fixture, id: DeliveryId, token: u64, until: u64) -> bool {
    let held = vec![Held {
        delivery_id: id,
        lease_token: Some(token),
    }];
    f.store.extend(held, until).await.expect("extend") == [true]
}

fn token(d: &DueDelivery) -> u64 {
    d.lease_token.expect("a consumer's claim gives a token")
}

pub(in crate::store) async fn a_consumers_lease_is_taken_once_and_fenced_by_its_token(
    b: &impl Backend,
) {
    let f = Fixture::open(b).await;
    for _ in 0..3 {
        f.one("p").await;
    }
    let first = take(&f, "p", 2, LEASE_MS).await;
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|d| !d.lease_expired && d.attempts == 0));
    let second = take(&f, "p", 10, LEASE_MS).await;
    assert_eq!(
        second.len(),
        1,
        "what the first consumer holds is not taken again"
    );
    assert_ne!(token(&second[0]), token(&first[0]));
    assert!(take(&f, "p", 10, LEASE_MS).await.is_empty());

    let (a, b2) = (&first[0], &first[1]);
    // Another lease's token changes nothing.
    assert!(!settle(&f, a.delivery_id, token(&second[0]), Next::Delivered).await);
    let d = f.get(a.delivery_id).await;
    assert_eq!((d.status, d.attempts), (Delivering, 0));
    // Its own is applied, once.
    assert!(settle(&f, a.delivery_id, token(a), Next::Delivered).await);
    assert_eq!(f.status(a.delivery_id).await, Delivered);
    assert!(!settle(&f, a.delivery_id, token(a), Next::Delivered).await);
    // A nack counts an attempt and schedules the next; its receipt is then spent.
    assert!(settle(&f, b2.delivery_id, token(b2), Next::RetryAt(T0 + 5_000)).await);
    let d = f.get(b2.delivery_id).await;
    assert_eq!((d.status, d.attempts), (Retrying, 1));
    assert!(!settle(&f, b2.delivery_id, token(b2), Next::Delivered).await);
    assert_eq!(f.status(b2.delivery_id).await, Retrying);
    f.clock.set(T0 + 5_000);
    let again = take(&f, "p", 10, LEASE_MS).await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].delivery_id, again[0].attempts),
        (b2.delivery_id, 1)
    );
    assert!(!again[0].lease_expired, "nacked, not run out");
}

pub(in crate::store) async fn a_consumers_lease_that_ran_out_is_marked_and_its_receipt_is_stale(
    b: &impl Backend,
) {
    let f = Fixture::open(b).await;
    let id = f.one("p").await;
    let old = token(&take(&f, "p", 1, LEASE_MS).await[0]);
    assert!(take(&f, "p", 1, LEASE_MS).await.is_empty());
    f.clock.set(T0 + LEASE_MS);
    let taken = take(&f, "p", 1, LEASE_MS).await;
    assert_eq!(taken.len(), 1);
    assert!(
        taken[0].lease_expired,
        "due again because its lease ran out"
    );
    let new = token(&taken[0]);
    assert_ne!(new, old);
    assert!(
        !settle(&f, id, old, Next::Delivered).await,
        "the old receipt"
    );
    assert!(!extend(&f, id, old, T0 + 10 * LEASE_MS).await);
    assert!(settle(&f, id, new, Next::RetryAt(T0 + LEASE_MS + 1_000)).await);
    assert!(!extend(&f, id, new, T0 + 10 * LEASE_MS).await, "settled");
    f.clock.set(T0 + LEASE_MS + 1_000);
    let taken = take(&f, "p", 1, LEASE_MS).await;
    assert_eq!((taken[0].attempts, taken[0].lease_expired), (1, false));
}

pub(in crate::store) async fn a_consumers_lease_is_prolonged_only_under_its_token(
    b: &impl Backend,
) {
    let f = Fixture::open(b).await;
    let id = f.one("p").await;
    let t = token(&take(&f, "p", 1, LEASE_MS).await[0]);
    assert!(!extend(&f, id, t ^ 1, T0 + 2 * LEASE_MS).await);
    assert!(extend(&f, id, t, T0 + 2 * LEASE_MS).await);
    f.clock.set(T0 + LEASE_MS + 1);
    assert!(take(&f, "p", 1, LEASE_MS).await.is_empty(), "prolonged");
    assert_eq!(f.status(id).await, Delivering);
    f.clock.set(T0 + 2 * LEASE_MS);
    let taken = take(&f, "p", 1, LEASE_MS).await;
    assert!(taken[0].lease_expired);
}

pub(in crate::store) async fn a_consumers_lease_outlives_a_restart(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let id = f.one("p").await;
    let lane = f.one("push").await;
    let t = token(&take(&f, "p", 1, LEASE_MS).await[0]);
    claim(&f, "push", T0, 1).await;
    let f = f.restart(b, T0 + 1_000).await;
    // A lane's lease is taken back; a consumer's is not: the consumer may still be working.
    assert_eq!(f.status(lane).await, Pending);
    assert_eq!(f.status(id).await, Delivering);
    assert!(take(&f, "p", 1, LEASE_MS).await.is_empty());
    assert!(
        extend(&f, id, t, T0 + 2 * LEASE_MS).await,
        "its receipt still holds"
    );
    assert!(settle(&f, id, t, Next::Delivered).await);
    assert_eq!(f.status(id).await, Delivered);
}
