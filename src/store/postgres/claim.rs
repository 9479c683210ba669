//! Claims: what a lane sends, taken so that no two lanes, on any node, hold one delivery at
//! once.
//!
//! A claim reads the endpoint's due deliveries with their payloads (`due`, which takes no
//! locks), then leases them in one short transaction that locks those rows with
//! `FOR UPDATE SKIP LOCKED` and leases only the ones still due under the lock: a row another
//! node is leasing right now is skipped, and one it leased a moment ago is no longer due (a
//! delivering row's due time is its lease's expiry). So **no two claims hold the same delivery
//! at once**, and no connection is held between the read and the lease. Each claim's leases
//! carry a fresh token; a completion under another token changes nothing (`complete`).
//!
//! The same transaction keeps the endpoint's limits for every node together (see [`room`]):
//! it takes no more than `max_in_flight` minus the leases held, and no more than the rate
//! allows now; a lane held back looks again when there may be room. An endpoint already at its
//! `max_in_flight` (a hanging one) is told so from a count of its leases before anything is
//! read, so its lanes, polling, read no payloads they could not lease.

use std::collections::{HashMap, HashSet};

use super::PgStore;
use super::error::{Fail, retrying};
use super::rows::{COLUMNS, Changes, Lease, Locked, delivery, id_bytes};
use super::time::ms;
use crate::ids::DeliveryId;
use crate::model::event::Delivery;
use crate::store::health::{self, Admit, Health};
use crate::store::{ClaimLimits, DueBatch, StoreError, outbox};

/// How long a lane held back by an endpoint's in-flight limit waits before claiming again: the
/// attempts that free room may be another node's, whose ends this node does not hear of.
const HELD_BACK_MS: u64 = 100;

impl PgStore {
    /// The endpoint's breaker (closed without a row), and `now_ms` on the database's clock.
    async fn breaker_of(&self, endpoint: &str, now_ms: u64) -> Result<(Health, u64), StoreError> {
        let s = &self.shared;
        let client = s.conn().await.map_err(Fail::into_store)?;
        let now = s.clock.now(&client).await.map_err(Fail::into_store)?;
        let h = super::health::read(&client, Some(&[endpoint.to_string()]))
            .await
            .map_err(Fail::into_store)?
            .remove(endpoint)
            .unwrap_or_default();
        Ok((h, now.at(now_ms)))
    }

    /// See `Store::claim`.
    #[allow(clippy::too_many_arguments)] // the trait's parameters, one by one
    pub async fn claim(
        &self,
        endpoint: &str,
        now_ms: u64,
        limit: usize,
        skip: &HashSet<DeliveryId>,
        until_ms: u64,
        limits: ClaimLimits,
    ) -> Result<DueBatch, StoreError> {
        // An endpoint whose breaker is open or disabled leases nothing (no attempt spent),
        // and one past its cool-down only the probe: see `health::admit`.
        let mut limit = limit;
        let mut breaker = None;
        let mut probing = false;
        if limits.breaker {
            let (h, at) = self.breaker_of(endpoint, now_ms).await?;
            match health::admit(&h, at) {
                Admit::None { until_ms } => {
                    return Ok(DueBatch {
                        items: Vec::new(),
                        // Back on the caller's clock.
                        next_due_ms: until_ms.map(|u| now_ms.saturating_add(u.saturating_sub(at))),
                        health: Some(h),
                    });
                }
                Admit::Probe => {
                    limit = 1;
                    probing = true;
                }
                Admit::All => {}
            }
            breaker = Some(h);
        }
        // An endpoint at its `max_in_flight` (a hanging one, say) leases nothing: say so
        // from a count of its leases, without reading payloads the lease would not take. The
        // count is checked again under the endpoint's lock (`room`); here it only spares work.
        if let Some(max) = limits.max_in_flight {
            let held = self.held(endpoint, now_ms, max).await?;
            let room = usize::try_from(max.saturating_sub(held)).unwrap_or(usize::MAX);
            if room == 0 {
                return Ok(DueBatch {
                    items: Vec::new(),
                    next_due_ms: Some(now_ms.saturating_add(HELD_BACK_MS)),
                    health: breaker,
                });
            }
            limit = limit.min(room);
        }
        let mut batch = self.due(endpoint, now_ms, limit, skip).await?;
        batch.health = breaker;
        if batch.items.is_empty() {
            return Ok(batch);
        }
        self.open_for_writes()?;
        let s = &self.shared;
        let keys: Vec<Vec<u8>> = batch
            .items
            .iter()
            .map(|d| id_bytes(d.delivery_id.0).to_vec())
            .collect();
        let token = rand::random::<i64>();
        let sql = format!(
            "SELECT {COLUMNS} FROM deliveries WHERE id = ANY($1) AND due_ms <= $2 \
             AND NOT blocked ORDER BY due_ms, id FOR UPDATE SKIP LOCKED"
        );
        // What was leased, as it stood under the lock: the unlocked read may be older (an
        // attempt recorded or a replay since), and the attempt numbers and retry cycle the lane
        // goes by must be the row's own.
        type Claimed = (
            HashMap<DeliveryId, Delivery>,
            Option<u64>,
            Option<(Health, u64)>,
        );
        let (leased, wait, granted): Claimed = retrying(|| async {
            let started = std::time::Instant::now();
            let mut client = s.conn().await?;
            let tx = client.transaction().await?;
            // Nothing depends on a lane's lease being durable: one lost to a crash of the
            // database leaves the delivery due, as after any restart. A consumer's receipt
            // must outlive a crash, so its lease commits as every write does.
            if !limits.pull {
                tx.batch_execute("SET LOCAL synchronous_commit = off")
                    .await?;
            }
            let now = s.clock.now(&tx).await?;
            // The caller's now, on the clock times are stored by.
            let at = ms(now.at(now_ms));
            let mut room = room(&tx, endpoint, at, limits).await?;
            // The probe: granted under the breaker's row lock, so two nodes never both get one.
            let mut probe = None;
            if probing {
                let set = std::collections::BTreeSet::from([endpoint.to_string()]);
                let h = super::health::lock(&tx, &set)
                    .await?
                    .remove(endpoint)
                    .unwrap_or_default();
                if health::admit(&h, now.ms()) == Admit::Probe {
                    probe = Some(h);
                    room.take = room.take.min(1);
                } else {
                    room.take = 0;
                }
            }
            let stmt = tx.prepare_cached(&sql).await?;
            let rows = tx.query(&stmt, &[&keys, &at]).await?;
            let lease = Lease {
                token,
                // A consumer's lease is no node's: only its running out takes it back.
                node: (!limits.pull).then_some(s.node),
            };
            let mut changes = Changes::default();
            let mut got = HashMap::new();
            for row in &rows {
                if got.len() >= room.take {
                    break;
                }
                let d = delivery(row, 0)?;
                if let Ok(new) = outbox::lease(&d, now.at(until_ms), now.ms()) {
                    got.insert(d.id, d.clone());
                    changes.put(&Locked { d, done: false }, &new, Some(lease));
                }
            }
            changes.flush(&tx).await?;
            let mut granted = None;
            if let (Some(h), Some(id)) = (probe, got.keys().next().copied()) {
                let g = health::grant_probe(&h, id, token as u64, now.at(until_ms), now.ms());
                super::health::write(&tx, endpoint, &g).await?;
                granted = Some((g, id.0 as u64));
            }
            let held_now = granted
                .map(|(g, _)| g)
                .or(breaker)
                .map(|h| (health::held_at(&h, now.ms()), h));
            if let Some((held, _)) = held_now {
                for d in got.values_mut() {
                    // Time the endpoint was held is not charged to `max_age`.
                    d.cycle_started_ms =
                        health::effective_cycle_start(d.cycle_started_ms, d.cycle_held_ms, held);
                }
            }
            if let Some((start, interval)) = room.gcra
                && !got.is_empty()
            {
                tx.execute(
                    "INSERT INTO lane_state (endpoint_id, tat_ms) VALUES ($1, $2) \
                     ON CONFLICT (endpoint_id) DO UPDATE SET tat_ms = excluded.tat_ms",
                    &[&endpoint, &(start + interval * got.len() as f64)],
                )
                .await?;
            }
            tx.commit().await?;
            s.observe_commit(1, started);
            let wait = (rows.len() > got.len()).then_some(room.wait_ms);
            Ok((got, wait, granted))
        })
        .await?;
        if probing {
            match granted {
                Some((g, _)) => batch.health = Some(g),
                // Another claim holds the probe, or the breaker moved: nothing goes.
                None => batch.items.clear(),
            }
        }
        batch.items.retain(|d| leased.contains_key(&d.delivery_id));
        for item in &mut batch.items {
            // The token's bits, as the completion will name them.
            item.lease_token = Some(token as u64);
            if let Some(d) = leased.get(&item.delivery_id) {
                item.attempts = d.attempts;
                item.cycle_attempts = d.cycle_attempts();
                item.cycle_started_ms = d.cycle_started_ms;
                item.cycle_held_ms = d.cycle_held_ms;
                item.probe = granted.is_some();
                item.lease_expired = d.status == crate::model::event::DeliveryStatus::Delivering;
            }
        }
        if let Some(wait) = wait {
            // Held back by a limit: look again when it may have room.
            let again = now_ms.saturating_add(wait.max(1));
            batch.next_due_ms = Some(batch.next_due_ms.map_or(again, |n| n.min(again)));
        }
        Ok(batch)
    }
}

impl PgStore {
    /// How many of `endpoint`'s leases are running at `now_ms`, counted up to `max`.
    async fn held(&self, endpoint: &str, now_ms: u64, max: u32) -> Result<u32, StoreError> {
        let s = &self.shared;
        retrying(|| async {
            let client = s.conn().await?;
            let stmt = client
                .prepare_cached(
                    // The time is a subquery, computed once (the function is volatile: inline,
                    // it would be called for every row and could not bound the index scan).
                    "SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE endpoint_id = $1 \
                     AND status = 'delivering' AND due_ms > (SELECT hookgate_at($2, $3)) \
                     LIMIT $4) l",
                )
                .await?;
            let row = client
                .query_one(
                    &stmt,
                    &[&endpoint, &ms(now_ms), &s.clock.sql_base(), &i64::from(max)],
                )
                .await?;
            let n: i64 = row.try_get(0)?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
        .await
    }
}

/// What an endpoint's limits leave room for now.
struct Room {
    /// Most deliveries this claim may take.
    take: usize,
    /// Where the rate limit's schedule stands and its interval (ms), to advance it by what
    /// is taken.
    gcra: Option<(f64, f64)>,
    /// When to look again if held back.
    wait_ms: u64,
}

/// Reads what `limits` leave room for, holding the endpoint's advisory lock so claims of one
/// endpoint on every node take turns: **an endpoint's `max_in_flight` and `rate_limit` hold
/// across all nodes together**. In flight is counted from the leases that have not run out, not
/// stored, so there is no counter to drift. The rate limit is GCRA: a burst of `burst` sends,
/// then one per `1000 / per_second` ms, kept as the theoretical arrival time in `lane_state`.
async fn room(
    tx: &deadpool_postgres::Transaction<'_>,
    endpoint: &str,
    now: i64,
    limits: ClaimLimits,
) -> Result<Room, Fail> {
    let mut room = Room {
        take: usize::MAX,
        gcra: None,
        wait_ms: HELD_BACK_MS,
    };
    if limits.max_in_flight.is_none() && limits.rate.is_none() {
        return Ok(room);
    }
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&endpoint],
    )
    .await?;
    if let Some(max) = limits.max_in_flight {
        let held: i64 = tx
            .query_one(
                "SELECT count(*) FROM deliveries \
                 WHERE endpoint_id = $1 AND status = 'delivering' AND due_ms > $2",
                &[&endpoint, &now],
            )
            .await?
            .try_get(0)?;
        room.take = usize::try_from(i64::from(max).saturating_sub(held)).unwrap_or(0);
    }
    if let Some((per_second, burst)) = limits.rate {
        let interval = 1000.0 / f64::from(per_second.max(1));
        let tolerance = interval * f64::from(burst.max(1) - 1);
        let tat: Option<f64> = tx
            .query_opt(
                "SELECT tat_ms FROM lane_state WHERE endpoint_id = $1",
                &[&endpoint],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        let now = now as f64;
        let start = tat.map_or(now, |t| t.max(now));
        let allowed = ((now + tolerance - start) / interval).floor() + 1.0;
        let allowed = if allowed >= 1.0 { allowed as usize } else { 0 };
        room.take = room.take.min(allowed);
        room.gcra = Some((start, interval));
        room.wait_ms = room.wait_ms.min(interval.ceil() as u64);
    }
    Ok(room)
}
