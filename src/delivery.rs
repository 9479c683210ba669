//! Delivery: every stored delivery reaches its endpoint, retried until it succeeds or dies.
//!
//! The [`Dispatcher`] runs one [`lane`] per endpoint. A lane reads only its own endpoint's due
//! schedule from the store, keeps at most `max_in_flight` attempts running and paces them by
//! the endpoint's `rate_limit`, so **one slow or dead endpoint never delays another**. A global
//! cap (`delivery.max_concurrency`) bounds attempts across all lanes; an endpoint can hold at
//! most its own `max_in_flight` of it. A lane
//! sleeps until its next due time or until it is woken: by ingress right after a commit that
//! gave it work, or by one of its attempts finishing. There is no polling loop and no timer
//! per delivery.
//!
//! **The store is the queue**: a lane holds only ids of what it is sending now. Before an
//! attempt the delivery is leased in the store; its result (delivered, retry at, dead) is
//! committed before the lane forgets it. A crash loses no work: leases are taken back at open.

pub mod attempt;
pub mod client;
pub mod lane;
pub mod retry;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::config::Endpoint;
use crate::filter::RouteTable;
use crate::store::{Store, StoreError};

/// What every lane shares.
pub struct Shared {
    pub store: Store,
    pub http: reqwest::Client,
    pub clock: SharedClock,
    pub allow_private: bool,
    /// The sources in force: their schemes say which headers a delivery forwards by default.
    pub routes: Arc<RouteTable>,
    /// Attempts in flight across all endpoints (`delivery.max_concurrency`).
    pub global: Arc<Semaphore>,
}

/// Runs every endpoint's lane.
pub struct Dispatcher {
    wakers: HashMap<String, Arc<Notify>>,
    paused: HashMap<String, watch::Sender<bool>>,
    store: Store,
    stop: watch::Sender<bool>,
    lanes: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Dispatcher {
    /// Starts a lane per endpoint. They begin with whatever the store holds as due.
    /// Endpoints in `paused` start paused.
    pub fn start(
        endpoints: &[Endpoint],
        shared: Shared,
        paused_at_start: &HashSet<String>,
        grace: Duration,
    ) -> Self {
        let store = shared.store.clone();
        let shared = Arc::new(shared);
        let (stop, stopped) = watch::channel(false);
        let mut wakers = HashMap::new();
        let mut paused = HashMap::new();
        let mut lanes = Vec::new();
        for endpoint in endpoints {
            let wake = Arc::new(Notify::new());
            wakers.insert(endpoint.id.clone(), Arc::clone(&wake));
            let (pause_tx, pause_rx) = watch::channel(paused_at_start.contains(&endpoint.id));
            paused.insert(endpoint.id.clone(), pause_tx);
            let lane = lane::Lane::new(
                Arc::new(endpoint.clone()),
                Arc::clone(&shared),
                wake,
                pause_rx,
            );
            lanes.push(tokio::spawn(lane.run(stopped.clone(), grace)));
        }
        Dispatcher {
            wakers,
            paused,
            store,
            stop,
            lanes: std::sync::Mutex::new(lanes),
        }
    }

    /// Pauses or resumes an endpoint: recorded in the store first, so it survives a restart,
    /// then applied. `Ok(false)` when there is no such endpoint.
    pub async fn set_paused(&self, endpoint: &str, paused: bool) -> Result<bool, StoreError> {
        let Some(flag) = self.paused.get(endpoint) else {
            return Ok(false);
        };
        self.store.set_paused(endpoint, paused).await?;
        flag.send_replace(paused);
        Ok(true)
    }

    /// Whether an endpoint is paused (`None`: no such endpoint).
    pub fn is_paused(&self, endpoint: &str) -> Option<bool> {
        self.paused.get(endpoint).map(|f| *f.borrow())
    }

    /// Tells an endpoint's lane it has new work.
    pub fn wake(&self, endpoint: &str) {
        if let Some(n) = self.wakers.get(endpoint) {
            n.notify_one();
        }
    }

    /// Stops taking work, lets attempts in flight finish within the lanes' grace period, and
    /// returns when every lane has stopped. What did not finish stays leased in the store and
    /// is taken again at the next start.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let lanes = std::mem::take(&mut *self.lanes.lock().unwrap_or_else(|p| p.into_inner()));
        for lane in lanes {
            let _ = lane.await;
        }
    }
}
