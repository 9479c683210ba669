//! The history tables by day (schema version 2): partitions made ahead at open and on demand
//! for an ingest on a day that has none, a day past retention dropped whole while what must
//! stay survives it (readable, deliverable, replayable) or, when its tables cannot be locked
//! in time, left whole for the next pass, and a version 1 database migrated with its data. The tables are looked at through `pg_class` and `pg_inherits`; the data only
//! through the `Store` API.

use std::time::Duration;

use hookgate::store::retention::{Policy, pass};

use super::*;

/// The partitioned tables.
const TABLES: [&str; 4] = ["events", "event_progress", "deliveries_done", "attempts"];
const DAY: u64 = 86_400_000;

/// The names of `table`'s partitions, in order.
async fn partitions(sql: &tokio_postgres::Client, table: &str) -> Vec<String> {
    sql.query(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = $1::text::regclass ORDER BY 1",
        &[&table],
    )
    .await
    .expect("list partitions")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// A relation's oid, if it exists.
async fn oid(sql: &tokio_postgres::Client, name: &str) -> Option<u32> {
    sql.query_one("SELECT to_regclass($1)::oid", &[&name])
        .await
        .expect("look up")
        .get(0)
}

/// The partition a row of `table` with this key is in.
async fn home(sql: &tokio_postgres::Client, table: &str, key: &str, id: u128) -> String {
    sql.query_one(
        &format!("SELECT tableoid::regclass::text FROM {table} WHERE {key} = $1 LIMIT 1"),
        &[&id.to_be_bytes().as_slice()],
    )
    .await
    .expect("the row is there")
    .get(0)
}

#[tokio::test]
async fn partitions_are_made_for_today_and_a_week_ahead_at_open() {
    let Some(pg) = database("partitions_are_made_for_today_and_a_week_ahead_at_open") else {
        return;
    };
    // T0 is 2023-11-14T22:13:20Z: the node's clock, far from the migration's (this machine's).
    let f = Fixture::open(&pg).await;
    let sql = pg.sql().await;
    for table in TABLES {
        let made = partitions(&sql, table).await;
        for day in 14..=21 {
            let name = format!("{table}_p202311{day}");
            assert!(made.contains(&name), "{name} missing from {made:?}");
        }
        assert!(
            !made
                .iter()
                .any(|n| n.ends_with("20231113") || n.ends_with("20231122"))
        );
    }
    // Partitioned, with no DEFAULT partition (which would make every drop lock and scan it).
    let defaults: i64 = sql
        .query_one(
            "SELECT count(*) FROM pg_partitioned_table WHERE partdefid <> 0",
            &[],
        )
        .await
        .expect("read")
        .get(0);
    let partitioned: i64 = sql
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relkind = 'p' AND relname = ANY($1)",
            &[&TABLES.to_vec()],
        )
        .await
        .expect("read")
        .get(0);
    assert_eq!((defaults, partitioned), (0, 4));
    // Each row is in its day's partition: the last millisecond of the day before, the first
    // and last of a day (in time order: ids never go back).
    let start = 1_699_920_000_000; // 2023-11-14T00:00:00Z
    for (at, day) in [
        (start - 1, "20231113"),
        (start, "20231114"),
        (start + DAY - 1, "20231114"),
    ] {
        f.clock.set(at);
        let (event, ids) = f.accept(f.event(&["a"])).await;
        assert_eq!(
            home(&sql, "events", "id", event.0).await,
            format!("events_p{day}")
        );
        f.complete(ids[0], 200, Next::Delivered).await;
        assert_eq!(
            home(&sql, "attempts", "delivery_id", ids[0].0).await,
            format!("attempts_p{day}")
        );
    }
}

#[tokio::test]
async fn an_ingest_on_a_day_with_no_partition_makes_it() {
    let Some(pg) = database("an_ingest_on_a_day_with_no_partition_makes_it") else {
        return;
    };
    let f = Fixture::open(&pg).await;
    let sql = pg.sql().await;
    assert_eq!(oid(&sql, "events_p20240222").await, None);
    // A hundred days on (2024-02-22), in one batch of several events.
    f.clock.set(T0 + 100 * DAY);
    let outcomes = futures_join(&f.store, (0..5).map(|_| f.event(&["a", "b"]))).await;
    let mut ids = Vec::new();
    for o in outcomes {
        let IngestOutcome::Accepted {
            event_id,
            deliveries,
        } = o
        else {
            panic!("{o:?}");
        };
        assert_eq!(
            home(&sql, "events", "id", event_id.0).await,
            "events_p20240222"
        );
        ids.extend(deliveries.into_iter().map(|(d, _)| d));
    }
    for table in TABLES {
        assert!(oid(&sql, &format!("{table}_p20240222")).await.is_some());
    }
    // Its deliveries finish into that day's partitions.
    f.complete(ids[0], 200, Next::Delivered).await;
    f.kill(ids[1]).await;
    assert_eq!(f.status(ids[0]).await, DeliveryStatus::Delivered);
    assert_eq!(f.dead_letters().await, [ids[1]]);
    assert_eq!(f.pending().await, 8);
}

#[tokio::test]
async fn a_day_past_retention_is_dropped_whole_and_what_must_stay_survives() {
    let Some(pg) = database("a_day_past_retention_is_dropped_whole_and_what_must_stay_survives")
    else {
        return;
    };
    let f = Fixture::open(&pg).await;
    let sql = pg.sql().await;
    // On 2023-11-14: two events that may go, one still waiting, one whose dead letter is kept.
    let (delivered, d1) = f.accept(f.event(&["a"])).await;
    let (nowhere, _) = f.accept(f.event(&[])).await;
    let (waiting, d3) = f.accept(f.event(&["a"])).await;
    let (dead, d4) = f.accept(f.event(&["a", "b"])).await;
    f.clock.set(T0 + 1);
    f.complete(d1[0], 200, Next::Delivered).await;
    f.complete(d4[0], 503, Next::RetryAt(T0 + 2)).await;
    f.kill(d4[0]).await;
    f.complete(d4[1], 200, Next::Delivered).await;
    // On 2023-11-15: finished, but its day is not wholly past retention.
    f.clock.set(T0 + 3 * 3_600_000);
    let (tomorrow, d5) = f.accept(f.event(&["a"])).await;
    f.complete(d5[0], 200, Next::Delivered).await;

    let before: Vec<Option<u32>> = day_oids(&sql, "20231114").await;
    assert!(before.iter().all(Option::is_some));
    let policy = Policy {
        retention: Duration::from_secs(24 * 3_600),
        dead_letter_retention: Duration::from_secs(3 * 24 * 3_600),
        interval: Duration::from_secs(60),
    };
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let clock: SharedClock = f.clock.clone();
    // Two days on: 2023-11-14 is wholly past the cutoff (2023-11-15T22:13:20Z), the next is not.
    f.clock.set(T0 + 2 * DAY);
    assert_eq!(
        pass(&f.store, &clock, policy, &stop).await.expect("pass"),
        (2, 0)
    );
    // The day's partitions were dropped and made again: new tables, still partitions.
    let after = day_oids(&sql, "20231114").await;
    for (table, (old, new)) in TABLES.iter().zip(before.iter().zip(&after)) {
        assert!(new.is_some() && new != old, "{table}: {old:?} → {new:?}");
        let name = format!("{table}_p20231114");
        assert!(partitions(&sql, table).await.contains(&name), "{name}");
    }
    let present = async |id| f.store.event(id).await.expect("read").is_some();
    assert!(!present(delivered).await && !present(nowhere).await);
    assert!(f.store.delivery(d1[0]).await.expect("read").is_none());
    assert!(f.store.attempts(d1[0]).await.expect("read").is_empty());
    assert!(
        present(tomorrow).await,
        "a day not wholly past retention stays whole"
    );
    // What had to stay is all there, and goes on: the waiting delivery is due and delivered…
    assert!(present(waiting).await && present(dead).await);
    let now = f.now();
    assert_eq!(f.due("a", now).await, [d3[0]]);
    f.complete(d3[0], 200, Next::Delivered).await;
    assert_eq!(f.status(d3[0]).await, DeliveryStatus::Delivered);
    // …and the dead letter is listed, with its attempts and its sibling, and replayed.
    assert_eq!(f.dead_letters().await, [d4[0]]);
    assert_eq!(f.store.attempts(d4[0]).await.expect("read").len(), 2);
    assert_eq!(f.status(d4[1]).await, DeliveryStatus::Delivered);
    let replayed = f
        .store
        .requeue(Requeue::Dead {
            filter: Default::default(),
            ids: None,
            after: None,
        })
        .await
        .expect("replay");
    assert_eq!(replayed.deliveries, [(d4[0], "a".to_string())]);
    assert_eq!(f.due("a", now).await, [d4[0]]);
    f.complete(d4[0], 200, Next::Delivered).await;
    assert_eq!(f.pending().await, 0);

    // Much later, the kept events go row by row, the next day by its drop, and once empty
    // the retired day's partitions go too (at the pass after).
    f.clock.set(T0 + 10 * DAY);
    assert_eq!(
        pass(&f.store, &clock, policy, &stop).await.expect("pass"),
        (3, 0)
    );
    assert!(!present(waiting).await && !present(dead).await && !present(tomorrow).await);
    assert_eq!(oid(&sql, "events_p20231115").await, None);
    assert_eq!(
        pass(&f.store, &clock, policy, &stop).await.expect("pass"),
        (0, 0)
    );
    for table in TABLES {
        assert_eq!(oid(&sql, &format!("{table}_p20231114")).await, None);
    }
    // Today and the days ahead are there.
    assert!(oid(&sql, "events_p20231124").await.is_some());
    assert!(oid(&sql, "events_p20231201").await.is_some());
}

#[tokio::test]
async fn a_day_whose_tables_cannot_be_locked_is_left_whole_for_the_next_pass() {
    let Some(pg) = database("a_day_whose_tables_cannot_be_locked_is_left_whole_for_the_next_pass")
    else {
        return;
    };
    let f = Fixture::open(&pg).await;
    let (delivered, ids) = f.accept(f.event(&["a"])).await;
    f.complete(ids[0], 200, Next::Delivered).await;
    let policy = Policy {
        retention: Duration::from_secs(24 * 3_600),
        dead_letter_retention: Duration::from_secs(24 * 3_600),
        interval: Duration::from_secs(60),
    };
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let clock: SharedClock = f.clock.clone();
    f.clock.set(T0 + 2 * DAY);
    // A long reader holds the history: the drop cannot lock it within its timeout.
    let reader = pg.sql().await;
    reader
        .batch_execute("BEGIN; LOCK TABLE ONLY event_progress IN ACCESS SHARE MODE")
        .await
        .expect("lock");
    let failed = pass(&f.store, &clock, policy, &stop)
        .await
        .expect_err("the pass fails");
    assert!(failed.to_string().contains("2023-11-14"), "{failed}");
    // Nothing went, not even row by row.
    assert!(f.store.event(delivered).await.expect("read").is_some());
    reader.batch_execute("ROLLBACK").await.expect("unlock");
    assert_eq!(
        pass(&f.store, &clock, policy, &stop).await.expect("pass"),
        (1, 0)
    );
    assert!(f.store.event(delivered).await.expect("read").is_none());
}

/// The oids of a day's four partitions.
async fn day_oids(sql: &tokio_postgres::Client, day: &str) -> Vec<Option<u32>> {
    let mut out = Vec::new();
    for table in TABLES {
        out.push(oid(sql, &format!("{table}_p{day}")).await);
    }
    out
}

/// An id made at `ms`.
fn id_at(ms: u64, n: u128) -> Vec<u8> {
    ((u128::from(ms) << 80) | n).to_be_bytes().to_vec()
}

#[tokio::test]
async fn migrating_a_version_1_database_keeps_its_data() {
    let Some(pg) = database("migrating_a_version_1_database_keeps_its_data") else {
        return;
    };
    pg.create_bare().await;
    let sql = pg.sql().await;
    sql.batch_execute(&format!(
        "BEGIN; CREATE TABLE hookgate_schema (version integer NOT NULL); \
         INSERT INTO hookgate_schema VALUES (1); {} COMMIT;",
        include_str!("../../../../../src/store/postgres/schema/v1.sql")
    ))
    .await
    .expect("version 1");
    // At T0: an event with one delivery delivered (one attempt) and one waiting. Forty days
    // on: an event whose only delivery is dead.
    let later = T0 + 40 * DAY;
    let (e1, d1, d2) = (id_at(T0, 1), id_at(T0, 2), id_at(T0, 3));
    let (e2, d3) = (id_at(later, 1), id_at(later, 2));
    sql.execute(
        "INSERT INTO events VALUES ($1, 'shop', 'order.paid', $2, 'k1', ARRAY[$3::bytea, $4::bytea], \
         ARRAY['a', 'b'], ARRAY['x-h'], ARRAY['\\x01'::bytea], 'one'), \
         ($5, 'shop', NULL, $6, NULL, ARRAY[$7::bytea], ARRAY['a'], ARRAY[]::text[], \
         ARRAY[]::bytea[], 'two')",
        &[&e1, &(T0 as i64), &d1, &d2, &e2, &(later as i64), &d3],
    )
    .await
    .expect("events");
    sql.execute(
        "INSERT INTO event_progress VALUES ($1, 1, NULL), ($2, 0, $3)",
        &[&e1, &e2, &(later as i64 + 5)],
    )
    .await
    .expect("progress");
    sql.execute(
        "INSERT INTO deliveries_done VALUES \
         ($1, $2, 'a', 'delivered', 1, $4, $4, $4, 200, NULL, 0, $4), \
         ($3, $5, 'a', 'dead', 1, $6, $6, $6, 500, 'gave up', 0, $6)",
        &[&d1, &e1, &d3, &(T0 as i64), &e2, &(later as i64 + 5)],
    )
    .await
    .expect("finished deliveries");
    sql.execute(
        "INSERT INTO deliveries (id, event_id, endpoint_id, status, attempts, due_ms, \
         created_ms, updated_ms, cycle_base, cycle_started_ms) \
         VALUES ($1, $2, 'b', 'pending', 0, $3, $3, $3, 0, $3)",
        &[&d2, &e1, &(T0 as i64)],
    )
    .await
    .expect("hot delivery");
    sql.execute(
        "INSERT INTO attempts VALUES ($1, 1, $3, 200, 4, NULL, 'ok'), \
         ($2, 1, $4, 500, 4, 'HTTP 500', 'no')",
        &[&d1, &d3, &(T0 as i64), &(later as i64 + 5)],
    )
    .await
    .expect("attempts");

    assert_eq!(migrate(&pg.url()).await, Ok(SCHEMA_VERSION));
    for name in ["events_p20231114", "attempts_p20231114", "events_p20231224"] {
        assert!(oid(&sql, name).await.is_some(), "{name}");
    }
    assert_eq!(oid(&sql, "events_v1").await, None);

    let f = Fixture::open(&pg).await;
    let id = |b: &[u8]| u128::from_be_bytes(b.try_into().expect("16 bytes"));
    let (event, payload) = f
        .store
        .event(EventId(id(&e1)))
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(
        (event.dedup_key.as_deref(), payload.body.as_ref()),
        (Some("k1"), &b"one"[..])
    );
    assert_eq!(payload.header("x-h"), Some(&[1u8][..]));
    assert_eq!(
        f.status(DeliveryId(id(&d1))).await,
        DeliveryStatus::Delivered
    );
    assert_eq!(
        f.store
            .attempts(DeliveryId(id(&d1)))
            .await
            .expect("read")
            .len(),
        1
    );
    assert_eq!(f.pending().await, 1);
    assert_eq!(f.due("b", T0).await, [DeliveryId(id(&d2))]);
    assert_eq!(f.dead_letters().await, [DeliveryId(id(&d3))]);
    assert_eq!(f.store.event_ids().await.expect("read").len(), 2);
    // And it goes on: the waiting delivery finishes into the migrated day's partition.
    f.complete(DeliveryId(id(&d2)), 200, Next::Delivered).await;
    assert_eq!(
        f.status(DeliveryId(id(&d2))).await,
        DeliveryStatus::Delivered
    );
    assert_eq!(
        home(&sql, "deliveries_done", "id", id(&d2)).await,
        "deliveries_done_p20231114"
    );
}
