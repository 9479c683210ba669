//! How the writer gathers a batch to commit: whatever is queued and, for a batch made only of
//! settlements, a short wait for more to share its commit.
//!
//! A commit has a fixed cost (two syncs and the allocator's state, with `quick_repair`) of
//! several hundred µs of CPU, whatever it holds. Ingest needs no help: senders are waiting,
//! and what queues while one commit syncs goes in the next. A drain is different: usually
//! nothing waits on an attempt's result being written (the receiver has answered, the sending
//! slot is free again; an ordered key's next delivery is the exception, `waited_on`), and committing each handful of results back to back spends a large share
//! of the drain on that fixed cost: at 20,000 deliveries a second in groups of 40, about 12 µs
//! of each delivery. So **a batch of settlements only waits up to [`LINGER`] for
//! [`LINGER_UNTIL`] commands**, as PostgreSQL's `commit_delay` does; anything else arriving
//! meanwhile (an ingest, an operator's command, a consumer's ack, an ordered result, a
//! give-back) ends the wait within one step of [`LINGER_STEP`]. The price: a lane hears a
//! result that moves its endpoint's breaker up to [`LINGER`] later.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Command, MAX_BATCH, MAX_BATCH_BYTES};

/// The longest a batch of settlements waits for more.
pub(super) const LINGER: Duration = Duration::from_micros(700);
/// A batch of settlements this big commits without waiting.
pub(super) const LINGER_UNTIL: usize = 64;
/// How often a waiting batch looks for more (and for a command that ends the wait).
const LINGER_STEP: Duration = Duration::from_micros(100);

impl Command {
    /// Whether nothing waits on this command's commit: a lane's attempt result (not a pull
    /// consumer's ack or nack, which its consumer waits for, nor a result an ordered key's next
    /// delivery waits for) or a lane's lease (queued, never awaited). A give-back is awaited
    /// by a lane that is pausing or stopping, so it is not one.
    fn settles(&self) -> bool {
        match self {
            Command::Complete(c, _) => !c.strict && !c.waited_on,
            Command::Lease(..) => true,
            _ => false,
        }
    }
}

/// Whether a batch of `len` commands, gathered for `waited`, waits for more.
pub(super) fn linger(settlements_only: bool, len: usize, waited: Duration) -> bool {
    settlements_only && len < LINGER_UNTIL && waited < LINGER
}

/// The batch that starts with `first`: what is queued behind it, up to [`MAX_BATCH`]
/// commands and [`MAX_BATCH_BYTES`] of events, and more as [`linger`] says.
pub(super) fn gather(rx: &mut mpsc::Receiver<Command>, first: Command) -> Vec<Command> {
    let started = Instant::now();
    let mut bytes = first.bytes();
    let mut settlements_only = first.settles();
    let mut batch = vec![first];
    loop {
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(c) => {
                    bytes += c.bytes();
                    settlements_only &= c.settles();
                    batch.push(c);
                }
                Err(_) => break,
            }
        }
        let full = batch.len() >= MAX_BATCH || bytes >= MAX_BATCH_BYTES;
        if full || !linger(settlements_only, batch.len(), started.elapsed()) {
            return batch;
        }
        std::thread::sleep(LINGER_STEP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_small_batch_of_settlements_waits_and_not_for_long() {
        let soon = Duration::from_micros(100);
        assert!(linger(true, 1, Duration::ZERO));
        assert!(linger(true, LINGER_UNTIL - 1, soon));
        assert!(!linger(true, LINGER_UNTIL, soon), "big enough");
        assert!(!linger(true, 1, LINGER), "waited long enough");
        assert!(!linger(false, 1, Duration::ZERO), "somebody waits on it");
    }

    fn complete(strict: bool, waited_on: bool) -> Command {
        let completion = crate::store::Completion {
            delivery_id: crate::ids::DeliveryId(1),
            lease_token: None,
            attempt: crate::model::event::Attempt {
                at_ms: 0,
                status_code: Some(200),
                latency_ms: 1,
                error: None,
                response_excerpt: Vec::new(),
            },
            next: crate::store::Next::Delivered,
            health: None,
            strict,
            waited_on,
        };
        Command::Complete(Box::new(completion), tokio::sync::oneshot::channel().0)
    }

    #[test]
    fn a_result_something_waits_for_is_not_a_settlement() {
        assert!(complete(false, false).settles(), "a lane's result");
        assert!(!complete(true, false).settles(), "a consumer's ack");
        assert!(
            !complete(false, true).settles(),
            "an ordered key's next waits"
        );
        let reply = || tokio::sync::oneshot::channel().0;
        let id = crate::ids::DeliveryId(1);
        assert!(Command::Lease(vec![id], 1, Some(1), reply()).settles());
        assert!(
            !Command::Release(Vec::new(), reply()).settles(),
            "a pausing lane waits"
        );
        assert!(!Command::Stop(reply()).settles());
        assert!(!Command::Probe(reply()).settles(), "readiness waits");
    }
}
