//! A semaphore whose size can change while permits are out: an endpoint's sending slots.
//!
//! A lane that replaces another (the endpoint changed) takes over the same `Slots`, so the old
//! lane's attempts still in flight keep counting against the endpoint's limit, and a change of
//! `max_in_flight` (or of the endpoint's share of the global cap) resizes it in place.
//! **An endpoint never has more requests open than its current size**, across any number of
//! changes: shrinking forgets free slots at once and keeps a debt for the slots still held,
//! paid by the next permits to come back ([`SlotPermit`]'s drop) or by a later growth, before
//! any waiting lane can have one.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Default)]
struct Sizes {
    size: usize,
    /// Slots held now that must not come back when their requests end (a shrink).
    debt: usize,
}

#[derive(Debug)]
pub struct Slots {
    sem: Arc<Semaphore>,
    sizes: Mutex<Sizes>,
}

/// A slot taken: given back when dropped, or forgotten while the slots owe a shrink.
#[derive(Debug)]
pub struct SlotPermit {
    permit: Option<OwnedSemaphorePermit>,
    slots: Arc<Slots>,
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        let mut sizes = self.slots.sizes();
        if let Some(p) = self.permit.take()
            && sizes.debt > 0
        {
            sizes.debt -= 1;
            p.forget();
        }
    }
}

impl Slots {
    pub fn new(size: usize) -> Arc<Self> {
        Arc::new(Slots {
            sem: Arc::new(Semaphore::new(size)),
            sizes: Mutex::new(Sizes { size, debt: 0 }),
        })
    }

    fn sizes(&self) -> std::sync::MutexGuard<'_, Sizes> {
        self.sizes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn size(&self) -> usize {
        self.sizes().size
    }

    /// Takes a slot, waiting for one to be free.
    pub async fn acquire(self: &Arc<Self>) -> Option<SlotPermit> {
        let permit = Arc::clone(&self.sem).acquire_owned().await.ok()?;
        Some(SlotPermit {
            permit: Some(permit),
            slots: Arc::clone(self),
        })
    }

    /// Sets the number of slots. Growing pays any debt first, then frees slots; shrinking
    /// removes free slots at once and owes the rest until the requests holding them end.
    pub fn resize(&self, new: usize) {
        let mut sizes = self.sizes();
        let old = sizes.size;
        sizes.size = new;
        if new > old {
            let pay = sizes.debt.min(new - old);
            sizes.debt -= pay;
            self.sem.add_permits(new - old - pay);
        } else if new < old {
            let forgotten = self.sem.forget_permits(old - new);
            sizes.debt += old - new - forgotten;
        }
    }

    /// Slots free now (for tests and gauges).
    pub fn available(&self) -> usize {
        self.sem.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shrinking_waits_for_held_slots() {
        let slots = Slots::new(3);
        let a = slots.acquire().await.expect("slot");
        let b = slots.acquire().await.expect("slot");
        slots.resize(1);
        assert_eq!(slots.size(), 1);
        assert_eq!(slots.available(), 0);
        drop(a);
        // One of the two held slots is owed to the shrink: still none free.
        assert_eq!(slots.available(), 0);
        drop(b);
        assert_eq!(slots.available(), 1);
        slots.resize(4);
        assert_eq!(slots.available(), 4);
    }

    /// A shrink then a growth while slots are held never lets more than the size be held,
    /// even by a lane already waiting.
    #[tokio::test]
    async fn shrink_then_grow_never_exceeds_the_size() {
        let slots = Slots::new(4);
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(slots.acquire().await.expect("slot"));
        }
        let waiting = {
            let slots = Arc::clone(&slots);
            tokio::spawn(async move { slots.acquire().await })
        };
        tokio::task::yield_now().await;
        slots.resize(2);
        slots.resize(4);
        tokio::task::yield_now().await;
        // Still four held and the size is four: the waiting lane gets nothing yet.
        assert!(!waiting.is_finished());
        held.pop();
        let fifth = waiting.await.expect("join").expect("slot");
        assert_eq!(held.len() + 1, 4);
        drop(fifth);
    }
}
