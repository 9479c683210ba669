//! Retention: every `prune_interval`, remove what is past keeping, in bounded steps that go
//! through the writer like any other command, so pruning never holds up ingest for long.
//! Freed pages are reused by redb, so a steady load reaches a steady file size;
//! [`super::compact`] gives the space back to the file system, offline. PostgreSQL keeps
//! history by day: before the steps, each pass drops whole days past retention
//! ([`Store::maintain`]), and the steps take what had to stay as it becomes prunable.

use std::time::Duration;

use tokio::sync::watch;

use super::{Prune, Store};
use crate::clock::SharedClock;

/// Events looked at per step.
const STEP: usize = 500;

/// How long things are kept.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub retention: Duration,
    pub dead_letter_retention: Duration,
    pub interval: Duration,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Prunes every interval until `stop` turns true.
pub async fn run(
    store: Store,
    clock: SharedClock,
    policy: Policy,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(policy.interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = pass(&store, &clock, policy, &stop).await {
            tracing::warn!(error = %e, "pruning failed; trying again next interval");
        }
    }
}

/// One pass: expired dedup entries first, on their own (their index is ordered by expiry, so
/// a step reads only expired ones, and steps go on while full ones come back), then the
/// backend's bulk upkeep ([`Store::maintain`]: PostgreSQL drops whole days past retention),
/// then finished events, in bounded steps. Returns (events, dedup entries) removed.
pub async fn pass(
    store: &Store,
    clock: &SharedClock,
    policy: Policy,
    stop: &watch::Receiver<bool>,
) -> Result<(u64, u64), super::StoreError> {
    let step = |after, after_dead, max_events, max_dedup| {
        let now_ms = clock.now_ms();
        Prune {
            now_ms,
            events_before_ms: now_ms.saturating_sub(ms(policy.retention)),
            dead_before_ms: now_ms.saturating_sub(ms(policy.dead_letter_retention)),
            after,
            after_dead,
            max_events,
            max_dedup,
        }
    };
    let (mut events, mut dedup) = (0, 0);
    loop {
        let p = store.prune(step(None, None, 0, STEP)).await?;
        dedup += p.dedup_entries;
        if p.dedup_entries < STEP as u64 || *stop.borrow() {
            break;
        }
    }
    // Whole days first (a backend that keeps history by day), then the steps take what is
    // left; if the days could not be dropped, no step runs (it would remove them row by row).
    events += store.maintain(step(None, None, 0, 0)).await?.events;
    let mut after_dead = None;
    loop {
        let p = store.prune(step(None, after_dead, STEP, 0)).await?;
        events += p.events;
        after_dead = p.next_dead;
        if (p.next.is_none() && after_dead.is_none()) || *stop.borrow() {
            break;
        }
    }
    if events > 0 || dedup > 0 {
        tracing::debug!(events, dedup_entries = dedup, "pruned");
    }
    Ok((events, dedup))
}
