//! The configuration's metrics: reloads and what is being served.

use super::*;

#[derive(Clone)]
pub struct ConfigMetrics {
    /// Configuration reloads by result ([`RELOAD_RESULTS`]).
    pub reloads: IntCounterVec,
    /// Unix time of the last configuration that was applied (start or reload).
    pub last_success: IntGauge,
    /// 1 for the hash of the configuration being served (see `GET /admin/config`).
    pub info: IntGaugeVec,
}

impl ConfigMetrics {
    pub(super) fn new(b: &Builder<'_>) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            reloads: b.counter(
                "fleetgate_config_reloads_total",
                "Configuration reloads by result (ok, invalid, needs_restart).",
                &["result"],
            )?,
            last_success: b.register(IntGauge::new(
                "fleetgate_config_last_reload_success_timestamp_seconds",
                "Unix time the configuration being served was applied.",
            )?)?,
            info: b.gauge(
                "fleetgate_config_info",
                "1 for the hash of the configuration being served.",
                &["hash"],
            )?,
        };
        for result in RELOAD_RESULTS {
            metrics.reloads.with_label_values(&[result]);
        }
        Ok(metrics)
    }

    /// Marks `hash` as the configuration being served.
    pub fn applied(&self, hash: &str) {
        self.info.reset();
        self.info.with_label_values(&[hash]).set(1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.last_success.set(now);
    }
}
