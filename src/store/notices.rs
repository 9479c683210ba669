//! The store's announcements of what it committed. Two kinds, both made only **after the
//! commit** they describe, by the backend itself, so **no caller has to pair a write with a
//! wake-up**:
//! - per endpoint, a wake-up when a commit made deliveries due (an ingest, a replay, a retry,
//!   a recover): what each delivery lane waits on;
//! - for live views, one broadcast of [`Announcement`]s: each new event, and each attempt's
//!   result. **The broadcast is bounded ([`ANNOUNCEMENT_CAPACITY`]) and never waits**: a
//!   subscriber that falls behind loses the oldest announcements and is told how many
//!   (`RecvError::Lagged`), so no live view can slow the writer. It carries what this process
//!   committed only; with PostgreSQL, other nodes' commits reach their own subscribers.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::{Notify, broadcast};

use crate::ids::{DeliveryId, EventId};
use crate::model::event::DeliveryStatus;

/// Announcements kept for a subscriber that has not read them yet; one behind by more lags.
pub const ANNOUNCEMENT_CAPACITY: usize = 1024;

/// Something the store committed, as live views show it: enough to render a row without
/// reading the store again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// An event was stored, with one pending delivery per endpoint it goes to.
    Event {
        event_id: EventId,
        source: String,
        event_type: Option<String>,
        received_ms: u64,
        deliveries: Vec<(DeliveryId, String)>,
    },
    /// An attempt's result was recorded: the delivery's state after it.
    Result {
        delivery_id: DeliveryId,
        event_id: EventId,
        endpoint: String,
        status: DeliveryStatus,
        attempts: u32,
    },
    /// Deliveries made due again now (a replay, a retry or a recover): each is pending again,
    /// with its endpoint.
    Requeued {
        deliveries: Vec<(DeliveryId, String)>,
    },
}

#[derive(Debug)]
pub struct Notices {
    by_endpoint: RwLock<HashMap<String, Arc<Notify>>>,
    committed: broadcast::Sender<Arc<Announcement>>,
    /// Woken after a commit that wrote operational events to the outbox (`ops` waits on it).
    pub ops: Notify,
}

impl Default for Notices {
    fn default() -> Self {
        Self {
            by_endpoint: RwLock::default(),
            committed: broadcast::Sender::new(ANNOUNCEMENT_CAPACITY),
            ops: Notify::new(),
        }
    }
}

impl Notices {
    /// The wake-up of `endpoint`: the same one for as long as the store is open.
    pub fn of(&self, endpoint: &str) -> Arc<Notify> {
        if let Some(n) = self
            .by_endpoint
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(endpoint)
        {
            return Arc::clone(n);
        }
        let mut map = self.by_endpoint.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(endpoint.to_string()).or_default())
    }

    /// Tells whoever waits for `endpoint` that it has due work. Nobody listening is fine: a
    /// lane that starts later reads its schedule first.
    pub fn announce(&self, endpoint: &str) {
        if let Some(n) = self
            .by_endpoint
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(endpoint)
        {
            n.notify_one();
        }
    }

    /// Drops an endpoint's wake-up (it was deleted).
    pub fn forget(&self, endpoint: &str) {
        self.by_endpoint
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(endpoint);
    }

    /// Every announcement published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Announcement>> {
        self.committed.subscribe()
    }

    /// Whether anyone subscribes: a writer with no audience need not build announcements.
    pub fn listened(&self) -> bool {
        self.committed.receiver_count() > 0
    }

    /// Tells every subscriber what was committed. Never waits: a full channel drops its
    /// oldest announcement for whoever had not read it.
    pub fn publish(&self, announcement: Announcement) {
        // No subscriber is not an error.
        let _ = self.committed.send(Arc::new(announcement));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_announcement_wakes_the_endpoints_listener() {
        let n = Notices::default();
        let wake = n.of("a");
        assert!(Arc::ptr_eq(&wake, &n.of("a")));
        n.announce("b");
        n.announce("a");
        // The permit is stored: the wait returns at once.
        wake.notified().await;
    }

    fn result(n: u32) -> Announcement {
        Announcement::Result {
            delivery_id: DeliveryId(u128::from(n)),
            event_id: EventId(1),
            endpoint: "a".into(),
            status: DeliveryStatus::Retrying,
            attempts: n,
        }
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_and_never_holds_the_publisher() {
        let n = Notices::default();
        assert!(!n.listened());
        // Nobody listening: publishing is a no-op, not an error.
        n.publish(result(0));
        let mut slow = n.subscribe();
        assert!(n.listened());
        let extra = 5;
        for i in 0..ANNOUNCEMENT_CAPACITY + extra {
            n.publish(result(u32::try_from(i).expect("small")));
        }
        assert_eq!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(extra as u64))
        );
        // Then the oldest still kept.
        let next = slow.recv().await.expect("kept");
        assert_eq!(*next, result(u32::try_from(extra).expect("small")));
    }
}
