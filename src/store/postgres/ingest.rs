//! Group-committed ingest. One task per process takes whatever queued while its last commit
//! ran (up to [`MAX_BATCH`] events or [`MAX_BATCH_BYTES`] of bodies), commits it as one
//! transaction with set-based statements (a binary `COPY` of the events, `unnest` inserts of
//! their deliveries, progress and dedup entries), and only then answers each caller: **no
//! answer before the commit**. A storage error fails the whole batch; an event refused on its
//! own (a duplicate, the backlog) does not.
//!
//! **Every ingest transaction first takes one cluster-wide advisory lock** ([`INGEST_LOCK`]),
//! then reads the dedup entries and the pending count: no other node's ingest can commit in
//! between, so **dedup and the backlog limit are exact across nodes**, and within a batch
//! events are judged in order, as if ingested one by one (the second of two events with one
//! key is a duplicate of the first). The price is one ingest commit at a time in the cluster,
//! each carrying a whole batch.
//!
//! **An ordered delivery is placed at the back of its key** (`order.rs`): after the ingest
//! lock, the batch takes the advisory locks of its deliveries' order keys, then their places
//! and whether each key has a head, in the batch's order: of several events of one key in one
//! batch, the first may be its head, and the rest wait behind it.
//!
//! **Ingest never fails for lack of a partition**: a batch with an event of a day that has
//! none (see `partitions.rs`) makes that day's partitions and is written again.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::Shared;
use super::error::{Fail, retrying};
use super::order::{self, Key};
use super::partitions::{self, Day};
use super::rows::{Columns, id_bytes, id_from};
use super::time::ms;
use crate::ids::{DeliveryId, EventId};
use crate::store::notices::Announcement;
use crate::store::{IngestOutcome, NewEvent, StoreError, outbox};

/// The dedup entries of a batch's keys: one primary-key probe per key, whatever the planner
/// knew when it prepared this. The statement is prepared once per connection, often while
/// `dedup` is empty, and a join planned then hashes a scan of the whole table, which every
/// batch would run from then on (30–70 ms at 150,000 keys). The LATERAL subquery with
/// `OFFSET 0` cannot be flattened into such a join. Public for the test that pins its plan.
#[doc(hidden)]
pub const DEDUP_LOOKUP: &str = "SELECT k.scope, k.key, d.event_id, d.expires_ms \
     FROM unnest($1::text[], $2::text[]) AS k(scope, key) \
     CROSS JOIN LATERAL (SELECT event_id, expires_ms FROM dedup \
       WHERE dedup.scope = k.scope AND dedup.key = k.key OFFSET 0) d";

/// The most events committed in one transaction.
const MAX_BATCH: usize = 256;
/// The most body bytes committed in one transaction.
const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;
/// The key of the advisory lock every ingest transaction holds (`hookgate` in ASCII, plus
/// one): what an operator sees in `pg_locks` while a batch commits.
pub const INGEST_LOCK: i64 = 0x686f_6f6b_6761_7466;

type Reply = oneshot::Sender<Result<IngestOutcome, StoreError>>;

pub(super) enum Msg {
    Ingest(Box<NewEvent>, Reply),
    /// Commit what is queued before this, then stop.
    Stop(oneshot::Sender<()>),
}

/// The group-commit loop: runs until `Stop` or until every sender is gone.
pub(super) async fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<Msg>) {
    // Locked only to make ids (never across an await).
    let ulids = std::sync::Mutex::new(ulid::Generator::new());
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::new();
        let mut stop = None;
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Ingest(ev, reply) => {
                    bytes += ev.body.len();
                    batch.push((ev, reply));
                }
                Msg::Stop(ack) => {
                    stop = Some(ack);
                    break;
                }
            }
            if batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        // An ingest whose caller is gone (the client hung up) was never acknowledged.
        batch.retain(|(_, reply)| !reply.is_closed());
        if !batch.is_empty() {
            commit(&shared, &ulids, batch).await;
        }
        if let Some(ack) = stop {
            let _ = ack.send(());
            return;
        }
    }
}

async fn commit(
    shared: &Shared,
    ulids: &std::sync::Mutex<ulid::Generator>,
    batch: Vec<(Box<NewEvent>, Reply)>,
) {
    let started = std::time::Instant::now();
    let events: Vec<&NewEvent> = batch.iter().map(|(e, _)| e.as_ref()).collect();
    let result = retrying(|| async {
        // A day with no partitions (a clock far from the days made ahead): make them and
        // write again. Twice more at most: a retry's ids may fall on a new day.
        let mut tries = 0;
        loop {
            match write(shared, ulids, &events).await {
                Err(Fail::NoPartition(days)) if tries < 3 => {
                    tries += 1;
                    partitions::make(shared, &days, partitions::ON_DEMAND_WAIT).await?;
                }
                other => return other,
            }
        }
    })
    .await;
    shared.observe_commit(batch.len(), started);
    match result {
        Ok(outcomes) => {
            // Committed: wake the endpoints that got work, tell live views, then answer.
            shared.announce(outcomes.iter().flat_map(|o| match o {
                Ok(IngestOutcome::Accepted { deliveries, .. }) => {
                    deliveries.iter().map(|(_, e)| e.as_str()).collect()
                }
                _ => Vec::new(),
            }));
            if shared.notices.listened() {
                for ((ev, _), outcome) in batch.iter().zip(&outcomes) {
                    if let Ok(IngestOutcome::Accepted {
                        event_id,
                        deliveries,
                    }) = outcome
                    {
                        shared.notices.publish(Announcement::Event {
                            event_id: *event_id,
                            source: ev.source.clone(),
                            event_type: ev.event_type.clone(),
                            // The time stored (the database's clock, perhaps), which the id
                            // was made from.
                            received_ms: event_id.timestamp_ms(),
                            deliveries: deliveries.clone(),
                        });
                    }
                }
            }
            for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, events = batch.len(), "ingest commit failed; the batch was not stored");
            for (_, reply) in batch {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// An event accepted in this batch, as it will be written.
struct Row<'a> {
    id: u128,
    ev: &'a NewEvent,
    received_ms: u64,
    deliveries: Vec<(DeliveryId, String)>,
}

/// One batch's transaction; each event's outcome, valid once it commits.
async fn write(
    shared: &Shared,
    ulids: &std::sync::Mutex<ulid::Generator>,
    events: &[&NewEvent],
) -> Result<Vec<Result<IngestOutcome, StoreError>>, Fail> {
    let mut client = shared.conn().await?;
    let tx = client.transaction().await?;
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1)")
        .await?;
    tx.execute(&lock, &[&INGEST_LOCK]).await?;
    // After the lock, in statements of their own: they see every ingest committed before.
    let now = shared.clock.now(&tx).await?;
    let count = tx
        .prepare_cached("SELECT coalesce(sum(n), 0)::bigint FROM pending_counts")
        .await?;
    let mut pending =
        u64::try_from(tx.query_one(&count, &[]).await?.try_get::<_, i64>(0)?).unwrap_or(0);
    let known = shared.known();

    let keys_of = |ev: &NewEvent| -> Vec<(String, String, u64)> {
        let scope = ev.dedup_scope.clone().unwrap_or_else(|| ev.source.clone());
        ev.dedup
            .iter()
            .map(|(k, w)| (scope.clone(), k.clone(), *w))
            .chain(
                ev.body_dedup
                    .iter()
                    .map(|(k, w)| (format!("{}#body", ev.source), k.clone(), *w)),
            )
            .collect()
    };
    let all_keys: Vec<(String, String, u64)> = events.iter().flat_map(|e| keys_of(e)).collect();
    // (scope, key) → (event id, expires): what the database holds, then this batch's writes.
    let mut seen: HashMap<(String, String), (u128, u64)> = HashMap::new();
    if !all_keys.is_empty() {
        let scopes: Vec<&str> = all_keys.iter().map(|k| k.0.as_str()).collect();
        let keys: Vec<&str> = all_keys.iter().map(|k| k.1.as_str()).collect();
        let lookup = tx.prepare_cached(DEDUP_LOOKUP).await?;
        for row in tx.query(&lookup, &[&scopes, &keys]).await? {
            let expires: i64 = row.try_get(3)?;
            seen.insert(
                (row.try_get(0)?, row.try_get(1)?),
                (id_from(row.try_get(2)?)?, super::time::unms(expires)),
            );
        }
    }

    let mut outcomes = Vec::with_capacity(events.len());
    let mut rows: Vec<Row<'_>> = Vec::new();
    let mut writes: HashMap<(String, String), (u128, u64)> = HashMap::new();
    for ev in events {
        let received_ms = now.at(ev.received_ms);
        let keys = keys_of(ev);
        let duplicate = keys.iter().find_map(|(scope, key, _)| {
            seen.get(&(scope.clone(), key.clone()))
                .filter(|(_, expires)| outbox::dedup_holds(*expires, received_ms))
                .map(|(id, _)| *id)
        });
        if let Some(id) = duplicate {
            outcomes.push(Ok(IngestOutcome::Duplicate {
                event_id: EventId(id),
            }));
            continue;
        }
        // Routed from a snapshot that may be older than a deletion committed since.
        let endpoints: Vec<&String> = ev
            .endpoints
            .iter()
            .filter(|e| known.as_ref().is_none_or(|k| k.contains(e.as_str())))
            .collect();
        let fanout = endpoints.len() as u64;
        if !outbox::admits(pending, fanout, shared.max_backlog) {
            outcomes.push(Err(StoreError::Backlog {
                pending,
                limit: shared.max_backlog,
            }));
            continue;
        }
        pending += fanout;
        let (id, deliveries) = {
            let mut ulids = ulids
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let id = next_id(&mut ulids, received_ms);
            let deliveries: Vec<(DeliveryId, String)> = endpoints
                .into_iter()
                .map(|e| (DeliveryId(next_id(&mut ulids, received_ms)), e.clone()))
                .collect();
            (id, deliveries)
        };
        for (scope, key, window) in keys {
            let entry = (id, outbox::dedup_expires(received_ms, window));
            seen.insert((scope.clone(), key.clone()), entry);
            writes.insert((scope, key), entry);
        }
        outcomes.push(Ok(IngestOutcome::Accepted {
            event_id: EventId(id),
            deliveries: Vec::clone(&deliveries),
        }));
        rows.push(Row {
            id,
            ev,
            received_ms,
            deliveries,
        });
    }
    if !rows.is_empty() {
        let placed = place(&tx, &rows).await?;
        let written = async {
            copy_events(&tx, &rows).await?;
            insert_rest(&tx, &rows, &placed, writes).await
        };
        written.await.map_err(|e| {
            if partitions::is_missing(&e) {
                // Every row of an event goes to its day: the event's and its deliveries' ids.
                let days: BTreeSet<Day> = rows
                    .iter()
                    .flat_map(|r| {
                        std::iter::once(r.id).chain(r.deliveries.iter().map(|(d, _)| d.0))
                    })
                    .map(Day::of_id)
                    .collect();
                Fail::NoPartition(days.into_iter().collect())
            } else {
                e
            }
        })?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// A new ordered delivery's place: its key, its place, and whether it waits behind a head.
type Place = (String, u64, bool);

/// The places of the batch's ordered deliveries, under their keys' locks (held until the
/// commit), in the batch's order.
async fn place(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &[Row<'_>],
) -> Result<HashMap<DeliveryId, Place>, Fail> {
    let mut ids = Vec::new();
    let mut wanted: Vec<Key> = Vec::new();
    for r in rows {
        for (id, endpoint) in &r.deliveries {
            if let Some(key) = r.ev.order_key(endpoint) {
                ids.push(*id);
                wanted.push((endpoint.clone(), key.to_string()));
            }
        }
    }
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    order::lock_keys(tx, &wanted).await?;
    let places = order::places(tx, &wanted).await?;
    Ok(ids
        .into_iter()
        .zip(wanted)
        .zip(places)
        .map(|((id, (_, key)), (seq, waits))| (id, (key, seq, waits)))
        .collect())
}

/// Ids from one generator per process, increasing even if the clock steps back.
fn next_id(ulids: &mut ulid::Generator, ms: u64) -> u128 {
    let at = UNIX_EPOCH + Duration::from_millis(ms);
    match ulids.generate_from_datetime(at) {
        Ok(u) => u.0,
        // 2^80 ids in one millisecond: carry into the next one, still increasing.
        Err(overflow) => overflow.commit_overflow_increment().0,
    }
}

/// The events, by binary `COPY`: their per-event arrays (deliveries, endpoints, headers)
/// cannot ride in an `unnest`.
async fn copy_events(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &[Row<'_>],
) -> Result<(), Fail> {
    let copy = tx
        .prepare_cached(
            "COPY events (id, source, event_type, received_ms, dedup_key, delivery_ids, \
             endpoints, header_names, header_values, body, query) FROM STDIN (FORMAT binary)",
        )
        .await?;
    let sink = tx.copy_in(&copy).await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::BYTEA,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::BYTEA_ARRAY,
            Type::TEXT_ARRAY,
            Type::TEXT_ARRAY,
            Type::BYTEA_ARRAY,
            Type::BYTEA,
            Type::TEXT,
        ],
    );
    let mut writer = std::pin::pin!(writer);
    for r in rows {
        let id = id_bytes(r.id);
        let delivery_ids: Vec<[u8; 16]> = r.deliveries.iter().map(|(d, _)| id_bytes(d.0)).collect();
        let delivery_ids: Vec<&[u8]> = delivery_ids.iter().map(|d| d.as_slice()).collect();
        let endpoints: Vec<&str> = r.deliveries.iter().map(|(_, e)| e.as_str()).collect();
        let names: Vec<&str> = r.ev.headers.iter().map(|(n, _)| n.as_str()).collect();
        let values: Vec<&[u8]> = r.ev.headers.iter().map(|(_, v)| v.as_slice()).collect();
        // None is NULL: no bytes in the row for the common case.
        let query = Some(r.ev.query.as_str()).filter(|q| !q.is_empty());
        writer
            .as_mut()
            .write(&[
                &id.as_slice(),
                &r.ev.source,
                &r.ev.event_type,
                &ms(r.received_ms),
                &r.ev.dedup.as_ref().map(|(k, _)| k.as_str()),
                &delivery_ids,
                &endpoints,
                &names,
                &values,
                &r.ev.body.as_ref(),
                &query,
            ])
            .await?;
    }
    writer.as_mut().finish().await?;
    Ok(())
}

/// The deliveries, each event's progress and the dedup entries, in three pipelined
/// statements.
async fn insert_rest(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &[Row<'_>],
    placed: &HashMap<DeliveryId, Place>,
    writes: HashMap<(String, String), (u128, u64)>,
) -> Result<(), Fail> {
    let mut made = Vec::new();
    for r in rows {
        for (id, endpoint) in &r.deliveries {
            let mut d = outbox::ingest(*id, EventId(r.id), endpoint, r.received_ms);
            if let Some((key, seq, waits)) = placed.get(id) {
                d = outbox::place(&d, key, *seq, *waits);
            }
            made.push(d);
        }
    }
    // Their first retry cycle starts on their endpoints' held-time clocks.
    super::health::stamp(tx, made.iter_mut()).await?;
    let mut deliveries = Columns::default();
    for d in &made {
        deliveries.push(d, None);
    }
    let events: Vec<[u8; 16]> = rows.iter().map(|r| id_bytes(r.id)).collect();
    let events: Vec<&[u8]> = events.iter().map(|e| e.as_slice()).collect();
    let open: Vec<i32> = rows
        .iter()
        .map(|r| i32::try_from(r.deliveries.len()).unwrap_or(i32::MAX))
        .collect();
    let mut writes: Vec<_> = writes.into_iter().collect();
    // In key order, so concurrent writers (there are none under the lock) could not deadlock.
    writes.sort();
    let scopes: Vec<&str> = writes.iter().map(|((s, _), _)| s.as_str()).collect();
    let keys: Vec<&str> = writes.iter().map(|((_, k), _)| k.as_str()).collect();
    let dedup_events: Vec<[u8; 16]> = writes.iter().map(|(_, (e, _))| id_bytes(*e)).collect();
    let dedup_events: Vec<&[u8]> = dedup_events.iter().map(|e| e.as_slice()).collect();
    let expires: Vec<i64> = writes.iter().map(|(_, (_, x))| ms(*x)).collect();

    let progress = tx
        .prepare_cached(
            "INSERT INTO event_progress (event_id, open) \
             SELECT * FROM unnest($1::bytea[], $2::int4[])",
        )
        .await?;
    let dedup = tx
        .prepare_cached(
            "INSERT INTO dedup (scope, key, event_id, expires_ms) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int8[]) \
             ON CONFLICT (scope, key) DO UPDATE \
             SET event_id = excluded.event_id, expires_ms = excluded.expires_ms",
        )
        .await?;
    let with_dedup = async {
        if scopes.is_empty() {
            Ok(0)
        } else {
            tx.execute(&dedup, &[&scopes, &keys, &dedup_events, &expires])
                .await
        }
    };
    tokio::try_join!(
        async { deliveries.insert_hot(tx).await },
        async { Ok(tx.execute(&progress, &[&events, &open]).await?) },
        async { Ok::<_, Fail>(with_dedup.await?) },
    )?;
    Ok(())
}
