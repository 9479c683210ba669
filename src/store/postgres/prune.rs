//! Pruning steps, with redb's step protocol: expired dedup entries (through their expiry
//! index, so only expired ones are read), then finished events past their retention, found
//! through `event_progress`'s two partial indexes (finished with every delivery delivered, by
//! id; finished with dead ones, by last death), so **a step reads only what it can remove**.
//! Each candidate is checked again under its locks with [`outbox::prunable`] and removed with
//! its deliveries and attempts in the same transaction.
//!
//! With a retention of a day or more these steps remove only the remainder: the pass drops
//! whole days first (`retire.rs`), and a step's event cutoff is the start of the day it falls
//! in ([`partitions::step_cutoff`]), so it never removes row by row what a drop takes at
//! once; it takes what a drop kept (unfinished events, dead letters still kept) as it becomes
//! prunable.

use std::collections::HashMap;

use super::PgStore;
use super::error::{Fail, retrying};
use super::partitions;
use super::rows::{COLUMNS, delivery, id_bytes, id_from};
use super::time::{ms, unms};
use crate::ids::EventId;
use crate::model::event::Delivery;
use crate::store::outbox::{self, Cutoffs, Eligibility};
use crate::store::{Prune, Pruned, StoreError};

impl PgStore {
    /// One bounded pruning step (see [`Prune`]).
    pub async fn prune(&self, p: Prune) -> Result<Pruned, StoreError> {
        self.open_for_writes()?;
        let s = &self.shared;
        retrying(|| async move {
            let mut client = s.conn().await?;
            let tx = client.transaction().await?;
            let now = s.clock.now(&tx).await?;
            let p = Prune {
                now_ms: now.at(p.now_ms),
                events_before_ms: partitions::step_cutoff(
                    now.at(p.now_ms),
                    now.at(p.events_before_ms),
                ),
                dead_before_ms: now.at(p.dead_before_ms),
                ..p
            };
            let mut out = Pruned::default();
            if p.max_dedup > 0 {
                // Expired: `dedup_holds` no longer (expiry at or before now).
                let stmt = tx
                    .prepare_cached(
                        "DELETE FROM dedup WHERE (scope, key) IN ( \
                           SELECT scope, key FROM dedup WHERE expires_ms <= $1 \
                           ORDER BY expires_ms LIMIT $2 FOR UPDATE SKIP LOCKED)",
                    )
                    .await?;
                let max = i64::try_from(p.max_dedup).unwrap_or(i64::MAX);
                out.dedup_entries = tx.execute(&stmt, &[&ms(p.now_ms), &max]).await?;
            }
            if p.max_events > 0 {
                events(&tx, &p, &mut out).await?;
            }
            tx.commit().await?;
            Ok(out)
        })
        .await
    }
}

/// The events side of a step.
async fn events(
    tx: &deadpool_postgres::Transaction<'_>,
    p: &Prune,
    out: &mut Pruned,
) -> Result<(), Fail> {
    // Event ids are ULIDs: every id below this one arrived before the cutoff.
    let cutoff = u128::from(p.events_before_ms.min((1 << 48) - 1)) << 80;
    let max = i64::try_from(p.max_events).unwrap_or(i64::MAX);
    let delivered = tx
        .prepare_cached(
            "SELECT event_id FROM event_progress WHERE open = 0 AND last_death_ms IS NULL \
             AND event_id < $1 ORDER BY event_id LIMIT $2",
        )
        .await?;
    let mut candidates: Vec<(u128, Option<u64>)> = Vec::new();
    for row in tx
        .query(&delivered, &[&id_bytes(cutoff).as_slice(), &max])
        .await?
    {
        candidates.push((id_from(row.try_get(0)?)?, None));
    }
    // Pruned entries leave the index, so the next step starts from its beginning again.
    if candidates.len() == p.max_events {
        out.next = candidates.last().map(|(id, _)| *id);
    }
    let room = p.max_events - candidates.len();
    let low = p
        .after_dead
        .map_or((0, 0), |(at, id)| (at, id.saturating_add(1)));
    let high = (p.dead_before_ms, 0u128);
    if room > 0 && low < high {
        let dead = tx
            .prepare_cached(
                "SELECT last_death_ms, event_id FROM event_progress \
                 WHERE open = 0 AND last_death_ms IS NOT NULL \
                 AND (last_death_ms, event_id) >= ($1, $2) AND (last_death_ms, event_id) < ($3, $4) \
                 ORDER BY last_death_ms, event_id LIMIT $5",
            )
            .await?;
        let (lo, hi) = (id_bytes(low.1), id_bytes(high.1));
        let rows = tx
            .query(
                &dead,
                &[
                    &ms(low.0),
                    &lo.as_slice(),
                    &ms(high.0),
                    &hi.as_slice(),
                    &(i64::try_from(room).unwrap_or(i64::MAX) + 1),
                ],
            )
            .await?;
        for (looked, row) in rows.iter().enumerate() {
            let last_death = unms(row.try_get(0)?);
            let id = id_from(row.try_get(1)?)?;
            if looked == room {
                out.next_dead = Some((last_death, id.saturating_sub(1)));
                break;
            }
            out.examined += 1;
            // Dead letters kept longer than events (the usual): arrived long before.
            if id < cutoff {
                candidates.push((id, Some(last_death)));
            }
        }
    }
    out.examined += candidates.iter().filter(|(_, d)| d.is_none()).count() as u64;
    if candidates.is_empty() {
        return Ok(());
    }
    remove(tx, p, &candidates, out).await
}

/// Removes the candidates that are still prunable once locked; repairs the progress of any
/// that are not (which only a bug would leave).
async fn remove(
    tx: &deadpool_postgres::Transaction<'_>,
    p: &Prune,
    candidates: &[(u128, Option<u64>)],
    out: &mut Pruned,
) -> Result<(), Fail> {
    let keys: Vec<Vec<u8>> = candidates
        .iter()
        .map(|(id, _)| id_bytes(*id).to_vec())
        .collect();
    let read = tx
        .prepare_cached("SELECT id, received_ms, delivery_ids FROM events WHERE id = ANY($1)")
        .await?;
    let mut events: Vec<(u128, u64, Vec<Vec<u8>>)> = Vec::new();
    for row in tx.query(&read, &[&keys]).await? {
        events.push((
            id_from(row.try_get(0)?)?,
            unms(row.try_get(1)?),
            row.try_get(2)?,
        ));
    }
    events.sort_by_key(|e| e.0);
    let all: Vec<Vec<u8>> = events.iter().flat_map(|e| e.2.iter().cloned()).collect();
    // Lock order as everywhere: finished deliveries, then event progress. A concurrent
    // requeue either committed (its delivery is in the hot table now) or waits for us.
    let done = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM deliveries_done WHERE id = ANY($1) ORDER BY id FOR UPDATE"
        ))
        .await?;
    let hot = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM deliveries WHERE id = ANY($1)"
        ))
        .await?;
    let mut by_id: HashMap<u128, Delivery> = HashMap::new();
    for row in tx.query(&done, &[&all]).await? {
        let d = delivery(&row, 0)?;
        by_id.insert(d.id.0, d);
    }
    for row in tx.query(&hot, &[&all]).await? {
        let d = delivery(&row, 0)?;
        by_id.insert(d.id.0, d);
    }
    let lock = tx
        .prepare_cached(
            "SELECT event_id FROM event_progress WHERE event_id = ANY($1) \
             ORDER BY event_id FOR UPDATE",
        )
        .await?;
    tx.query(&lock, &[&keys]).await?;

    let cutoffs = Cutoffs {
        events_before_ms: p.events_before_ms,
        dead_before_ms: p.dead_before_ms,
    };
    let (mut gone, mut gone_deliveries) = (Vec::new(), Vec::new());
    let repair = tx
        .prepare_cached(
            "UPDATE event_progress SET open = $2, last_death_ms = $3 WHERE event_id = $1",
        )
        .await?;
    let mut found: Vec<u128> = Vec::new();
    for (id, received_ms, dids) in &events {
        found.push(*id);
        let mut deliveries = Vec::with_capacity(dids.len());
        for did in dids {
            if let Some(d) = by_id.get(&id_from(did)?) {
                deliveries.push(d.clone());
            }
        }
        let key = id_bytes(*id);
        match outbox::prunable(*received_ms, &deliveries, cutoffs) {
            Eligibility::Prunable => {
                gone.push(key.to_vec());
                gone_deliveries.extend(dids.iter().cloned());
            }
            Eligibility::Unfinished(open) => {
                // The index was wrong: put it right rather than meet this event again.
                tracing::warn!(event_id = %EventId(*id), "a finished event still had work; its progress was repaired");
                let open = i32::try_from(open).unwrap_or(i32::MAX);
                tx.execute(&repair, &[&key.as_slice(), &open, &None::<i64>])
                    .await?;
            }
            Eligibility::Kept => {
                // Filed under a time its deliveries no longer say: file it again.
                tracing::warn!(event_id = %EventId(*id), "a finished event was filed under a stale time; refiled");
                let last = outbox::last_death(&deliveries).map(ms);
                tx.execute(&repair, &[&key.as_slice(), &0i32, &last])
                    .await?;
            }
        }
    }
    // Progress rows whose event is gone: nothing to keep them for.
    let orphans: Vec<Vec<u8>> = candidates
        .iter()
        .filter(|(id, _)| !found.contains(id))
        .map(|(id, _)| id_bytes(*id).to_vec())
        .collect();
    if !gone.is_empty() || !orphans.is_empty() {
        for sql in [
            "DELETE FROM attempts WHERE delivery_id = ANY($1)",
            "DELETE FROM deliveries_done WHERE id = ANY($1)",
        ] {
            tx.execute(sql, &[&gone_deliveries]).await?;
        }
        tx.execute("DELETE FROM events WHERE id = ANY($1)", &[&gone])
            .await?;
        let progress: Vec<Vec<u8>> = gone.iter().chain(&orphans).cloned().collect();
        tx.execute(
            "DELETE FROM event_progress WHERE event_id = ANY($1)",
            &[&progress],
        )
        .await?;
    }
    out.events += gone.len() as u64;
    Ok(())
}
