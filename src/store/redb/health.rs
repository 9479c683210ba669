//! The reads of the breakers and of the operational-event outbox: plain MVCC read
//! transactions, like the other reads (`reads.rs`), never waiting for the writer.

use redb::{ReadableDatabase, ReadableTable};

use super::{ENDPOINT_HEALTH, OPS_OUTBOX, RedbStore, StoreError, records};

impl RedbStore {
    /// Every endpoint's breaker that is not closed-and-never-held, by endpoint id.
    pub fn healths(&self) -> Result<Vec<(String, crate::store::health::Health)>, StoreError> {
        let txn = self.inner.db.get()?.begin_read()?;
        let table = txn.open_table(ENDPOINT_HEALTH)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (endpoint, value) = entry?;
            out.push((
                endpoint.value().to_string(),
                decode(endpoint.value(), value.value()),
            ));
        }
        Ok(out)
    }

    /// Up to `limit` operational events waiting to be published, oldest first. One that
    /// cannot be read is skipped (and logged); it stays until an operator looks.
    pub fn ops_pending(&self, limit: usize) -> Result<Vec<crate::store::OpsRow>, StoreError> {
        let txn = self.inner.db.get()?.begin_read()?;
        let table = txn.open_table(OPS_OUTBOX)?;
        let mut out = Vec::new();
        for entry in table.iter()?.take(limit) {
            let (id, value) = entry?;
            match records::decode::<records::OpsRecord>(value.value()) {
                Ok(r) => out.push(crate::store::OpsRow {
                    id: id.value(),
                    at_ms: r.at_ms,
                    event_type: r.event_type,
                    subject: r.subject,
                    body: r.body,
                }),
                Err(e) => {
                    tracing::error!(id = id.value(), error = %e, "an operational event cannot be read; skipped")
                }
            }
        }
        Ok(out)
    }

    /// One endpoint's breaker (closed when it has no record).
    pub fn health_of(&self, endpoint: &str) -> Result<crate::store::health::Health, StoreError> {
        let txn = self.inner.db.get()?.begin_read()?;
        let table = txn.open_table(ENDPOINT_HEALTH)?;
        Ok(table
            .get(endpoint)?
            .map_or_else(crate::store::health::Health::closed, |v| {
                decode(endpoint, v.value())
            }))
    }
}

/// A breaker record; one that cannot be read is taken as closed (and logged), as the writer
/// takes it: a bad record must neither hold an endpoint's deliveries nor break the listings.
fn decode(endpoint: &str, bytes: &[u8]) -> crate::store::health::Health {
    records::decode::<records::HealthRecord>(bytes)
        .and_then(records::HealthRecord::into_model)
        .unwrap_or_else(|e| {
            tracing::error!(endpoint, error = %e, "an endpoint's breaker record cannot be read; taken as closed");
            crate::store::health::Health::closed()
        })
}
