//! A lane's lease and an attempt's result, as the writer applies them: each read, asked of
//! its [`outbox`] rule, and written through [`put_delivery`].

use super::tables::{Tables, put_delivery, read_delivery};
use crate::ids::DeliveryId;
use crate::store::redb::records::{self, AttemptRecord};
use crate::store::{Completion, StoreError, outbox};

/// Leases what may be leased; returns those ids.
pub(super) fn lease(
    t: &mut Tables<'_>,
    ids: &[DeliveryId],
    until_ms: u64,
    now_ms: u64,
    pending: &mut u64,
) -> Result<Vec<u128>, StoreError> {
    let mut leased = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(old) = read_delivery(t, id.0)? else {
            continue;
        };
        let Ok(new) = outbox::lease(&old, until_ms, now_ms) else {
            continue;
        };
        put_delivery(t, Some(&old), &new, pending)?;
        t.leases.insert(id.0, until_ms)?;
        leased.push(id.0);
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
    t.pulled.remove(id)?;
    t.attempts.insert(
        (id, new.attempts),
        records::encode(&AttemptRecord::from(&c.attempt)).as_slice(),
    )?;
    put_delivery(t, Some(&old), &new, pending)?;
    Ok(Some(new))
}
