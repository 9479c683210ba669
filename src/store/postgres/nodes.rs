//! Nodes and their leases. Each open store is a row in `nodes` with a heartbeat on the
//! database's clock (every [`BEAT`]); every lease records the node that took it. **The leases
//! of a node that closed, or whose heartbeat lapsed ([`LAPSE`]), are taken back** (made due
//! now through [`outbox::release`]): at open and on every heartbeat. So after a clean stop
//! the next node to open makes the leases due at once; after a crash (kill -9, power loss)
//! the node's row still looks alive until its heartbeat lapses, and its work is taken back
//! by the first open or beat after that, at most [`LAPSE`] plus a [`BEAT`] after its last
//! beat, well before the leases would run out (timeout + 30 s). **The leases of live nodes
//! are never taken back**; theirs run out on their own if their attempts never report.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Shared;
use super::error::{Fail, retrying};
use super::rows::{COLUMNS, Changes, Locked, delivery};
use crate::store::{StoreError, outbox};

/// How often a node beats.
const BEAT: Duration = Duration::from_secs(2);
/// A node silent this long is gone (five missed beats).
const LAPSE: i64 = 10_000;
/// A gone node's row is forgotten this long after its last beat (once it holds no lease).
const FORGET: i64 = 3_600_000;
/// Leases taken back per transaction.
const STEP: i64 = 1_000;

/// Adds this process to `nodes`; returns its id.
pub(super) async fn register(pool: &deadpool_postgres::Pool) -> Result<i64, Fail> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "INSERT INTO nodes (started_ms, heartbeat_ms) \
             SELECT n, n FROM (SELECT hookgate_db_now_ms() AS n) s RETURNING id",
            &[],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Marks this node closed: its leases may be taken back by whoever opens next.
pub(super) async fn close(shared: &Shared) -> Result<(), Fail> {
    let client = shared.conn().await?;
    client
        .execute(
            "UPDATE nodes SET closed = true WHERE id = $1",
            &[&shared.node],
        )
        .await?;
    Ok(())
}

/// Beats (a committed write: also what `probe` does). A node that was silent so long that
/// another forgot it comes back under the same id: its leases were taken back meanwhile, and
/// whatever it takes from now on is its own again.
pub(super) async fn beat(shared: &Shared) -> Result<(), Fail> {
    let client = shared.conn().await?;
    client
        .execute(
            "INSERT INTO nodes (id, started_ms, heartbeat_ms) OVERRIDING SYSTEM VALUE \
             SELECT $1, n, n FROM (SELECT hookgate_db_now_ms() AS n) s \
             ON CONFLICT (id) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms, closed = false",
            &[&shared.node],
        )
        .await?;
    Ok(())
}

/// Beats every [`BEAT`] and takes back the leases of nodes gone since, until `stop`.
pub(super) async fn heartbeat(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(BEAT) => {}
            () = super::notify::stopped(&mut stop) => return,
        }
        if let Err(e) = beat(&shared).await {
            tracing::warn!(error = %e, "the node's heartbeat failed");
            continue;
        }
        if let Err(e) = take_back_leases(&shared).await {
            tracing::warn!(error = %e, "cannot take back the leases of gone nodes");
        }
        // Nodes gone long ago with no lease left are forgotten.
        let forget = async {
            shared
                .conn()
                .await?
                .execute(
                    "DELETE FROM nodes n WHERE n.id <> $1 \
                     AND n.heartbeat_ms < hookgate_db_now_ms() - $2 \
                     AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.lease_node = n.id)",
                    &[&shared.node, &FORGET],
                )
                .await
                .map_err(Fail::from)
        };
        if let Err(e) = forget.await {
            tracing::debug!(error = %e, "cannot forget gone nodes");
        }
    }
}

/// Makes every lease held by a node that closed or stopped beating (or that no longer has a
/// row) due now, in steps; announces the endpoints that got work back.
pub(super) async fn take_back_leases(shared: &Shared) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let (n, endpoints) = retrying(|| take_back_step(shared)).await?;
        total += n as u64;
        shared.announce(endpoints.iter().map(String::as_str));
        if n < STEP as usize {
            break;
        }
    }
    if total > 0 {
        tracing::info!(
            leases = total,
            "the leases of nodes that closed or stopped were taken back"
        );
    }
    Ok(total)
}

async fn take_back_step(shared: &Shared) -> Result<(usize, Vec<String>), Fail> {
    let mut client = shared.conn().await?;
    let tx = client.transaction().await?;
    let now = shared.clock.now(&tx).await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM deliveries d \
         WHERE d.lease_node IS NOT NULL AND d.lease_node <> $1 \
         AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = d.lease_node AND NOT n.closed \
                         AND n.heartbeat_ms >= hookgate_db_now_ms() - $2) \
         ORDER BY d.id LIMIT $3 FOR UPDATE SKIP LOCKED"
    );
    let stmt = tx.prepare_cached(&sql).await?;
    let rows = tx.query(&stmt, &[&shared.node, &LAPSE, &STEP]).await?;
    let mut changes = Changes::default();
    let mut endpoints = Vec::new();
    for row in &rows {
        let old = Locked {
            d: delivery(row, 0)?,
            done: false,
        };
        if let Ok(new) = outbox::release(&old.d, now.ms()) {
            changes.put(&old, &new, None);
            endpoints.push(new.endpoint_id);
        }
    }
    // Counted by what changed, so rows no rule releases cannot keep the loop going.
    let n = changes.len();
    changes.flush(&tx).await?;
    tx.commit().await?;
    Ok((n, endpoints))
}
