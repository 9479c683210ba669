//! The writer's handling of callers that are gone.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::Command;
use crate::store::NewEvent;
use crate::store::redb::{RedbStore as Store, StoreOptions};

/// An event of source `s` with `body`, routed to `endpoints`.
pub(super) fn event(body: &'static [u8], endpoints: &[&str]) -> NewEvent {
    NewEvent {
        source: "s".into(),
        event_type: None,
        received_ms: 1_000,
        dedup: None,
        dedup_scope: None,
        body_dedup: None,
        budget: None,
        headers: Vec::new(),
        query: String::new(),
        body: bytes::Bytes::from_static(body),
        endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
        order_keys: Vec::new(),
    }
}

/// A store in `dir` for the writer's unit tests.
pub(super) fn store(dir: &std::path::Path) -> Store {
    Store::open(
        dir,
        StoreOptions {
            max_backlog: u64::MAX,
            queue_capacity: 64,
            clock: Arc::new(crate::clock::SystemClock),
            metrics: None,
            fault: None,
            quick_repair: false,
        },
    )
    .expect("open")
}

/// An ingest whose caller hung up before the writer got to it is not written: it was never
/// acknowledged, and writing it would only hold its memory longer.
#[tokio::test]
async fn ingests_whose_caller_is_gone_are_not_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path());
    let (gone, rx) = oneshot::channel();
    drop(rx);
    store
        .inner
        .tx
        .send(Command::Ingest(Box::new(event(b"nobody waits", &[])), gone))
        .await
        .expect("queued");
    store
        .ingest(event(b"waited for", &[]))
        .await
        .expect("stored");
    assert_eq!(store.event_ids().expect("ids").len(), 1);
    store.close().await;
}
