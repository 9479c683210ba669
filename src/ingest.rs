//! The one ingest path, shared by webhooks (`ingress`) and events published through the admin
//! API (`api::publish`): route the event to the endpoints that subscribe to its source and
//! type, and store it with one delivery each, in one transaction. The store answers only after
//! the commit, and announces the new work to the endpoints' lanes itself
//! (`store::notices`), so a caller has nothing left to do but answer.

use crate::filter::Routes;
use crate::store::{IngestOutcome, NewEvent, Store, StoreError};

/// An event as it arrives, before routing: a [`NewEvent`] without its endpoints.
pub struct Incoming {
    pub source: String,
    pub event_type: Option<String>,
    pub received_ms: u64,
    /// The provider's delivery id (or an idempotency key) and how long to remember it.
    pub dedup: Option<(String, u64)>,
    /// The namespace of `dedup`; `None` is the source id.
    pub dedup_scope: Option<String>,
    /// A hash of the body as a second dedup key, and how long to remember it.
    pub body_dedup: Option<(String, u64)>,
    /// The memory the request holds against the ingress budget, released once written.
    pub budget: Option<std::sync::Arc<tokio::sync::OwnedSemaphorePermit>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: bytes::Bytes,
}

/// Routes `incoming` by `routes` and stores it: accepted (on disk, with its deliveries), a
/// duplicate, or not stored.
pub async fn ingest(
    store: &Store,
    routes: &Routes,
    incoming: Incoming,
) -> Result<IngestOutcome, StoreError> {
    let endpoints = crate::filter::route(
        &routes.endpoints,
        &incoming.source,
        incoming.event_type.as_deref(),
    );
    store
        .ingest(NewEvent {
            source: incoming.source,
            event_type: incoming.event_type,
            received_ms: incoming.received_ms,
            dedup: incoming.dedup,
            dedup_scope: incoming.dedup_scope,
            body_dedup: incoming.body_dedup,
            budget: incoming.budget,
            headers: incoming.headers,
            body: incoming.body,
            endpoints,
        })
        .await
}
