//! Rows and the model: ids as 16 big-endian bytes, statuses as text, and the one place a
//! delivery's state is written. Every command locks the deliveries it changes ([`lock_hot`],
//! [`lock_any`]), asks an [`outbox`](crate::store::outbox) rule, and hands the old and new
//! states to [`Changes`], whose [`Changes::flush`] writes them: an update in the hot table, a
//! move to `deliveries_done` when a delivery becomes final (in the statement that finalizes
//! it), a move back when a requeue reopens it, and each event's `event_progress` in step.
//! **No command writes a delivery row any other way**; the pending counts follow the hot
//! table by trigger.
//!
//! Ordered delivery ([`order`]) happens here too, so no command can forget it: a head that
//! becomes final promotes the next of its key, and a final ordered delivery that a requeue
//! reopens is placed at the back of its key, both in the flushing transaction and under its
//! keys' advisory locks. **Lock order, everywhere: hot rows, finished rows, key locks, the
//! promoted row, then event progress.**

use std::collections::{BTreeMap, HashSet};

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::error::Fail;
use super::order::{self, Key};
use super::time::{ms, unms};
use crate::ids::{DeliveryId, EventId};
use crate::model::event::{Delivery, DeliveryStatus};
use crate::store::{StoreError, outbox};

/// A delivery's columns, in the order [`delivery`] reads them.
pub(super) const COLUMNS: &str = "id, event_id, endpoint_id, status, attempts, due_ms, \
     created_ms, updated_ms, last_status_code, last_error, cycle_base, cycle_started_ms, \
     order_key, order_seq, blocked, cycle_held_ms";

/// How many columns [`COLUMNS`] names: in a row that selects more after them, the first of
/// those is at this index.
pub(super) const NCOLUMNS: usize = 16;

/// The `unnest` of a delivery's columns, as [`Columns::params`] binds them.
const UNNEST: &str = "unnest($1::bytea[], $2::bytea[], $3::text[], $4::text[], $5::int4[], \
     $6::int8[], $7::int8[], $8::int8[], $9::int4[], $10::text[], $11::int4[], $12::int8[], \
     $13::text[], $14::int8[], $15::bool[], $16::int8[]) \
     AS v(id, event_id, endpoint_id, status, attempts, due_ms, created_ms, updated_ms, \
     last_status_code, last_error, cycle_base, cycle_started_ms, order_key, order_seq, \
     blocked, cycle_held_ms)";

/// [`UNNEST`] with the lease's token and node.
const UNNEST_LEASED: &str = "unnest($1::bytea[], $2::bytea[], $3::text[], $4::text[], \
     $5::int4[], $6::int8[], $7::int8[], $8::int8[], $9::int4[], $10::text[], $11::int4[], \
     $12::int8[], $13::text[], $14::int8[], $15::bool[], $16::int8[], $17::int8[], $18::int8[]) \
     AS v(id, event_id, endpoint_id, status, attempts, due_ms, created_ms, updated_ms, \
     last_status_code, last_error, cycle_base, cycle_started_ms, order_key, order_seq, \
     blocked, cycle_held_ms, lease_token, lease_node)";

pub(super) fn id_bytes(id: u128) -> [u8; 16] {
    id.to_be_bytes()
}

pub(super) fn id_from(bytes: &[u8]) -> Result<u128, StoreError> {
    <[u8; 16]>::try_from(bytes)
        .map(u128::from_be_bytes)
        .map_err(|_| StoreError::Corrupt(format!("an id of {} bytes", bytes.len())))
}

fn status_from(s: &str) -> Result<DeliveryStatus, StoreError> {
    DeliveryStatus::ALL
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery status {s:?}")))
}

fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn uncount(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// A delivery read from `COLUMNS`, starting at column `at`.
pub(super) fn delivery(row: &Row, at: usize) -> Result<Delivery, Fail> {
    let code: Option<i32> = row.try_get(at + 8)?;
    let key: Option<String> = row.try_get(at + 12)?;
    let seq: Option<i64> = row.try_get(at + 13)?;
    Ok(Delivery {
        id: DeliveryId(id_from(row.try_get(at)?)?),
        event_id: EventId(id_from(row.try_get(at + 1)?)?),
        endpoint_id: row.try_get(at + 2)?,
        status: status_from(row.try_get(at + 3)?)?,
        attempts: uncount(row.try_get(at + 4)?),
        due_ms: unms(row.try_get(at + 5)?),
        created_ms: unms(row.try_get(at + 6)?),
        updated_ms: unms(row.try_get(at + 7)?),
        last_status_code: code.and_then(|c| u16::try_from(c).ok()),
        last_error: row.try_get(at + 9)?,
        cycle_base: uncount(row.try_get(at + 10)?),
        cycle_started_ms: unms(row.try_get(at + 11)?),
        // Rows of schema version 2 have no key: unordered.
        order: key.map(|k| (k, unms(seq.unwrap_or(0)))),
        blocked: row.try_get(at + 14)?,
        cycle_held_ms: unms(row.try_get(at + 15)?),
    })
}

/// Deliveries as column arrays, for `unnest`.
#[derive(Default)]
pub(super) struct Columns {
    id: Vec<Vec<u8>>,
    event_id: Vec<Vec<u8>>,
    endpoint_id: Vec<String>,
    status: Vec<&'static str>,
    attempts: Vec<i32>,
    due_ms: Vec<i64>,
    created_ms: Vec<i64>,
    updated_ms: Vec<i64>,
    last_status_code: Vec<Option<i32>>,
    last_error: Vec<Option<String>>,
    cycle_base: Vec<i32>,
    cycle_started_ms: Vec<i64>,
    order_key: Vec<Option<String>>,
    order_seq: Vec<Option<i64>>,
    blocked: Vec<bool>,
    cycle_held_ms: Vec<i64>,
    lease_token: Vec<Option<i64>>,
    lease_node: Vec<Option<i64>>,
}

impl Columns {
    pub(super) fn push(&mut self, d: &Delivery, lease: Option<Lease>) {
        self.id.push(id_bytes(d.id.0).to_vec());
        self.event_id.push(id_bytes(d.event_id.0).to_vec());
        self.endpoint_id.push(d.endpoint_id.clone());
        self.status.push(d.status.as_str());
        self.attempts.push(count(d.attempts));
        self.due_ms.push(ms(d.due_ms));
        self.created_ms.push(ms(d.created_ms));
        self.updated_ms.push(ms(d.updated_ms));
        self.last_status_code
            .push(d.last_status_code.map(i32::from));
        self.last_error.push(d.last_error.clone());
        self.cycle_base.push(count(d.cycle_base));
        self.cycle_started_ms.push(ms(d.cycle_started_ms));
        self.order_key
            .push(d.order.as_ref().map(|(k, _)| k.clone()));
        self.order_seq.push(d.order.as_ref().map(|(_, s)| ms(*s)));
        self.blocked.push(d.blocked);
        self.cycle_held_ms.push(ms(d.cycle_held_ms));
        self.lease_token.push(lease.map(|l| l.token));
        self.lease_node.push(lease.and_then(|l| l.node));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.id.is_empty()
    }

    /// The columns of `COLUMNS`, then the lease's token and node.
    fn params(&self) -> [&(dyn ToSql + Sync); NCOLUMNS + 2] {
        [
            &self.id,
            &self.event_id,
            &self.endpoint_id,
            &self.status,
            &self.attempts,
            &self.due_ms,
            &self.created_ms,
            &self.updated_ms,
            &self.last_status_code,
            &self.last_error,
            &self.cycle_base,
            &self.cycle_started_ms,
            &self.order_key,
            &self.order_seq,
            &self.blocked,
            &self.cycle_held_ms,
            &self.lease_token,
            &self.lease_node,
        ]
    }

    /// Inserts new deliveries (ingest) into the hot table.
    pub(super) async fn insert_hot(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
    ) -> Result<(), Fail> {
        if self.is_empty() {
            return Ok(());
        }
        let sql = format!("INSERT INTO deliveries ({COLUMNS}) SELECT v.* FROM {UNNEST}");
        let stmt = tx.prepare_cached(&sql).await?;
        tx.execute(&stmt, &self.params()[..NCOLUMNS]).await?;
        Ok(())
    }

    /// Writes the new states of deliveries that stay in the hot table, lease and all.
    async fn update_hot(&self, tx: &deadpool_postgres::Transaction<'_>) -> Result<(), Fail> {
        if self.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE deliveries d SET status = v.status, attempts = v.attempts, \
             due_ms = v.due_ms, updated_ms = v.updated_ms, \
             last_status_code = v.last_status_code, last_error = v.last_error, \
             cycle_base = v.cycle_base, cycle_started_ms = v.cycle_started_ms, \
             order_key = v.order_key, order_seq = v.order_seq, blocked = v.blocked, \
             cycle_held_ms = v.cycle_held_ms, \
             lease_token = v.lease_token, lease_node = v.lease_node \
             FROM {UNNEST_LEASED} WHERE d.id = v.id"
        );
        let stmt = tx.prepare_cached(&sql).await?;
        tx.execute(&stmt, &self.params()).await?;
        Ok(())
    }
}

/// A lease being taken: its fencing token and the node that holds it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lease {
    pub(super) token: i64,
    /// The node whose lane holds it, whose departure takes it back; `None` for a pull
    /// consumer's, which only runs out.
    pub(super) node: Option<i64>,
}

/// A delivery as locked in this transaction, and which table holds it.
#[derive(Debug, Clone)]
pub(super) struct Locked {
    pub(super) d: Delivery,
    pub(super) done: bool,
}

/// Locks the not-final deliveries among `ids` (in id order) and reads them. One that is not
/// there is final or gone, and every rule but a requeue refuses a final delivery.
pub(super) async fn lock_hot(
    tx: &deadpool_postgres::Transaction<'_>,
    ids: &[DeliveryId],
) -> Result<Vec<Delivery>, Fail> {
    Ok(lock_hot_leased(tx, ids)
        .await?
        .into_iter()
        .map(|(d, _)| d)
        .collect())
}

/// [`lock_hot`], with each delivery's current lease token (`None` when not leased): what a
/// fenced finish or release compares its own token with.
pub(super) async fn lock_hot_leased(
    tx: &deadpool_postgres::Transaction<'_>,
    ids: &[DeliveryId],
) -> Result<Vec<(Delivery, Option<u64>)>, Fail> {
    let keys: Vec<Vec<u8>> = ids.iter().map(|i| id_bytes(i.0).to_vec()).collect();
    let sql = format!(
        "SELECT {COLUMNS}, lease_token FROM deliveries WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    );
    let stmt = tx.prepare_cached(&sql).await?;
    let rows = tx.query(&stmt, &[&keys]).await?;
    rows.iter()
        .map(|r| {
            let token: Option<i64> = r.try_get(NCOLUMNS)?;
            Ok((delivery(r, 0)?, token.map(|t| t as u64)))
        })
        .collect()
}

/// Whether a finish or release under `theirs` comes too late: the delivery's `current` lease
/// is another one (taken over after `theirs` ran out), or it has none (given back). `None`
/// (tests, tools) is never late.
pub(super) fn stale(theirs: Option<u64>, current: Option<u64>) -> bool {
    theirs.is_some_and(|t| current != Some(t))
}

/// Locks and reads `ids` wherever they are (the hot table first, then the finished one; lock
/// order is hot rows, finished rows, then event progress, everywhere).
pub(super) async fn lock_any(
    tx: &deadpool_postgres::Transaction<'_>,
    ids: &[DeliveryId],
) -> Result<Vec<Locked>, Fail> {
    let mut found: Vec<Locked> = lock_hot(tx, ids)
        .await?
        .into_iter()
        .map(|d| Locked { d, done: false })
        .collect();
    let seen = |found: &[Locked]| -> HashSet<DeliveryId> { found.iter().map(|l| l.d.id).collect() };
    let hot = seen(&found);
    let missing: Vec<Vec<u8>> = ids
        .iter()
        .filter(|i| !hot.contains(i))
        .map(|i| id_bytes(i.0).to_vec())
        .collect();
    if missing.is_empty() {
        return Ok(found);
    }
    let sql =
        format!("SELECT {COLUMNS} FROM deliveries_done WHERE id = ANY($1) ORDER BY id FOR UPDATE");
    let stmt = tx.prepare_cached(&sql).await?;
    for row in tx.query(&stmt, &[&missing]).await? {
        found.push(Locked {
            d: delivery(&row, 0)?,
            done: true,
        });
    }
    // One moved from the finished table to the hot one between the two reads (a concurrent
    // requeue that has committed since): read it where it is now.
    let either = seen(&found);
    let still: Vec<DeliveryId> = ids
        .iter()
        .filter(|i| !either.contains(i))
        .copied()
        .collect();
    if !still.is_empty() {
        found.extend(
            lock_hot(tx, &still)
                .await?
                .into_iter()
                .map(|d| Locked { d, done: false }),
        );
    }
    Ok(found)
}

/// The new states a transaction's rules answered, written together by [`Changes::flush`].
#[derive(Default)]
pub(super) struct Changes {
    /// Not final before or after: updated in place.
    updated: Vec<(Delivery, Option<Lease>)>,
    /// Final now, not before: moved to `deliveries_done`.
    finished: Vec<Delivery>,
    /// Final before, not now (requeued): moved back to the hot table; with whether it goes
    /// to the back of its order key ([`outbox::needs_place`]) first.
    reopened: Vec<(Delivery, bool)>,
    /// Per event: deliveries that became final (negative) or not final again.
    progress: BTreeMap<u128, i32>,
    /// Of `updated`, those whose retry cycle starts anew (a retry or recover): they start it
    /// on their endpoint's held-time clock, as reopened and promoted ones do.
    restarted: HashSet<DeliveryId>,
}

/// What a flush did besides writing the states it was given.
#[derive(Debug, Default)]
pub(super) struct Flushed {
    /// The endpoints of deliveries promoted to their key's head: due now, to be announced
    /// once the transaction commits.
    pub(super) promoted: Vec<String>,
}

impl Changes {
    /// Records `new`, the state a rule answered for `old` (as locked in this transaction).
    /// A lease is given only with the `delivering` state that [`outbox::lease`] answers.
    pub(super) fn put(&mut self, old: &Locked, new: &Delivery, lease: Option<Lease>) {
        let is_final = new.status.is_final();
        let lease = lease.filter(|_| new.status == DeliveryStatus::Delivering);
        match (old.done, is_final) {
            (false, false) => {
                if new.cycle_started_ms != old.d.cycle_started_ms
                    || new.cycle_base != old.d.cycle_base
                {
                    self.restarted.insert(new.id);
                }
                self.updated.push((new.clone(), lease));
            }
            (false, true) => {
                self.finished.push(new.clone());
                *self.progress.entry(new.event_id.0).or_default() -= 1;
            }
            (true, false) => {
                self.reopened
                    .push((new.clone(), outbox::needs_place(&old.d, new)));
                *self.progress.entry(new.event_id.0).or_default() += 1;
            }
            // No rule turns one final state into another; a requeue answers pending.
            (true, true) => {}
        }
    }

    /// How many deliveries change.
    pub(super) fn len(&self) -> usize {
        self.updated.len() + self.finished.len() + self.reopened.len()
    }

    /// Writes every change: updates, moves (each in one statement, so a delivery is never in
    /// both tables or neither), then the progress of the events whose deliveries moved.
    ///
    /// Ordered deliveries: first the advisory locks of the keys whose head becomes final and
    /// of those a reopened delivery goes back to, and the reopened ones placed at the back
    /// ([`order::places`]); after the moves, each key whose head ended gets its next
    /// delivery promoted ([`order::next_heads`]), written as a second update. Under the key
    /// lock, a concurrent ingest either saw the old head (and waited behind it, for the
    /// promotion to find) or runs after this commit and finds the new one: **never two heads
    /// of one key**.
    pub(super) async fn flush(
        mut self,
        tx: &deadpool_postgres::Transaction<'_>,
    ) -> Result<Flushed, Fail> {
        // The keys whose deliveries end here, and when (what the next is due from). A final
        // delivery is never blocked, so whether it was the head is not known here: one that
        // waited behind a head (its endpoint deleted) finds that head at `next_heads`, not
        // blocked, and promotes nothing.
        let mut ended: BTreeMap<Key, u64> = BTreeMap::new();
        for d in &self.finished {
            if let Some((key, _)) = &d.order {
                let at = ended
                    .entry((d.endpoint_id.clone(), key.clone()))
                    .or_default();
                *at = (*at).max(d.updated_ms);
            }
        }
        let placing: Vec<usize> = (0..self.reopened.len())
            .filter(|i| self.reopened[*i].1)
            .collect();
        if !ended.is_empty() || !placing.is_empty() {
            let mut keys: Vec<Key> = ended.keys().cloned().collect();
            keys.extend(
                placing
                    .iter()
                    .filter_map(|i| order::key_of(&self.reopened[*i].0)),
            );
            order::lock_keys(tx, &keys).await?;
        }
        if !placing.is_empty() {
            let wanted: Vec<Key> = placing
                .iter()
                .filter_map(|i| order::key_of(&self.reopened[*i].0))
                .collect();
            let places = order::places(tx, &wanted).await?;
            for (i, (seq, head_exists)) in placing.iter().zip(places) {
                let d = &mut self.reopened[*i].0;
                let key = d.order.as_ref().map(|(k, _)| k.clone()).unwrap_or_default();
                *d = outbox::place(d, &key, seq, head_exists);
            }
        }
        let restarted = &self.restarted;
        let restarting = self
            .updated
            .iter_mut()
            .filter(|(d, _)| restarted.contains(&d.id))
            .map(|(d, _)| d)
            .chain(self.reopened.iter_mut().map(|(d, _)| d));
        super::health::stamp(tx, restarting).await?;
        let mut updated = Columns::default();
        for (d, lease) in &self.updated {
            updated.push(d, *lease);
        }
        updated.update_hot(tx).await?;
        let mut finished = Columns::default();
        for d in &self.finished {
            finished.push(d, None);
        }
        let mut reopened = Columns::default();
        for (d, _) in &self.reopened {
            reopened.push(d, None);
        }
        for (cols, from, to) in [
            (&finished, "deliveries", "deliveries_done"),
            (&reopened, "deliveries_done", "deliveries"),
        ] {
            if cols.is_empty() {
                continue;
            }
            let sql = format!(
                "WITH moved AS (DELETE FROM {from} WHERE id = ANY($1) RETURNING id) \
                 INSERT INTO {to} ({COLUMNS}) SELECT v.* FROM {UNNEST} \
                 WHERE v.id IN (SELECT id FROM moved)"
            );
            let stmt = tx.prepare_cached(&sql).await?;
            tx.execute(&stmt, &cols.params()[..NCOLUMNS]).await?;
        }
        let mut flushed = Flushed::default();
        if !ended.is_empty() {
            let mut promoted = Columns::default();
            let mut heads = order::next_heads(tx, &ended).await?;
            super::health::stamp(tx, heads.iter_mut()).await?;
            for d in heads {
                promoted.push(&d, None);
                flushed.promoted.push(d.endpoint_id);
            }
            promoted.update_hot(tx).await?;
        }
        progress(tx, &self.progress).await?;
        Ok(flushed)
    }
}

/// Moves each event's count of open deliveries by its delta; an event left with none is filed
/// under its last death (or none: all delivered), one reopened leaves the finished indexes.
async fn progress(
    tx: &deadpool_postgres::Transaction<'_>,
    deltas: &BTreeMap<u128, i32>,
) -> Result<(), Fail> {
    let deltas: Vec<(u128, i32)> = deltas
        .iter()
        .filter(|(_, d)| **d != 0)
        .map(|(e, d)| (*e, *d))
        .collect();
    if deltas.is_empty() {
        return Ok(());
    }
    let events: Vec<Vec<u8>> = deltas.iter().map(|(e, _)| id_bytes(*e).to_vec()).collect();
    let by: Vec<i32> = deltas.iter().map(|(_, d)| *d).collect();
    if events.len() > 1 {
        // In event order, so two transactions never wait on each other's rows crosswise.
        let lock = tx
            .prepare_cached(
                "SELECT 1 FROM event_progress WHERE event_id = ANY($1) \
                 ORDER BY event_id FOR UPDATE",
            )
            .await?;
        tx.query(&lock, &[&events]).await?;
    }
    let update = tx
        .prepare_cached(
            "UPDATE event_progress p SET open = greatest(p.open + c.delta, 0), \
             last_death_ms = NULL \
             FROM unnest($1::bytea[], $2::int4[]) AS c(event_id, delta) \
             WHERE p.event_id = c.event_id RETURNING p.event_id, p.open",
        )
        .await?;
    let mut finished = Vec::new();
    for row in tx.query(&update, &[&events, &by]).await? {
        let open: i32 = row.try_get(1)?;
        if open == 0 {
            finished.push(row.try_get::<_, Vec<u8>>(0)?);
        }
    }
    if finished.is_empty() {
        return Ok(());
    }
    // A statement of its own, so it sees what concurrent transactions committed before this
    // one got the rows: the sibling deliveries that finished first.
    let file = tx
        .prepare_cached(
            // One primary-key probe per delivery of the event (OFFSET 0 keeps the planner
            // from walking the dead-letter index instead, filtering every dead letter).
            "UPDATE event_progress p SET last_death_ms = ( \
               SELECT max(d.updated_ms) FROM unnest(e.delivery_ids) AS x(id) \
               CROSS JOIN LATERAL (SELECT updated_ms FROM deliveries_done \
                 WHERE deliveries_done.id = x.id AND status = 'dead' OFFSET 0) d) \
             FROM events e WHERE e.id = p.event_id AND p.event_id = ANY($1)",
        )
        .await?;
    tx.execute(&file, &[&finished]).await?;
    Ok(())
}
