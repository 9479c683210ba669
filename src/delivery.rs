//! Delivery: every stored delivery reaches its endpoint, retried until it succeeds or dies.
//!
//! The [`Dispatcher`] runs one [`lane`] per endpoint. A lane reads only its own endpoint's due
//! schedule from the store, keeps at most `max_in_flight` attempts running and paces them by
//! the endpoint's `rate_limit`, so **one slow or dead endpoint never delays another**. A global
//! cap (`delivery.max_concurrency`) bounds attempts across all lanes, and **no endpoint may hold
//! more than its share of it**: `max_concurrency / endpoints` (at least 1), or its own
//! `max_in_flight` if lower. So however many endpoints hang, while there are no more endpoints
//! than the cap, every other endpoint still has its share free. A lane
//! sleeps until its next due time or until it is woken: by the store right after a commit that
//! gave it work (`Store::notices`), or by one of its attempts finishing. There is no polling loop and no timer
//! per delivery.
//!
//! **The store is the queue**: a lane holds only what it has taken and not yet settled, at most
//! four `max_in_flight` windows, whatever the backlog. Before an attempt the delivery is
//! leased in the store; its result (delivered, retry at, dead) is committed before the lane
//! forgets it. A crash loses no work: leases are taken back at open.

pub mod breaker;
pub mod http;
pub mod lane;
pub mod pull;
mod rate;
pub mod retry;
pub mod slots;
pub mod target;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::filter::RouteTable;
use crate::model::Endpoint;
use crate::store::{Store, StoreError};

/// What every lane shares.
pub struct Shared {
    pub store: Store,
    pub clock: SharedClock,
    /// Connection pools and policies shared by every endpoint's target.
    pub transports: target::Transports,
    /// The sources in force: their schemes say which headers a delivery forwards by default.
    pub routes: Arc<RouteTable>,
    /// Attempts in flight across all endpoints (`delivery.max_concurrency`).
    pub global: Arc<Semaphore>,
    /// The size of `global`, which each endpoint's share is cut from.
    pub global_cap: usize,
    /// Set once shutdown begins: attempts still running get the grace period, then stop.
    pub shutting_down: watch::Sender<bool>,
    pub metrics: Arc<crate::telemetry::Metrics>,
    /// Test hook: see `RunOptions::lane_fault`.
    pub lane_fault: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// One running lane and its controls.
struct LaneHandle {
    paused: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// What the lane's successor inherits.
    state: Arc<lane::LaneState>,
    max_in_flight: u32,
    /// A pull endpoint's handle: it sends nothing, so it takes no share of the global cap.
    pull: bool,
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
        d.rebalance();
        d
    }

    /// Gives every endpoint its share of the global cap: `max_concurrency / endpoints`, at
    /// least 1, at most its `max_in_flight`. Run whenever an endpoint comes, goes or changes.
    fn rebalance(&self) {
        let lanes = self.lanes();
        let senders = lanes.values().filter(|h| !h.pull).count();
        let share = (self.shared.global_cap / senders.max(1)).max(1);
        for h in lanes.values() {
            let own = usize::try_from(h.max_in_flight).unwrap_or(usize::MAX);
            h.state.slots.resize(own.min(share));
        }
    }

    fn lanes(&self) -> std::sync::MutexGuard<'_, HashMap<String, LaneHandle>> {
        // Only whole handles go in and out; a poisoned map is still consistent.
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a supervised lane; `inherit` is the state of the lane it replaces. Its slots
    /// are sized by the next [`Dispatcher::rebalance`].
    fn spawn_lane(
        &self,
        endpoint: Endpoint,
        paused: bool,
        inherit: Option<Arc<lane::LaneState>>,
    ) -> LaneHandle {
        let max_in_flight = endpoint.max_in_flight;
        let pull = endpoint.destination.is_pull();
        let state = inherit.unwrap_or_else(|| {
            lane::LaneState::new(
                usize::try_from(max_in_flight).unwrap_or(usize::MAX),
                self.shared.store.notices().of(&endpoint.id),
            )
        });
        let (paused_tx, paused_rx) = watch::channel(paused);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(supervise(
            Arc::new(endpoint),
            Arc::clone(&self.shared),
            Arc::clone(&state),
            paused_rx,
            stopped,
            self.grace,
        ));
        LaneHandle {
            paused: paused_tx,
            stop,
            task,
            state,
            max_in_flight,
            pull,
        }
    }

    /// Stops a lane without waiting for it: its attempts in flight finish in the background
    /// and record their results, and shutdown waits for them (within its grace period).
    fn retire(&self, lane: LaneHandle) {
        let _ = lane.stop.send(true);
        let mut retiring = self.retiring.lock().unwrap_or_else(|p| p.into_inner());
        retiring.retain(|t| !t.is_finished());
        retiring.push(lane.task);
    }

    /// Starts a lane for `endpoint`, or replaces its lane with one on the new settings at once.
    /// The old lane's attempts in flight finish in the background (on the old settings); the
    /// new lane inherits the endpoint's state (in-flight set, slots, rate limiter), so it never
    /// takes what the old one still sends and the endpoint's limits hold across the change.
    /// Pause state is kept.
    pub fn upsert(&self, endpoint: Endpoint) {
        let old = self.lanes().remove(&endpoint.id);
        let (paused, inherit) = match old {
            Some(h) => {
                let paused = *h.paused.borrow();
                let inherit = Arc::clone(&h.state);
                self.retire(h);
                (paused, Some(inherit))
            }
            None => (false, None),
        };
        let handle = self.spawn_lane(endpoint.clone(), paused, inherit);
        self.lanes().insert(endpoint.id, handle);
        self.rebalance();
    }

    /// Stops an endpoint's lane (attempts in flight finish in the background).
    pub fn remove(&self, endpoint: &str) {
        let old = self.lanes().remove(endpoint);
        if let Some(h) = old {
            self.retire(h);
        }
        self.shared.store.notices().forget(endpoint);
        self.rebalance();
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
    /// Pauses or resumes a lane here only: the store already holds the flag (another node
    /// changed it). Returns whether the endpoint has a lane.
    pub fn apply_paused(&self, endpoint: &str, paused: bool) -> bool {
        match self.lanes().get(endpoint) {
            Some(h) => {
                h.paused.send_replace(paused);
                true
            }
            None => false,
        }
    }

    pub fn is_paused(&self, endpoint: &str) -> Option<bool> {
        self.lanes().get(endpoint).map(|h| *h.paused.borrow())
    }

    /// Stops taking work, lets attempts in flight finish within the lanes' grace period, and
    /// returns when every lane has stopped. What did not finish stays leased in the store and
    /// is taken again at the next start.
    pub async fn shutdown(&self) {
        self.shared.shutting_down.send_replace(true);
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

/// Runs an endpoint's lane, and starts it again if it dies: a panic is logged and counted
/// (`hookgate_lane_restarts_total`), never left to stop the endpoint silently. Attempts of the
/// dead lane are aborted with it and give their leases back (see `lane::Settling`).
async fn supervise(
    endpoint: Arc<Endpoint>,
    shared: Arc<Shared>,
    state: Arc<lane::LaneState>,
    paused: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    loop {
        let Some(lane) = lane::Lane::new(
            Arc::clone(&endpoint),
            Arc::clone(&shared),
            &state,
            paused.clone(),
        ) else {
            // A pull endpoint: its handle only keeps its pause and place until it is stopped.
            let _ = stop.wait_for(|s| *s).await;
            return;
        };
        let outcome = tokio::spawn(lane.run(stop.clone(), grace)).await;
        match outcome {
            Err(e) if e.is_panic() => {
                tracing::error!(endpoint = %endpoint.id, "delivery lane died; starting it again");
                shared
                    .metrics
                    .lane_restarts
                    .get_or_create(&crate::telemetry::EndpointLabel {
                        endpoint: endpoint.id.clone(),
                    })
                    .inc();
                if *stop.borrow() {
                    return;
                }
                // Not in a tight loop, if it dies again at once.
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = stop.changed() => return,
                }
            }
            _ => return,
        }
    }
}
