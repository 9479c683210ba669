//! Pruning steps: expired dedup entries, then finished events past their retention, read
//! through the finished indexes (`finished.rs`) so survivors are never read.

use redb::ReadableTable;

use super::{Tables, finished, read_delivery, read_event};
use crate::ids::EventId;
use crate::store::outbox::{self, Cutoffs, Eligibility};
use crate::store::{Prune, Pruned, StoreError};

/// Removes expired dedup entries, then finished events older than the retention with their
/// payloads, deliveries and attempts. Bounded by `p.max_events`; says where to go on.
pub(super) fn prune(t: &mut Tables<'_>, p: &Prune) -> Result<Pruned, StoreError> {
    let mut out = Pruned::default();
    let mut expired = Vec::new();
    for entry in t
        .dedup_expiry
        .range((0u64, "", "")..(p.now_ms.saturating_add(1), "", ""))?
        .take(p.max_dedup)
    {
        let (k, _) = entry?;
        let (expires, scope, key) = k.value();
        expired.push((expires, scope.to_string(), key.to_string()));
    }
    for (expires, scope, key) in expired {
        t.dedup_expiry
            .remove((expires, scope.as_str(), key.as_str()))?;
        // The entry may have been renewed since (the same key after it expired): keep it then.
        let current = t
            .dedup
            .get((scope.as_str(), key.as_str()))?
            .map(|v| v.value().1);
        if current.is_some_and(|e| !outbox::dedup_holds(e, p.now_ms)) {
            t.dedup.remove((scope.as_str(), key.as_str()))?;
            out.dedup_entries += 1;
        }
    }

    // Event ids are ULIDs: every id below this one arrived before the cutoff. Only the
    // finished indexes are read, so events that must stay are never looked at.
    let cutoff = u128::from(p.events_before_ms.min((1 << 48) - 1)) << 80;
    let mut candidates: Vec<(u128, Option<u64>)> = Vec::new();
    if p.max_events > 0 {
        for entry in t.finished_delivered.range(..cutoff)?.take(p.max_events) {
            candidates.push((entry?.0.value(), None));
        }
        // Pruned entries leave the index, so the next step starts from its beginning again.
        if candidates.len() == p.max_events {
            out.next = candidates.last().map(|(id, _)| *id);
        }
        let room = p.max_events - candidates.len();
        let low = p
            .after_dead
            .map_or((0, 0), |(ms, id)| (ms, id.saturating_add(1)));
        let high = (p.dead_before_ms, 0u128);
        if room > 0 && low < high {
            for (looked, entry) in t.finished_dead.range(low..high)?.enumerate() {
                let (last_death, id) = entry?.0.value();
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
    }
    out.examined += candidates.iter().filter(|(_, d)| d.is_none()).count() as u64;
    for (id, last_death) in candidates {
        let unindex = |t: &mut Tables<'_>| -> Result<(), StoreError> {
            match last_death {
                None => t.finished_delivered.remove(id)?,
                Some(at) => t.finished_dead.remove((at, id))?,
            };
            Ok(())
        };
        let Some(event) = read_event(t, id)? else {
            unindex(t)?;
            continue;
        };
        let mut deliveries = Vec::with_capacity(event.deliveries.len());
        for (did, _) in &event.deliveries {
            if let Some(d) = read_delivery(t, did.0)? {
                deliveries.push(d);
            }
        }
        let cutoffs = Cutoffs {
            events_before_ms: p.events_before_ms,
            dead_before_ms: p.dead_before_ms,
        };
        match outbox::prunable(event.received_ms, &deliveries, cutoffs) {
            Eligibility::Prunable => {}
            Eligibility::Unfinished(open) => {
                // The index was wrong: put it right rather than meet this event again.
                tracing::warn!(event_id = %EventId(id), "a finished-event index entry was stale; repaired");
                unindex(t)?;
                t.unfinished.insert(id, open)?;
                continue;
            }
            Eligibility::Kept => {
                // Filed under a time its deliveries no longer say (the index selects by
                // arrival and last death, so only a stale entry gets here): file it again.
                tracing::warn!(event_id = %EventId(id), "a finished-event index entry was stale; refiled");
                unindex(t)?;
                finished::file(t, id)?;
                continue;
            }
        }
        for d in deliveries {
            let did = d.id.0;
            if let Some(at) = d.dead_at_ms() {
                t.dead.remove((at, did))?;
            }
            let mut attempts = Vec::new();
            for entry in t.attempts.range((did, 0u32)..=(did, u32::MAX))? {
                attempts.push(entry?.0.value());
            }
            for a in attempts {
                t.attempts.remove(a)?;
            }
            t.deliveries.remove(did)?;
        }
        unindex(t)?;
        t.events.remove(id)?;
        t.payloads.remove(id)?;
        out.events += 1;
    }
    Ok(out)
}
