//! One endpoint's lane: its own schedule, its own concurrency limit, its own rate limit.
//!
//! The loop: claim due deliveries from the store (`Store::claim`: read and leased under one
//! token, skipping those already in flight; the embedded store queues the lease rather than
//! wait for its commit); start an attempt for each as the rate limit and the endpoint's
//! `max_in_flight` sending slots allow; then sleep until the next due time, a wake-up (new work
//! committed, an attempt finished) or shutdown. Each attempt's completion names its lease's
//! token, so **a finish under a lease that was taken over changes nothing**.
//!
//! **`max_in_flight` bounds the requests open to the endpoint**, not the bookkeeping around
//! them: an attempt gives its slot back as soon as the response is in, then commits its result,
//! and the lane takes up to [`LEASE_AHEAD`] windows ahead. So the commits (an fsync each) that
//! settle deliveries overlap with the requests instead of stalling them. Likewise what a target
//! does before sending (the endpoint's transform, in a worker process) starts up to twice the
//! slots ahead ([`AheadWindow`]) and is awaited before the slot is taken: **a slot is held for
//! the request alone**. A delivery
//! stays in the in-flight set until its result is committed, so a later read never sees it as
//! due while it is still being settled.
//!
//! **An attempt that ends without a result (aborted at shutdown, panicked, cancelled) leaves
//! the in-flight set and gives its lease back**, through the [`Settling`] guard it owns, so
//! its delivery is never stuck as `delivering`. A lane that is replaced or removed (the
//! endpoint changed) does not abort its attempts: they end on their own, bounded by the
//! endpoint's `timeout`, and record their results. Aborting one would cut a request the
//! receiver may already be handling, spend the attempt for nothing, and send it again at
//! once; only shutdown, after its grace period, aborts.
//!
//! What outlives a lane is its endpoint's [`LaneState`]: the in-flight set, the wake-up, the
//! sending [`Slots`] and the rate limiter. A lane replacing another takes it over, so **an
//! endpoint's `max_in_flight` and `rate_limit` hold across changes**: the old lane's attempts
//! still count against the same slots, and an unchanged rate limit keeps its bucket.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock as GovClock;
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::Shared;
use super::rate::RateLimit;
use super::retry;
use super::slots::Slots;
use super::target::{AheadWindow, Outbound, Target};
use crate::ids::DeliveryId;
use crate::model::{Endpoint, RateLimit as RateLimitConfig};
use crate::store::{Completion, DueDelivery, Held};
use crate::telemetry::Settled;

/// What an endpoint keeps across lane replacements.
pub struct LaneState {
    pub wake: Arc<Notify>,
    /// Leased and not yet settled: taken, sending, or committing a result.
    pub in_flight: InFlight,
    /// One per request the endpoint may have open: `max_in_flight`, or less when the
    /// endpoint's share of the global cap is smaller.
    pub slots: Arc<Slots>,
    limiter: Mutex<Option<Arc<RateLimit>>>,
    /// The endpoint's breaker as last heard from the store.
    pub breaker: Arc<super::breaker::BreakerView>,
}

impl LaneState {
    /// `wake` is where the store announces the endpoint's new due work.
    pub fn new(slots: usize, wake: Arc<Notify>) -> Arc<Self> {
        Arc::new(LaneState {
            wake,
            in_flight: InFlight::default(),
            slots: Slots::new(slots),
            limiter: Mutex::new(None),
            breaker: Arc::default(),
        })
    }

    /// The limiter for `config`: the same bucket while the settings are unchanged, a new one
    /// (starting empty) when they change.
    fn limiter_for(&self, config: Option<RateLimitConfig>) -> Option<Arc<RateLimit>> {
        let mut current = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        let next = match (config, current.as_ref()) {
            (None, _) => None,
            (Some(c), Some(l)) if l.config == c => Some(Arc::clone(l)),
            (Some(c), previous) => RateLimit::new(c, previous.is_some()).map(Arc::new),
        };
        current.clone_from(&next);
        next
    }
}

/// Owned by an attempt from before it starts until it ends: when dropped it takes the
/// delivery out of the in-flight set, and, if no result was recorded (the attempt was aborted,
/// panicked or was never run), gives the lease back so the delivery is due again at once.
struct Settling {
    held: Held,
    in_flight: InFlight,
    wake: Arc<Notify>,
    shared: Arc<Shared>,
    recorded: bool,
}

impl Drop for Settling {
    fn drop(&mut self) {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.held.delivery_id);
        // At shutdown the next start takes every lease back anyway.
        if !self.recorded
            && !*self.shared.shutting_down.borrow()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let (store, held, wake) =
                (self.shared.store.clone(), self.held, Arc::clone(&self.wake));
            rt.spawn(async move {
                if let Err(e) = store.release(vec![held]).await {
                    // At worst it waits for its lease to run out.
                    let id = held.delivery_id;
                    tracing::warn!(delivery_id = %id, error = %e, "cannot give a lease back");
                }
                wake.notify_one();
            });
        }
        self.wake.notify_one();
    }
}

/// How long a lease outlives the attempt's own timeout.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// How long to wait before reading the schedule again after a store error.
const STORE_ERROR_BACKOFF_MS: u64 = 1000;
/// How many `max_in_flight` windows a lane takes ahead of its requests: enough that reading
/// the next batch overlaps with the requests of this one.
const LEASE_AHEAD: usize = 4;

pub struct Lane {
    endpoint: Arc<Endpoint>,
    /// Sends this endpoint's deliveries.
    target: Arc<Target>,
    shared: Arc<Shared>,
    wake: Arc<Notify>,
    /// While true, the lane starts nothing; what is due waits, with no attempt spent.
    paused: watch::Receiver<bool>,
    /// Leased and not yet settled: taken, sending, or committing a result.
    in_flight: InFlight,
    /// The endpoint's sending slots, shared with the lanes before and after this one.
    sending: Arc<Slots>,
    limiter: Option<Arc<RateLimit>>,
    breaker: Arc<super::breaker::BreakerView>,
}

/// The deliveries an endpoint has taken and not yet settled. A lane that replaces another
/// (the endpoint changed) inherits its set, so it never takes what the old one still sends.
pub type InFlight = Arc<Mutex<HashSet<DeliveryId>>>;

/// What became of a batch handed to `dispatch`.
enum Dispatched {
    Started,
    /// Shutdown came first.
    Stopped,
}

impl Lane {
    pub fn new(
        endpoint: Arc<Endpoint>,
        shared: Arc<Shared>,
        state: &LaneState,
        paused: watch::Receiver<bool>,
    ) -> Option<Self> {
        let limiter = state.limiter_for(endpoint.rate_limit);
        // A pull endpoint has no lane: its consumers take what is due (`delivery::pull`).
        let target = Arc::new(Target::new(Arc::clone(&endpoint), &shared.transports)?);
        Some(Lane {
            endpoint,
            target,
            shared,
            wake: Arc::clone(&state.wake),
            in_flight: Arc::clone(&state.in_flight),
            sending: Arc::clone(&state.slots),
            paused,
            limiter,
            breaker: Arc::clone(&state.breaker),
        })
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<DeliveryId>> {
        // The set is only ever inserted into or removed from; a panic elsewhere cannot leave it
        // half-updated, so a poisoned lock is still usable.
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>, grace: Duration) {
        let mut attempts = JoinSet::new();
        // Deliveries taken and not yet settled, at most: memory per lane is bounded by this
        // many payloads, whatever the backlog.
        let window = usize::try_from(self.endpoint.max_in_flight)
            .unwrap_or(usize::MAX)
            .saturating_mul(LEASE_AHEAD);
        let mut paused = self.paused.clone();
        while !*stop.borrow() {
            while attempts.try_join_next().is_some() {}
            if let Some(fault) = &self.shared.lane_fault
                && fault.swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                panic!("injected lane fault (a test of lane supervision)");
            }
            if *paused.borrow_and_update() {
                // Attempts already in flight finish; nothing new starts until resumed.
                tokio::select! {
                    changed = paused.changed() => if changed.is_err() { break },
                    changed = stop.changed() => if changed.is_err() { break },
                }
                continue;
            }
            let now = self.shared.clock.now_ms();
            let in_flight = self.in_flight().len();
            let room = window.saturating_sub(in_flight);
            // Refill in batches, one read and one lease for a quarter of the window, rather than
            // one of each per finished attempt.
            let refill_at = (window / 4).max(1);
            let mut next_due = None;
            if room > 0 && (in_flight == 0 || room >= refill_at) {
                match self.claim(now, room).await {
                    Ok(batch) if !batch.items.is_empty() => {
                        match self.dispatch(batch.items, &mut attempts, &mut stop).await {
                            Dispatched::Started => continue,
                            Dispatched::Stopped => break,
                        }
                    }
                    Ok(batch) => next_due = batch.next_due_ms,
                    Err(e) => {
                        // Nothing was claimed. Wait for the store, whatever wakes the lane
                        // meanwhile.
                        tracing::warn!(endpoint = %self.endpoint.id, error = %e, "cannot claim due work");
                        let backoff = Duration::from_millis(STORE_ERROR_BACKOFF_MS);
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            changed = stop.changed() => if changed.is_err() { break },
                        }
                        continue;
                    }
                }
            }
            let sleep = async {
                match next_due {
                    Some(at) => {
                        tokio::time::sleep(Duration::from_millis(at.saturating_sub(now))).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = sleep => {}
                _ = paused.changed() => {}
                changed = stop.changed() => if changed.is_err() { break },
            }
        }
        // Replaced or removed: attempts in flight end by themselves (each within the
        // endpoint's timeout) and record their results. Shutdown, even one that comes while
        // waiting here, gives them the grace period; what is left then stays leased.
        let mut shutting_down = self.shared.shutting_down.subscribe();
        while !*shutting_down.borrow_and_update() {
            tokio::select! {
                next = attempts.join_next() => if next.is_none() { return },
                changed = shutting_down.changed() => if changed.is_err() { break },
            }
        }
        let drained = tokio::time::timeout(grace, async {
            while attempts.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::info!(endpoint = %self.endpoint.id, left = attempts.len(), "grace period over; unfinished attempts stay leased");
            attempts.abort_all();
        }
    }

    /// Claims up to `limit` due deliveries (leased under one token) and adds them to the
    /// in-flight set.
    async fn claim(
        &self,
        now: u64,
        limit: usize,
    ) -> Result<crate::store::DueBatch, crate::store::StoreError> {
        let skip = self.in_flight().clone();
        let batch = self
            .shared
            .store
            .claim(
                &self.endpoint.id,
                now,
                limit,
                skip,
                self.lease_until(now, limit),
                crate::store::ClaimLimits {
                    max_in_flight: Some(self.endpoint.max_in_flight),
                    rate: self
                        .endpoint
                        .rate_limit
                        .map(|rl| (rl.per_second, rl.burst.unwrap_or(rl.per_second))),
                    breaker: self.endpoint.health.breaker.is_some(),
                    pull: false,
                },
            )
            .await?;
        self.breaker
            .heard(batch.health, &self.endpoint.id, &self.shared.metrics);
        self.in_flight()
            .extend(batch.items.iter().map(|d| d.delivery_id));
        Ok(batch)
    }

    /// When the lease of `n` deliveries claimed at `now` runs out. It must outlast the waits
    /// for a sending slot and the rate limit as well as the attempts themselves; when it runs
    /// out, another lane (on another node, or after a restart) may claim them.
    fn lease_until(&self, now: u64, n: usize) -> u64 {
        let per_attempt = self.endpoint.timeout.saturating_add(LEASE_MARGIN);
        let rounds = n.div_ceil(self.sending.size().max(1));
        let pacing_ms = self.endpoint.rate_limit.map_or(0, |rl| {
            (n as u64).saturating_mul(1000) / u64::from(rl.per_second.max(1))
        });
        now.saturating_add(
            u64::try_from(per_attempt.as_millis())
                .unwrap_or(u64::MAX)
                .saturating_mul(rounds as u64),
        )
        .saturating_add(pacing_ms)
    }

    /// Starts `items`, claimed and leased already. A stop while
    /// waiting (for a resume, a slot or the rate limit) gives back what was not started.
    async fn dispatch(
        &self,
        items: Vec<DueDelivery>,
        attempts: &mut JoinSet<()>,
        stop: &mut watch::Receiver<bool>,
    ) -> Dispatched {
        // Each one's transform starts up to twice its slots ahead, runs while the ones before it
        // are sent, and is awaited before its slot (and the global cap) is taken. Returning
        // early drops the rest, withdrawing their runs.
        let mut items: std::collections::VecDeque<DueDelivery> = items.into();
        let mut window = AheadWindow::new(
            &self.target,
            self.shared.routes.current(),
            self.sending.size().saturating_mul(2),
            &items,
        );
        while let Some(item) = items.pop_front() {
            let (scheme, prepared) = window.next(&items);
            // Paused with leased work in hand: give it back (no attempt spent) rather than hold
            // it, perhaps past its lease, after which another node could take it over and both
            // would send it on resume. The run loop waits for the resume, then claims again.
            if *self.paused.borrow() {
                self.give_back(item, items).await;
                return Dispatched::Started;
            }
            // The breaker opened since this was claimed: only its probe may go. The run loop
            // claims again, and the store answers when the breaker may next probe.
            if !item.probe && self.endpoint.health.breaker.is_some() && self.breaker.holds() {
                self.give_back(item, items).await;
                return Dispatched::Started;
            }
            let mut paused = self.paused.clone();
            let prepared = match prepared {
                None => None,
                Some(ahead) => tokio::select! {
                    ready = ahead.ready() => Some(super::target::Ahead::Done(ready)),
                    _ = stop.changed() => return self.interrupted(item, items).await,
                    () = until_paused(&mut paused) => {
                        self.give_back(item, items).await;
                        return Dispatched::Started;
                    }
                },
            };
            // This endpoint's slots, then the global cap: this lane waits, no other lane is
            // held up by it.
            let slot = tokio::select! {
                slot = self.sending.acquire() => match slot {
                    Some(s) => s,
                    None => return self.interrupted(item, items).await,
                },
                _ = stop.changed() => return self.interrupted(item, items).await,
                () = until_paused(&mut paused) => {
                    self.give_back(item, items).await;
                    return Dispatched::Started;
                }
            };
            // The rate limit after the slot: a token taken while waiting for a slot would let
            // several requests start at once when slots free up.
            if let Some(rl) = &self.limiter {
                loop {
                    let wait = match rl.limiter.check() {
                        Ok(()) => break,
                        Err(not_until) => not_until.wait_time_from(rl.clock.now()),
                    };
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => return self.interrupted(item, items).await,
                    }
                }
            }
            let permit = tokio::select! {
                permit = Arc::clone(&self.shared.global).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return self.interrupted(item, items).await,
                },
                _ = stop.changed() => return self.interrupted(item, items).await,
            };
            attempts.spawn(self.attempt(item, scheme, prepared, (slot, permit)));
        }
        Dispatched::Started
    }

    /// Dispatch stopped before `item` and `rest` started: [`Self::give_back`] them.
    async fn interrupted(
        &self,
        item: DueDelivery,
        rest: impl IntoIterator<Item = DueDelivery>,
    ) -> Dispatched {
        self.give_back(item, rest).await;
        Dispatched::Stopped
    }

    /// Takes back the leases of `item` and `rest`, claimed and not started, so that a lane
    /// replacing this one (a changed endpoint), or this one once resumed, finds them due now
    /// rather than when the leases would have run out.
    async fn give_back(&self, item: DueDelivery, rest: impl IntoIterator<Item = DueDelivery>) {
        let held: Vec<Held> = std::iter::once(item)
            .chain(rest)
            .map(|d| Held::from(&d))
            .collect();
        let ids: Vec<DeliveryId> = held.iter().map(|h| h.delivery_id).collect();
        if let Err(e) = self.shared.store.release(held).await {
            // At worst they wait for the lease to run out, or for the next start.
            tracing::warn!(endpoint = %self.endpoint.id, error = %e, "cannot take leases back");
        }
        {
            let mut in_flight = self.in_flight();
            for id in &ids {
                in_flight.remove(id);
            }
        }
        // The lane replacing this one may have read its schedule before the release
        // committed, and would sleep until the leases ran out: wake it (the wake-up is shared).
        self.wake.notify_one();
    }

    fn attempt(
        &self,
        item: DueDelivery,
        scheme: Option<crate::verify::SchemeKind>,
        ahead: Option<super::target::Ahead>,
        permits: (super::slots::SlotPermit, OwnedSemaphorePermit),
    ) -> impl Future<Output = ()> + Send + 'static {
        let endpoint = Arc::clone(&self.endpoint);
        let target = Arc::clone(&self.target);
        let shared = Arc::clone(&self.shared);
        let (breaker, limiter) = (Arc::clone(&self.breaker), self.limiter.clone());
        // Created now, so that even an attempt aborted before it first runs settles its lease.
        let mut settling = Settling {
            held: Held::from(&item),
            in_flight: Arc::clone(&self.in_flight),
            wake: Arc::clone(&self.wake),
            shared: Arc::clone(&self.shared),
            recorded: false,
        };
        let span = tracing::info_span!(
            "attempt",
            endpoint = %self.endpoint.id,
            delivery_id = %item.delivery_id,
            event_id = %item.event_id,
            attempt = item.attempts + 1,
        );
        let work = async move {
            let (store, clock) = (&shared.store, &shared.clock);
            let attempted = target
                .send(Outbound {
                    delivery: &item,
                    scheme,
                    now_ms: clock.now_ms(),
                    ahead,
                })
                .await;
            let (outcome, record) = (attempted.outcome, attempted.record);
            let dropped = outcome == super::retry::Outcome::Dropped;
            // The request is over: its slots go to the next one while this result commits.
            drop(permits);
            // The policy counts this cycle's attempts, from when the cycle began.
            let next = retry::decide(
                &endpoint.retry,
                item.cycle_attempts + 1,
                &outcome,
                clock.now_ms(),
                item.cycle_started_ms,
                &mut rand::rng(),
            );
            // The span carries the endpoint and ids.
            tracing::debug!(?outcome, ?next, "attempt finished");
            let settled = match &next {
                crate::store::Next::Delivered => Settled::Delivered {
                    end_to_end_ms: clock.now_ms().saturating_sub(item.received_ms),
                },
                crate::store::Next::RetryAt(_) => Settled::Retried,
                crate::store::Next::Dead(reason) => {
                    tracing::warn!(%reason, "delivery is dead");
                    Settled::Dead
                }
            };
            shared.metrics.attempt_finished(
                &endpoint.id,
                attempted.class,
                record.latency_ms,
                settled,
            );
            let completion = Completion {
                delivery_id: item.delivery_id,
                lease_token: item.lease_token,
                attempt: record,
                next,
                // A delivery its transform dropped never reached the receiver: it says nothing
                // of the endpoint's health.
                health: (endpoint.health.breaker.is_some() && !dropped).then_some(endpoint.health),
                strict: false,
                // The next delivery of its order key waits for this commit.
                waited_on: endpoint.ordering.is_some(),
            };
            let done = record_result(
                store,
                completion,
                endpoint.timeout.saturating_add(LEASE_MARGIN),
            )
            .await;
            if let Some(done) = done {
                breaker.heard(done.health, &endpoint.id, &shared.metrics);
                if super::breaker::recovered(done.transition)
                    && let Some(rl) = &limiter
                {
                    rl.empty();
                }
            }
            // Settled either way: recorded, or left to its lease.
            settling.recorded = true;
            drop(settling);
        };
        work.instrument(span)
    }
}

/// Resolves once `paused` is true; never if its sender is gone (the lane stops by `stop`).
async fn until_paused(paused: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send: dropped here, not held across an await.
    if paused.wait_for(|p| *p).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// First wait before recording a result again, doubled up to [`RECORD_RETRY_MAX`].
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(100);
const RECORD_RETRY_MAX: Duration = Duration::from_secs(2);

/// Records an attempt's result. The store may be away a while (a database restart or
/// failover): the result is kept and tried again for as long as the lease would run, so a
/// result recorded late still counts and the delivery is not sent again. Past that, it is left
/// to its lease (attempted again: at least once, never lost), and not sent again and again
/// while the store is broken. A late result under a lease another lane has taken over since
/// changes nothing (fenced).
async fn record_result(
    store: &crate::store::Store,
    completion: Completion,
    hold: Duration,
) -> Option<crate::store::Completed> {
    let give_up = tokio::time::Instant::now() + hold;
    let mut wait = RECORD_RETRY_FIRST;
    let mut failed = false;
    loop {
        let e = match store.complete(completion.clone()).await {
            Ok(done) => {
                if failed {
                    tracing::info!(delivery_id = %completion.delivery_id, "attempt recorded after all");
                }
                return Some(done);
            }
            Err(e) => e,
        };
        if !failed {
            tracing::error!(delivery_id = %completion.delivery_id, error = %e, "cannot record an attempt; holding its result");
            failed = true;
        }
        let left = give_up.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            tracing::warn!(delivery_id = %completion.delivery_id, error = %e, "result never recorded; the delivery waits for its lease");
            return None;
        }
        tokio::time::sleep(wait.min(left)).await;
        wait = (wait * 2).min(RECORD_RETRY_MAX);
    }
}
