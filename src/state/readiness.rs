//! What `/readyz` reports: starting until every listener accepts, ready, then draining from the
//! start of shutdown.

use super::Gateway;
use std::sync::atomic::Ordering;

/// What `/readyz` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Starting,
    Ready,
    Draining,
}

impl Gateway {
    /// Marks every listener as accepting.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Marks the start of shutdown: `/readyz` answers 503 from now on.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn readiness(&self) -> Readiness {
        if self.draining.load(Ordering::Relaxed) {
            Readiness::Draining
        } else if self.ready.load(Ordering::Relaxed) {
            Readiness::Ready
        } else {
            Readiness::Starting
        }
    }
}
