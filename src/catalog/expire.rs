//! Endpoints that remove themselves: an API-made endpoint with `expires_at` is deleted once
//! that time has passed (its undelivered deliveries dead-lettered, as any delete does).
//! `hookgate listen` makes its temporary pull endpoint so, and moves the time later while it
//! runs, so **a `listen` that dies leaves nothing behind for long**. Every node looks; the
//! first to delete wins, and the others find nothing to delete.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Catalog, Origin};
use crate::clock::SharedClock;
use crate::delivery::Dispatcher;
use crate::store::EntryKind;

/// How often the endpoints are looked at.
pub const EVERY: Duration = Duration::from_secs(2);

/// The endpoints due to go at `now_ms`: made through the API, `expires_at` passed. (A file's
/// endpoint is the file's to remove.)
pub fn expired(catalog: &Catalog, now_ms: u64) -> Vec<String> {
    catalog
        .routes
        .current()
        .endpoints
        .iter()
        .filter(|e| e.expires_at_ms.is_some_and(|at| at <= now_ms))
        .filter(|e| catalog.origin(EntryKind::Endpoint, &e.id) == Some(Origin::Api))
        .map(|e| e.id.clone())
        .collect()
}

/// Deletes expired endpoints every [`EVERY`] until `stop`.
pub async fn run(
    catalog: Arc<Catalog>,
    dispatcher: Arc<Dispatcher>,
    clock: SharedClock,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        for id in expired(&catalog, clock.now_ms()) {
            match catalog.delete(EntryKind::Endpoint, &id, &dispatcher).await {
                Ok(dead) => {
                    tracing::info!(endpoint = %id, dead_lettered = dead, "an endpoint expired and was removed");
                }
                // Another node removed it first, or the store is away: looked at again soon.
                Err(e) => {
                    tracing::debug!(endpoint = %id, error = %e, "cannot remove an expired endpoint")
                }
            }
        }
    }
}
