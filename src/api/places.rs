//! Places for long-lived streams (the console's live views, consumers' message streams): a
//! cap on all of them, and a smaller one per key (a session, an endpoint) so that one key
//! cannot take every place. A place is given back when it is dropped, however its stream
//! ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The places: at most `all` streams open, at most `per_key` of one key.
pub struct Places {
    all: Arc<Semaphore>,
    per_key: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// Why a stream got no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Its key holds `per_key` places already.
    Key,
    /// Every place is taken.
    All,
}

/// One stream's place.
pub struct Place {
    _all: OwnedSemaphorePermit,
    key: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl Places {
    pub fn new(all: usize, per_key: usize) -> Self {
        Places {
            all: Arc::new(Semaphore::new(all)),
            per_key,
            open: Arc::default(),
        }
    }

    /// A place for one more stream of `key`, held until the [`Place`] is dropped.
    pub fn take(&self, key: &str) -> Result<Place, Full> {
        // Nothing panics under this lock; a poisoned one still holds whole counts.
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let held = open.get(key).copied().unwrap_or(0);
        if held >= self.per_key {
            return Err(Full::Key);
        }
        let all = Arc::clone(&self.all)
            .try_acquire_owned()
            .map_err(|_| Full::All)?;
        open.insert(key.to_string(), held + 1);
        Ok(Place {
            _all: all,
            key: key.to_string(),
            open: Arc::clone(&self.open),
        })
    }
}

#[cfg(test)]
impl Places {
    /// The places `key` holds.
    pub fn held(&self, key: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(key).copied().unwrap_or(0)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_share_and_no_more_and_places_come_back() {
        let places = Places::new(3, 2);
        let a1 = places.take("a").expect("a's first");
        let a2 = places.take("a").expect("a's second");
        assert_eq!(places.take("a").err(), Some(Full::Key));
        let b1 = places.take("b").expect("b's first");
        assert_eq!(places.take("c").err(), Some(Full::All));
        drop(a1);
        let a3 = places.take("a").expect("a's place came back");
        drop((a2, a3, b1));
        assert!(places.open.lock().expect("lock").is_empty(), "no key left");
        let _ = places.take("c").expect("every place came back");
    }
}
