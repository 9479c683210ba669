//! Each event's query string on PostgreSQL (schema version 4), beyond the contract's rule: a
//! version 3 database migrated with its data (its events read back with no query, its waiting
//! delivery still due), and a query kept as NULL when there is none.

use hookgate::model::event::Payload;

use super::*;

const V1: &str = include_str!("../../../../../src/store/postgres/schema/v1.sql");
const V2: &str = include_str!("../../../../../src/store/postgres/schema/v2.sql");
const V3: &str = include_str!("../../../../../src/store/postgres/schema/v3.sql");

/// An id made at `ms`.
fn id_at(ms: u64, n: u128) -> Vec<u8> {
    ((u128::from(ms) << 80) | n).to_be_bytes().to_vec()
}

fn id_of(bytes: &[u8]) -> u128 {
    u128::from_be_bytes(bytes.try_into().expect("16 bytes"))
}

/// The stored payload of `id`.
async fn payload(f: &Fixture, id: EventId) -> Payload {
    f.store.event(id).await.expect("read").expect("stored").1
}

#[tokio::test]
async fn a_version_3_database_migrates_with_its_events_read_as_having_no_query() {
    let Some(pg) =
        database("a_version_3_database_migrates_with_its_events_read_as_having_no_query")
    else {
        return;
    };
    pg.create_bare().await;
    let sql = pg.sql().await;
    sql.batch_execute(&format!(
        "BEGIN; CREATE TABLE hookgate_schema (version integer NOT NULL); \
         INSERT INTO hookgate_schema VALUES (3); {V1} {V2} {V3} COMMIT;"
    ))
    .await
    .expect("version 3");
    // At T0, as version 3 wrote it: an event with a header and a delivery waiting for `a`,
    // in the day's partitions.
    let (stored, waiting) = (id_at(T0, 1), id_at(T0, 2));
    sql.execute("SELECT hookgate_make_day(hookgate_day_of($1))", &[&stored])
        .await
        .expect("the day's partitions");
    let t0 = T0 as i64;
    sql.execute(
        "INSERT INTO events VALUES ($1, 'shop', 'order.paid', $2, NULL, ARRAY[$3::bytea], \
         ARRAY['a'], ARRAY['x-raw'], ARRAY['\\xff00'::bytea], '{\"id\":7}')",
        &[&stored, &t0, &waiting],
    )
    .await
    .expect("event");
    sql.execute(
        "INSERT INTO event_progress VALUES ($1, 1, NULL)",
        &[&stored],
    )
    .await
    .expect("progress");
    sql.execute(
        "INSERT INTO deliveries (id, event_id, endpoint_id, status, attempts, due_ms, \
         created_ms, updated_ms, cycle_base, cycle_started_ms) \
         VALUES ($1, $2, 'a', 'pending', 0, $3, $3, $3, 0, $3)",
        &[&waiting, &stored, &t0],
    )
    .await
    .expect("waiting delivery");

    assert_eq!(migrate(&pg.url()).await, Ok(SCHEMA_VERSION));
    // The day's existing partition has the column too, nullable.
    let nullable: String = sql
        .query_one(
            "SELECT is_nullable FROM information_schema.columns \
             WHERE table_name = 'events_p20231114' AND column_name = 'query'",
            &[],
        )
        .await
        .expect("the query column")
        .get(0);
    assert_eq!(nullable, "YES");

    // The old event reads back whole, with no query; its delivery is still due, body intact.
    let f = Fixture::open(&pg).await;
    let old = payload(&f, EventId(id_of(&stored))).await;
    assert_eq!(
        old,
        Payload {
            headers: vec![("x-raw".into(), vec![0xff, 0x00])],
            query: String::new(),
            body: bytes::Bytes::from_static(br#"{"id":7}"#),
        }
    );
    let due = f
        .store
        .due("a", T0, usize::MAX, HashSet::new())
        .await
        .expect("schedule");
    assert_eq!(
        due.items
            .iter()
            .map(|d| (d.delivery_id.0, d.body.as_ref()))
            .collect::<Vec<_>>(),
        [(id_of(&waiting), &br#"{"id":7}"#[..])]
    );

    // New events beside it: one with a query keeps it; one without is NULL, not "".
    let (queried, _) = f
        .accept(NewEvent {
            query: "site=eu&x=%2F".into(),
            ..event(&["a"], T0)
        })
        .await;
    let (plain, _) = f.accept(event(&["a"], T0)).await;
    assert_eq!(payload(&f, queried).await.query, "site=eu&x=%2F");
    assert_eq!(payload(&f, plain).await.query, "");
    let stored: Vec<Option<String>> = sql
        .query(
            "SELECT query FROM events WHERE id = ANY($1) ORDER BY id",
            &[&vec![
                queried.0.to_be_bytes().to_vec(),
                plain.0.to_be_bytes().to_vec(),
            ]],
        )
        .await
        .expect("the rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored, [Some("site=eu&x=%2F".to_string()), None]);
}
