//! Per-workspace budgets (`routing.workspace_limits`): a token bucket of requests per second with
//! a burst, and a cap on requests in flight, per group and workspace. One tenant's runaway loop
//! then gets `429 routing.workspace_rate_limited` (with `Retry-After`) while every other
//! workspace keeps its instances.

use super::WorkspaceLimits;
use crate::rate::TokenBucket;
use dashmap::DashMap;
use std::sync::Arc;
use std::time::Instant;

/// Workspaces tracked before idle ones are forgotten.
const TRACKED: usize = 100_000;

/// The budgets of every workspace that asked recently.
#[derive(Default)]
pub struct Budgets {
    by_workspace: DashMap<(usize, u64), Budget>,
}

struct Budget {
    bucket: TokenBucket,
    in_flight: u32,
}

/// A request in flight for a workspace; given back when dropped.
pub struct Permit {
    budgets: Arc<Budgets>,
    key: (usize, u64),
}

impl Budgets {
    /// Takes one request from workspace `ws` of group `group`, or says in how many seconds to
    /// come back.
    pub fn admit(
        self: &Arc<Self>,
        group: usize,
        ws: u64,
        limits: &WorkspaceLimits,
    ) -> Result<Permit, u64> {
        let key = (group, ws);
        if self.by_workspace.len() >= TRACKED && !self.by_workspace.contains_key(&key) {
            self.by_workspace
                .retain(|_, b| b.in_flight > 0 || b.bucket.refilled().elapsed().as_secs() < 10);
        }
        let now = Instant::now();
        let mut budget = self.by_workspace.entry(key).or_insert(Budget {
            bucket: TokenBucket::full(limits.burst, now),
            in_flight: 0,
        });
        budget.bucket.refill(limits.rate, limits.burst, now);
        match budget.bucket.wait_secs(limits.rate) {
            0 => {}
            wait => return Err(wait),
        }
        if budget.in_flight >= limits.concurrency {
            return Err(1);
        }
        budget.bucket.take();
        budget.in_flight += 1;
        Ok(Permit {
            budgets: self.clone(),
            key,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(mut budget) = self.budgets.by_workspace.get_mut(&self.key) {
            budget.in_flight = budget.in_flight.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_gets_its_burst_then_its_rate_and_no_more_than_its_concurrency() {
        let budgets = Arc::new(Budgets::default());
        let limits = WorkspaceLimits {
            rate: 1,
            burst: 3,
            concurrency: 2,
        };
        let first = budgets.admit(0, 7, &limits).unwrap();
        let second = budgets.admit(0, 7, &limits).unwrap();
        assert_eq!(budgets.admit(0, 7, &limits).err(), Some(1), "two in flight");
        drop(first);
        let _third = budgets.admit(0, 7, &limits).unwrap();
        drop(second);
        // The burst of 3 is spent; the rate refills one per second.
        assert_eq!(budgets.admit(0, 7, &limits).err(), Some(1));
        // Other workspaces, and the same workspace in another group, have their own budgets.
        assert!(budgets.admit(0, 8, &limits).is_ok());
        assert!(budgets.admit(1, 7, &limits).is_ok());
    }
}
