//! The endpoints the store may give work to. **The store never creates or requeues a
//! delivery for an endpoint that does not exist**: the writer keeps the set of endpoints in
//! force (given at start, then changed by the very commands that store and delete API-made
//! endpoints, in commit order), so an ingest routed from a stale snapshot, a replay or a retry
//! cannot make work for an endpoint deleted meanwhile. What a previous run left for endpoints
//! no longer in force (removed from the file, or a stored entry that no longer validates) is
//! dead-lettered at start with the reason `endpoint removed`.

use std::collections::HashSet;

use redb::ReadableTable;

use super::{Tables, put_delivery, read_delivery};
use crate::store::{EntryKind, StoreError, outbox};

/// The reason a delivery of a deleted endpoint is dead.
pub(super) const DELETED: &str = "endpoint deleted";
/// The reason a delivery left for an endpoint no longer in force is dead.
pub(super) const REMOVED: &str = "endpoint removed";

pub(super) fn delete_entry(
    t: &mut Tables<'_>,
    kind: EntryKind,
    id: &str,
    now_ms: u64,
    pending: &mut u64,
) -> Result<u64, StoreError> {
    t.config_entries.remove((kind.as_str(), id))?;
    if kind != EntryKind::Endpoint {
        return Ok(0);
    }
    t.endpoint_state.remove(id)?;
    // Its breaker goes with it: one made again with its id starts closed.
    t.endpoint_health.remove(id)?;
    dead_letter_endpoint(t, id, DELETED, now_ms, pending)
}

/// Dead-letters every delivery of `endpoint` that is not final; returns how many.
pub(super) fn dead_letter_endpoint(
    t: &mut Tables<'_>,
    id: &str,
    reason: &str,
    now_ms: u64,
    pending: &mut u64,
) -> Result<u64, StoreError> {
    // The blocked deliveries of its order keys first (they are not in the schedule), so no
    // head's death promotes one only for it to die next.
    let mut blocked = Vec::new();
    for entry in t.order_queue.range((id, "", 0u64)..)? {
        let (key, did) = entry?;
        if key.value().0 != id {
            break;
        }
        blocked.push(did.value());
    }
    let mut dead = 0;
    for did in blocked {
        let Some(old) = read_delivery(t, did)?.filter(|d| d.blocked) else {
            continue;
        };
        if let Ok(new) = outbox::dead_letter(&old, reason, now_ms) {
            put_delivery(t, Some(&old), &new, pending)?;
            dead += 1;
        }
    }
    let mut waiting = Vec::new();
    for entry in t.due.range((id, 0u64, 0u128)..=(id, u64::MAX, u128::MAX))? {
        let (_, due_ms, did) = entry?.0.value();
        waiting.push((due_ms, did));
    }
    for (due_ms, did) in waiting {
        t.due.remove((id, due_ms, did))?;
        t.leases.remove(did)?;
        let Some(old) = read_delivery(t, did)? else {
            // Unreadable (noted for quarantine) or gone: out of the schedule and the count.
            *pending = pending.saturating_sub(1);
            continue;
        };
        // A final one was a stale schedule entry, gone now.
        let Ok(new) = outbox::dead_letter(&old, reason, now_ms) else {
            continue;
        };
        put_delivery(t, Some(&old), &new, pending)?;
        dead += 1;
    }
    // Nothing of this endpoint is waiting any more, whatever the count said.
    t.pending_by_endpoint.remove(id)?;
    Ok(dead)
}

/// Dead-letters the work of every endpoint in the schedule that is not in `known`. Reads one
/// key per endpoint, not the whole schedule: it seeks past each endpoint's entries.
pub(super) fn sweep_unknown(
    t: &mut Tables<'_>,
    known: &HashSet<String>,
    now_ms: u64,
    pending: &mut u64,
) -> Result<u64, StoreError> {
    let mut dead = 0;
    let mut from = String::new();
    loop {
        let next = t
            .due
            .range((from.as_str(), 0u64, 0u128)..)?
            .next()
            .transpose()?
            .map(|(k, _)| k.value().0.to_string());
        let Some(endpoint) = next else { break };
        if !known.contains(&endpoint) {
            let n = dead_letter_endpoint(t, &endpoint, REMOVED, now_ms, pending)?;
            tracing::warn!(
                endpoint,
                dead = n,
                "deliveries left for an endpoint no longer configured were dead-lettered"
            );
            dead += n;
        }
        // The next endpoint id: the smallest string after every key of this one.
        from = endpoint;
        from.push('\0');
    }
    // A count kept for an endpoint with nothing in the schedule is stale too.
    let mut stale = Vec::new();
    for entry in t.pending_by_endpoint.iter()? {
        let (k, _) = entry?;
        if !known.contains(k.value()) {
            stale.push(k.value().to_string());
        }
    }
    for e in stale {
        t.pending_by_endpoint.remove(e.as_str())?;
    }
    Ok(dead)
}
