//! The writer thread: the one place that opens write transactions. It batches whatever queued
//! up while the previous commit was syncing into one `Durability::Immediate` transaction, and
//! answers each command only after that commit returned. A command that is refused on its own
//! merits (a backlog over the limit) does not abort the batch; a storage error fails the whole
//! batch, so no caller is told "stored" for anything that is not.
//!
//! What a command does to a delivery is decided by the rules of `store::outbox` and written
//! through `tables.rs`; beside this file are the commands too big to sit here (`ingest.rs`,
//! `requeue.rs`, `prune.rs`, `orphans.rs`, `quarantine.rs`), the endpoints' breakers
//! (`breaker.rs`), the operational-event outbox (`ops.rs`) and the finished-event indexes
//! (`finished.rs`).

mod announce;
mod breaker;
pub(super) mod finished;
mod gather;
mod ingest;
mod ops;
mod orphans;
mod prune;
mod pull;
mod quarantine;
mod requeue;
mod settle;
mod tables;
use settle::{complete, lease};
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use redb::{Durability, ReadableDatabase};
use tokio::sync::{mpsc, oneshot};

use super::DbSlot;
use super::{
    ATTEMPTS, CONFIG_ENTRIES, Completion, DEAD, DEDUP, DEDUP_EXPIRY, DELIVERIES, DUE,
    ENDPOINT_HEALTH, ENDPOINT_STATE, EVENTS, EntryKind, Held, IngestOutcome, LEASES, META,
    META_PENDING, NewEvent, OPS_OUTBOX, ORDER_QUEUE, PAYLOADS, PENDING_BY_ENDPOINT, Prune, Pruned,
    QUARANTINE, Requeue, Requeued, StoreError, outbox, records,
};
use crate::clock::SharedClock;
use crate::ids::DeliveryId;
use crate::store::health::{self, Health};
use crate::store::{Completed, Enabled};
use tables::{Tables, endpoint_pending, put_delivery, read_delivery, read_event};

/// The most commands committed in one transaction.
const MAX_BATCH: usize = 1024;
/// The most event bytes committed in one transaction: big bodies make smaller batches, so a
/// transaction (and the memory it holds) stays bounded whatever the bodies.
const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;
/// How often a broken store is reopened while writes keep failing.
const REOPEN_EVERY: Duration = Duration::from_millis(500);

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

pub(super) enum Command {
    Ingest(Box<NewEvent>, Reply<IngestOutcome>),
    /// Leases until a time, under a token (`None`: unfenced).
    Lease(Vec<DeliveryId>, u64, Option<u64>, Reply<()>),
    Release(Vec<Held>, Reply<()>),
    Complete(Box<Completion>, Reply<Completed>),
    /// Leases for a pull consumer until a time, under a token, kept across restarts
    /// (`pulled`); answers the ids leased, after the commit.
    LeasePulled(
        Vec<DeliveryId>,
        u64,
        u64,
        Reply<Vec<crate::model::event::Delivery>>,
    ),
    /// A pull consumer prolongs its leases until a time: whether each was current.
    Extend(Vec<Held>, u64, Reply<Vec<bool>>),
    /// Leases one delivery as its endpoint's probe, if the breaker still admits one.
    LeaseProbe {
        endpoint: String,
        id: DeliveryId,
        until_ms: u64,
        token: u64,
        reply: Reply<Option<Health>>,
    },
    /// An operator enables an endpoint (discarding what it held, if asked).
    Enable(String, bool, Reply<Enabled>),
    /// Operational events published: out of the outbox.
    OpsDone(Vec<u64>, Reply<()>),
    SetPaused(String, bool, Reply<()>),
    Requeue(Box<Requeue>, Reply<Requeued>),
    PutEntry(EntryKind, String, Vec<u8>, Reply<()>),
    DeleteEntry(EntryKind, String, Reply<u64>),
    /// The endpoints in force, at start: what is left for any other is dead-lettered.
    SetEndpoints(HashSet<String>, Reply<u64>),
    /// Scheduled deliveries of an endpoint (due ms, id) that a reader found unreadable.
    Quarantine(String, Vec<(u64, u128)>, Reply<()>),
    Prune(Prune, Reply<Pruned>),
    Probe(Reply<()>),
    Stop(Reply<()>),
}

impl Command {
    /// The event bytes a command carries (for the batch bound).
    fn bytes(&self) -> usize {
        match self {
            Command::Ingest(ev, _) => ev.body.len(),
            _ => 0,
        }
    }
}

/// What one command did, before the commit makes it true.
enum Done {
    Ingest(IngestOutcome),
    Requeued(Requeued),
    Count(u64),
    Pruned(Pruned),
    /// An attempt's result changed the delivery: its new state, and what it did to the
    /// endpoint's breaker.
    Settled(Box<crate::model::event::Delivery>, Completed),
    /// An attempt's result that changed nothing (a late or second one).
    Completed(Completed),
    Probe(Option<Health>),
    Enabled(Enabled),
    /// The deliveries a consumer's lease took, as they stood before.
    Leased(Vec<crate::model::event::Delivery>),
    /// Per item: whether it applied.
    Flags(Vec<bool>),
    Unit,
}

pub(super) struct Writer {
    db: Arc<DbSlot>,
    /// Told, after each commit, which endpoints got due work.
    notices: Arc<super::notices::Notices>,
    /// Set by a failed commit: the file must be reopened before the next write.
    broken: Option<std::time::Instant>,
    pending: u64,
    max_backlog: u64,
    quick_repair: bool,
    clock: SharedClock,
    ulids: ulid::Generator,
    metrics: Option<Arc<crate::telemetry::Metrics>>,
    /// The endpoints work may be made for; `None` until the gateway says (a store opened
    /// only to be read or tested makes work for any).
    endpoints: Option<Arc<HashSet<String>>>,
    /// The token of each delivery's current lease, where it has one: a completion under
    /// another token is stale and changes nothing. In memory: a restart takes every lane's
    /// lease back, so no earlier token can come back; a pull consumer's is read back from
    /// `pulled` at open.
    tokens: std::collections::HashMap<u128, u64>,
    /// Each endpoint's breaker window (its recent results), in memory: a restart starts
    /// them afresh, while the breaker's state is in `endpoint_health`.
    windows: std::collections::HashMap<String, health::Window>,
}

impl Writer {
    pub(super) fn new(
        db: Arc<DbSlot>,
        notices: Arc<super::notices::Notices>,
        (pending, pulled): (u64, std::collections::HashMap<u128, u64>),
        max_backlog: u64,
        quick_repair: bool,
        clock: SharedClock,
        metrics: Option<Arc<crate::telemetry::Metrics>>,
    ) -> Self {
        Self {
            db,
            notices,
            broken: None,
            pending,
            max_backlog,
            quick_repair,
            clock,
            ulids: ulid::Generator::new(),
            metrics,
            endpoints: None,
            tokens: pulled,
            windows: std::collections::HashMap::new(),
        }
    }

    /// Whether a finish or release under `token` comes too late: another claim's lease is
    /// current. A lease lost to a failed batch left no token, and its attempt's result still
    /// counts (at least once).
    fn stale(&self, id: DeliveryId, token: Option<u64>) -> bool {
        matches!(token, Some(theirs) if self.tokens.get(&id.0).is_some_and(|current| *current != theirs))
    }

    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = gather::gather(&mut rx, first);
            // An ingest whose caller is gone (the client hung up) was never acknowledged:
            // storing it would only cost a write and hold its memory longer.
            batch.retain(|c| !matches!(c, Command::Ingest(_, reply) if reply.is_closed()));
            if batch.is_empty() {
                continue;
            }
            let stop = batch.iter().any(|c| matches!(c, Command::Stop(_)));
            self.commit(batch);
            if stop {
                break;
            }
        }
        // Dropping the receiver here fails every command still queued with `Closed`.
    }

    fn commit(&mut self, batch: Vec<Command>) {
        // Every command but `Stop` writes, so a new one cannot be forgotten here.
        let mutates = batch.iter().any(|c| !matches!(c, Command::Stop(_)));
        let result = if mutates {
            let started = std::time::Instant::now();
            let result = self.apply(&batch);
            if let Some(m) = &self.metrics {
                m.commit_batch.observe(batch.len() as f64);
                m.commit_seconds.observe(started.elapsed().as_secs_f64());
            }
            result
        } else {
            Ok((batch.iter().map(|_| Ok(Done::Unit)).collect(), self.pending))
        };
        match result {
            Ok((outcomes, pending)) => {
                self.pending = pending;
                // On disk now: wake the endpoints that got due work and tell live views,
                // then answer.
                announce::after_commit(&self.notices, &batch, &outcomes);
                for (command, outcome) in batch.into_iter().zip(outcomes) {
                    reply(command, outcome);
                }
            }
            Err(e) => {
                if matches!(e, StoreError::Storage(_)) && self.broken.is_none() {
                    self.broken = Some(std::time::Instant::now());
                }
                tracing::error!(error = %e, commands = batch.len(), "store commit failed; the batch was not stored");
                for command in batch {
                    reply(command, Err(e.clone()));
                }
            }
        }
    }

    /// The database to write to, reopened first if a commit failed (at most every
    /// [`REOPEN_EVERY`], so a disk that stays full costs little).
    fn usable_db(&mut self) -> Result<Arc<redb::Database>, StoreError> {
        if let Some(since) = self.broken {
            if since.elapsed() < REOPEN_EVERY {
                return Err(StoreError::Storage(
                    "the last write failed; waiting to reopen the store".into(),
                ));
            }
            if let Err(e) = self.db.reopen() {
                self.broken = Some(std::time::Instant::now());
                return Err(e);
            }
            // A commit that reported an error may still have reached the disk (a failed
            // fsync says nothing either way): take the counts from the file, not from memory.
            let db = self.db.get()?;
            self.pending = super::pending_in(&db.begin_read()?)?;
            // Likewise the consumers' lease tokens: the failed batch may have changed them in
            // memory only, and their fence must be what the file holds.
            self.tokens.extend(super::pulled::held(&db.begin_read()?)?);
            tracing::info!("store reopened after a failed write");
            self.broken = None;
            return Ok(db);
        }
        self.db.get()
    }

    /// Applies a batch in one transaction and commits it. Returns each command's outcome and
    /// the pending count after the commit.
    #[allow(clippy::type_complexity)]
    fn apply(
        &mut self,
        batch: &[Command],
    ) -> Result<(Vec<Result<Done, StoreError>>, u64), StoreError> {
        let db = self.usable_db()?;
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| StoreError::Storage(e.to_string()))?;
        // Quick repair keeps reopening after a crash fast, whatever the size of the file.
        txn.set_quick_repair(self.quick_repair);
        // Always two-phase (quick repair implies it anyway): a one-phase commit, trusted by
        // its checksums, can leave a store that no longer opens when an fsync fails and loses
        // its data while the page cache still shows it, and the power is cut later (found by
        // the power-loss test `a_failed_fsync_that_lost_its_data_then_a_power_cut`).
        txn.set_two_phase_commit(true);
        let mut pending = self.pending;
        let mut outcomes = Vec::with_capacity(batch.len());
        // Changed by this batch's endpoint commands; in force once it commits.
        let mut known = self.endpoints.clone();
        {
            let mut t = Tables {
                events: txn.open_table(EVENTS)?,
                payloads: txn.open_table(PAYLOADS)?,
                deliveries: txn.open_table(DELIVERIES)?,
                due: txn.open_table(DUE)?,
                leases: txn.open_table(LEASES)?,
                pulled: txn.open_table(super::pulled::PULLED)?,
                attempts: txn.open_table(ATTEMPTS)?,
                dead: txn.open_table(DEAD)?,
                dedup: txn.open_table(DEDUP)?,
                endpoint_state: txn.open_table(ENDPOINT_STATE)?,
                config_entries: txn.open_table(CONFIG_ENTRIES)?,
                dedup_expiry: txn.open_table(DEDUP_EXPIRY)?,
                pending_by_endpoint: txn.open_table(PENDING_BY_ENDPOINT)?,
                quarantine: txn.open_table(QUARANTINE)?,
                unfinished: txn.open_table(finished::UNFINISHED)?,
                finished_delivered: txn.open_table(finished::FINISHED_DELIVERED)?,
                finished_dead: txn.open_table(finished::FINISHED_DEAD)?,
                order_queue: txn.open_table(ORDER_QUEUE)?,
                endpoint_health: txn.open_table(ENDPOINT_HEALTH)?,
                ops_outbox: txn.open_table(OPS_OUTBOX)?,
                meta: txn.open_table(META)?,
                corrupt: std::cell::RefCell::new(Vec::new()),
            };
            for command in batch {
                let outcome = match command {
                    Command::Ingest(ev, _) => self
                        .ingest(&mut t, ev, &mut pending, known.as_deref())
                        .map(Done::Ingest),
                    Command::Release(held, _) => {
                        let now = self.clock.now_ms();
                        // Fenced like a finish: another claim's lease is not this lane's to
                        // give back.
                        let ids: Vec<u128> = held
                            .iter()
                            .filter(|h| !self.stale(h.delivery_id, h.lease_token))
                            .map(|h| h.delivery_id.0)
                            .collect();
                        for id in &ids {
                            self.tokens.remove(id);
                        }
                        ids.iter()
                            .try_for_each(|id| {
                                super::release(
                                    &mut t.deliveries,
                                    &mut t.due,
                                    &mut t.leases,
                                    *id,
                                    now,
                                )
                            })
                            .map(|()| Done::Unit)
                    }
                    Command::Lease(ids, until, token, _) => {
                        let now = self.clock.now_ms();
                        lease(&mut t, ids, *until, now, &mut pending).map(|leased| {
                            for id in leased {
                                match token {
                                    Some(token) => self.tokens.insert(id, *token),
                                    None => self.tokens.remove(&id),
                                };
                            }
                            Done::Unit
                        })
                    }
                    Command::LeasePulled(ids, until, token, _) => {
                        let now = self.clock.now_ms();
                        let times = (*until, *token, now);
                        pull::lease(&mut t, &mut self.tokens, ids, times, &mut pending)
                            .map(Done::Leased)
                    }
                    Command::Extend(held, until, _) => {
                        let now = self.clock.now_ms();
                        pull::extend(&mut t, &self.tokens, held, (*until, now), &mut pending)
                            .map(Done::Flags)
                    }
                    Command::Complete(c, _) => {
                        let fenced = if c.strict {
                            pull::stale(&self.tokens, c.delivery_id, c.lease_token)
                        } else {
                            self.stale(c.delivery_id, c.lease_token)
                        };
                        if fenced {
                            // Another claim holds it now: this finish changes nothing.
                            Ok(Done::Completed(Completed {
                                stale: true,
                                ..Completed::default()
                            }))
                        } else {
                            self.tokens.remove(&c.delivery_id.0);
                            let now = self.clock.now_ms();
                            complete(&mut t, c, &mut pending).and_then(|settled| match settled {
                                None => Ok(Done::Completed(Completed {
                                    stale: true,
                                    ..Completed::default()
                                })),
                                Some(d) => {
                                    let window =
                                        self.windows.entry(d.endpoint_id.clone()).or_default();
                                    let done = breaker::count(&mut t, window, c, &d, now)?;
                                    if matches!(c.next, crate::store::Next::Dead(_)) {
                                        ops::dead(&mut t, &d, now)?;
                                    }
                                    Ok(Done::Settled(Box::new(d), done))
                                }
                            })
                        }
                    }
                    Command::LeaseProbe {
                        endpoint,
                        id,
                        until_ms,
                        token,
                        ..
                    } => {
                        let now = self.clock.now_ms();
                        breaker::lease_probe(
                            &mut t,
                            endpoint,
                            *id,
                            *until_ms,
                            *token,
                            now,
                            &mut pending,
                        )
                        .map(|granted| {
                            if granted.is_some() {
                                self.tokens.insert(id.0, *token);
                            }
                            Done::Probe(granted)
                        })
                    }
                    Command::OpsDone(ids, _) => ops::done(&mut t, ids).map(|()| Done::Unit),
                    Command::Enable(endpoint, discard, _) => {
                        let now = self.clock.now_ms();
                        let window = self.windows.entry(endpoint.clone()).or_default();
                        breaker::enable(&mut t, window, endpoint, *discard, now, &mut pending)
                            .map(Done::Enabled)
                    }
                    Command::PutEntry(kind, id, json, _) => {
                        if let (EntryKind::Endpoint, Some(k)) = (kind, known.as_mut()) {
                            Arc::make_mut(k).insert(id.clone());
                        }
                        let mut value = vec![records::RECORD_VERSION];
                        value.extend_from_slice(json);
                        t.config_entries
                            .insert((kind.as_str(), id.as_str()), value.as_slice())
                            .map(|_| Done::Unit)
                            .map_err(StoreError::from)
                    }
                    Command::DeleteEntry(kind, id, _) => {
                        if let (EntryKind::Endpoint, Some(k)) = (kind, known.as_mut()) {
                            Arc::make_mut(k).remove(id);
                        }
                        if *kind == EntryKind::Endpoint {
                            self.windows.remove(id);
                        }
                        orphans::delete_entry(&mut t, *kind, id, self.clock.now_ms(), &mut pending)
                            .map(Done::Count)
                    }
                    Command::Quarantine(endpoint, entries, _) => quarantine::settle_unreadable(
                        &mut t,
                        endpoint,
                        entries,
                        self.clock.now_ms(),
                        &mut pending,
                    )
                    .map(|()| Done::Unit),
                    Command::SetEndpoints(set, _) => {
                        known = Some(Arc::new(set.clone()));
                        orphans::sweep_unknown(&mut t, set, self.clock.now_ms(), &mut pending)
                            .map(Done::Count)
                    }
                    Command::Prune(p, _) => prune::prune(&mut t, p).map(Done::Pruned),
                    Command::Requeue(what, _) => requeue::requeue(
                        &mut t,
                        what,
                        self.clock.now_ms(),
                        &mut pending,
                        known.as_deref(),
                    )
                    .map(Done::Requeued),
                    Command::SetPaused(endpoint, paused, _) => {
                        set_paused(&mut t, endpoint, *paused).map(|()| Done::Unit)
                    }
                    // A probe needs no write of its own: every mutating batch writes the
                    // pending count below, so its commit is a real one.
                    Command::Stop(_) | Command::Probe(_) => Ok(Done::Unit),
                };
                match outcome {
                    // The transaction cannot be trusted: nothing in the batch is stored.
                    Err(e @ StoreError::Storage(_)) => return Err(e),
                    // Anything else is this command's own failure, before it wrote anything
                    // (records that cannot be read are skipped, never half-used).
                    other => outcomes.push(other),
                }
            }
            quarantine::move_noted(&mut t)?;
            t.meta.insert(META_PENDING, pending)?;
        }
        txn.commit()?;
        self.endpoints = known;
        Ok((outcomes, pending))
    }
}

fn set_paused(t: &mut Tables<'_>, endpoint: &str, paused: bool) -> Result<(), StoreError> {
    if paused {
        t.endpoint_state.insert(endpoint, super::ENDPOINT_PAUSED)?;
    } else {
        t.endpoint_state.remove(endpoint)?;
    }
    Ok(())
}

fn reply(command: Command, outcome: Result<Done, StoreError>) {
    // A caller that gave up waiting has dropped its receiver; that is not an error here.
    match command {
        Command::Ingest(_, tx) => {
            let _ = tx.send(outcome.and_then(|d| match d {
                Done::Ingest(o) => Ok(o),
                _ => Err(StoreError::Corrupt("ingest produced no outcome".into())),
            }));
        }
        Command::Prune(_, tx) => {
            let _ = tx.send(outcome.and_then(|d| match d {
                Done::Pruned(p) => Ok(p),
                _ => Err(StoreError::Corrupt("prune produced no outcome".into())),
            }));
        }
        Command::DeleteEntry(_, _, tx) | Command::SetEndpoints(_, tx) => {
            let _ = tx.send(outcome.and_then(|d| match d {
                Done::Count(n) => Ok(n),
                _ => Err(StoreError::Corrupt("no count".into())),
            }));
        }
        Command::Requeue(_, tx) => {
            let _ = tx.send(outcome.and_then(|d| match d {
                Done::Requeued(r) => Ok(r),
                _ => Err(StoreError::Corrupt("requeue produced no outcome".into())),
            }));
        }
        Command::Complete(_, tx) => {
            let _ = tx.send(outcome.and_then(|d| match d {
                Done::Settled(_, c) | Done::Completed(c) => Ok(c),
                _ => Err(StoreError::Corrupt("a result produced no outcome".into())),
            }));
        }
        Command::LeasePulled(_, _, _, tx) => {
            let _ = tx.send(outcome.and_then(|d| match d {
                Done::Leased(leased) => Ok(leased),
                _ => Err(StoreError::Corrupt("a lease produced no outcome".into())),
            }));
        }
        Command::Extend(_, _, tx) => {
            let _ = tx.send(outcome.and_then(|d| match d {
                Done::Flags(f) => Ok(f),
                _ => Err(StoreError::Corrupt("an extend produced no outcome".into())),
            }));
        }
        Command::LeaseProbe { reply, .. } => {
            let _ = reply.send(outcome.and_then(|d| match d {
                Done::Probe(h) => Ok(h),
                _ => Err(StoreError::Corrupt(
                    "a probe lease produced no outcome".into(),
                )),
            }));
        }
        Command::Enable(_, _, tx) => {
            let _ = tx.send(outcome.and_then(|d| match d {
                Done::Enabled(e) => Ok(e),
                _ => Err(StoreError::Corrupt("an enable produced no outcome".into())),
            }));
        }
        Command::Lease(_, _, _, tx)
        | Command::Release(_, tx)
        | Command::SetPaused(_, _, tx)
        | Command::OpsDone(_, tx)
        | Command::Quarantine(_, _, tx)
        | Command::PutEntry(_, _, _, tx)
        | Command::Probe(tx)
        | Command::Stop(tx) => {
            let _ = tx.send(outcome.map(|_| ()));
        }
    }
}
