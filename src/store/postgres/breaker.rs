//! The breaker's operations an operator and the publisher ask of this backend: every
//! endpoint's breaker, an enable (closing it, with or without dead-lettering what it held),
//! and the operational-event outbox. The breaker's moves on results and claims are in
//! `results.rs` and `claim.rs`; the rows and rules in `health.rs` and `store::health`.

use std::collections::BTreeSet;

use super::PgStore;
use super::commands::dead_letter_endpoint;
use super::error::{Fail, retrying};
use super::health;
use super::time::{ms, unms};
use crate::model::ops::OpsEvent;
use crate::store::health::{Health, State, Window};
use crate::store::{DISCARDED_ON_ENABLE, Enabled, OpsRow, StoreError};

impl PgStore {
    /// See `Store::healths`.
    pub async fn healths(&self) -> Result<Vec<(String, Health)>, StoreError> {
        let client = self.shared.conn().await.map_err(Fail::into_store)?;
        let mut all: Vec<(String, Health)> = health::read(&client, None)
            .await
            .map_err(Fail::into_store)?
            .into_iter()
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    /// See `Store::enable`.
    pub async fn enable(&self, endpoint: &str, discard: bool) -> Result<Enabled, StoreError> {
        self.open_for_writes()?;
        let s = &self.shared;
        let done = retrying(|| async {
            let mut client = s.conn().await?;
            let tx = client.transaction().await?;
            let now = s.clock.now(&tx).await?.ms();
            let ids = [endpoint.to_string()];
            let unlocked = health::read(&tx, Some(&ids)).await?;
            if unlocked
                .get(endpoint)
                .is_none_or(|h| h.state == State::Closed)
            {
                return Ok(None);
            }
            let held: i64 = tx
                .query_one(
                    "SELECT count(*) FROM deliveries WHERE endpoint_id = $1",
                    &[&endpoint],
                )
                .await?
                .try_get(0)?;
            let held = unms(held);
            // The delivery rows before the breaker's row, as results lock them, so an enable
            // and a batch of results never wait on each other crosswise.
            let discarded = if discard {
                dead_letter_endpoint(&tx, endpoint, DISCARDED_ON_ENABLE, now).await?
            } else {
                0
            };
            let set = BTreeSet::from(ids);
            let before = health::lock(&tx, &set)
                .await?
                .remove(endpoint)
                .unwrap_or_default();
            if before.state == State::Closed {
                // Closed meanwhile (a probe recovered it): nothing to enable, and dropping
                // the transaction takes back the discard.
                return Ok(None);
            }
            let after = crate::store::health::enable(&before, &mut Window::default(), now);
            health::write(&tx, endpoint, &after).await?;
            let event = OpsEvent::Enabled {
                endpoint: endpoint.to_string(),
                held,
                discarded,
            };
            health::write_ops(&tx, &[(now, event)]).await?;
            tx.commit().await?;
            Ok(Some(Enabled { held, discarded }))
        })
        .await?;
        let Some(done) = done else {
            return Ok(Enabled::default());
        };
        // This node's window starts afresh, as the breaker does.
        s.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(endpoint);
        s.announce([endpoint]);
        s.notices.ops.notify_one();
        Ok(done)
    }

    /// See `Store::ops_pending`.
    pub async fn ops_pending(&self, limit: usize) -> Result<Vec<OpsRow>, StoreError> {
        let client = self.shared.conn().await.map_err(Fail::into_store)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT id, at_ms, event_type, subject, body FROM ops_outbox ORDER BY id LIMIT $1",
                &[&limit],
            )
            .await
            .map_err(|e| Fail::from(e).into_store())?;
        rows.iter()
            .map(|r| {
                Ok(OpsRow {
                    id: unms(r.try_get(0)?),
                    at_ms: unms(r.try_get(1)?),
                    event_type: r.try_get(2)?,
                    subject: r.try_get(3)?,
                    body: r.try_get(4)?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| Fail::from(e).into_store())
    }

    /// See `Store::ops_done`.
    pub async fn ops_done(&self, ids: Vec<u64>) -> Result<(), StoreError> {
        let ids: Vec<i64> = ids.into_iter().map(ms).collect();
        let client = self.shared.conn().await.map_err(Fail::into_store)?;
        client
            .execute("DELETE FROM ops_outbox WHERE id = ANY($1)", &[&ids])
            .await
            .map_err(|e| Fail::from(e).into_store())?;
        Ok(())
    }
}
