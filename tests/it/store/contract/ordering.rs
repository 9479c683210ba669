//! Ordered delivery in the store: only the head of each order key is due, the next of a key
//! is promoted in the transaction that ends its head, and a replayed dead letter goes to the
//! back of its key. Every backend keeps these rules (`store::outbox` has them).

use std::collections::{BTreeSet, HashSet};

use hookgate::model::event::DeliveryStatus::*;
use hookgate::store::{EntryKind, Held, Requeue};

use super::super::*;

impl Fixture {
    /// An event for the ordered endpoint `o`, in order key `key`.
    fn ordered(&self, key: &str) -> NewEvent {
        NewEvent {
            order_keys: vec![("o".into(), key.into())],
            ..self.event(&["o"])
        }
    }

    /// Accepts one event for `o` in `key`; its delivery.
    async fn queue(&self, key: &str) -> DeliveryId {
        self.accept(self.ordered(key)).await.1[0]
    }

    async fn due_set(&self, now: u64) -> BTreeSet<DeliveryId> {
        self.due("o", now).await.into_iter().collect()
    }
}

pub(in crate::store) async fn only_each_keys_head_is_due_and_its_end_promotes_the_next(
    b: &impl Backend,
) {
    let f = Fixture::open(b).await;
    let a: Vec<DeliveryId> = [f.queue("a").await, f.queue("a").await, f.queue("a").await].into();
    let b1 = f.queue("b").await;
    let b2 = f.queue("b").await;
    assert_eq!(f.due_set(T0).await, BTreeSet::from([a[0], b1]));
    assert_eq!(f.pending().await, 5, "blocked deliveries are pending too");
    // Places grow in commit order within a key; the waiting ones are blocked and pending.
    let places: Vec<(String, u64)> = {
        let mut v = Vec::new();
        for id in &a {
            v.push(f.get(*id).await.order.expect("ordered"));
        }
        v
    };
    assert!(places.iter().all(|(k, _)| k == "a"));
    assert!(places.windows(2).all(|w| w[0].1 < w[1].1), "{places:?}");
    let waiting = f.get(a[1]).await;
    assert!(waiting.blocked);
    assert_eq!(waiting.status, Pending);
    assert_eq!(
        waiting.next_attempt_ms(),
        None,
        "it waits for its turn, not a time"
    );
    assert!(!f.get(a[0]).await.blocked);
    // The head delivered: the next is due from then, in a fresh cycle; the other key is as
    // it was.
    f.clock.set(T0 + 1_000);
    f.lease(&[a[0]], T0 + LEASE_MS).await;
    f.complete(a[0], 200, Next::Delivered).await;
    let next = f.get(a[1]).await;
    assert!(!next.blocked);
    assert_eq!(
        (next.due_ms, next.cycle_started_ms, next.status),
        (T0 + 1_000, T0 + 1_000, Pending)
    );
    assert_eq!(f.due_set(T0 + 1_000).await, BTreeSet::from([a[1], b1]));
    assert!(f.get(a[2]).await.blocked);
    assert!(f.get(b2).await.blocked);
    assert_eq!(f.pending().await, 4);
    // A key that drained holds nothing: its next event is its head at once.
    f.complete(a[1], 200, Next::Delivered).await;
    f.complete(a[2], 200, Next::Delivered).await;
    let again = f.queue("a").await;
    assert!(!f.get(again).await.blocked);
    assert!(f.due_set(T0 + 1_000).await.contains(&again));
}

pub(in crate::store) async fn a_retrying_head_blocks_only_its_key_until_it_dies(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let a1 = f.queue("a").await;
    let a2 = f.queue("a").await;
    let b1 = f.queue("b").await;
    f.lease(&[a1, b1], T0 + LEASE_MS).await;
    f.complete(a1, 503, Next::RetryAt(T0 + 60_000)).await;
    f.complete(b1, 200, Next::Delivered).await;
    let b2 = f.queue("b").await;
    assert_eq!(f.due_set(T0 + 1).await, BTreeSet::from([b2]));
    assert!(f.get(a2).await.blocked, "behind its retrying head");
    assert_eq!(f.due_set(T0 + 60_000).await, BTreeSet::from([a1, b2]));
    // The head dies by its retry policy: the next of its key goes, at once.
    f.clock.set(T0 + 60_000);
    f.lease(&[a1], T0 + 60_000 + LEASE_MS).await;
    f.kill(a1).await;
    assert_eq!(f.status(a1).await, Dead);
    assert_eq!(f.due_set(T0 + 60_000).await, BTreeSet::from([a2, b2]));
}

pub(in crate::store) async fn a_replayed_dead_letter_goes_to_the_back_of_its_key(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let a1 = f.queue("a").await;
    let a2 = f.queue("a").await;
    let a3 = f.queue("a").await;
    f.kill(a1).await;
    let r = f.store.requeue(Requeue::One(a1)).await.expect("replay");
    assert_eq!(r.deliveries.len(), 1);
    let back = f.get(a1).await;
    assert_eq!(back.status, Pending);
    assert!(back.blocked, "behind a2 and a3");
    let last = f.get(a3).await.order.expect("ordered").1;
    assert!(back.order.expect("ordered").1 > last);
    assert_eq!(f.due_set(T0).await, BTreeSet::from([a2]));
    f.complete(a2, 200, Next::Delivered).await;
    assert_eq!(f.due_set(T0).await, BTreeSet::from([a3]));
    f.complete(a3, 200, Next::Delivered).await;
    assert_eq!(f.due_set(T0).await, BTreeSet::from([a1]));
    // Alone in its key, a replayed one is its head at once.
    f.kill(a1).await;
    let replay = Requeue::Dead {
        filter: Default::default(),
        ids: Some(vec![a1]),
        after: None,
    };
    f.store.requeue(replay).await.expect("replay");
    assert!(!f.get(a1).await.blocked);
    assert_eq!(f.due_set(T0).await, BTreeSet::from([a1]));
}

pub(in crate::store) async fn a_blocked_delivery_waits_through_release_retry_and_recover(
    b: &impl Backend,
) {
    let f = Fixture::open(b).await;
    let a1 = f.queue("a").await;
    let a2 = f.queue("a").await;
    // A released head is still the head.
    f.store
        .claim(
            "o",
            T0,
            10,
            HashSet::new(),
            T0 + LEASE_MS,
            Default::default(),
        )
        .await
        .expect("claim");
    f.store
        .release(vec![Held {
            delivery_id: a1,
            lease_token: None,
        }])
        .await
        .expect("release");
    assert_eq!(f.due_set(T0).await, BTreeSet::from([a1]));
    // A retry or a recover leaves a blocked delivery waiting for its turn.
    let r = f.store.requeue(Requeue::One(a2)).await.expect("retry");
    assert!(r.deliveries.is_empty(), "{r:?}");
    let recover = Requeue::Recover {
        endpoint: "o".into(),
        since_ms: 0,
        until_ms: u64::MAX,
    };
    let r = f.store.requeue(recover).await.expect("recover");
    let got: Vec<DeliveryId> = r.deliveries.iter().map(|(d, _)| *d).collect();
    assert_eq!(got, [a1], "the head, which keeps its place");
    assert!(f.get(a2).await.blocked);
    assert_eq!(f.due_set(T0).await, BTreeSet::from([a1]));
    // A lease of a blocked delivery is refused.
    f.lease(&[a2], T0 + LEASE_MS).await;
    assert_eq!(f.status(a2).await, Pending);
}

pub(in crate::store) async fn an_ordered_endpoints_removal_kills_its_blocked_deliveries_too(
    b: &impl Backend,
) {
    let f = Fixture::open(b).await;
    let ids = [f.queue("a").await, f.queue("a").await, f.queue("b").await];
    let dead = f
        .store
        .delete_entry(EntryKind::Endpoint, "o")
        .await
        .expect("delete");
    assert_eq!(dead, 3);
    for id in ids {
        assert_eq!(f.status(id).await, Dead);
    }
    assert_eq!(f.pending().await, 0);
    assert!(f.due_set(T0).await.is_empty());
    // The same at start, for an endpoint no longer configured.
    let kept = [f.queue("a").await, f.queue("a").await];
    let f = f.restart(b, T0 + 10).await;
    let known: HashSet<String> = ["p".to_string()].into();
    assert_eq!(f.store.set_endpoints(known).await.expect("set"), 2);
    for id in kept {
        assert_eq!(f.status(id).await, Dead);
    }
    assert_eq!(f.pending().await, 0);
}

pub(in crate::store) async fn the_order_survives_a_restart(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let a1 = f.queue("a").await;
    let a2 = f.queue("a").await;
    f.lease(&[a1], T0 + LEASE_MS).await;
    let f = f.restart(b, T0 + 5).await;
    assert_eq!(f.due_set(T0 + 5).await, BTreeSet::from([a1]));
    assert!(f.get(a2).await.blocked);
    f.complete(a1, 200, Next::Delivered).await;
    assert_eq!(f.due_set(T0 + 5).await, BTreeSet::from([a2]));
}
