//! The operational-event outbox in the writer: an event is written in the transaction of the
//! change it reports (a breaker's transition, an enable, a death by the retry policy), under
//! the next number of the store's sequence, and removed once `ops` published it.

use redb::ReadableTable;

use crate::model::HOOKGATE_SOURCE;
use crate::model::event::Delivery;
use crate::model::ops::OpsEvent;
use crate::store::StoreError;
use crate::store::redb::META_OPS_SEQ;
use crate::store::redb::records::{self, OpsRecord};

use super::Tables;

/// Writes `event`, which happened at `at_ms`, to the outbox.
pub(super) fn write(t: &mut Tables<'_>, at_ms: u64, event: &OpsEvent) -> Result<(), StoreError> {
    let seq = t.meta.get(META_OPS_SEQ)?.map_or(0, |v| v.value()) + 1;
    t.meta.insert(META_OPS_SEQ, seq)?;
    let record = OpsRecord {
        at_ms,
        event_type: event.event_type().to_string(),
        subject: event.subject().map(str::to_string),
        body: event.body(at_ms),
    };
    t.ops_outbox
        .insert(seq, records::encode(&record).as_slice())?;
    Ok(())
}

/// A delivery died by its retry policy: `delivery.dead`, unless it carried one of hookgate's
/// own events (so two operational endpoints failing cannot feed each other forever).
pub(super) fn dead(t: &mut Tables<'_>, d: &Delivery, now_ms: u64) -> Result<(), StoreError> {
    let Some(ev) = super::read_event(t, d.event_id.0)? else {
        return Ok(());
    };
    if ev.source == HOOKGATE_SOURCE {
        return Ok(());
    }
    let event = OpsEvent::DeliveryDead {
        delivery_id: d.id.to_string(),
        event_id: d.event_id.to_string(),
        endpoint: d.endpoint_id.clone(),
        source: ev.source,
        event_type: ev.event_type,
        attempts: d.attempts,
        last_status_code: d.last_status_code,
        last_error: d.last_error.clone(),
    };
    write(t, now_ms, &event)
}

/// Removes published events.
pub(super) fn done(t: &mut Tables<'_>, ids: &[u64]) -> Result<(), StoreError> {
    for id in ids {
        t.ops_outbox.remove(*id)?;
    }
    Ok(())
}
