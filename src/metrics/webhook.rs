//! The webhook routes' metrics, labelled by route.

use super::*;

#[derive(Clone)]
pub struct WebhookMetrics {
    /// Webhook verifications by route and result ([`WEBHOOK_RESULTS`]).
    pub verifications: IntCounterVec,
    /// Verified webhooks mapped to hub events, by route and result (published, too_large, unmapped).
    pub publishes: IntCounterVec,
}

impl WebhookMetrics {
    pub(super) fn new(b: &Builder<'_>) -> Result<Self, prometheus::Error> {
        Ok(Self {
            verifications: b.counter(
                "fleetgate_webhook_verifications_total",
                "Webhook verifications by route and result.",
                &["route", "result"],
            )?,
            publishes: b.counter(
                "fleetgate_webhook_publishes_total",
                "Verified webhooks mapped to hub events, by route and result.",
                &["route", "result"],
            )?,
        })
    }

    /// Exports a webhook route's label sets at 0, so rates read 0, not "no data".
    pub fn init_route(&self, route: &str) {
        for result in WEBHOOK_RESULTS {
            self.verifications.with_label_values(&[route, result]);
        }
    }
}
