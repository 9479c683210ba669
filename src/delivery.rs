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
//! **The store is the queue**: a lane holds only what it has taken and not yet settled, at most
//! four `max_in_flight` windows, whatever the backlog. Before an attempt the delivery is
//! leased in the store; its result (delivered, retry at, dead) is committed before the lane
//! forgets it. A crash loses no work: leases are taken back at open.

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
    /// Which internal addresses deliveries may reach.
    pub reach: Arc<client::Reach>,
    /// The sources in force: their schemes say which headers a delivery forwards by default.
    pub routes: Arc<RouteTable>,
    /// Attempts in flight across all endpoints (`delivery.max_concurrency`).
    pub global: Arc<Semaphore>,
    pub metrics: Arc<crate::telemetry::Metrics>,
}

/// One running lane and its controls.
struct LaneHandle {
    wake: Arc<Notify>,
    paused: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    in_flight: lane::InFlight,
}

/// Runs every endpoint's lane; lanes can be added, replaced and removed while it runs.
pub struct Dispatcher {
    shared: Arc<Shared>,
    lanes: std::sync::Mutex<HashMap<String, LaneHandle>>,
    /// Replaced or removed lanes whose attempts in flight are still finishing.
    retiring: std::sync::Mutex<Vec<JoinHandle<()>>>,
    grace: Duration,
}

impl Dispatcher {
    /// Starts a lane per endpoint; those in `paused_at_start` start paused. Each begins with
    /// whatever the store holds as due.
    pub fn start(
        endpoints: &[Endpoint],
        shared: Shared,
        paused_at_start: &HashSet<String>,
        grace: Duration,
    ) -> Self {
        let d = Dispatcher {
            shared: Arc::new(shared),
            lanes: std::sync::Mutex::new(HashMap::new()),
            retiring: std::sync::Mutex::new(Vec::new()),
            grace,
        };
        for endpoint in endpoints {
            let handle = d.spawn_lane(
                endpoint.clone(),
                paused_at_start.contains(&endpoint.id),
                None,
            );
            d.lanes().insert(endpoint.id.clone(), handle);
        }
        d
    }

    fn lanes(&self) -> std::sync::MutexGuard<'_, HashMap<String, LaneHandle>> {
        // Only whole handles go in and out; a poisoned map is still consistent.
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a lane; `inherit` is the wake-up and in-flight set of the lane it replaces.
    fn spawn_lane(
        &self,
        endpoint: Endpoint,
        paused: bool,
        inherit: Option<(Arc<Notify>, lane::InFlight)>,
    ) -> LaneHandle {
        let (wake, in_flight) = inherit.unwrap_or_default();
        let (paused_tx, paused_rx) = watch::channel(paused);
        let (stop, stopped) = watch::channel(false);
        let lane = lane::Lane::new(
            Arc::new(endpoint),
            Arc::clone(&self.shared),
            Arc::clone(&wake),
            paused_rx,
            Arc::clone(&in_flight),
        );
        let task = tokio::spawn(lane.run(stopped, self.grace));
        LaneHandle {
            wake,
            paused: paused_tx,
            stop,
            task,
            in_flight,
        }
    }

    /// Stops a lane without waiting for it: its attempts in flight finish (within the grace
    /// period) in the background, and shutdown waits for them.
    fn retire(&self, lane: LaneHandle) {
        let _ = lane.stop.send(true);
        let mut retiring = self.retiring.lock().unwrap_or_else(|p| p.into_inner());
        retiring.retain(|t| !t.is_finished());
        retiring.push(lane.task);
    }

    /// Starts a lane for `endpoint`, or replaces its lane with one on the new settings at once.
    /// The old lane's attempts in flight finish in the background (within the grace period,
    /// on the old settings); the new lane inherits its in-flight set, so it never takes what
    /// the old one still sends. Pause state is kept.
    pub fn upsert(&self, endpoint: Endpoint) {
        let old = self.lanes().remove(&endpoint.id);
        let (paused, inherit) = match old {
            Some(h) => {
                let paused = *h.paused.borrow();
                let inherit = (Arc::clone(&h.wake), Arc::clone(&h.in_flight));
                self.retire(h);
                (paused, Some(inherit))
            }
            None => (false, None),
        };
        let handle = self.spawn_lane(endpoint.clone(), paused, inherit);
        self.lanes().insert(endpoint.id, handle);
    }

    /// Stops an endpoint's lane (attempts in flight finish within the grace period, in the
    /// background).
    pub fn remove(&self, endpoint: &str) {
        let old = self.lanes().remove(endpoint);
        if let Some(h) = old {
            self.retire(h);
        }
    }

    /// Pauses or resumes an endpoint: recorded in the store first, so it survives a restart,
    /// then applied. `Ok(false)` when there is no such endpoint.
    pub async fn set_paused(&self, endpoint: &str, paused: bool) -> Result<bool, StoreError> {
        if !self.lanes().contains_key(endpoint) {
            return Ok(false);
        }
        self.shared.store.set_paused(endpoint, paused).await?;
        if let Some(h) = self.lanes().get(endpoint) {
            h.paused.send_replace(paused);
        }
        Ok(true)
    }

    /// Whether an endpoint is paused (`None`: no such endpoint).
    pub fn is_paused(&self, endpoint: &str) -> Option<bool> {
        self.lanes().get(endpoint).map(|h| *h.paused.borrow())
    }

    /// Tells an endpoint's lane it has new work.
    pub fn wake(&self, endpoint: &str) {
        if let Some(h) = self.lanes().get(endpoint) {
            h.wake.notify_one();
        }
    }

    /// Stops taking work, lets attempts in flight finish within the lanes' grace period, and
    /// returns when every lane has stopped. What did not finish stays leased in the store and
    /// is taken again at the next start.
    pub async fn shutdown(&self) {
        let lanes: Vec<LaneHandle> = self.lanes().drain().map(|(_, h)| h).collect();
        for h in &lanes {
            let _ = h.stop.send(true);
        }
        let retiring =
            std::mem::take(&mut *self.retiring.lock().unwrap_or_else(|p| p.into_inner()));
        for task in lanes.into_iter().map(|h| h.task).chain(retiring) {
            let _ = task.await;
        }
    }
}
