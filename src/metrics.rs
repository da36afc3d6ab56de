//! Every metric fleetgate exports, named in one place (the Grafana dashboard uses these names).
//!
//! Prefix `fleetgate_`, base units, counters end in `_total`. Labels are bounded: listener, route,
//! group, instance, status class, enums. Never a workspace id, session id, socket id or raw path.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    /// Requests answered, by listener, route and status class (`2xx`…).
    pub requests: IntCounterVec,
    /// Request duration from first byte read to last byte written.
    pub request_duration: HistogramVec,
    /// Upstream attempts by group, instance and outcome (ok, connect_error, timeout, reset, unhealthy).
    pub upstream_requests: IntCounterVec,
    /// 1 while an instance is healthy, 0 while it is down.
    pub instance_healthy: IntGaugeVec,
    /// Routing decisions by source (header, session, query, body, none) and kind.
    pub routing_decisions: IntCounterVec,
    /// Sessions in the learned session table, by group.
    pub learned_sessions: IntGaugeVec,
    /// Webhook verifications by route and result (ok, duplicate, missing, stale, mismatch,
    /// malformed, too_large).
    pub webhook_verifications: IntCounterVec,
    /// Verified webhooks mapped to hub events, by route and result (published, too_large, unmapped).
    pub webhook_publishes: IntCounterVec,
    /// Build information (always 1).
    pub build_info: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(metric.clone()))?;
                Ok(metric)
            };
        let gauge =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, prometheus::Error> {
                let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(metric.clone()))?;
                Ok(metric)
            };
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "fleetgate_request_duration_seconds",
                "Time to answer a request, by listener and route.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0,
            ]),
            &["listener", "route"],
        )?;
        registry.register(Box::new(request_duration.clone()))?;
        let metrics = Self {
            requests: counter(
                "fleetgate_requests_total",
                "Requests answered, by listener, route and status class.",
                &["listener", "route", "status_class"],
            )?,
            request_duration,
            upstream_requests: counter(
                "fleetgate_upstream_requests_total",
                "Upstream requests by group, instance and outcome.",
                &["group", "instance", "outcome"],
            )?,
            instance_healthy: gauge(
                "fleetgate_instance_healthy",
                "1 while the instance passes health checks, else 0.",
                &["group", "instance"],
            )?,
            routing_decisions: counter(
                "fleetgate_routing_decisions_total",
                "Workspace routing decisions by source and kind.",
                &["source", "kind"],
            )?,
            learned_sessions: gauge(
                "fleetgate_learned_sessions",
                "Sessions in the learned session table.",
                &["group"],
            )?,
            webhook_publishes: counter(
                "fleetgate_webhook_publishes_total",
                "Verified webhooks mapped to hub events, by route and result.",
                &["route", "result"],
            )?,
            webhook_verifications: counter(
                "fleetgate_webhook_verifications_total",
                "Webhook verifications by route and result.",
                &["route", "result"],
            )?,
            build_info: gauge(
                "fleetgate_build_info",
                "Build information; always 1.",
                &["version"],
            )?,
            registry,
        };
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Ok(metrics)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which `new` rules out.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// `2xx`, `4xx`…: the bounded label for a status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}
