//! The upstream instances' metrics, labelled by group and instance.

use super::*;

#[derive(Clone)]
pub struct UpstreamMetrics {
    /// Upstream attempts by group, instance and outcome ([`UPSTREAM_OUTCOMES`]).
    pub requests: IntCounterVec,
    /// Time from choosing an instance to the end of the exchange, by group and instance.
    pub duration: HistogramVec,
    /// Requests in flight per instance (set when scraped).
    pub in_flight: IntGaugeVec,
    /// 1 while an instance is healthy, 0 while it is down.
    pub healthy: IntGaugeVec,
}

impl UpstreamMetrics {
    pub(super) fn new(b: &Builder<'_>) -> Result<Self, prometheus::Error> {
        Ok(Self {
            requests: b.counter(
                "fleetgate_upstream_requests_total",
                "Upstream requests by group, instance and outcome.",
                &["group", "instance_name", "outcome"],
            )?,
            duration: b.histogram(
                "fleetgate_upstream_request_duration_seconds",
                "Time from choosing an instance to the end of the exchange, by group and instance.",
                &["group", "instance_name"],
                &REQUEST_BUCKETS,
            )?,
            in_flight: b.gauge(
                "fleetgate_upstream_in_flight_requests",
                "Requests in flight to an instance.",
                &["group", "instance_name"],
            )?,
            healthy: b.gauge(
                "fleetgate_instance_healthy",
                "1 while the instance passes health checks, else 0.",
                &["group", "instance_name"],
            )?,
        })
    }
}
