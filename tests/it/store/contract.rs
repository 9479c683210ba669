//! The store's contract, rule by rule: each an `async fn` over any [`Backend`], made into a
//! test per backend by `contract_tests!` (in `store.rs`). They reach the store only through
//! its public API, and its clock only through the fixture.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use hookgate::model::event::DeliveryStatus::*;
use hookgate::store::query::Filter;
use hookgate::store::retention::{Policy, pass};
use hookgate::store::{EntryKind, Held, REPLAY_STEP, Requeue};

use super::*;

mod announcements;
mod health;
mod listing;
mod ordering;
mod payload;
mod pull;
pub(super) use announcements::*;
pub(super) use health::*;
pub(super) use listing::*;
pub(super) use ordering::*;
pub(super) use payload::*;
pub(super) use pull::*;

pub(super) async fn ingest_writes_the_event_and_one_pending_delivery_per_endpoint(
    b: &impl Backend,
) {
    let f = Fixture::open(b).await;
    let (event_id, ids) = f.accept(f.event(&["a", "b"])).await;
    let (event, payload) = f
        .store
        .event(event_id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        event.deliveries,
        [(ids[0], "a".to_string()), (ids[1], "b".to_string())]
    );
    assert_eq!(
        (event.source.as_str(), event.received_ms),
        ("shop", f.now())
    );
    assert_eq!(payload.body.as_ref(), br#"{"id":1}"#);
    assert_eq!(
        payload.header("content-type"),
        Some(&b"application/json"[..])
    );
    for (id, endpoint) in ids.iter().zip(["a", "b"]) {
        let d = f.get(*id).await;
        assert_eq!((d.event_id, d.endpoint_id.as_str()), (event_id, endpoint));
        assert_eq!((d.status, d.attempts), (Pending, 0));
        assert_eq!(d.next_attempt_ms(), Some(f.now()));
        assert_eq!(f.due(endpoint, f.now()).await, [*id]);
    }
    assert_eq!(f.pending().await, 2);
    let page = f
        .store
        .list_events(&Filter::default(), 10, None)
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].deliveries.len(), 2);
    // Routed nowhere: stored all the same, with nothing to send.
    let (lonely, none) = f.accept(f.event(&[])).await;
    assert!(none.is_empty());
    assert!(f.store.event(lonely).await.expect("read").is_some());
    assert_eq!(f.pending().await, 2);
}

pub(super) async fn an_event_over_the_backlog_is_refused_whole(b: &impl Backend) {
    let f = Fixture::with_backlog(b, 2).await;
    let refused = f.store.ingest(f.event(&["a", "b", "c"])).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::Backlog {
                pending: 0,
                limit: 2
            })
        ),
        "{refused:?}"
    );
    assert!(f.store.event_ids().await.expect("ids").is_empty());
    assert_eq!(
        (f.pending().await, f.due("a", u64::MAX).await.len()),
        (0, 0)
    );
    f.accept(f.event(&["a", "b"])).await;
    assert_eq!(f.pending().await, 2);
}

pub(super) async fn a_duplicate_within_the_window_writes_nothing(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let keyed = |f: &Fixture, key: &str, scope: Option<&str>| NewEvent {
        dedup: Some((key.to_string(), 1_000)),
        dedup_scope: scope.map(str::to_string),
        ..f.event(&["a"])
    };
    let (first, _) = f.accept(keyed(&f, "k1", None)).await;
    f.clock.set(T0 + 999);
    let again = f.store.ingest(keyed(&f, "k1", None)).await.expect("ingest");
    assert_eq!(again, IngestOutcome::Duplicate { event_id: first });
    assert_eq!(
        (
            f.store.event_ids().await.expect("ids").len(),
            f.pending().await
        ),
        (1, 1)
    );
    // Another namespace, or the window over: a new event.
    f.accept(keyed(&f, "k1", Some("publish:shop"))).await;
    f.clock.set(T0 + 1_000);
    f.accept(keyed(&f, "k1", None)).await;
    assert_eq!(f.store.event_ids().await.expect("ids").len(), 3);
}

pub(super) async fn due_reads_one_endpoints_work_in_due_order(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let first = f.one("a").await;
    f.clock.set(T0 + 10);
    let second = f.one("a").await;
    let other = f.one("b").await;
    assert_eq!(f.due("a", T0 + 10).await, [first, second]);
    assert_eq!(f.due("b", T0 + 10).await, [other]);
    let early = f
        .store
        .due("a", T0 + 5, 10, HashSet::new())
        .await
        .expect("read");
    assert_eq!(early.items.len(), 1);
    assert_eq!(early.next_due_ms, Some(T0 + 10));
    // In flight in the lane: skipped, and the limit counts only what is taken.
    let skip = HashSet::from([first]);
    let batch = f.store.due("a", T0 + 10, 1, skip).await.expect("read");
    assert_eq!(batch.items[0].delivery_id, second);
    assert_eq!(batch.items[0].body.as_ref(), br#"{"id":1}"#);
    assert_eq!(batch.items[0].received_ms, T0 + 10);
}

pub(super) async fn a_lease_holds_a_delivery_until_it_runs_out(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let id = f.one("a").await;
    f.lease(&[id], T0 + LEASE_MS).await;
    assert_eq!(f.status(id).await, Delivering);
    assert_eq!(f.get(id).await.next_attempt_ms(), None);
    assert!(f.due("a", T0 + LEASE_MS - 1).await.is_empty());
    // An attempt that never reports back: due again when its lease runs out.
    assert_eq!(f.due("a", T0 + LEASE_MS).await, [id]);
    assert_eq!(f.pending().await, 1);
}

pub(super) async fn complete_records_the_attempt_and_settles_or_reschedules(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let (ok, again) = (f.one("a").await, f.one("a").await);
    f.lease(&[ok, again], T0 + LEASE_MS).await;
    f.clock.set(T0 + 100);
    f.complete(ok, 200, Next::Delivered).await;
    f.complete(again, 503, Next::RetryAt(T0 + 5_000)).await;
    let d = f.get(ok).await;
    assert_eq!(
        (d.status, d.attempts, d.last_status_code),
        (Delivered, 1, Some(200))
    );
    let attempts = f.store.attempts(ok).await.expect("read");
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (attempts[0].at_ms, attempts[0].response_excerpt.as_slice()),
        (T0 + 100, &b"answer"[..])
    );
    let r = f.get(again).await;
    assert_eq!((r.status, r.attempts, r.cycle_attempts()), (Retrying, 1, 1));
    assert_eq!(r.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(f.due("a", T0 + 4_999).await, Vec::<DeliveryId>::new());
    assert_eq!(f.due("a", T0 + 5_000).await, [again]);
    assert_eq!(f.pending().await, 1);
    // Then it dies: a dead letter, keyed by when.
    f.clock.set(T0 + 5_000);
    f.kill(again).await;
    let dead = f.get(again).await;
    assert_eq!((dead.status, dead.attempts), (Dead, 2));
    assert_eq!(dead.last_error.as_deref(), Some("gave up"));
    let page = f
        .store
        .list_dead(&Filter::default(), 10, None)
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        (page.items[0].delivery_id, page.items[0].dead_at_ms),
        (again, T0 + 5_000)
    );
    assert_eq!(
        (f.pending().await, f.due("a", u64::MAX).await.len()),
        (0, 0)
    );
}

pub(super) async fn a_final_delivery_is_never_leased_or_completed_again(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let (done, dead) = (f.one("a").await, f.one("a").await);
    f.complete(done, 200, Next::Delivered).await;
    f.kill(dead).await;
    let before = (f.get(done).await, f.get(dead).await);
    f.lease(&[done, dead], T0 + LEASE_MS).await;
    // A second result (after its lease was taken back and it settled): the first stands.
    f.complete(done, 500, Next::RetryAt(T0 + 1)).await;
    f.complete(dead, 200, Next::Delivered).await;
    assert_eq!((f.get(done).await, f.get(dead).await), before);
    assert_eq!(f.store.attempts(done).await.expect("read").len(), 1);
    assert!(f.due("a", u64::MAX).await.is_empty());
    assert_eq!(f.pending().await, 0);
}

/// `n` dead letters of `endpoint`, all dead now.
async fn dead_letters(f: &Fixture, endpoint: &str, n: usize) -> Vec<DeliveryId> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let id = f.one(endpoint).await;
        f.kill(id).await;
        ids.push(id);
    }
    ids
}

async fn requeued_fresh(f: &Fixture, id: DeliveryId) {
    let d = f.get(id).await;
    assert_eq!(
        (d.status, d.next_attempt_ms()),
        (Pending, Some(f.now())),
        "{d:?}"
    );
    // The history stays; the retry policy counts from the new cycle.
    assert_eq!(
        (d.attempts, d.cycle_attempts(), d.cycle_started_ms),
        (1, 0, f.now())
    );
}

pub(super) async fn a_replay_requeues_dead_letters_by_filter_and_ids_in_steps(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let of_a = dead_letters(&f, "a", REPLAY_STEP + 20).await;
    let of_b = dead_letters(&f, "b", 3).await;
    f.clock.set(T0 + 1_000);
    let step =
        |filter: Filter, ids: Option<Vec<DeliveryId>>, after| Requeue::Dead { filter, ids, after };
    // By ids (and the filter with them): only those.
    let r = f
        .store
        .requeue(step(Filter::default(), Some(vec![of_b[0], of_a[0]]), None))
        .await
        .expect("replay");
    let got: BTreeSet<_> = r.deliveries.iter().map(|(d, _)| *d).collect();
    assert_eq!(got, BTreeSet::from([of_b[0], of_a[0]]));
    requeued_fresh(&f, of_b[0]).await;
    // By endpoint, in bounded steps that go on where the last one stopped.
    let only_a = Filter {
        endpoint: Some("a".into()),
        ..Filter::default()
    };
    let (mut steps, mut after, mut replayed) = (Vec::new(), None, BTreeSet::new());
    loop {
        let r = f
            .store
            .requeue(step(only_a.clone(), None, after))
            .await
            .expect("step");
        steps.push(r.deliveries.len());
        replayed.extend(r.deliveries.iter().map(|(d, e)| {
            assert_eq!(e, "a");
            *d
        }));
        match r.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(steps, [REPLAY_STEP, 19]);
    assert_eq!(replayed, of_a[1..].iter().copied().collect());
    assert_eq!(f.dead_letters().await, [of_b[2], of_b[1]]);
    assert_eq!(f.pending().await, (of_a.len() + 1) as u64);
    assert_eq!(f.due("a", f.now()).await.len(), of_a.len());
}

pub(super) async fn retry_one_requeues_anything_but_a_delivery_being_sent(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let (done, sending) = (f.one("a").await, f.one("a").await);
    f.complete(done, 200, Next::Delivered).await;
    f.lease(&[sending], T0 + LEASE_MS).await;
    f.clock.set(T0 + 50);
    let r = f.store.requeue(Requeue::One(done)).await.expect("retry");
    assert_eq!(r.deliveries, [(done, "a".to_string())]);
    requeued_fresh(&f, done).await;
    let r = f.store.requeue(Requeue::One(sending)).await.expect("retry");
    assert_eq!(
        (r.deliveries.len(), r.in_flight.as_slice()),
        (0, &[sending][..])
    );
    assert_eq!(f.status(sending).await, Delivering);
    let r = f
        .store
        .requeue(Requeue::One(DeliveryId(42)))
        .await
        .expect("retry");
    assert_eq!(r, Default::default());
    assert_eq!(f.pending().await, 2);
}

pub(super) async fn recover_requeues_an_endpoints_unfinished_work_in_a_window(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let before = f.one("a").await;
    f.clock.set(T0 + 100);
    let (waiting, retrying, dead, done) = (
        f.one("a").await,
        f.one("a").await,
        f.one("a").await,
        f.one("a").await,
    );
    let other = f.one("b").await;
    f.complete(retrying, 503, Next::RetryAt(T0 + 9_000)).await;
    f.kill(dead).await;
    f.complete(done, 200, Next::Delivered).await;
    f.clock.set(T0 + 200);
    let late = f.one("a").await;
    f.kill(late).await;
    let sending = {
        f.clock.set(T0 + 100);
        let id = f.one("a").await;
        f.lease(&[id], T0 + LEASE_MS).await;
        id
    };
    f.clock.set(T0 + 1_000);
    let what = Requeue::Recover {
        endpoint: "a".into(),
        since_ms: T0 + 100,
        until_ms: T0 + 200,
    };
    let r = f.store.requeue(what).await.expect("recover");
    let got: BTreeSet<_> = r.deliveries.iter().map(|(d, _)| *d).collect();
    assert_eq!(got, BTreeSet::from([waiting, retrying, dead]));
    assert_eq!(r.in_flight, [sending]);
    for id in [waiting, retrying, dead] {
        assert_eq!(f.get(id).await.next_attempt_ms(), Some(T0 + 1_000));
    }
    // Delivered, outside the window, another endpoint's: as they were.
    assert_eq!(f.status(done).await, Delivered);
    assert_eq!(
        (
            f.status(late).await,
            f.status(before).await,
            f.status(other).await
        ),
        (Dead, Pending, Pending)
    );
    assert_eq!(f.get(before).await.next_attempt_ms(), Some(T0));
}

pub(super) async fn release_makes_leased_deliveries_due_now(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let (fresh, tried, idle) = (f.one("a").await, f.one("a").await, f.one("a").await);
    f.complete(tried, 503, Next::RetryAt(T0)).await;
    f.lease(&[fresh, tried], T0 + LEASE_MS).await;
    f.clock.set(T0 + 7);
    f.store
        .release(held(&[fresh, tried, idle]))
        .await
        .expect("release");
    assert_eq!(
        (f.status(fresh).await, f.status(tried).await),
        (Pending, Retrying)
    );
    assert_eq!(f.get(tried).await.attempts, 1);
    // Not leased: left as it was.
    assert_eq!(f.get(idle).await.next_attempt_ms(), Some(T0));
    let due: BTreeSet<_> = f.due("a", T0 + 7).await.into_iter().collect();
    assert_eq!(due, BTreeSet::from([fresh, tried, idle]));
    assert_eq!(f.pending().await, 3);
}

pub(super) async fn a_restart_makes_every_lease_due_at_once(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let (fresh, tried) = (f.one("a").await, f.one("a").await);
    f.complete(tried, 503, Next::RetryAt(T0)).await;
    f.lease(&[fresh, tried], T0 + LEASE_MS).await;
    let f = f.restart(b, T0 + 5).await;
    assert_eq!(
        (f.status(fresh).await, f.status(tried).await),
        (Pending, Retrying)
    );
    let due: BTreeSet<_> = f.due("a", T0 + 5).await.into_iter().collect();
    assert_eq!(due, BTreeSet::from([fresh, tried]));
    assert_eq!(f.pending().await, 2);
}

pub(super) async fn the_store_makes_no_work_for_unknown_endpoints(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let endpoints = |ids: &[&str]| ids.iter().map(|e| e.to_string()).collect::<HashSet<_>>();
    assert_eq!(
        f.store
            .set_endpoints(endpoints(&["a", "b"]))
            .await
            .expect("set"),
        0
    );
    let of_b = f.one("b").await;
    let deleted = f
        .store
        .delete_entry(EntryKind::Endpoint, "b")
        .await
        .expect("delete");
    assert_eq!(deleted, 1);
    let d = f.get(of_b).await;
    assert_eq!(
        (d.status, d.last_error.as_deref()),
        (Dead, Some("endpoint deleted"))
    );
    // Routed before the deletion: no delivery for it.
    let (_, ids) = f.accept(f.event(&["a", "b"])).await;
    assert_eq!(ids.len(), 1);
    assert_eq!(f.get(ids[0]).await.endpoint_id, "a");
    let r = f.store.requeue(Requeue::One(of_b)).await.expect("retry");
    assert_eq!((r.deliveries.len(), r.removed.as_slice()), (0, &[of_b][..]));
    assert_eq!(f.status(of_b).await, Dead);
    // What a previous run left for an endpoint no longer configured dies at start.
    let f = f.restart(b, T0 + 10).await;
    let of_c = f.one("c").await;
    assert_eq!(
        f.store.set_endpoints(endpoints(&["a"])).await.expect("set"),
        1
    );
    let d = f.get(of_c).await;
    assert_eq!(
        (d.status, d.last_error.as_deref()),
        (Dead, Some("endpoint removed"))
    );
    assert_eq!(f.pending().await, 1);
}

pub(super) async fn prune_removes_finished_events_after_retention_only(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let keyed = NewEvent {
        dedup: Some(("k".into(), 1_000)),
        ..f.event(&["a"])
    };
    let (delivered, d1) = f.accept(keyed).await;
    let (nowhere, _) = f.accept(f.event(&[])).await;
    let (dead, d2) = f.accept(f.event(&["a"])).await;
    let (waiting, _) = f.accept(f.event(&["a"])).await;
    let (half, d4) = f.accept(f.event(&["a", "b"])).await;
    f.clock.set(T0 + 1);
    f.complete(d1[0], 200, Next::Delivered).await;
    f.complete(d4[0], 200, Next::Delivered).await;
    f.kill(d2[0]).await;
    let policy = Policy {
        retention: Duration::from_secs(10),
        dead_letter_retention: Duration::from_secs(60),
        interval: Duration::from_secs(1),
    };
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let clock: SharedClock = f.clock.clone();
    let present = async |id| f.store.event(id).await.expect("read").is_some();
    f.clock.set(T0 + 10_000);
    assert_eq!(
        pass(&f.store, &clock, policy, &stop).await.expect("prune"),
        (0, 1)
    );
    f.clock.set(T0 + 10_001);
    assert_eq!(
        pass(&f.store, &clock, policy, &stop).await.expect("prune"),
        (2, 0)
    );
    assert!(!present(delivered).await && !present(nowhere).await);
    assert!(f.store.delivery(d1[0]).await.expect("read").is_none());
    assert!(f.store.attempts(d1[0]).await.expect("read").is_empty());
    // A dead letter is kept by its own retention, from its death.
    assert!(present(dead).await && present(waiting).await && present(half).await);
    f.clock.set(T0 + 60_002);
    assert_eq!(
        pass(&f.store, &clock, policy, &stop).await.expect("prune"),
        (1, 0)
    );
    assert!(!present(dead).await && f.dead_letters().await.is_empty());
    // Unfinished events stay, whatever their age.
    f.clock.set(T0 + 1_000_000_000);
    assert_eq!(
        pass(&f.store, &clock, policy, &stop).await.expect("prune"),
        (0, 0)
    );
    assert!(present(waiting).await && present(half).await);
    assert_eq!(f.pending().await, 2);
}

pub(super) async fn a_pause_is_durable_and_goes_with_its_endpoint(b: &impl Backend) {
    let f = Fixture::open(b).await;
    f.store.set_paused("a", true).await.expect("pause");
    f.store.set_paused("b", true).await.expect("pause");
    let id = f.one("a").await;
    let f = f.restart(b, T0).await;
    let paused = f.store.paused_endpoints().await.expect("read");
    assert_eq!(paused, HashSet::from(["a".to_string(), "b".to_string()]));
    // A pause stops lanes, not the schedule.
    assert_eq!(f.due("a", T0).await, [id]);
    f.store.set_paused("a", false).await.expect("resume");
    f.store
        .delete_entry(EntryKind::Endpoint, "b")
        .await
        .expect("delete");
    assert!(f.store.paused_endpoints().await.expect("read").is_empty());
}

fn announced(wake: &tokio::sync::Notify) -> bool {
    // A stored announcement completes the wait on its first poll.
    let mut wait = std::pin::pin!(wake.notified());
    let waker = std::task::Waker::noop();
    wait.as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
        .is_ready()
}

pub(super) async fn new_work_is_announced_after_its_commit(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let (a, c) = (f.store.notices().of("a"), f.store.notices().of("c"));
    // A listener wakes to find its work already in the schedule.
    let store = f.store.clone();
    let listener = tokio::spawn(async move {
        a.notified().await;
        store
            .due("a", u64::MAX, 10, HashSet::new())
            .await
            .map(|b| b.items.len())
    });
    let id = f.one("a").await;
    assert_eq!(listener.await.expect("joined").expect("read"), 1);
    let a = f.store.notices().of("a");
    // A result is not new work: no announcement (the lane that sent it knows).
    f.complete(id, 503, Next::RetryAt(T0)).await;
    assert!(!announced(&a));
    f.kill(id).await;
    f.store.requeue(Requeue::One(id)).await.expect("retry");
    assert!(announced(&a));
    assert!(!announced(&c), "c got no work");
}

/// Claims `limit` of `endpoint`'s work due at `now`, leased for [`LEASE_MS`]; waits until the
/// lease is committed (the embedded store queues it).
async fn claim(f: &Fixture, endpoint: &str, now: u64, limit: usize) -> Vec<(DeliveryId, u64)> {
    let batch = f
        .store
        .claim(
            endpoint,
            now,
            limit,
            HashSet::new(),
            now + LEASE_MS,
            Default::default(),
        )
        .await
        .expect("claim");
    f.store.probe().await.expect("committed");
    batch
        .items
        .iter()
        .map(|d| (d.delivery_id, d.lease_token.expect("a claim gives a token")))
        .collect()
}

pub(super) async fn a_claim_leases_what_it_returns_and_no_other_claim_gets_it(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let ids = [f.one("a").await, f.one("a").await, f.one("a").await];
    let first = claim(&f, "a", T0, 2).await;
    assert_eq!(
        first.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        ids[..2],
        "earliest first"
    );
    for (id, _) in &first {
        assert_eq!(f.status(*id).await, Delivering);
    }
    // A second claim (another lane, another node) gets only what the first did not hold.
    let second = claim(&f, "a", T0, 10).await;
    assert_eq!(
        second.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        ids[2..]
    );
    assert!(claim(&f, "a", T0 + LEASE_MS - 1, 10).await.is_empty());
    // Leases that ran out are claimed again, under new tokens.
    let again = claim(&f, "a", T0 + LEASE_MS, 10).await;
    assert_eq!(again.len(), 3);
    for (id, token) in &again {
        let old = first
            .iter()
            .chain(&second)
            .find(|(o, _)| o == id)
            .expect("claimed before");
        assert_ne!(*token, old.1, "a new lease gets a new token");
    }
    assert!(
        claim(&f, "b", T0 + LEASE_MS, 10).await.is_empty(),
        "one endpoint's work only"
    );
}

pub(super) async fn a_finish_under_a_lease_taken_over_changes_nothing(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let id = f.one("a").await;
    let stale = claim(&f, "a", T0, 1).await[0].1;
    // The first holder stalls past its lease; another takes the delivery over.
    f.clock.set(T0 + LEASE_MS);
    let current = claim(&f, "a", T0 + LEASE_MS, 1).await[0].1;
    let finish = |token: u64, next: Next| Completion {
        delivery_id: id,
        lease_token: Some(token),
        attempt: Attempt {
            at_ms: T0 + LEASE_MS,
            status_code: Some(500),
            latency_ms: 1,
            error: Some("HTTP 500".into()),
            response_excerpt: Vec::new(),
        },
        next,
        health: None,
        strict: false,
        waited_on: false,
    };
    // The stalled holder's late result: nothing changes.
    f.store
        .complete(finish(stale, Next::Dead("late".into())))
        .await
        .expect("complete");
    let d = f.get(id).await;
    assert_eq!((d.status, d.attempts), (Delivering, 0));
    assert!(f.store.attempts(id).await.expect("read").is_empty());
    // The current holder's result stands.
    f.store
        .complete(finish(current, Next::RetryAt(T0 + 2 * LEASE_MS)))
        .await
        .expect("complete");
    let d = f.get(id).await;
    assert_eq!((d.status, d.attempts), (Retrying, 1));
    assert_eq!(f.pending().await, 1);
}

pub(super) async fn a_release_under_a_lease_taken_over_changes_nothing(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let id = f.one("a").await;
    let stale = claim(&f, "a", T0, 1).await[0].1;
    // The first holder stalls past its lease; another takes the delivery over and is sending.
    f.clock.set(T0 + LEASE_MS);
    let current = claim(&f, "a", T0 + LEASE_MS, 1).await[0].1;
    let release = |token: u64| Held {
        delivery_id: id,
        lease_token: Some(token),
    };
    // The stalled holder gives back what it no longer holds: nothing changes, so no third
    // claim can take it while the current holder sends it.
    f.store
        .release(vec![release(stale)])
        .await
        .expect("release");
    assert_eq!(f.status(id).await, Delivering);
    assert!(claim(&f, "a", T0 + LEASE_MS, 1).await.is_empty());
    // The current holder's release stands.
    f.store
        .release(vec![release(current)])
        .await
        .expect("release");
    assert_eq!(f.status(id).await, Pending);
    assert_eq!(claim(&f, "a", T0 + LEASE_MS, 1).await.len(), 1);
}

/// Releases under whatever lease is current (as a tool would).
fn held(ids: &[DeliveryId]) -> Vec<Held> {
    ids.iter()
        .map(|&delivery_id| Held {
            delivery_id,
            lease_token: None,
        })
        .collect()
}

pub(super) async fn the_dead_count_is_the_dead_letters_kept_up_to_a_cap(b: &impl Backend) {
    let f = Fixture::open(b).await;
    assert_eq!(f.store.dead_count(100).await.expect("count"), 0);
    let dead = dead_letters(&f, "a", 3).await;
    f.one("b").await; // pending: not counted
    assert_eq!(f.store.dead_count(100).await.expect("count"), 3);
    assert_eq!(f.store.dead_count(2).await.expect("count"), 2, "the cap");
    assert_eq!(f.store.dead_count(0).await.expect("count"), 0);
    // A replayed dead letter is no longer one.
    f.store
        .requeue(Requeue::Dead {
            filter: Filter::default(),
            ids: Some(vec![dead[0]]),
            after: None,
        })
        .await
        .expect("replay");
    assert_eq!(f.store.dead_count(100).await.expect("count"), 2);
}
