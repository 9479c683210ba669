//! The endpoints' breakers in the writer: each is read from `endpoint_health`, moved by a rule
//! of `store::health`, and written back in the transaction of the result, probe lease or
//! enable that moved it. A record is kept once a breaker has opened (its held-time clock
//! must outlive the spell); a breaker that never opened has none.

use redb::ReadableTable;

use super::{Tables, lease, orphans};
use crate::ids::DeliveryId;
use crate::model::event::Delivery;
use crate::model::ops::OpsEvent;
use crate::store::health::{self, Health, State, Window};
use crate::store::redb::records::{self, HealthRecord};
use crate::store::{Completed, Completion, DISCARDED_ON_ENABLE, Enabled, Next, StoreError};

/// An endpoint's breaker (closed without a record). One that cannot be read is taken as
/// closed and logged: a bad record must not hold an endpoint's deliveries forever.
pub(super) fn read(t: &Tables<'_>, endpoint: &str) -> Result<Health, StoreError> {
    let Some(v) = t.endpoint_health.get(endpoint)? else {
        return Ok(Health::closed());
    };
    match records::decode::<HealthRecord>(v.value()).and_then(HealthRecord::into_model) {
        Ok(h) => Ok(h),
        Err(e) => {
            tracing::error!(endpoint, error = %e, "an endpoint's breaker record cannot be read; taken as closed");
            Ok(Health::closed())
        }
    }
}

fn write(t: &mut Tables<'_>, endpoint: &str, h: &Health) -> Result<(), StoreError> {
    if *h == Health::closed() {
        t.endpoint_health.remove(endpoint)?;
    } else {
        let record = records::encode(&HealthRecord::from(h));
        t.endpoint_health.insert(endpoint, record.as_slice())?;
    }
    Ok(())
}

/// Counts the result `c` (which changed `d`) for its endpoint's breaker, when it carries a
/// policy: what the breaker is after it, and the transition it made.
pub(super) fn count(
    t: &mut Tables<'_>,
    window: &mut Window,
    c: &Completion,
    d: &Delivery,
    now_ms: u64,
) -> Result<Completed, StoreError> {
    let Some(policy) = &c.health else {
        return Ok(Completed::default());
    };
    let before = read(t, &d.endpoint_id)?;
    let failed = !matches!(c.next, Next::Delivered);
    let (after, transition) = health::on_result(
        &before,
        window,
        policy,
        now_ms,
        c.delivery_id,
        c.lease_token,
        failed,
    );
    if after != before {
        write(t, &d.endpoint_id, &after)?;
    }
    if let Some(event) = health::report(&before, &after, transition, window, policy, d, now_ms) {
        super::ops::write(t, now_ms, &event)?;
    }
    Ok(Completed {
        health: Some(after),
        transition,
        stale: false,
    })
}

/// Leases `id` as `endpoint`'s probe if its breaker admits one now: the breaker after the
/// grant, or `None` (nothing leased) when it does not, or the delivery cannot be leased.
pub(super) fn lease_probe(
    t: &mut Tables<'_>,
    endpoint: &str,
    id: DeliveryId,
    until_ms: u64,
    token: u64,
    now_ms: u64,
    pending: &mut u64,
) -> Result<Option<Health>, StoreError> {
    let before = read(t, endpoint)?;
    let granted = health::grant_probe(&before, id, token, until_ms, now_ms);
    if !granted.is_probe(id, Some(token)) || granted.state != State::HalfOpen {
        return Ok(None);
    }
    if lease(t, &[id], until_ms, now_ms, pending)?.is_empty() {
        return Ok(None);
    }
    write(t, endpoint, &granted)?;
    Ok(Some(granted))
}

/// An operator enables `endpoint`: with `discard`, what it held is dead-lettered first (every
/// delivery not final, blocked ones included); then its breaker closes.
pub(super) fn enable(
    t: &mut Tables<'_>,
    window: &mut Window,
    endpoint: &str,
    discard: bool,
    now_ms: u64,
    pending: &mut u64,
) -> Result<Enabled, StoreError> {
    let before = read(t, endpoint)?;
    if before.state == State::Closed {
        return Ok(Enabled::default());
    }
    let held = t
        .pending_by_endpoint
        .get(endpoint)?
        .map_or(0, |v| v.value());
    let discarded = if discard {
        orphans::dead_letter_endpoint(t, endpoint, DISCARDED_ON_ENABLE, now_ms, pending)?
    } else {
        0
    };
    write(t, endpoint, &health::enable(&before, window, now_ms))?;
    let event = OpsEvent::Enabled {
        endpoint: endpoint.to_string(),
        held,
        discarded,
    };
    super::ops::write(t, now_ms, &event)?;
    Ok(Enabled { held, discarded })
}
