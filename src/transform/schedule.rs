//! Which waiting run a free worker takes next (pure; the pool holds it under its lock).
//!
//! Runs wait in one queue per key (an endpoint id). Keys with waiting runs take turns, round
//! robin, and no key holds more than `cap` workers at once, so one endpoint's runaway program
//! (each run holding a worker until the timeout kills it) leaves the other workers to the
//! other endpoints. A worker takes a *batch*: up to `depth` runs of one key, which it
//! pipelines; a batch never mixes keys, so a stuck run only ever delays runs of its own key.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// The per-key queues and the round-robin ring.
#[derive(Debug)]
pub struct Schedule<J> {
    cap: usize,
    keys: HashMap<Arc<str>, Key<J>>,
    /// Keys with waiting runs, each once, in the order they get their next turn.
    ring: VecDeque<Arc<str>>,
}

#[derive(Debug)]
struct Key<J> {
    name: Arc<str>,
    waiting: VecDeque<J>,
    /// Batches of this key being run now (one per worker).
    busy: usize,
}

/// How much one batch may take.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimit {
    /// Runs in one batch (at least one is always taken).
    pub runs: usize,
    /// Bytes of requests in one batch, as `size` counts them (the first run is taken
    /// whatever its size).
    pub bytes: usize,
}

impl<J> Schedule<J> {
    /// A schedule letting each key hold at most `cap` (at least 1) workers at once.
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            keys: HashMap::new(),
            ring: VecDeque::new(),
        }
    }

    /// Queues `job` behind `key`'s other waiting runs.
    pub fn push(&mut self, key: &str, job: J) {
        match self.keys.get_mut(key) {
            Some(entry) => {
                entry.waiting.push_back(job);
                if entry.waiting.len() == 1 {
                    self.ring.push_back(Arc::clone(&entry.name));
                }
            }
            None => {
                let name: Arc<str> = Arc::from(key);
                self.ring.push_back(Arc::clone(&name));
                let entry = Key {
                    name: Arc::clone(&name),
                    waiting: VecDeque::from([job]),
                    busy: 0,
                };
                self.keys.insert(name, entry);
            }
        }
    }

    /// The next batch for a free worker: runs of the first key in turn that is under its
    /// cap. The key's busy count goes up until [`done`](Self::done).
    pub fn next_batch(
        &mut self,
        limit: BatchLimit,
        size: impl Fn(&J) -> usize,
    ) -> Option<(Arc<str>, Vec<J>)> {
        let position = self
            .ring
            .iter()
            .position(|k| self.keys.get(k).is_some_and(|e| e.busy < self.cap))?;
        let name = self.ring.remove(position)?;
        let entry = self.keys.get_mut(&name)?;
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        while batch.len() < limit.runs.max(1) {
            let Some(next) = entry.waiting.front() else {
                break;
            };
            let next_size = size(next);
            if !batch.is_empty() && bytes.saturating_add(next_size) > limit.bytes {
                break;
            }
            bytes = bytes.saturating_add(next_size);
            batch.extend(entry.waiting.pop_front());
        }
        entry.busy += 1;
        if !entry.waiting.is_empty() {
            self.ring.push_back(Arc::clone(&name));
        }
        Some((name, batch))
    }

    /// A batch of `key` is over; `leftovers` (runs it did not get to, in order) go back to the
    /// front of the key's queue, and the key to the front of the ring.
    pub fn done(&mut self, key: &Arc<str>, leftovers: Vec<J>) {
        let Some(entry) = self.keys.get_mut(key) else {
            return;
        };
        entry.busy = entry.busy.saturating_sub(1);
        if !leftovers.is_empty() {
            let was_waiting = !entry.waiting.is_empty();
            for job in leftovers.into_iter().rev() {
                entry.waiting.push_front(job);
            }
            if was_waiting {
                self.ring.retain(|k| k != key);
            }
            self.ring.push_front(Arc::clone(key));
        }
        if entry.waiting.is_empty() && entry.busy == 0 {
            self.keys.remove(key);
        }
    }

    /// Runs waiting, over all keys.
    pub fn waiting(&self) -> usize {
        self.keys.values().map(|e| e.waiting.len()).sum()
    }

    /// True when some waiting run could be taken now (its key is under its cap).
    pub fn has_eligible(&self) -> bool {
        self.ring
            .iter()
            .any(|k| self.keys.get(k).is_some_and(|e| e.busy < self.cap))
    }

    /// Takes every waiting run out (the pool is closing).
    pub fn drain(&mut self) -> Vec<J> {
        self.ring.clear();
        let mut all = Vec::new();
        for entry in self.keys.values_mut() {
            all.extend(entry.waiting.drain(..));
        }
        self.keys.retain(|_, e| e.busy > 0);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: BatchLimit = BatchLimit {
        runs: 1,
        bytes: usize::MAX,
    };

    fn take(s: &mut Schedule<u32>, limit: BatchLimit) -> Option<(String, Vec<u32>)> {
        s.next_batch(limit, |_| 10).map(|(k, b)| (k.to_string(), b))
    }

    #[test]
    fn keys_take_turns() {
        let mut s = Schedule::new(10);
        for i in 0..3 {
            s.push("a", i);
        }
        s.push("b", 10);
        s.push("c", 20);
        let order: Vec<_> = std::iter::from_fn(|| take(&mut s, ONE))
            .map(|(k, b)| (k, b[0]))
            .collect();
        assert_eq!(
            order,
            vec![
                ("a".into(), 0),
                ("b".into(), 10),
                ("c".into(), 20),
                ("a".into(), 1),
                ("a".into(), 2)
            ]
        );
    }

    #[test]
    fn a_key_at_its_cap_lets_others_pass() {
        let mut s = Schedule::new(1);
        s.push("loop", 1);
        s.push("loop", 2);
        s.push("ok", 3);
        let (k, _) = take(&mut s, ONE).expect("a batch");
        assert_eq!(k, "loop");
        // "loop" holds its one worker: the next free worker goes to "ok", then nothing.
        assert_eq!(take(&mut s, ONE).expect("a batch"), ("ok".into(), vec![3]));
        assert!(!s.has_eligible());
        assert_eq!(take(&mut s, ONE), None);
        s.done(&Arc::from("loop"), vec![]);
        assert_eq!(
            take(&mut s, ONE).expect("a batch"),
            ("loop".into(), vec![2])
        );
    }

    #[test]
    fn batches_are_of_one_key_and_bounded() {
        let mut s = Schedule::new(2);
        for i in 0..5 {
            s.push("a", i);
        }
        s.push("b", 9);
        let limit = BatchLimit { runs: 3, bytes: 25 };
        // 10 + 10 fits 25, a third would not.
        assert_eq!(
            take(&mut s, limit).expect("a batch"),
            ("a".into(), vec![0, 1])
        );
        assert_eq!(take(&mut s, limit).expect("a batch"), ("b".into(), vec![9]));
        let wide = BatchLimit {
            runs: 3,
            bytes: 1000,
        };
        assert_eq!(
            take(&mut s, wide).expect("a batch"),
            ("a".into(), vec![2, 3, 4])
        );
        // A run larger than the byte limit is still taken, alone.
        s.push("c", 1);
        let tiny = BatchLimit { runs: 3, bytes: 1 };
        assert_eq!(take(&mut s, tiny).expect("a batch"), ("c".into(), vec![1]));
    }

    #[test]
    fn leftovers_go_first() {
        let mut s = Schedule::new(1);
        for i in 0..4 {
            s.push("a", i);
        }
        s.push("b", 9);
        let limit = BatchLimit {
            runs: 3,
            bytes: 1000,
        };
        let (key, batch) = s.next_batch(limit, |_| 1).expect("a batch");
        assert_eq!(batch, vec![0, 1, 2]);
        // Run 0 timed out; 1 and 2 were never run.
        s.done(&key, vec![1, 2]);
        assert_eq!(
            take(&mut s, limit).expect("a batch"),
            ("a".into(), vec![1, 2, 3])
        );
        assert_eq!(take(&mut s, limit).expect("a batch"), ("b".into(), vec![9]));
        assert_eq!(s.waiting(), 0);
    }

    #[test]
    fn finished_keys_are_forgotten_and_drain_empties() {
        let mut s = Schedule::new(1);
        s.push("a", 1);
        let (key, _) = s.next_batch(ONE, |_| 1).expect("a batch");
        s.done(&key, vec![]);
        assert!(s.keys.is_empty() && s.ring.is_empty());
        s.push("b", 2);
        s.push("c", 3);
        let mut drained = s.drain();
        drained.sort();
        assert_eq!(drained, vec![2, 3]);
        assert_eq!(s.waiting(), 0);
        assert!(!s.has_eligible());
    }
}
