//! The webhook spool's metrics.

use super::Builder;
use prometheus::{IntCounterVec, IntGaugeVec};

/// The webhook spool's metrics, labelled by route.
#[derive(Clone)]
pub struct SpoolMetrics {
    /// Webhooks waiting (set when scraped).
    pub depth: IntGaugeVec,
    /// Their bytes on disk (set when scraped).
    pub bytes: IntGaugeVec,
    /// Age of the oldest waiting webhook, in seconds (set when scraped; 0 when none waits).
    pub oldest_age: IntGaugeVec,
    /// Webhooks in the dead letters (set when scraped).
    pub dead: IntGaugeVec,
    pub enqueued: IntCounterVec,
    pub delivered: IntCounterVec,
    /// Webhooks moved to the dead letters.
    pub buried: IntCounterVec,
}

impl SpoolMetrics {
    pub(super) fn new(b: &Builder<'_>) -> Result<Self, prometheus::Error> {
        let route = &["route"];
        Ok(Self {
            depth: b.gauge(
                "fleetgate_spool_depth",
                "Spooled webhooks waiting for Laravel, by route.",
                route,
            )?,
            bytes: b.gauge(
                "fleetgate_spool_bytes",
                "Bytes of spooled webhooks on disk, by route.",
                route,
            )?,
            oldest_age: b.gauge(
                "fleetgate_spool_oldest_age_seconds",
                "Age of the oldest spooled webhook, by route (0 when none waits).",
                route,
            )?,
            dead: b.gauge(
                "fleetgate_spool_dead",
                "Webhooks in the dead letters, by route.",
                route,
            )?,
            enqueued: b.counter(
                "fleetgate_spool_enqueued_total",
                "Verified webhooks spooled because Laravel could not take them, by route.",
                route,
            )?,
            delivered: b.counter(
                "fleetgate_spool_delivered_total",
                "Spooled webhooks Laravel accepted, by route.",
                route,
            )?,
            buried: b.counter(
                "fleetgate_spool_dead_total",
                "Spooled webhooks moved to the dead letters, by route.",
                route,
            )?,
        })
    }
}
