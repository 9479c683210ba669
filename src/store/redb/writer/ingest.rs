//! Ingest in the writer: dedup, the backlog limit, and an event written with its payload,
//! its deliveries (placed in their order keys, for endpoints that order) and its dedup
//! entries, in the batch's one transaction.

use std::collections::HashSet;

use redb::ReadableTable;
use std::time::{Duration, UNIX_EPOCH};

use super::records::{EventRecord, PayloadRef};
use super::tables::{self, Tables, put_delivery};
use super::{IngestOutcome, NewEvent, StoreError, Writer, finished, outbox, records};
use crate::ids::{DeliveryId, EventId};

impl Writer {
    fn next_id(&mut self, ms: u64) -> u128 {
        let at = UNIX_EPOCH + Duration::from_millis(ms);
        match self.ulids.generate_from_datetime(at) {
            Ok(u) => u.0,
            // 2^80 ids in one millisecond: carry into the next one, still increasing.
            Err(overflow) => overflow.commit_overflow_increment().0,
        }
    }

    pub(super) fn ingest(
        &mut self,
        t: &mut Tables<'_>,
        ev: &NewEvent,
        pending: &mut u64,
        known: Option<&HashSet<String>>,
    ) -> Result<IngestOutcome, StoreError> {
        let body_scope = format!("{}#body", ev.source);
        let keys: Vec<(&str, &str, u64)> = ev
            .dedup
            .iter()
            .map(|(k, w)| {
                let scope = ev.dedup_scope.as_deref().unwrap_or(&ev.source);
                (scope, k.as_str(), *w)
            })
            .chain(
                ev.body_dedup
                    .iter()
                    .map(|(k, w)| (body_scope.as_str(), k.as_str(), *w)),
            )
            .collect();
        for (scope, key, _) in &keys {
            if let Some(seen) = t.dedup.get((*scope, *key))? {
                let (event_id, expires_ms) = seen.value();
                if outbox::dedup_holds(expires_ms, ev.received_ms) {
                    return Ok(IngestOutcome::Duplicate {
                        event_id: EventId(event_id),
                    });
                }
            }
        }
        // Routed from a snapshot that may be older than a deletion committed since.
        let endpoints: Vec<&String> = ev
            .endpoints
            .iter()
            .filter(|e| known.is_none_or(|k| k.contains(e.as_str())))
            .collect();
        let fanout = endpoints.len() as u64;
        if !outbox::admits(*pending, fanout, self.max_backlog) {
            return Err(StoreError::Backlog {
                pending: *pending,
                limit: self.max_backlog,
            });
        }
        // Ids come from one generator in the writer, so they increase in commit order even when
        // the clock steps back.
        let received_ms = ev.received_ms;
        let event_id = self.next_id(received_ms);
        let mut deliveries = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let id = DeliveryId(self.next_id(received_ms));
            let mut d = outbox::ingest(id, EventId(event_id), endpoint, received_ms);
            if let Some(key) = ev.order_key(endpoint) {
                d = tables::place(t, &d, key)?;
            }
            put_delivery(t, None, &d, pending)?;
            deliveries.push((id, endpoint.clone()));
        }
        let record = EventRecord {
            source: ev.source.clone(),
            event_type: ev.event_type.clone(),
            received_ms,
            dedup_key: ev.dedup.as_ref().map(|(k, _)| k.clone()),
            deliveries: deliveries.iter().map(|(id, e)| (id.0, e.clone())).collect(),
        };
        t.events
            .insert(event_id, records::encode(&record).as_slice())?;
        let payload = PayloadRef {
            headers: ev
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), serde_bytes::Bytes::new(v)))
                .collect(),
            body: &ev.body,
            query: &ev.query,
        };
        t.payloads.insert(event_id, payload.encode().as_slice())?;
        finished::stored(t, event_id, fanout)?;
        for (scope, key, window_ms) in keys {
            let expires = outbox::dedup_expires(received_ms, window_ms);
            t.dedup.insert((scope, key), (event_id, expires))?;
            t.dedup_expiry.insert((expires, scope, key), ())?;
        }
        Ok(IngestOutcome::Accepted {
            event_id: EventId(event_id),
            deliveries,
        })
    }
}
