//! A semaphore whose size can change while permits are out: an endpoint's sending slots.
//!
//! A lane that replaces another (the endpoint changed) takes over the same `Slots`, so the old
//! lane's attempts still in flight keep counting against the endpoint's limit, and a change of
//! `max_in_flight` (or of the endpoint's share of the global cap) resizes it in place.
//! **An endpoint never has more requests open than its current size**, across any number of
//! changes: shrinking takes permits out of circulation as they come back.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub struct Slots {
    sem: Arc<Semaphore>,
    size: Mutex<usize>,
}

impl Slots {
    pub fn new(size: usize) -> Arc<Self> {
        Arc::new(Slots {
            sem: Arc::new(Semaphore::new(size)),
            size: Mutex::new(size),
        })
    }

    pub fn size(&self) -> usize {
        *self.size.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot, waiting for one to be free.
    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.sem).acquire_owned().await.ok()
    }

    /// Sets the number of slots. Growing frees slots at once; shrinking removes free slots at
    /// once and the rest as the requests holding them end.
    pub fn resize(&self, new: usize) {
        let mut size = self.size.lock().unwrap_or_else(|p| p.into_inner());
        let old = *size;
        *size = new;
        if new > old {
            self.sem.add_permits(new - old);
        } else if new < old {
            let owed = (old - new) - self.sem.forget_permits(old - new);
            if owed > 0 {
                let sem = Arc::clone(&self.sem);
                let owed = u32::try_from(owed).unwrap_or(u32::MAX);
                // Permits held by attempts in flight are taken out as those attempts end.
                tokio::spawn(async move {
                    if let Ok(p) = sem.acquire_many_owned(owed).await {
                        p.forget();
                    }
                });
            }
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
        tokio::task::yield_now().await;
        // One of the two held slots is owed to the shrink: still none free.
        assert_eq!(slots.available(), 0);
        drop(b);
        tokio::task::yield_now().await;
        assert_eq!(slots.available(), 1);
        slots.resize(4);
        assert_eq!(slots.available(), 4);
    }
}
