//! The endpoints' breakers on a database several nodes share: `endpoint_health` holds each
//! one's state (`store::health::Health`), moved only by the rules of `store::health`, under
//! the row's lock, in the transaction of the result, probe lease or enable that moves it.
//! **Each node counts its own results' window** (in memory, like redb's writer): with N nodes
//! sending to one endpoint, a node opens the breaker for all once its own share of the
//! attempts passes the threshold. The operational events a change reports are written to
//! `ops_outbox` in the same transaction.

use std::collections::{BTreeSet, HashMap};

use deadpool_postgres::GenericClient;

use super::error::Fail;
use super::rows::{id_bytes, id_from};
use super::time::{ms, unms};
use crate::ids::DeliveryId;
use crate::model::event::Delivery;
use crate::model::ops::OpsEvent;
use crate::store::health::{self, Health, Probe, State};

const HEALTH: &str = "endpoint_id, state, since_ms, until_ms, trips, failing_since_ms, \
     held_total_ms, held_from_ms, probe_id, probe_token, probe_until_ms";

fn from_row(row: &tokio_postgres::Row) -> Result<(String, Health), Fail> {
    let code: i16 = row.try_get(1)?;
    let state = u8::try_from(code)
        .ok()
        .and_then(State::from_code)
        .unwrap_or(State::Closed);
    let probe = match (
        row.try_get::<_, Option<Vec<u8>>>(8)?,
        row.try_get::<_, Option<i64>>(9)?,
        row.try_get::<_, Option<i64>>(10)?,
    ) {
        (Some(id), Some(token), Some(until)) => Some(Probe {
            delivery_id: DeliveryId(id_from(&id)?),
            token: token as u64,
            until_ms: unms(until),
        }),
        _ => None,
    };
    let opt =
        |i: usize| -> Result<Option<u64>, Fail> { Ok(row.try_get::<_, Option<i64>>(i)?.map(unms)) };
    Ok((
        row.try_get(0)?,
        Health {
            state,
            since_ms: unms(row.try_get(2)?),
            until_ms: unms(row.try_get(3)?),
            trips: u32::try_from(row.try_get::<_, i32>(4)?).unwrap_or(0),
            failing_since_ms: opt(5)?,
            held_total_ms: unms(row.try_get(6)?),
            held_from_ms: opt(7)?,
            probe,
        },
    ))
}

/// The breakers of `endpoints` that have a row (no lock); all of them with `None`.
pub(super) async fn read(
    client: &impl GenericClient,
    endpoints: Option<&[String]>,
) -> Result<HashMap<String, Health>, Fail> {
    let rows = match endpoints {
        Some(ids) => {
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT {HEALTH} FROM endpoint_health WHERE endpoint_id = ANY($1)"
                ))
                .await?;
            client.query(&stmt, &[&ids]).await?
        }
        None => {
            let stmt = client
                .prepare_cached(&format!("SELECT {HEALTH} FROM endpoint_health"))
                .await?;
            client.query(&stmt, &[]).await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// Locks the breakers of `endpoints` (a closed row is made for one that has none, so there
/// is a row to lock), in id order; answers them.
pub(super) async fn lock(
    tx: &deadpool_postgres::Transaction<'_>,
    endpoints: &BTreeSet<String>,
) -> Result<HashMap<String, Health>, Fail> {
    if endpoints.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    let make = tx
        .prepare_cached(
            "INSERT INTO endpoint_health (endpoint_id, state, since_ms, until_ms, trips, \
             held_total_ms) SELECT e, 0, 0, 0, 0, 0 FROM unnest($1::text[]) e \
             ON CONFLICT (endpoint_id) DO NOTHING",
        )
        .await?;
    tx.execute(&make, &[&ids]).await?;
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {HEALTH} FROM endpoint_health WHERE endpoint_id = ANY($1) \
             ORDER BY endpoint_id FOR UPDATE"
        ))
        .await?;
    tx.query(&stmt, &[&ids])
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// Writes a breaker (its row is locked, or made here).
pub(super) async fn write(
    tx: &deadpool_postgres::Transaction<'_>,
    endpoint: &str,
    h: &Health,
) -> Result<(), Fail> {
    let stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO endpoint_health ({HEALTH}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (endpoint_id) DO UPDATE SET state = excluded.state, \
             since_ms = excluded.since_ms, until_ms = excluded.until_ms, \
             trips = excluded.trips, failing_since_ms = excluded.failing_since_ms, \
             held_total_ms = excluded.held_total_ms, held_from_ms = excluded.held_from_ms, \
             probe_id = excluded.probe_id, probe_token = excluded.probe_token, \
             probe_until_ms = excluded.probe_until_ms"
        ))
        .await?;
    let code = i16::from(h.state.code());
    let trips = i32::try_from(h.trips).unwrap_or(i32::MAX);
    let probe_id = h.probe.map(|p| id_bytes(p.delivery_id.0).to_vec());
    let probe_token = h.probe.map(|p| p.token as i64);
    let probe_until = h.probe.map(|p| ms(p.until_ms));
    tx.execute(
        &stmt,
        &[
            &endpoint,
            &code,
            &ms(h.since_ms),
            &ms(h.until_ms),
            &trips,
            &h.failing_since_ms.map(ms),
            &ms(h.held_total_ms),
            &h.held_from_ms.map(ms),
            &probe_id,
            &probe_token,
            &probe_until,
        ],
    )
    .await?;
    Ok(())
}

/// Starts the retry cycles of `deliveries` on their endpoints' held-time clocks: each one's
/// `cycle_held_ms` becomes the clock at its `cycle_started_ms`, so the time its endpoint is
/// held from now on is not charged to its `max_age`. One read, of the endpoints that have a
/// breaker row.
pub(super) async fn stamp<'d>(
    client: &impl GenericClient,
    deliveries: impl IntoIterator<Item = &'d mut Delivery>,
) -> Result<(), Fail> {
    let mut deliveries: Vec<&mut Delivery> = deliveries.into_iter().collect();
    if deliveries.is_empty() {
        return Ok(());
    }
    let endpoints: Vec<String> = deliveries
        .iter()
        .map(|d| d.endpoint_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let healths = read(client, Some(&endpoints)).await?;
    if healths.is_empty() {
        return Ok(());
    }
    for d in &mut deliveries {
        if let Some(h) = healths.get(&d.endpoint_id) {
            d.cycle_held_ms = health::held_at(h, d.cycle_started_ms);
        }
    }
    Ok(())
}

/// Writes operational events to the outbox, each with the time it happened.
pub(super) async fn write_ops(
    tx: &deadpool_postgres::Transaction<'_>,
    events: &[(u64, OpsEvent)],
) -> Result<(), Fail> {
    if events.is_empty() {
        return Ok(());
    }
    let at: Vec<i64> = events.iter().map(|(t, _)| ms(*t)).collect();
    let types: Vec<&str> = events.iter().map(|(_, e)| e.event_type()).collect();
    let subjects: Vec<Option<&str>> = events.iter().map(|(_, e)| e.subject()).collect();
    let bodies: Vec<Vec<u8>> = events.iter().map(|(t, e)| e.body(*t)).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO ops_outbox (at_ms, event_type, subject, body) \
             SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::bytea[])",
        )
        .await?;
    tx.execute(&stmt, &[&at, &types, &subjects, &bodies])
        .await?;
    Ok(())
}

/// What a batch of results did to the breakers: each counted result's `Completed`, by
/// delivery, and the operational events the changes report.
pub(super) type Counted = (
    HashMap<DeliveryId, crate::store::Completed>,
    Vec<(u64, OpsEvent)>,
);

/// Counts a batch's results for their endpoints' breakers, in the batch's transaction:
/// `results` are the completions that changed their delivery, with its new state, in arrival
/// order. Breakers are locked only where a result may move one (a failure, or a breaker not
/// closed); a success on a closed breaker only counts in this node's window.
pub(super) async fn count(
    tx: &deadpool_postgres::Transaction<'_>,
    windows: &std::sync::Mutex<HashMap<String, health::Window>>,
    results: &[(&crate::store::Completion, &Delivery)],
    now_ms: u64,
) -> Result<Counted, Fail> {
    let policied: Vec<_> = results
        .iter()
        .filter(|(c, _)| c.health.is_some_and(|h| h.breaker.is_some()))
        .collect();
    if policied.is_empty() {
        return Ok(Default::default());
    }
    let endpoints: Vec<String> = policied
        .iter()
        .map(|(_, d)| d.endpoint_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let seen = read(tx, Some(&endpoints)).await?;
    let failed = |c: &crate::store::Completion| !matches!(c.next, crate::store::Next::Delivered);
    let moving: BTreeSet<String> = policied
        .iter()
        .filter(|(c, d)| {
            failed(c)
                || seen
                    .get(&d.endpoint_id)
                    .is_some_and(|h| h.state != State::Closed)
        })
        .map(|(_, d)| d.endpoint_id.clone())
        .collect();
    let mut locked = lock(tx, &moving).await?;
    let before = locked.clone();
    let mut out: Counted = Default::default();
    {
        let mut windows = windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (c, d) in policied {
            let Some(policy) = c.health else { continue };
            let window = windows.entry(d.endpoint_id.clone()).or_default();
            let h = locked
                .get(&d.endpoint_id)
                .or_else(|| seen.get(&d.endpoint_id))
                .copied()
                .unwrap_or_else(Health::closed);
            // Another node's close cleared only its own window: what this one counted before
            // it must not re-open the breaker.
            if h.state == State::Closed {
                window.forget_before(h.since_ms);
            }
            let (after, transition) = health::on_result(
                &h,
                window,
                &policy,
                now_ms,
                c.delivery_id,
                c.lease_token,
                failed(c),
            );
            if let Some(slot) = locked.get_mut(&d.endpoint_id) {
                *slot = after;
            }
            if let Some(event) = health::report(&h, &after, transition, window, &policy, d, now_ms)
            {
                out.1.push((now_ms, event));
            }
            out.0.insert(
                c.delivery_id,
                crate::store::Completed {
                    health: Some(after),
                    transition,
                    stale: false,
                },
            );
        }
    }
    for (endpoint, h) in &locked {
        if before.get(endpoint) != Some(h) {
            write(tx, endpoint, h).await?;
        }
    }
    Ok(out)
}

/// `delivery.dead` for each of `dead` (deliveries that died by their retry policy), unless
/// it carried one of hookgate's own events.
pub(super) async fn deaths(
    tx: &deadpool_postgres::Transaction<'_>,
    dead: &[&Delivery],
    now_ms: u64,
) -> Result<Vec<(u64, OpsEvent)>, Fail> {
    if dead.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Vec<u8>> = dead
        .iter()
        .map(|d| id_bytes(d.event_id.0).to_vec())
        .collect();
    let stmt = tx
        .prepare_cached("SELECT id, source, event_type FROM events WHERE id = ANY($1)")
        .await?;
    let mut events: HashMap<u128, (String, Option<String>)> = HashMap::new();
    for row in tx.query(&stmt, &[&ids]).await? {
        let id: Vec<u8> = row.try_get(0)?;
        events.insert(id_from(&id)?, (row.try_get(1)?, row.try_get(2)?));
    }
    Ok(dead
        .iter()
        .filter_map(|d| {
            let (source, event_type) = events.get(&d.event_id.0)?.clone();
            (source != crate::model::HOOKGATE_SOURCE).then(|| {
                (
                    now_ms,
                    OpsEvent::DeliveryDead {
                        delivery_id: d.id.to_string(),
                        event_id: d.event_id.to_string(),
                        endpoint: d.endpoint_id.clone(),
                        source,
                        event_type,
                        attempts: d.attempts,
                        last_status_code: d.last_status_code,
                        last_error: d.last_error.clone(),
                    },
                )
            })
        })
        .collect())
}
