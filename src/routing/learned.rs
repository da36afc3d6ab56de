//! The learned session table: which instance holds a session, as observed on the wire.
//!
//! Written when `POST /api/sessions` succeeds on an instance (and, later, from webhooks); read on
//! every request that names a session. Lookups are lock-free shards (`DashMap`); inserts, which are
//! rare, also append to a FIFO so the table stays bounded: past `capacity` the oldest entry goes.
//! Entries hold instance *names*, so they survive reloads that keep the instance.

use dashmap::DashMap;
use std::collections::VecDeque;
use std::sync::Mutex;

pub struct LearnedSessions {
    entries: DashMap<String, Entry>,
    order: Mutex<Order>,
    capacity: usize,
}

#[derive(Clone)]
struct Entry {
    instance: String,
    generation: u64,
}

#[derive(Default)]
struct Order {
    queue: VecDeque<(String, u64)>,
    next_generation: u64,
}

impl LearnedSessions {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: DashMap::new(),
            order: Mutex::new(Order::default()),
            capacity: capacity.max(1),
        }
    }

    /// The instance name that holds `session_id`, if learned.
    pub fn get(&self, session_id: &str) -> Option<String> {
        self.entries.get(session_id).map(|e| e.instance.clone())
    }

    /// Records that `instance` holds `session_id`, evicting the oldest entries beyond capacity.
    pub fn learn(&self, session_id: &str, instance: &str) {
        let mut order = self
            .order
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let generation = order.next_generation;
        order.next_generation += 1;
        self.entries.insert(
            session_id.to_string(),
            Entry {
                instance: instance.to_string(),
                generation,
            },
        );
        order.queue.push_back((session_id.to_string(), generation));
        while self.entries.len() > self.capacity {
            let Some((key, generation)) = order.queue.pop_front() else {
                break;
            };
            self.entries
                .remove_if(&key, |_, e| e.generation == generation);
        }
        // Queue entries of overwritten sessions are stale; drop them once they dominate.
        if order.queue.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            order
                .queue
                .retain(|(k, g)| entries.get(k).is_some_and(|e| e.generation == *g));
        }
    }

    /// Forgets `session_id` (e.g. after `DELETE /api/sessions/{id}`).
    pub fn forget(&self, session_id: &str) {
        self.entries.remove(session_id);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of learned sessions per instance name.
    pub fn counts(&self) -> std::collections::HashMap<String, usize> {
        let mut counts = std::collections::HashMap::new();
        for entry in self.entries.iter() {
            *counts.entry(entry.instance.clone()).or_insert(0) += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_bounded_and_evicts_the_oldest() {
        let table = LearnedSessions::new(3);
        for i in 0..5 {
            table.learn(&format!("s{i}"), "node-1");
        }
        assert_eq!(table.len(), 3);
        assert_eq!(table.get("s0"), None);
        assert_eq!(table.get("s1"), None);
        assert_eq!(table.get("s4").as_deref(), Some("node-1"));
    }

    #[test]
    fn relearning_moves_a_session_and_keeps_it_from_early_eviction() {
        let table = LearnedSessions::new(2);
        table.learn("a", "node-1");
        table.learn("b", "node-1");
        table.learn("a", "node-2");
        table.learn("c", "node-3");
        assert_eq!(table.get("a").as_deref(), Some("node-2"));
        assert_eq!(table.get("b"), None);
        assert_eq!(table.len(), 2);
        for i in 0..1_000 {
            table.learn("a", if i % 2 == 0 { "node-1" } else { "node-2" });
        }
        assert!(
            table.order.lock().unwrap().queue.len() < 100,
            "stale queue entries are pruned"
        );
    }
}
