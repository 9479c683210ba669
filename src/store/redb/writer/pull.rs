//! The writer's commands for pull consumers (issue 19): leases kept across restarts in
//! `pulled`, prolonged under their token, and fenced strictly.

use std::collections::HashMap;

use super::tables::{Tables, put_delivery, read_delivery};
use crate::ids::DeliveryId;
use crate::model::event::DeliveryStatus;
use crate::store::{Held, StoreError, outbox};

/// Whether a consumer's ack, nack or extend under `token` is stale: **only the current lease
/// counts**. Unlike a lane's finish, no current token is stale too: the lease was settled,
/// given back, or ran out and was counted, since the receipt was given.
pub(super) fn stale(tokens: &HashMap<u128, u64>, id: DeliveryId, token: Option<u64>) -> bool {
    match token {
        Some(theirs) => tokens.get(&id.0) != Some(&theirs),
        None => false,
    }
}

/// Leases `ids` for a consumer until `until_ms` under `token`; answers each leased delivery as
/// it stood before. **Only what is still due is leased**: the claim read a snapshot, and an
/// ack, nack or extend may have landed since (a lane's claim skips what its lane holds; a
/// consumer's claim cannot know what other consumers hold).
pub(super) fn lease(
    t: &mut Tables<'_>,
    tokens: &mut HashMap<u128, u64>,
    ids: &[DeliveryId],
    (until_ms, token, now_ms): (u64, u64, u64),
    pending: &mut u64,
) -> Result<Vec<crate::model::event::Delivery>, StoreError> {
    let due = |d: &crate::model::event::Delivery| d.due_ms <= now_ms;
    super::settle::lease_each(t, ids, (until_ms, now_ms), pending, due, |t, id| {
        // Not in `leases`: the next open must not take it back.
        t.leases.remove(id)?;
        t.pulled.insert(id, token)?;
        tokens.insert(id, token);
        Ok(())
    })
}

/// Prolongs each current lease of `held` until `until_ms`: whether each was.
pub(super) fn extend(
    t: &mut Tables<'_>,
    tokens: &HashMap<u128, u64>,
    held: &[Held],
    (until_ms, now_ms): (u64, u64),
    pending: &mut u64,
) -> Result<Vec<bool>, StoreError> {
    let mut out = Vec::with_capacity(held.len());
    for h in held {
        if h.lease_token.is_none() || stale(tokens, h.delivery_id, h.lease_token) {
            out.push(false);
            continue;
        }
        let Some(old) = read_delivery(t, h.delivery_id.0)? else {
            out.push(false);
            continue;
        };
        if old.status != DeliveryStatus::Delivering {
            out.push(false);
            continue;
        }
        match outbox::lease(&old, until_ms, now_ms) {
            Ok(new) => {
                put_delivery(t, Some(&old), &new, pending)?;
                out.push(true);
            }
            Err(_) => out.push(false),
        }
    }
    Ok(out)
}
