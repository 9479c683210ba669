//! How the writer gathers a batch to commit: whatever is queued and, for a batch made only of
//! settlements, a short wait for more to share its commit.
//!
//! A commit has a fixed cost (two syncs and the allocator's state, with `quick_repair`) of
//! several hundred µs of CPU, whatever it holds. Ingest needs no help: senders are waiting,
//! and what queues while one commit syncs goes in the next. A drain is different: nobody is
//! waiting on an attempt's result being written (the receiver has answered, the sending slot
//! is free again), and committing each handful of results back to back spends a large share
//! of the drain on that fixed cost: at 20,000 deliveries a second in groups of 40, about 12 µs
//! of each delivery. So **a batch of settlements only waits up to [`LINGER`] for
//! [`LINGER_UNTIL`] commands**, as PostgreSQL's `commit_delay` does; anything else arriving
//! meanwhile (an ingest, an operator's command, a consumer's ack) ends the wait at once.

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
    /// Whether nobody waits on this command's commit: an attempt's result (not a pull
    /// consumer's ack or nack, which its consumer waits for), a lease or a release.
    fn settles(&self) -> bool {
        match self {
            Command::Complete(c, _) => !c.strict,
            Command::Lease(..) | Command::Release(..) => true,
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
}
