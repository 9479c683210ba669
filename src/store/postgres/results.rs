//! Group-committed results. Attempts end on many lanes at once, and a commit each would make
//! the drain rate the disk's fsync rate; so, as redb's writer does, one task per process takes
//! whatever results queued while its last commit ran (up to [`MAX_BATCH`]) and records them in
//! one transaction: the deliveries locked in id order, [`outbox::complete`] asked for each
//! result in arrival order (two results of one delivery are judged one after the other, so
//! the second of a settled delivery is refused as it would be alone), the attempts inserted
//! with one `unnest`, and the new states written through `rows::Changes`. **Each caller is
//! answered after the commit**; a storage error fails the whole batch, as in redb. An ordered
//! head that ends promotes the next of its key in the same transaction (`rows::Changes`), and
//! its endpoint is announced after the commit: that one is due now.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::Shared;
use super::error::{Fail, retrying};
use super::rows::{Changes, Locked, id_bytes, lock_hot_leased, stale};
use super::time::ms;
use crate::ids::DeliveryId;
use crate::store::notices::Announcement;
use crate::store::{Completed, Completion, Next, StoreError, outbox};

/// The most results recorded in one transaction.
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<Completed, StoreError>>;

pub(super) enum Msg {
    Complete(Box<Completion>, Reply),
    /// Record what is queued before this, then stop.
    Stop(oneshot::Sender<()>),
}

/// The group-commit loop: runs until `Stop` or until every sender is gone.
pub(super) async fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<Msg>) {
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::new();
        let mut stop = None;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Complete(c, reply) => batch.push((c, reply)),
                Msg::Stop(ack) => {
                    stop = Some(ack);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let started = std::time::Instant::now();
            let results: Vec<&Completion> = batch.iter().map(|(c, _)| c.as_ref()).collect();
            let outcome = retrying(|| write(&shared, &results)).await;
            shared.observe_commit(batch.len(), started);
            let outcome = match outcome {
                Ok((settled, promoted, counted, ops, applied)) => {
                    // Committed: the next of each key whose head ended is due now.
                    shared.announce(promoted.iter().map(String::as_str));
                    if ops {
                        shared.notices.ops.notify_one();
                    }
                    // Committed: tell live views what each delivery became.
                    for d in settled {
                        shared.notices.publish(Announcement::Result {
                            delivery_id: d.id,
                            event_id: d.event_id,
                            endpoint: d.endpoint_id,
                            status: d.status,
                            attempts: d.attempts,
                        });
                    }
                    Ok((counted, applied))
                }
                Err(e) => {
                    tracing::error!(error = %e, results = batch.len(), "recording results failed; none of the batch was stored");
                    Err(e)
                }
            };
            for (i, (c, reply)) in batch.into_iter().enumerate() {
                let _ = reply.send(
                    outcome
                        .as_ref()
                        .map(|(counted, applied)| Completed {
                            stale: !applied.get(i).copied().unwrap_or(false),
                            ..counted.get(&c.delivery_id).copied().unwrap_or_default()
                        })
                        .map_err(Clone::clone),
                );
            }
        }
        if let Some(ack) = stop {
            let _ = ack.send(());
            return;
        }
    }
}

/// The attempts a batch records, as column arrays.
#[derive(Default)]
struct Attempts {
    delivery_id: Vec<Vec<u8>>,
    n: Vec<i32>,
    at_ms: Vec<i64>,
    status_code: Vec<Option<i32>>,
    latency_ms: Vec<i64>,
    error: Vec<Option<String>>,
    response_excerpt: Vec<Vec<u8>>,
}

/// What a batch recorded: the new state of each delivery it changed (for live views, and
/// only when someone listens), the endpoints of the deliveries it promoted, what each counted
/// result did to its breaker, whether it wrote operational events, and whether each result
/// (in the batch's order) changed its delivery.
type Recorded = (
    Vec<crate::model::event::Delivery>,
    Vec<String>,
    HashMap<DeliveryId, Completed>,
    bool,
    Vec<bool>,
);

/// Records a batch.
async fn write(shared: &Shared, results: &[&Completion]) -> Result<Recorded, Fail> {
    let mut client = shared.conn().await?;
    let tx = client.transaction().await?;
    let now = shared.clock.now(&tx).await?;
    let mut ids: Vec<DeliveryId> = results.iter().map(|c| c.delivery_id).collect();
    ids.sort();
    ids.dedup();
    // Only deliveries not yet final are in the hot table; the rule refuses the others. With
    // each, its current lease token: a result under another one is stale.
    let mut locked: HashMap<DeliveryId, Locked> = HashMap::new();
    let mut tokens: HashMap<DeliveryId, Option<u64>> = HashMap::new();
    for (d, token) in lock_hot_leased(&tx, &ids).await? {
        tokens.insert(d.id, token);
        locked.insert(d.id, Locked { d, done: false });
    }
    let mut state: HashMap<DeliveryId, crate::model::event::Delivery> = HashMap::new();
    let mut attempts = Attempts::default();
    // The results that changed their delivery, in arrival order: what the breakers count.
    let mut applied: Vec<&Completion> = Vec::new();
    let mut changed = vec![false; results.len()];
    for (i, c) in results.iter().enumerate() {
        let Some(old) = locked.get(&c.delivery_id) else {
            continue;
        };
        // Fenced: a finish under a lease that was taken over (or given back) changes nothing.
        if stale(c.lease_token, tokens.get(&c.delivery_id).copied().flatten()) {
            continue;
        }
        let current = state.get(&c.delivery_id).unwrap_or(&old.d);
        let mut attempt = c.attempt.clone();
        attempt.at_ms = now.at(attempt.at_ms);
        let next = match &c.next {
            Next::RetryAt(at) => Next::RetryAt(now.at(*at)),
            other => other.clone(),
        };
        // Refused when already settled (a second result after its lease was taken back):
        // the first stands.
        let Ok(new) = outbox::complete(current, &attempt, &next) else {
            continue;
        };
        attempts
            .delivery_id
            .push(id_bytes(c.delivery_id.0).to_vec());
        attempts
            .n
            .push(i32::try_from(new.attempts).unwrap_or(i32::MAX));
        attempts.at_ms.push(ms(attempt.at_ms));
        attempts
            .status_code
            .push(attempt.status_code.map(i32::from));
        attempts.latency_ms.push(ms(attempt.latency_ms));
        attempts.error.push(attempt.error);
        attempts.response_excerpt.push(attempt.response_excerpt);
        state.insert(c.delivery_id, new);
        applied.push(c);
        changed[i] = true;
        // The lease ends with its result.
        tokens.insert(c.delivery_id, None);
    }
    if !attempts.delivery_id.is_empty() {
        let insert = tx
            .prepare_cached(
                "INSERT INTO attempts (delivery_id, n, at_ms, status_code, latency_ms, error, \
                 response_excerpt) \
                 SELECT * FROM unnest($1::bytea[], $2::int4[], $3::int8[], $4::int4[], \
                                      $5::int8[], $6::text[], $7::bytea[]) \
                 ON CONFLICT (delivery_id, n) DO UPDATE SET at_ms = excluded.at_ms, \
                 status_code = excluded.status_code, latency_ms = excluded.latency_ms, \
                 error = excluded.error, response_excerpt = excluded.response_excerpt",
            )
            .await?;
        tx.execute(
            &insert,
            &[
                &attempts.delivery_id,
                &attempts.n,
                &attempts.at_ms,
                &attempts.status_code,
                &attempts.latency_ms,
                &attempts.error,
                &attempts.response_excerpt,
            ],
        )
        .await?;
    }
    // Each result in the state it left its delivery (a later result of the same delivery in
    // this batch was refused, so the state is this one's).
    let pairs: Vec<(&Completion, &crate::model::event::Delivery)> = applied
        .iter()
        .filter_map(|c| state.get(&c.delivery_id).map(|d| (*c, d)))
        .collect();
    let (counted, mut ops) = super::health::count(&tx, &shared.windows, &pairs, now.ms()).await?;
    let dead: Vec<&crate::model::event::Delivery> = state
        .values()
        .filter(|d| d.status == crate::model::event::DeliveryStatus::Dead)
        .collect();
    ops.extend(super::health::deaths(&tx, &dead, now.ms()).await?);
    super::health::write_ops(&tx, &ops).await?;
    let mut changes = Changes::default();
    for (id, new) in &state {
        if let Some(old) = locked.get(id) {
            changes.put(old, new, None);
        }
    }
    let flushed = changes.flush(&tx).await?;
    tx.commit().await?;
    let settled = if shared.notices.listened() {
        let mut settled: Vec<_> = state.into_values().collect();
        settled.sort_by_key(|d| d.id);
        settled
    } else {
        Vec::new()
    };
    Ok((settled, flushed.promoted, counted, !ops.is_empty(), changed))
}
