//! Requeue: replay of dead letters (in bounded steps with a cursor), retry of one delivery,
//! and recover of an endpoint's deliveries. A delivery whose endpoint no longer exists is left
//! as it is and reported as `removed`.

use std::collections::HashSet;

use redb::ReadableTable;

use super::{Tables, endpoint_pending, finished, read_delivery, read_event};
use crate::ids::DeliveryId;
use crate::store::{DeliveryRecord, DeliveryStatus, Requeue, Requeued, StoreError, records};

pub(super) fn requeue(
    t: &mut Tables<'_>,
    what: &Requeue,
    now_ms: u64,
    pending: &mut u64,
    known: Option<&HashSet<String>>,
) -> Result<Requeued, StoreError> {
    let mut out = Requeued::default();
    let ids: Vec<u128> = match what {
        Requeue::One(id) => vec![id.0],
        Requeue::Recover {
            endpoint,
            since_ms,
            until_ms,
        } => {
            let in_window =
                |d: &DeliveryRecord| d.created_ms >= *since_ms && d.created_ms < *until_ms;
            let mut selected = Vec::new();
            // Waiting and retrying ones are in the endpoint's due index, dead ones in the dead
            // index; delivered ones are in neither and stay as they are.
            for entry in t.due.range(
                (endpoint.as_str(), 0u64, 0u128)..=(endpoint.as_str(), u64::MAX, u128::MAX),
            )? {
                let (key, _) = entry?;
                let id = key.value().2;
                if read_delivery(t, id)?.is_some_and(|d| in_window(&d)) {
                    selected.push(id);
                }
            }
            for entry in t.dead.iter()? {
                let (key, _) = entry?;
                let id = key.value().1;
                if read_delivery(t, id)?
                    .is_some_and(|d| d.endpoint_id == *endpoint && in_window(&d))
                {
                    selected.push(id);
                }
            }
            selected
        }
        Requeue::Dead { filter, ids, after } => {
            let mut selected = Vec::new();
            let low = (filter.since_ms.unwrap_or(0), 0u128);
            let low = after.map_or(low, |a| low.max((a.0, a.1.saturating_add(1))));
            let high = (filter.until_ms.unwrap_or(u64::MAX), 0u128);
            let wanted: Option<HashSet<u128>> =
                ids.as_ref().map(|ids| ids.iter().map(|i| i.0).collect());
            if low < high {
                for (scanned, entry) in t.dead.range(low..high)?.enumerate() {
                    let (dead_at, id) = entry?.0.value();
                    if scanned == crate::store::REPLAY_SCAN
                        || selected.len() == crate::store::REPLAY_STEP
                    {
                        // Bounded: the next step goes on from here.
                        out.next = Some((dead_at, id.saturating_sub(1)));
                        break;
                    }
                    if wanted.as_ref().is_some_and(|w| !w.contains(&id)) {
                        continue;
                    }
                    let Some(d) = read_delivery(t, id)? else {
                        continue;
                    };
                    if filter
                        .endpoint
                        .as_ref()
                        .is_some_and(|e| *e != d.endpoint_id)
                    {
                        continue;
                    }
                    if filter.source.is_some() || filter.event_type.is_some() {
                        let Some(ev) = read_event(t, d.event_id)? else {
                            continue;
                        };
                        if filter.source.as_ref().is_some_and(|s| *s != ev.source)
                            || filter
                                .event_type
                                .as_ref()
                                .is_some_and(|ty| Some(ty) != ev.event_type.as_ref())
                        {
                            continue;
                        }
                    }
                    selected.push(id);
                }
            }
            selected
        }
    };
    for id in ids {
        let Some(mut rec) = read_delivery(t, id)? else {
            continue;
        };
        if known.is_some_and(|k| !k.contains(&rec.endpoint_id)) {
            out.removed.push(DeliveryId(id));
            continue;
        }
        match rec.status {
            DeliveryStatus::Delivering => {
                out.in_flight.push(DeliveryId(id));
                continue;
            }
            DeliveryStatus::Pending | DeliveryStatus::Retrying => {
                t.due.remove((rec.endpoint_id.as_str(), rec.due_ms, id))?;
            }
            DeliveryStatus::Dead => {
                finished::reopened(t, rec.event_id)?;
                // A dead delivery's `updated_ms` is when it died: its key in the dead index.
                t.dead.remove((rec.updated_ms, id))?;
                *pending += 1;
                endpoint_pending(t, &rec.endpoint_id, 1)?;
            }
            DeliveryStatus::Delivered => {
                finished::reopened(t, rec.event_id)?;
                *pending += 1;
                endpoint_pending(t, &rec.endpoint_id, 1)?;
            }
        }
        rec.status = DeliveryStatus::Pending;
        rec.due_ms = now_ms;
        rec.updated_ms = now_ms;
        rec.cycle_base = rec.attempts;
        rec.cycle_started_ms = now_ms;
        t.due.insert((rec.endpoint_id.as_str(), now_ms, id), ())?;
        t.deliveries.insert(id, records::encode(&rec).as_slice())?;
        out.deliveries.push((DeliveryId(id), rec.endpoint_id));
    }
    Ok(out)
}
