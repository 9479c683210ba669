//! Requeue: replay of dead letters (in bounded steps with a cursor), retry of one delivery,
//! and recover of an endpoint's deliveries. A delivery whose endpoint no longer exists is left
//! as it is and reported as `removed`.

use std::collections::HashSet;

use redb::ReadableTable;

use super::{Tables, put_delivery, read_delivery, read_event};
use crate::ids::DeliveryId;
use crate::model::event::Delivery;
use crate::store::outbox::{self, Refusal};
use crate::store::{Requeue, Requeued, StoreError};

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
            let in_window = |d: &Delivery| d.created_ms >= *since_ms && d.created_ms < *until_ms;
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
                    // A dead letter whose event was pruned is not listed (`list_dead`), so
                    // a replay of the list's filter does not take it either.
                    let Some(ev) = read_event(t, d.event_id.0)? else {
                        continue;
                    };
                    if !filter.event_matches(&ev)
                        // Last, being the dearest: the body.
                        || !crate::store::redb::query::payload_passes(
                            &t.payloads,
                            filter,
                            d.event_id.0,
                        )?
                    {
                        continue;
                    }
                    selected.push(id);
                }
            }
            selected
        }
    };
    for id in ids {
        let Some(old) = read_delivery(t, id)? else {
            continue;
        };
        if known.is_some_and(|k| !k.contains(&old.endpoint_id)) {
            out.removed.push(DeliveryId(id));
            continue;
        }
        match outbox::requeue(&old, now_ms) {
            Ok(mut new) => {
                if outbox::needs_place(&old, &new) {
                    // A replay of an ordered dead letter: to the back of its key.
                    let key = new
                        .order
                        .as_ref()
                        .map(|(k, _)| k.clone())
                        .unwrap_or_default();
                    new = super::tables::place(t, &new, &key)?;
                }
                put_delivery(t, Some(&old), &new, pending)?;
                out.deliveries.push((new.id, new.endpoint_id));
            }
            Err(Refusal::InFlight) => out.in_flight.push(DeliveryId(id)),
            // Final ones are not refused; blocked ones wait for their turn.
            Err(_) => {}
        }
    }
    Ok(out)
}
