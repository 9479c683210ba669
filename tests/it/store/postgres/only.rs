//! What only the PostgreSQL backend has, beyond the shared contract: its schema and how a node
//! refuses a database it cannot use, group commit with dedup and the backlog exact across
//! nodes, the pending counts against the hot table, leases between nodes, the database's
//! clock, announcements from one node to another, the history tables by day
//! ([`partitions`]), ordered delivery across nodes ([`ordering`]), and the version 4
//! migration that keeps each event's query string ([`query`]). Each test skips (and says so)
//! without `HOOKGATE_TEST_DATABASE_URL`.

use std::time::Duration;

use hookgate::clock::system_now_ms;
use hookgate::store::postgres::INGEST_LOCK;
use hookgate::store::{ClaimLimits, EntryKind, Requeue};

use crate::harness::eventually_async;

use super::super::*;

/// This test's database, unless there is no server to make it on (then: skipped).
fn database(test: &str) -> Option<Postgres> {
    let pg = Postgres::new();
    if pg.server.is_none() {
        skipped(module_path!(), test, NO_DATABASE);
        return None;
    }
    Some(pg)
}

/// The system clock shifted by `offset_ms`: a node whose clock is wrong.
struct Skewed(i64);

impl Clock for Skewed {
    fn now_ms(&self) -> u64 {
        system_now_ms().saturating_add_signed(self.0)
    }
}

fn event(endpoints: &[&str], received_ms: u64) -> NewEvent {
    NewEvent {
        source: "shop".into(),
        event_type: Some("order.paid".into()),
        received_ms,
        dedup: None,
        dedup_scope: None,
        body_dedup: None,
        budget: None,
        headers: vec![("x-raw".into(), vec![0xff, 0x00])],
        query: String::new(),
        body: bytes::Bytes::from_static(b"{}"),
        endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
        order_keys: Vec::new(),
    }
}

fn manual() -> Arc<ManualClock> {
    Arc::new(ManualClock(AtomicU64::new(T0)))
}

#[tokio::test]
async fn migrate_is_idempotent_and_safe_to_run_on_two_nodes_at_once() {
    let Some(pg) = database("migrate_is_idempotent_and_safe_to_run_on_two_nodes_at_once") else {
        return;
    };
    pg.create_bare().await;
    let url = pg.url();
    let (a, b) = tokio::join!(migrate(&url), migrate(&url));
    assert_eq!((a, b), (Ok(SCHEMA_VERSION), Ok(SCHEMA_VERSION)));
    assert_eq!(migrate(&url).await, Ok(SCHEMA_VERSION));
    let client = pg.sql().await;
    let rows = client
        .query("SELECT version FROM hookgate_schema", &[])
        .await
        .expect("read");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i32>(0), SCHEMA_VERSION as i32);
}

#[tokio::test]
async fn a_database_without_the_schema_is_refused_with_the_command_that_fixes_it() {
    let Some(pg) =
        database("a_database_without_the_schema_is_refused_with_the_command_that_fixes_it")
    else {
        return;
    };
    pg.create_bare().await;
    let refused = PgStore::open(pg.options(manual(), u64::MAX)).await;
    let Err(StoreError::Storage(message)) = refused else {
        panic!("opened a database with no schema");
    };
    assert!(message.contains("version 0"), "{message}");
    assert!(message.contains("hookgate migrate"), "{message}");
    assert!(message.contains(&pg.name), "names the database: {message}");
}

#[tokio::test]
async fn an_unreachable_server_is_named_without_its_password() {
    // Nothing listens on port 1: no server is needed to test this.
    let url = "postgres://hook:sup3r-secret@127.0.0.1:1/nowhere";
    let opts = PgOptions::new(url, manual());
    assert!(!format!("{opts:?}").contains("sup3r-secret"));
    for err in [
        PgStore::open(opts).await.err().expect("refused"),
        migrate(url).await.expect_err("refused"),
    ] {
        let message = err.to_string();
        assert!(message.contains("127.0.0.1:1/nowhere"), "{message}");
        assert!(!message.contains("sup3r-secret"), "{message}");
    }
    // A URL that does not parse is not repeated at all: a password can sit where no masking
    // would look (after a slash; a key = value with spaces and quotes).
    for (url, secret) in [
        (
            "postgres://hook:pa/ss-w0rd@127.0.0.1:notaport/db",
            "ss-w0rd",
        ),
        (
            "host=127.0.0.1 password = 'se cret' port=notaport",
            "se cret",
        ),
        ("host=127.0.0.1 password = 'se cret' port=notaport", "cret"),
    ] {
        let opts = PgOptions::new(url, manual());
        for err in [
            PgStore::open(opts).await.err().expect("refused"),
            migrate(url).await.expect_err("refused"),
        ] {
            let message = err.to_string();
            assert!(message.contains("not valid"), "{message}");
            assert!(!message.contains(secret), "{message}");
        }
    }
}

#[tokio::test]
async fn events_of_one_batch_are_deduplicated_as_if_ingested_in_order() {
    let Some(pg) = database("events_of_one_batch_are_deduplicated_as_if_ingested_in_order") else {
        return;
    };
    let metrics = Arc::new(hookgate::telemetry::Metrics::new());
    let opts = PgOptions {
        metrics: Some(metrics.clone()),
        ..pg.options(manual(), u64::MAX)
    };
    let store = Store::from_backend(pg.node(opts).await);
    // Hold the ingest lock, so a first batch waits in its transaction while the next queues.
    let sql = pg.sql().await;
    sql.execute("SELECT pg_advisory_lock($1)", &[&INGEST_LOCK])
        .await
        .expect("lock");
    let first = tokio::spawn({
        let store = store.clone();
        async move { store.ingest(event(&["a"], T0)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let keyed = NewEvent {
        dedup: Some(("k".into(), 60_000)),
        ..event(&["a"], T0)
    };
    let queued: Vec<_> = (0..20)
        .map(|_| {
            let (store, ev) = (store.clone(), keyed.clone());
            tokio::spawn(async move { store.ingest(ev).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    sql.execute("SELECT pg_advisory_unlock($1)", &[&INGEST_LOCK])
        .await
        .expect("unlock");
    first.await.expect("joined").expect("ingest");
    let mut outcomes = Vec::new();
    for t in queued {
        outcomes.push(t.await.expect("joined").expect("ingest"));
    }
    // Two commits: the first event, then the twenty in one transaction.
    let text = metrics.encode(Default::default());
    assert!(
        text.lines().any(|l| l == "hookgate_commit_batch_count 2"),
        "{text}"
    );
    // The first of them is stored, every later one is its duplicate.
    let IngestOutcome::Accepted { event_id, .. } = outcomes[0] else {
        panic!("{outcomes:?}");
    };
    for o in &outcomes[1..] {
        assert_eq!(*o, IngestOutcome::Duplicate { event_id });
    }
    assert_eq!(store.pending_count().await.expect("count"), 2);
    // The raw header bytes come back as they went in.
    let (_, payload) = store.event(event_id).await.expect("read").expect("stored");
    assert_eq!(payload.header("x-raw"), Some(&[0xff, 0x00][..]));
}

/// Ingests all of `events` at once; their outcomes, in order.
async fn futures_join(store: &Store, events: impl Iterator<Item = NewEvent>) -> Vec<IngestOutcome> {
    let tasks: Vec<_> = events
        .map(|ev| {
            let store = store.clone();
            tokio::spawn(async move { store.ingest(ev).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("joined").expect("ingest"));
    }
    out
}

#[tokio::test]
async fn the_backlog_limit_holds_across_nodes() {
    let Some(pg) = database("the_backlog_limit_holds_across_nodes") else {
        return;
    };
    let (a, b) = (
        Store::from_backend(pg.node(pg.options(manual(), 10)).await),
        Store::from_backend(pg.node(pg.options(manual(), 10)).await),
    );
    let mut tasks = Vec::new();
    for i in 0..30 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            store.ingest(event(&["e"], T0)).await
        }));
    }
    let (mut accepted, mut refused) = (0, 0);
    for t in tasks {
        match t.await.expect("joined") {
            Ok(IngestOutcome::Accepted { .. }) => accepted += 1,
            Err(StoreError::Backlog { limit: 10, .. }) => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((accepted, refused), (10, 20));
    assert_eq!(a.pending_count().await.expect("count"), 10);
}

#[tokio::test]
async fn the_pending_counts_always_equal_the_hot_table() {
    let Some(pg) = database("the_pending_counts_always_equal_the_hot_table") else {
        return;
    };
    let f = Fixture::open(&pg).await;
    let sql = pg.sql().await;
    let check = async |f: &Fixture| {
        let hot: i64 = sql
            .query_one("SELECT count(*) FROM deliveries", &[])
            .await
            .expect("count")
            .get(0);
        let by_endpoint: i64 = sql
            .query_one(
                "SELECT count(*) FROM (SELECT endpoint_id, sum(n) s FROM pending_counts \
                 GROUP BY 1) c JOIN (SELECT endpoint_id, count(*) s FROM deliveries GROUP BY 1) d \
                 USING (endpoint_id, s)",
                &[],
            )
            .await
            .expect("compare")
            .get(0);
        let endpoints: i64 = sql
            .query_one("SELECT count(DISTINCT endpoint_id) FROM deliveries", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(f.pending().await, hot as u64);
        assert_eq!(by_endpoint, endpoints);
    };
    let (_, ids) = f.accept(f.event(&["a", "b", "c"])).await;
    let more: Vec<DeliveryId> = futures_join(&f.store, (0..40).map(|_| f.event(&["a", "b"])))
        .await
        .into_iter()
        .flat_map(|o| match o {
            IngestOutcome::Accepted { deliveries, .. } => {
                deliveries.into_iter().map(|(d, _)| d).collect()
            }
            IngestOutcome::Duplicate { .. } => Vec::new(),
        })
        .collect();
    check(&f).await;
    f.lease(&more[..10], T0 + LEASE_MS).await;
    for id in &more[..5] {
        f.complete(*id, 200, Next::Delivered).await;
    }
    f.kill(ids[0]).await;
    check(&f).await;
    let in_done: i64 = sql
        .query_one(
            "SELECT count(*) FROM deliveries_done WHERE id = $1",
            &[&ids[0].0.to_be_bytes().as_slice()],
        )
        .await
        .expect("read")
        .get(0);
    assert_eq!(in_done, 1, "a dead delivery lives in deliveries_done");
    f.store.requeue(Requeue::One(ids[0])).await.expect("retry");
    f.store
        .delete_entry(hookgate::store::EntryKind::Endpoint, "b")
        .await
        .expect("delete");
    check(&f).await;
    // a: 1 + 40 - 3 delivered; b: all dead with it; c: 1.
    assert_eq!(f.pending().await, 38 + 1);
}

#[tokio::test]
async fn a_node_leaves_the_leases_of_live_nodes_alone() {
    let Some(pg) = database("a_node_leaves_the_leases_of_live_nodes_alone") else {
        return;
    };
    let clock = manual();
    let a = Store::from_backend(pg.node(pg.options(clock.clone(), u64::MAX)).await);
    let id = match a.ingest(event(&["e"], T0)).await.expect("ingest") {
        IngestOutcome::Accepted { deliveries, .. } => deliveries[0].0,
        other => panic!("{other:?}"),
    };
    a.lease(vec![id], T0 + LEASE_MS).await.expect("lease");
    let b = Store::from_backend(pg.node(pg.options(clock.clone(), u64::MAX)).await);
    let status = |s: &Store| {
        let s = s.clone();
        async move { s.delivery(id).await.expect("read").expect("stored").status }
    };
    assert_eq!(status(&b).await, DeliveryStatus::Delivering);
    // A closes: its leases are taken back by the next node to open (or beat).
    a.close().await;
    let c = Store::from_backend(pg.node(pg.options(clock.clone(), u64::MAX)).await);
    assert_eq!(status(&c).await, DeliveryStatus::Pending);
    b.close().await;
    c.close().await;
}

#[tokio::test]
async fn a_claim_takes_only_what_no_other_node_holds() {
    let Some(pg) = database("a_claim_takes_only_what_no_other_node_holds") else {
        return;
    };
    let clock = manual();
    let a = pg.node(pg.options(clock.clone(), u64::MAX)).await;
    let b = pg.node(pg.options(clock.clone(), u64::MAX)).await;
    let id = match a.ingest(event(&["e"], T0)).await.expect("ingest") {
        IngestOutcome::Accepted { deliveries, .. } => deliveries[0].0,
        other => panic!("{other:?}"),
    };
    let until = T0 + LEASE_MS;
    assert_eq!(a.claim_ids(vec![id], until).await.expect("claim"), [id]);
    // Held by a live node: not B's to take, but A may renew its own.
    assert!(
        b.claim_ids(vec![id], until)
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(a.claim_ids(vec![id], until + 1).await.expect("claim"), [id]);
    // Once the lease has run out, it is due again, for anyone.
    clock.set(until + 1);
    assert_eq!(
        b.claim_ids(vec![id], until + LEASE_MS)
            .await
            .expect("claim"),
        [id]
    );
    assert!(
        a.claim_ids(vec![id], until + LEASE_MS)
            .await
            .expect("claim")
            .is_empty()
    );
}

#[tokio::test]
async fn nodes_with_skewed_clocks_agree_on_the_database_clock() {
    let Some(pg) = database("nodes_with_skewed_clocks_agree_on_the_database_clock") else {
        return;
    };
    const HOUR: i64 = 3_600_000;
    let node = |offset: i64| {
        let clock: SharedClock = Arc::new(Skewed(offset));
        PgOptions {
            use_database_clock: true,
            idle_poll_ms: 0,
            ..pg.options(clock, u64::MAX)
        }
    };
    let ahead_clock = Skewed(HOUR);
    let ahead = Store::from_backend(pg.node(node(HOUR)).await);
    let behind_clock = Skewed(-HOUR);
    let behind = Store::from_backend(pg.node(node(-HOUR)).await);
    let id = match ahead
        .ingest(event(&["e"], ahead_clock.now_ms()))
        .await
        .expect("ingest")
    {
        IngestOutcome::Accepted { deliveries, .. } => deliveries[0].0,
        other => panic!("{other:?}"),
    };
    // Stored on the database's clock (this machine's), not the node's.
    let d = ahead.delivery(id).await.expect("read").expect("stored");
    assert!(d.due_ms.abs_diff(system_now_ms()) < 5_000, "{d:?}");
    // Due now for both, by their own clocks.
    let due = async |s: &Store, now| s.due("e", now, 10, HashSet::new()).await.expect("read");
    assert_eq!(due(&behind, behind_clock.now_ms()).await.items.len(), 1);
    assert_eq!(due(&ahead, ahead_clock.now_ms()).await.items.len(), 1);
    // Leased for 30 s by the node ahead: not due for the node behind before then.
    ahead
        .lease(vec![id], ahead_clock.now_ms() + 30_000)
        .await
        .expect("lease");
    let d = ahead.delivery(id).await.expect("read").expect("stored");
    assert!(d.due_ms.abs_diff(system_now_ms() + 30_000) < 5_000, "{d:?}");
    let early = due(&behind, behind_clock.now_ms() + 20_000).await;
    assert!(early.items.is_empty());
    // And the next due time comes back on the asking node's clock.
    let next = early.next_due_ms.expect("a next due time");
    assert!(
        next.abs_diff(behind_clock.now_ms() + 30_000) < 5_000,
        "{next} vs {}",
        behind_clock.now_ms()
    );
    assert_eq!(
        due(&behind, behind_clock.now_ms() + 31_000)
            .await
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn work_committed_on_one_node_wakes_the_lanes_of_another() {
    let Some(pg) = database("work_committed_on_one_node_wakes_the_lanes_of_another") else {
        return;
    };
    let a = Store::from_backend(pg.node(pg.options(manual(), u64::MAX)).await);
    let b = Store::from_backend(pg.node(pg.options(manual(), u64::MAX)).await);
    let wake = b.notices().of("e");
    // The listener may still be starting: ingest until B hears of one.
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            a.ingest(event(&["e"], T0)).await.expect("ingest");
            if tokio::time::timeout(Duration::from_millis(500), wake.notified())
                .await
                .is_ok()
            {
                return;
            }
        }
    })
    .await;
    assert!(heard.is_ok(), "node B never heard of node A's work");
}

/// An endpoint deleted through one node while another still routes to it (it hears of the
/// deletion up to a catalog poll later): what the other made meanwhile is dead-lettered when
/// it stops following the endpoint, not left pending for an endpoint no node has.
#[tokio::test]
async fn work_made_for_an_endpoint_another_node_deleted_is_dead_lettered() {
    let Some(pg) = database("work_made_for_an_endpoint_another_node_deleted_is_dead_lettered")
    else {
        return;
    };
    let clock = manual();
    let a = Store::from_backend(pg.node(pg.options(clock.clone(), u64::MAX)).await);
    let b = Store::from_backend(pg.node(pg.options(clock.clone(), u64::MAX)).await);
    let both = |ids: &[&str]| ids.iter().map(|e| e.to_string()).collect::<HashSet<_>>();
    for (kind, id) in [("keep", "k"), ("gone", "g")] {
        a.put_entry(
            EntryKind::Endpoint,
            id,
            format!(r#"{{"id":"{id}","note":"{kind}"}}"#).into_bytes(),
        )
        .await
        .expect("stored");
    }
    for s in [&a, &b] {
        s.set_endpoints(both(&["k", "g"])).await.expect("set");
    }
    a.delete_entry(EntryKind::Endpoint, "g")
        .await
        .expect("deleted");
    // B has not heard yet: its ingest still routes to "g".
    let orphan = match b.ingest(event(&["k", "g"], T0)).await.expect("ingest") {
        IngestOutcome::Accepted { deliveries, .. } => {
            deliveries
                .iter()
                .find(|(_, e)| e == "g")
                .expect("made for g")
                .0
        }
        other => panic!("{other:?}"),
    };
    // B hears of it (catalog sync): widened to the stored entries and what it routes to...
    b.follow_endpoints(both(&["k", "g"]))
        .await
        .expect("widened");
    assert_eq!(
        b.delivery(orphan)
            .await
            .expect("read")
            .expect("stored")
            .status,
        DeliveryStatus::Pending
    );
    // ...then narrowed to what is in force: the orphan is dead, with the reason.
    b.follow_endpoints(both(&["k"])).await.expect("narrowed");
    let d = b.delivery(orphan).await.expect("read").expect("stored");
    assert_eq!(d.status, DeliveryStatus::Dead);
    assert_eq!(d.last_error.as_deref(), Some("endpoint deleted"));
    assert_eq!(
        b.pending_count().await.expect("count"),
        1,
        "k's delivery only"
    );
    // An endpoint left behind that is still stored (in force on another node) keeps its work.
    let kept = match b.ingest(event(&["k"], T0)).await.expect("ingest") {
        IngestOutcome::Accepted { deliveries, .. } => deliveries[0].0,
        other => panic!("{other:?}"),
    };
    b.follow_endpoints(both(&[])).await.expect("narrowed");
    assert_eq!(
        b.delivery(kept)
            .await
            .expect("read")
            .expect("stored")
            .status,
        DeliveryStatus::Pending
    );
    a.close().await;
    b.close().await;
}

/// A claim reads due work without locks, then leases it under its locks; an attempt recorded in
/// between (by a node that held it before) changes the attempt count, and the lane must go by
/// the count as it stood under the lock, or its retry policy counts wrong.
#[tokio::test]
async fn a_claim_hands_out_attempt_counts_as_they_stood_under_its_lock() {
    let Some(pg) = database("a_claim_hands_out_attempt_counts_as_they_stood_under_its_lock") else {
        return;
    };
    let clock = manual();
    let store = Store::from_backend(pg.node(pg.options(clock.clone(), u64::MAX)).await);
    let id = match store.ingest(event(&["e"], T0)).await.expect("ingest") {
        IngestOutcome::Accepted { deliveries, .. } => deliveries[0].0,
        other => panic!("{other:?}"),
    };
    // Hold the endpoint's claim lock, so the claim stops between its read and its lease.
    let holder = pg.sql().await;
    holder
        .execute("SELECT pg_advisory_lock(hashtextextended('e', 0))", &[])
        .await
        .expect("locked");
    let claiming = {
        let store = store.clone();
        tokio::spawn(async move {
            let limits = ClaimLimits {
                max_in_flight: Some(10),
                rate: None,
                breaker: false,
                pull: false,
            };
            store
                .claim("e", T0, 10, HashSet::new(), T0 + LEASE_MS, limits)
                .await
                .expect("claim")
        })
    };
    let observer = pg.sql().await;
    eventually_async("the claim waits for the lock", async || {
        let waiting: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                &[],
            )
            .await
            .expect("read")
            .get(0);
        waiting == 1
    })
    .await;
    // Meanwhile an attempt is recorded, and the delivery is due again at once.
    store
        .complete(Completion {
            delivery_id: id,
            lease_token: None,
            attempt: Attempt {
                at_ms: T0,
                status_code: Some(503),
                latency_ms: 1,
                error: Some("HTTP 503".into()),
                response_excerpt: Vec::new(),
            },
            next: Next::RetryAt(T0),
            health: None,
            strict: false,
            waited_on: false,
        })
        .await
        .expect("recorded");
    holder
        .execute("SELECT pg_advisory_unlock(hashtextextended('e', 0))", &[])
        .await
        .expect("unlocked");
    let batch = claiming.await.expect("claimed");
    assert_eq!(batch.items.len(), 1);
    assert_eq!(
        (batch.items[0].attempts, batch.items[0].cycle_attempts),
        (1, 1),
        "the next attempt is the second"
    );
    store.close().await;
}

/// The history tables by day.
mod partitions;

/// Ordered delivery: the version 3 migration, and nodes racing on one key's head.
mod ordering;

/// The breaker across nodes.
mod breaker;

/// Each event's query string: the version 4 migration.
mod query;

/// The dedup lookup is prepared once per connection, often while `dedup` is empty; its
/// generic plan must still probe the primary key, not scan the table, once the table is big.
#[tokio::test]
async fn the_dedup_lookup_probes_its_index_whatever_it_was_prepared_on() {
    let Some(pg) = database("the_dedup_lookup_probes_its_index_whatever_it_was_prepared_on") else {
        return;
    };
    let store = Store::from_backend(pg.node(pg.options(manual(), u64::MAX)).await);
    let sql = pg.sql().await;
    // Prepared on the empty table, and held to its generic plan, as a pooled connection's
    // cached statement is after a few runs.
    sql.batch_execute("SET plan_cache_mode = force_generic_plan")
        .await
        .expect("set");
    sql.batch_execute(&format!(
        "PREPARE lookup(text[], text[]) AS {}",
        hookgate::store::postgres::DEDUP_LOOKUP
    ))
    .await
    .expect("prepared");
    // The first run plans it, on the empty table; the rows come after, with no ANALYZE to
    // make it plan again (autovacuum may not have come by yet, or be off).
    sql.batch_execute("EXECUTE lookup(ARRAY['s'], ARRAY['k0'])")
        .await
        .expect("run");
    sql.batch_execute(
        "INSERT INTO dedup (scope, key, event_id, expires_ms) \
         SELECT 's', 'k' || g, '\\x00000000000000000000000000000000'::bytea, 0 \
         FROM generate_series(1, 50000) g",
    )
    .await
    .expect("filled");
    let plan: String = sql
        .query("EXPLAIN EXECUTE lookup(ARRAY['s'], ARRAY['k7'])", &[])
        .await
        .expect("explained")
        .iter()
        .map(|r| r.get::<_, String>(0) + "\n")
        .collect();
    assert!(plan.contains("Index Scan using dedup_pkey"), "{plan}");
    assert!(!plan.contains("Seq Scan on dedup"), "{plan}");
    store.close().await;
}
