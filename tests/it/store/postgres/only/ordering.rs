//! Ordered delivery on PostgreSQL (schema version 3), beyond the contract's ordering rules: a
//! version 2 database migrated with its data (its deliveries unordered and due as before), and
//! two nodes racing ingest against heads that end, which must **never leave a key with two
//! heads** (or with waiting deliveries and none), and deliver each key in its commit order.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use hookgate::store::{ClaimLimits, Requeue};

use super::*;

const V1: &str = include_str!("../../../../../src/store/postgres/schema/v1.sql");
const V2: &str = include_str!("../../../../../src/store/postgres/schema/v2.sql");

/// An id made at `ms`.
fn id_at(ms: u64, n: u128) -> Vec<u8> {
    ((u128::from(ms) << 80) | n).to_be_bytes().to_vec()
}

fn id_of(bytes: &[u8]) -> DeliveryId {
    DeliveryId(u128::from_be_bytes(bytes.try_into().expect("16 bytes")))
}

/// An event for the ordered endpoint `o`, in order key `key`.
fn ordered(key: &str, received_ms: u64) -> NewEvent {
    NewEvent {
        order_keys: vec![("o".into(), key.into())],
        ..event(&["o"], received_ms)
    }
}

/// The one delivery of an accepted event.
fn accepted(outcome: Result<IngestOutcome, StoreError>) -> DeliveryId {
    match outcome.expect("ingest") {
        IngestOutcome::Accepted { deliveries, .. } => deliveries[0].0,
        other => panic!("not accepted: {other:?}"),
    }
}

#[tokio::test]
async fn a_version_2_database_migrates_with_its_deliveries_unordered_and_due() {
    let Some(pg) = database("a_version_2_database_migrates_with_its_deliveries_unordered_and_due")
    else {
        return;
    };
    pg.create_bare().await;
    let sql = pg.sql().await;
    sql.batch_execute(&format!(
        "BEGIN; CREATE TABLE hookgate_schema (version integer NOT NULL); \
         INSERT INTO hookgate_schema VALUES (2); {V1} {V2} COMMIT;"
    ))
    .await
    .expect("version 2");
    // At T0, as version 2 wrote it: an event with a delivery waiting for `a` and a dead one
    // for `b`, in the day's partitions.
    let (event, waiting, dead) = (id_at(T0, 1), id_at(T0, 2), id_at(T0, 3));
    sql.execute("SELECT hookgate_make_day(hookgate_day_of($1))", &[&event])
        .await
        .expect("the day's partitions");
    let t0 = T0 as i64;
    sql.execute(
        "INSERT INTO events VALUES ($1, 'shop', 'order.paid', $2, NULL, \
         ARRAY[$3::bytea, $4::bytea], ARRAY['a', 'b'], ARRAY[]::text[], ARRAY[]::bytea[], '{}')",
        &[&event, &t0, &waiting, &dead],
    )
    .await
    .expect("event");
    sql.execute("INSERT INTO event_progress VALUES ($1, 1, NULL)", &[&event])
        .await
        .expect("progress");
    sql.execute(
        "INSERT INTO deliveries (id, event_id, endpoint_id, status, attempts, due_ms, \
         created_ms, updated_ms, cycle_base, cycle_started_ms) \
         VALUES ($1, $2, 'a', 'pending', 0, $3, $3, $3, 0, $3)",
        &[&waiting, &event, &t0],
    )
    .await
    .expect("waiting delivery");
    sql.execute(
        "INSERT INTO deliveries_done VALUES ($1, $2, 'b', 'dead', 1, $3, $3, $3, 500, \
         'gave up', 0, $3)",
        &[&dead, &event, &t0],
    )
    .await
    .expect("dead delivery");

    assert_eq!(migrate(&pg.url()).await, Ok(SCHEMA_VERSION));
    // The schedule holds only what is not blocked; the order index and sequence are there,
    // and the finished deliveries' existing partition has the new columns.
    let due_index: String = sql
        .query_one(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'deliveries_due'",
            &[],
        )
        .await
        .expect("the due index")
        .get(0);
    assert!(due_index.ends_with("WHERE (NOT blocked)"), "{due_index}");
    for name in ["deliveries_order", "delivery_order_seq"] {
        let found: Option<u32> = sql
            .query_one("SELECT to_regclass($1)::oid", &[&name])
            .await
            .expect("look up")
            .get(0);
        assert!(found.is_some(), "{name}");
    }
    let columns: i64 = sql
        .query_one(
            "SELECT count(*) FROM information_schema.columns \
             WHERE table_name = 'deliveries_done_p20231114' \
             AND column_name IN ('order_key', 'order_seq', 'blocked', 'cycle_held_ms')",
            &[],
        )
        .await
        .expect("columns")
        .get(0);
    assert_eq!(columns, 4);

    // The old rows read back unordered, not blocked, held 0; the waiting one is still due.
    let f = Fixture::open(&pg).await;
    let (waiting, dead) = (id_of(&waiting), id_of(&dead));
    let w = f.get(waiting).await;
    assert_eq!(
        (w.status, w.order.clone(), w.blocked, w.cycle_held_ms),
        (DeliveryStatus::Pending, None, false, 0)
    );
    assert_eq!(f.due("a", T0).await, [waiting]);
    let d = f.get(dead).await;
    assert_eq!(
        (d.status, d.order.clone(), d.blocked),
        (DeliveryStatus::Dead, None, false)
    );
    // A replay of the old dead letter is unordered: due at once, not placed anywhere.
    let r = f.store.requeue(Requeue::One(dead)).await.expect("replay");
    assert_eq!(r.deliveries.len(), 1);
    let back = f.get(dead).await;
    assert_eq!((back.order, back.blocked), (None, false));
    assert_eq!(f.due("b", T0).await, [dead]);
    // New ordered work beside the old: the first of a key is its head, the next waits.
    let first = f.accept(ordered("k", T0)).await.1[0];
    let next = f.accept(ordered("k", T0)).await.1[0];
    assert!(!f.get(first).await.blocked);
    assert!(f.get(next).await.blocked);
    let due: HashSet<DeliveryId> = f.due("o", T0).await.into_iter().collect();
    assert_eq!(due, HashSet::from([first]));
    f.complete(waiting, 200, Next::Delivered).await;
    f.complete(first, 200, Next::Delivered).await;
    assert_eq!(f.due("o", T0).await, [next]);
    assert_eq!(
        f.pending().await,
        2,
        "the replayed one and the promoted one"
    );
}

/// Keys of the race, and groups of events per key (of 1 to 3 events, queued at once, so
/// several of one key often share a batch).
const KEYS: usize = 16;
const GROUPS: usize = 40;

/// Every (endpoint, key) whose deliveries do not have exactly one head, the lowest place, in
/// one snapshot.
const BAD_KEYS: &str = "SELECT endpoint_id || ' ' || order_key FROM deliveries \
     WHERE order_key IS NOT NULL GROUP BY endpoint_id, order_key \
     HAVING count(*) FILTER (WHERE NOT blocked) <> 1 \
     OR min(order_seq) FILTER (WHERE NOT blocked) <> min(order_seq)";

/// Node A ingests events of a few keys (each key's in a known commit order) while node B
/// claims every head as soon as it is due and sends it: delivered, or (a quarter of them, the
/// first time) dead and replayed at once, to the back of its key. Each key's next events are
/// ingested as soon as its last one is sent, so they are placed while that head ends or comes
/// back (a key's only delivery, most often): the races the key locks settle. A third
/// connection checks the keys' heads all along.
#[tokio::test]
async fn ingest_racing_ends_and_replays_on_two_nodes_never_makes_two_heads_of_a_key() {
    let Some(pg) =
        database("ingest_racing_ends_and_replays_on_two_nodes_never_makes_two_heads_of_a_key")
    else {
        return;
    };
    let clock = manual();
    let a = Store::from_backend(pg.node(pg.options(clock.clone(), u64::MAX)).await);
    let b = Store::from_backend(pg.node(pg.options(clock.clone(), u64::MAX)).await);
    let ingested = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));

    // The checker: every key has one head, its lowest place, in every snapshot it reads. It
    // stops at the first that breaks that (a key left with no head would hold its producer
    // for ever: the test fails on it rather than hang).
    let mut checker = {
        let (sql, finished) = (pg.sql().await, Arc::clone(&finished));
        tokio::spawn(async move {
            let mut checks = 0u64;
            while !finished.load(Ordering::SeqCst) {
                let bad: Vec<String> = sql
                    .query(BAD_KEYS, &[])
                    .await
                    .expect("check")
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                if !bad.is_empty() {
                    return (checks, bad);
                }
                checks += 1;
                tokio::task::yield_now().await;
            }
            (checks, Vec::new())
        })
    };

    // Node B: claims what is due and sends it all at once (the results share commits, so
    // heads of several keys end in one transaction), until A is done and nothing is left.
    let sent = Arc::new(Mutex::new(Vec::<DeliveryId>::new()));
    // Bumped after each claim's deliveries are in `sent`.
    let (claimed, watch_claims) = tokio::sync::watch::channel(0u64);
    let completer = {
        let (b, sent, ingested) = (b.clone(), Arc::clone(&sent), Arc::clone(&ingested));
        tokio::spawn(async move {
            let wake = b.notices().of("o");
            // Every fourth delivery sent for the first time dies, and is replayed at once.
            let (mut killed, mut firsts) = (HashSet::new(), HashSet::new());
            loop {
                // Read before the claim: once A is done, a claim after it sees all its work.
                let done = ingested.load(Ordering::SeqCst);
                let batch = b
                    .claim(
                        "o",
                        T0,
                        1_000,
                        HashSet::new(),
                        T0 + LEASE_MS,
                        ClaimLimits::default(),
                    )
                    .await
                    .expect("claim");
                if batch.items.is_empty() {
                    if done {
                        // Every result and replay is committed and nothing is due: nothing
                        // may wait.
                        assert_eq!(b.pending_count().await.expect("count"), 0, "stuck");
                        return killed;
                    }
                    // New work is announced (from A by NOTIFY); the poll covers a lost one.
                    tokio::select! {
                        () = wake.notified() => {}
                        () = tokio::time::sleep(Duration::from_millis(10)) => {}
                    }
                    continue;
                }
                sent.lock()
                    .expect("lock")
                    .extend(batch.items.iter().map(|d| d.delivery_id));
                claimed.send_modify(|n| *n += 1);
                let mut kill = Vec::new();
                let results = batch.items.into_iter().map(|d| {
                    let dies = firsts.insert(d.delivery_id) && firsts.len() % 4 == 0;
                    if dies {
                        killed.insert(d.delivery_id);
                        kill.push(d.delivery_id);
                    }
                    b.complete(Completion {
                        delivery_id: d.delivery_id,
                        lease_token: d.lease_token,
                        attempt: Attempt {
                            at_ms: T0,
                            status_code: Some(if dies { 500 } else { 200 }),
                            latency_ms: 1,
                            error: None,
                            response_excerpt: Vec::new(),
                        },
                        next: if dies {
                            Next::Dead("gave up".into())
                        } else {
                            Next::Delivered
                        },
                        health: None,
                        strict: false,
                        waited_on: false,
                    })
                });
                let results: Vec<_> = results.collect();
                for r in futures_util::future::join_all(results).await {
                    r.expect("recorded");
                }
                let replays = kill.iter().map(|id| b.requeue(Requeue::One(*id)));
                for r in futures_util::future::join_all(replays).await {
                    assert_eq!(r.expect("replayed").deliveries.len(), 1);
                }
            }
        })
    };

    // Node A: one task per key; each puts a group of events into the queue at once (in
    // order: `join!` polls them in order, and each queues on its first poll; so they commit
    // in that order), and the next group once B has sent the last of them.
    let producers: Vec<_> = (0..KEYS)
        .map(|k| {
            let (a, sent, mut claims) = (a.clone(), Arc::clone(&sent), watch_claims.clone());
            tokio::spawn(async move {
                let key = format!("k{k}");
                let mut mine = Vec::new();
                for g in 0..GROUPS {
                    let ev = || ordered(&key, T0);
                    let group = match (g + k) % 3 {
                        0 => vec![a.ingest(ev()).await],
                        1 => {
                            let (x, y) = tokio::join!(a.ingest(ev()), a.ingest(ev()));
                            vec![x, y]
                        }
                        _ => {
                            let (x, y, z) =
                                tokio::join!(a.ingest(ev()), a.ingest(ev()), a.ingest(ev()));
                            vec![x, y, z]
                        }
                    };
                    mine.extend(group.into_iter().map(accepted));
                    let last = *mine.last().expect("one at least");
                    while !sent.lock().expect("lock").contains(&last) {
                        claims.changed().await.expect("the completer runs");
                    }
                }
                (key, mine)
            })
        })
        .collect();
    let work = async {
        let mut committed: HashMap<String, Vec<DeliveryId>> = HashMap::new();
        for p in producers {
            let (key, mine) = p.await.expect("producer");
            committed.insert(key, mine);
        }
        ingested.store(true, Ordering::SeqCst);
        let killed = completer.await.expect("completer");
        (committed, killed)
    };
    let (committed, killed) = tokio::select! {
        done = work => done,
        // Before the work is done, the checker ends only on a key it found broken.
        found = &mut checker => panic!("keys without exactly one head: {found:?}"),
    };
    finished.store(true, Ordering::SeqCst);
    let (checks, bad) = checker.await.expect("checker");
    assert!(checks > 0);
    assert!(bad.is_empty(), "keys without exactly one head: {bad:?}");

    // Each delivery was sent once, or twice if it was killed; each key's went out first in
    // its commit order (a replay goes behind), and last in the order of their places.
    let sent = sent.lock().expect("lock").clone();
    let total: usize = committed.values().map(Vec::len).sum();
    assert!(!killed.is_empty());
    assert_eq!(sent.len(), total + killed.len());
    let key_of: HashMap<DeliveryId, &str> = committed
        .iter()
        .flat_map(|(k, ids)| ids.iter().map(move |id| (*id, k.as_str())))
        .collect();
    for (key, ids) in &committed {
        let of_key: Vec<DeliveryId> = sent
            .iter()
            .filter(|id| key_of.get(id) == Some(&key.as_str()))
            .copied()
            .collect();
        let mut seen = HashSet::new();
        let first: Vec<DeliveryId> = of_key
            .iter()
            .filter(|id| seen.insert(**id))
            .copied()
            .collect();
        assert_eq!(&first, ids, "key {key} went out of its commit order");
        let mut last: Vec<DeliveryId> = Vec::new();
        for id in of_key.iter().rev() {
            if !last.contains(id) {
                last.insert(0, *id);
            }
        }
        let mut places = Vec::new();
        for id in &last {
            let d = a.delivery(*id).await.expect("read").expect("stored");
            assert_eq!(d.status, DeliveryStatus::Delivered);
            let (k, seq) = d.order.expect("ordered");
            assert_eq!(&k, key);
            places.push(seq);
        }
        assert!(places.windows(2).all(|w| w[0] < w[1]), "{key}: {places:?}");
    }
    a.close().await;
    b.close().await;
}
