//! Dropping history by day: what a pruning pass does first ([`PgStore::maintain`]), before
//! its row-level steps (`prune.rs`). It makes the partitions of the days ahead, then takes
//! each day whose end is past the event retention cutoff, oldest first, once:
//! - a day with nothing in it: its partitions are dropped;
//! - a day with events that may go: **its partitions are dropped whole and made again empty,
//!   with the events that must stay copied back** (unfinished ones, found through
//!   `event_progress_open`, and those whose last death is within the dead-letter retention,
//!   through `event_progress_dead`), with their progress, finished deliveries and attempts.
//!   Everything else of the day goes with the drop, in O(1) rather than a `DELETE` per row:
//!   no dead tuples, no vacuum, no index upkeep;
//! - a day with only events that must stay: left as it is.
//!
//! A day so taken is *retired* (`retired_days`): its remaining events go row by row as they
//! become prunable, and once it is empty its partitions are dropped. One transaction per day,
//! under [`PARTITION_LOCK`] (another node doing the same waits, then finds the day done):
//! the four parents are locked `ACCESS EXCLUSIVE` (every reader and writer goes through them,
//! so nothing of the day changes while it is rewritten) with a short `lock_timeout`; **a lock
//! not got in time makes the pass fail, to be tried again at the next one**, and the pass then
//! removes no rows (which would otherwise remove the day's events one by one). The lock is
//! held only to select and copy what stays, drop and make the partitions, and copy it back;
//! the day is counted before it.

use std::collections::HashSet;

use deadpool_postgres::Transaction;

use super::PgStore;
use super::error::{Fail, retrying};
use super::partitions::{self, Day, LOCK_WAIT, PARTITION_LOCK, TABLES};
use super::time::ms;
use crate::store::{Prune, Pruned, StoreError};

impl PgStore {
    /// Makes the days ahead and drops the days past retention (see the module's doc); the
    /// events removed are counted in `events`.
    pub async fn maintain(&self, p: Prune) -> Result<Pruned, StoreError> {
        self.open_for_writes()?;
        let s = &self.shared;
        let (p, days, retired) = retrying(|| async move {
            let client = s.conn().await?;
            let now = s.clock.now(&client).await?;
            let p = Prune {
                now_ms: now.at(p.now_ms),
                events_before_ms: now.at(p.events_before_ms),
                dead_before_ms: now.at(p.dead_before_ms),
                ..p
            };
            let days = partitions::existing(&client).await?;
            let mut retired = HashSet::new();
            for row in client.query("SELECT day FROM retired_days", &[]).await? {
                retired.insert(Day(u32::try_from(row.try_get::<_, i32>(0)?).unwrap_or(0)));
            }
            Ok((p, days, retired))
        })
        .await?;
        let ahead = partitions::ahead(Day::of_ms(p.now_ms));
        match partitions::make(s, &ahead, LOCK_WAIT).await {
            // Not a reason to keep history: the days ahead are made at the next pass, or by
            // the first ingest that needs them.
            Err(e) if e.lock_lost() => {
                tracing::warn!(error = %e, "cannot make the partitions of the days ahead now; trying again at the next pass");
            }
            other => {
                other.map_err(|e| {
                    context("making the partitions of the days ahead", e.into_store())
                })?;
            }
        }
        let mut out = Pruned::default();
        for day in days.iter().copied() {
            if day.end_ms() > p.events_before_ms {
                break;
            }
            let removed = if retired.contains(&day) {
                retrying(|| drop_if_empty(self, day)).await
            } else {
                retrying(|| retire(self, day, p.dead_before_ms)).await
            };
            out.events += removed
                .map_err(|e| context(&format!("dropping the history partitions of {day}"), e))?;
        }
        // Retired days dropped since (or by hand): nothing to remember them for.
        retrying(|| async {
            let client = s.conn().await?;
            let days: Vec<i32> = partitions::existing(&client)
                .await?
                .iter()
                .map(|d| d.sql())
                .collect();
            client
                .execute("DELETE FROM retired_days WHERE day <> ALL($1)", &[&days])
                .await?;
            Ok(())
        })
        .await?;
        if out.events > 0 {
            tracing::info!(events = out.events, "dropped history past retention by day");
        }
        Ok(out)
    }
}

/// `e`, saying what was being done.
fn context(what: &str, e: StoreError) -> StoreError {
    match e {
        StoreError::Storage(m) => StoreError::Storage(format!("{what}: {m}")),
        other => other,
    }
}

/// Opens a day's transaction: a short `lock_timeout`, the partition lock, and whether the day
/// still has partitions and is retired (another node may have dropped it meanwhile).
async fn begin(tx: &Transaction<'_>, day: Day) -> Result<(bool, bool), Fail> {
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = {}",
        LOCK_WAIT.as_millis()
    ))
    .await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
        .await?;
    let row = tx
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL, \
             EXISTS (SELECT 1 FROM retired_days WHERE day = $2)",
            &[&day.partition(TABLES[0]), &day.sql()],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// Locks the four parents: from here until the commit, no other transaction reads or writes
/// any history. In one statement, in the order of [`TABLES`].
async fn lock_parents(tx: &Transaction<'_>) -> Result<(), Fail> {
    let only: Vec<String> = TABLES.iter().map(|t| format!("ONLY {t}")).collect();
    tx.batch_execute(&format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        only.join(", ")
    ))
    .await?;
    Ok(())
}

async fn drop_day(tx: &Transaction<'_>, day: Day) -> Result<(), Fail> {
    let names: Vec<String> = TABLES.iter().map(|t| day.partition(t)).collect();
    tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", names.join(", ")))
        .await?;
    Ok(())
}

/// The events of `day` that must stay: unfinished, or finished with a death at or after
/// `dead_before_ms`. Both through partial indexes: what stays is read, never the rest.
async fn keepers(
    tx: &Transaction<'_>,
    day: Day,
    dead_before_ms: u64,
) -> Result<Vec<Vec<u8>>, Fail> {
    let progress = day.partition("event_progress");
    let rows = tx
        .query(
            &format!(
                "SELECT event_id FROM {progress} WHERE open > 0 \
                 UNION SELECT event_id FROM {progress} \
                 WHERE open = 0 AND last_death_ms >= $1"
            ),
            &[&ms(dead_before_ms)],
        )
        .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(Fail::from))
        .collect()
}

/// Takes a day past retention (see the module's doc); returns the events removed.
async fn retire(store: &PgStore, day: Day, dead_before_ms: u64) -> Result<u64, Fail> {
    let mut client = store.shared.conn().await?;
    let tx = client.transaction().await?;
    let (exists, retired) = begin(&tx, day).await?;
    if !exists || retired {
        return Ok(0);
    }
    // Counted before the lock: only this lock's holder removes rows of a day past retention.
    let total: i64 = tx
        .query_one(
            &format!("SELECT count(*) FROM {}", day.partition("event_progress")),
            &[],
        )
        .await?
        .try_get(0)?;
    let total = u64::try_from(total).unwrap_or(0);
    let staying = keepers(&tx, day, dead_before_ms).await?.len() as u64;
    if total > 0 && staying >= total {
        // Nothing to drop: the events go one by one as they become prunable.
        tx.execute("INSERT INTO retired_days (day) VALUES ($1)", &[&day.sql()])
            .await?;
        tx.commit().await?;
        return Ok(0);
    }
    lock_parents(&tx).await?;
    // Under the lock, what stays is what it is now.
    let keep = keepers(&tx, day, dead_before_ms).await?;
    if !keep.is_empty() {
        set_aside(&tx, day, &keep).await?;
    }
    drop_day(&tx, day).await?;
    if !keep.is_empty() {
        tx.execute("SELECT hookgate_make_day($1)", &[&day.sql()])
            .await?;
        tx.batch_execute(
            "INSERT INTO events SELECT * FROM hookgate_keep_events; \
             INSERT INTO event_progress SELECT * FROM hookgate_keep_event_progress; \
             INSERT INTO deliveries_done SELECT * FROM hookgate_keep_deliveries_done; \
             INSERT INTO attempts SELECT * FROM hookgate_keep_attempts",
        )
        .await?;
        tx.execute("INSERT INTO retired_days (day) VALUES ($1)", &[&day.sql()])
            .await?;
    }
    tx.commit().await?;
    let removed = total.saturating_sub(keep.len() as u64);
    tracing::debug!(%day, removed, kept = keep.len(), "history partitions dropped");
    Ok(removed)
}

/// Copies the events `keep` of `day`, with their progress, finished deliveries and attempts,
/// to temporary tables that go at the commit.
async fn set_aside(tx: &Transaction<'_>, day: Day, keep: &[Vec<u8>]) -> Result<(), Fail> {
    let create: Vec<String> = TABLES
        .iter()
        .map(|t| format!("CREATE TEMP TABLE hookgate_keep_{t} (LIKE {t}) ON COMMIT DROP"))
        .collect();
    tx.batch_execute(&create.join("; ")).await?;
    let [events, progress, done, attempts] = TABLES.map(|t| day.partition(t));
    tx.execute(
        &format!("INSERT INTO hookgate_keep_events SELECT * FROM {events} WHERE id = ANY($1)"),
        &[&keep],
    )
    .await?;
    tx.execute(
        &format!(
            "INSERT INTO hookgate_keep_event_progress SELECT * FROM {progress} \
             WHERE event_id = ANY($1)"
        ),
        &[&keep],
    )
    .await?;
    // An event's deliveries, hot or finished, are in its day (made in its millisecond).
    tx.batch_execute(&format!(
        "INSERT INTO hookgate_keep_deliveries_done SELECT * FROM {done} \
           WHERE id IN (SELECT unnest(delivery_ids) FROM hookgate_keep_events); \
         INSERT INTO hookgate_keep_attempts SELECT * FROM {attempts} \
           WHERE delivery_id IN (SELECT unnest(delivery_ids) FROM hookgate_keep_events)"
    ))
    .await?;
    Ok(())
}

/// Drops a retired day's partitions once nothing is left in them; returns 0 (what was in it
/// was counted as it went).
async fn drop_if_empty(store: &PgStore, day: Day) -> Result<u64, Fail> {
    let mut client = store.shared.conn().await?;
    let tx = client.transaction().await?;
    let (exists, _) = begin(&tx, day).await?;
    let empty = format!(
        "SELECT NOT EXISTS (SELECT 1 FROM {}) AND NOT EXISTS (SELECT 1 FROM {})",
        day.partition("events"),
        day.partition("event_progress")
    );
    if !exists
        || !tx
            .query_one(empty.as_str(), &[])
            .await?
            .try_get::<_, bool>(0)?
    {
        return Ok(0);
    }
    lock_parents(&tx).await?;
    if tx
        .query_one(empty.as_str(), &[])
        .await?
        .try_get::<_, bool>(0)?
    {
        drop_day(&tx, day).await?;
        tx.execute("DELETE FROM retired_days WHERE day = $1", &[&day.sql()])
            .await?;
        tracing::debug!(%day, "the emptied history partitions of a retired day dropped");
    }
    tx.commit().await?;
    Ok(0)
}
