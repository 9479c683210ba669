//! A lane's lease and an attempt's result, as the writer applies them: each read, asked of
//! its [`outbox`] rule, and written through [`put_delivery`].

use super::tables::{Tables, put_delivery, read_delivery};
use crate::ids::DeliveryId;
use crate::store::redb::records::{self, AttemptRecord};
use crate::store::{Completion, StoreError, outbox};

/// Leases what may be leased for a lane (in `leases`, taken back at the next open); returns
/// those ids.
pub(super) fn lease(
    t: &mut Tables<'_>,
    ids: &[DeliveryId],
    until_ms: u64,
    now_ms: u64,
    pending: &mut u64,
) -> Result<Vec<u128>, StoreError> {
    let leased = lease_each(
        t,
        ids,
        (until_ms, now_ms),
        pending,
        |_| true,
        |t, id| t.leases.insert(id, until_ms).map(drop),
    )?;
    Ok(leased.iter().map(|d| d.id.0).collect())
}

/// Leases each of `ids` that `keep` keeps and the rule lets be leased until `until_ms`,
/// `record`ing each lease where its holder keeps it; answers each leased delivery as it stood
/// before (a final or blocked one is not leased).
pub(super) fn lease_each(
    t: &mut Tables<'_>,
    ids: &[DeliveryId],
    (until_ms, now_ms): (u64, u64),
    pending: &mut u64,
    keep: impl Fn(&crate::model::event::Delivery) -> bool,
    mut record: impl FnMut(&mut Tables<'_>, u128) -> Result<(), redb::StorageError>,
) -> Result<Vec<crate::model::event::Delivery>, StoreError> {
    let mut leased = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(old) = read_delivery(t, id.0)? else {
            continue;
        };
        if !keep(&old) {
            continue;
        }
        let Ok(new) = outbox::lease(&old, until_ms, now_ms) else {
            continue;
        };
        put_delivery(t, Some(&old), &new, pending)?;
        record(t, id.0)?;
        leased.push(old);
    }
    Ok(leased)
}

/// Records a result; returns the delivery's new state, or `None` when it changed nothing.
pub(super) fn complete(
    t: &mut Tables<'_>,
    c: &Completion,
    pending: &mut u64,
) -> Result<Option<crate::model::event::Delivery>, StoreError> {
    let id = c.delivery_id.0;
    let Some(old) = read_delivery(t, id)? else {
        return Ok(None);
    };
    // Refused when already settled (a second result after a lease was taken back): the first
    // stands.
    let Ok(new) = outbox::complete(&old, &c.attempt, &c.next) else {
        return Ok(None);
    };
    t.leases.remove(id)?;
    t.attempts.insert(
        (id, new.attempts),
        records::encode(&AttemptRecord::from(&c.attempt)).as_slice(),
    )?;
    put_delivery(t, Some(&old), &new, pending)?;
    Ok(Some(new))
}
