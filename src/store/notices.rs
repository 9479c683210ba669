//! The store's announcements of new due work, per endpoint. After a commit that made
//! deliveries due (an ingest, a replay, a retry, a recover), the writer wakes each endpoint
//! that got some, so **no caller has to pair a write with a wake-up**: whoever waits for an
//! endpoint's work (its delivery lane; later, live views) listens here.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Notices {
    by_endpoint: RwLock<HashMap<String, Arc<Notify>>>,
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
}
