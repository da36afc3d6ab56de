//! Seen webhook deliveries: a bounded TTL set that answers replays without forwarding them again.
//!
//! Keys are the delivery's identity (`webhook-id` for Standard Webhooks, the signature otherwise).
//! Lookups use `DashMap`; inserts also append to a FIFO, which is trimmed from the front when
//! entries expire or the set is over capacity, so memory is bounded by `capacity`.
//! Time is passed in, so the logic is testable without waiting.

use dashmap::DashMap;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct SeenDeliveries {
    entries: DashMap<String, Instant>,
    order: Mutex<VecDeque<(String, Instant)>>,
    ttl: Duration,
    capacity: usize,
}

impl SeenDeliveries {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: DashMap::new(),
            order: Mutex::new(VecDeque::new()),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// Whether `key` was recorded less than `ttl` before `now`.
    pub fn contains(&self, key: &str, now: Instant) -> bool {
        self.entries
            .get(key)
            .is_some_and(|at| now.duration_since(*at) < self.ttl)
    }

    /// Records `key` as delivered at `now`, dropping expired and over-capacity entries.
    pub fn insert(&self, key: &str, now: Instant) {
        let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        self.entries.insert(key.to_string(), now);
        order.push_back((key.to_string(), now));
        while let Some((oldest, at)) = order.front() {
            let expired = now.duration_since(*at) >= self.ttl;
            if !expired && self.entries.len() <= self.capacity && order.len() <= 2 * self.capacity {
                break;
            }
            // Remove the map entry only if it still belongs to this queue slot.
            self.entries.remove_if(oldest, |_, stamp| stamp == at);
            order.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_a_duplicate_until_its_ttl_passes() {
        let seen = SeenDeliveries::new(Duration::from_secs(300), 10);
        let t0 = Instant::now();
        assert!(!seen.contains("a", t0));
        seen.insert("a", t0);
        assert!(seen.contains("a", t0 + Duration::from_secs(299)));
        assert!(!seen.contains("a", t0 + Duration::from_secs(300)));
        seen.insert("b", t0 + Duration::from_secs(301));
        assert_eq!(seen.len(), 1, "the expired entry was dropped");
    }

    #[test]
    fn the_set_stays_within_capacity() {
        let seen = SeenDeliveries::new(Duration::from_secs(300), 100);
        let t0 = Instant::now();
        for i in 0..1_000 {
            seen.insert(&format!("k{i}"), t0);
        }
        assert_eq!(seen.len(), 100);
        assert!(seen.contains("k999", t0) && !seen.contains("k0", t0));
        for _ in 0..1_000 {
            seen.insert("same", t0);
        }
        assert!(seen.order.lock().unwrap().len() <= 200);
    }
}
