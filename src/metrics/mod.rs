//! Every metric fleetgate exports, named in one place (the Grafana dashboard in `grafana/` and the
//! README's metrics reference use these names; `tests/observability.rs` checks them against a live
//! Prometheus).
//!
//! Prefix `fleetgate_`, base units (seconds, bytes), counters end in `_total`. Labels are bounded:
//! listener, route, group, instance, app id, status class, close code, enums. Never a workspace id,
//! session id, socket id, user id or raw path.
//!
//! Gauges that mirror state the gateway already keeps (hub connections, channels, in-flight
//! requests, learned sessions) are set when scraped ([`crate::state::Gateway::render_metrics`]),
//! so the data plane never updates them.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

mod config;
mod handles;
mod hub;
mod spool;
mod upstream;
mod webhook;

pub use config::ConfigMetrics;
pub use handles::*;
pub use hub::{AppMetrics, ClusterMetrics, HubMetrics};
pub use spool::SpoolMetrics;
pub use upstream::UpstreamMetrics;
pub use webhook::WebhookMetrics;

/// Webhook verification results (the `result` label), all exported from the start at 0.
pub const WEBHOOK_RESULTS: [&str; 8] = [
    "ok",
    "duplicate",
    "missing",
    "stale",
    "mismatch",
    "malformed",
    "too_large",
    "unreadable",
];
/// Upstream outcomes (the `outcome` label).
pub const UPSTREAM_OUTCOMES: [&str; 5] = ["ok", "connect_error", "timeout", "reset", "unhealthy"];
/// Kinds of cluster messages (the `kind` label).
pub const CLUSTER_MESSAGE_KINDS: [&str; 4] = ["sent", "received", "local_fallback", "overflow"];
/// Config reload results (the `result` label).
pub const RELOAD_RESULTS: [&str; 3] = ["ok", "invalid", "needs_restart"];

/// Latency buckets shared by the request and upstream histograms (0.5 ms … 60 s).
const REQUEST_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Publish→deliver buckets (50 µs … 5 s): fan-out is in-process, so most land below 10 ms.
const DELIVERY_BUCKETS: [f64; 14] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

pub struct Metrics {
    pub registry: Registry,
    /// Requests answered, by listener, route and status class (`2xx`…).
    pub requests: IntCounterVec,
    /// Request duration from first byte read to last byte written.
    pub request_duration: HistogramVec,
    pub upstream: UpstreamMetrics,
    /// Routing decisions by source (header, session, query, body, none) and kind.
    pub routing_decisions: RoutingDecisions,
    /// Sessions in the learned session table, by group (set when scraped).
    pub learned_sessions: IntGaugeVec,
    pub webhook: WebhookMetrics,
    /// Client connections the gateway closed by itself, by listener and reason
    /// (`max_connections`, `max_connections_per_ip`, `header_timeout`, `write_timeout`,
    /// `proxy_protocol`).
    pub connections_closed: IntCounterVec,
    /// Open client connections per fleet or edge listener.
    pub open_connections: IntGaugeVec,
    pub config: ConfigMetrics,
    /// Access log lines dropped because the writer could not keep up.
    pub access_log_dropped: IntCounter,
    pub hub: HubMetrics,
    pub cluster: ClusterMetrics,
    pub spool: SpoolMetrics,
    /// Build information (always 1).
    pub build_info: IntGaugeVec,
}

/// Registers metrics of one kind under one registry.
struct Builder<'r>(&'r Registry);

impl Builder<'_> {
    fn register<M: prometheus::core::Collector + Clone + 'static>(
        &self,
        metric: M,
    ) -> Result<M, prometheus::Error> {
        self.0.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, prometheus::Error> {
        self.register(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    fn gauge(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntGaugeVec, prometheus::Error> {
        self.register(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }

    fn histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> Result<HistogramVec, prometheus::Error> {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.register(HistogramVec::new(opts, labels)?)
    }
}

/// `fleetgate_build_info{version}`, set to 1.
fn build_info(b: &Builder<'_>) -> Result<IntGaugeVec, prometheus::Error> {
    let info = b.gauge(
        "fleetgate_build_info",
        "Build information; always 1.",
        &["version"],
    )?;
    info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    Ok(info)
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let b = Builder(&registry);
        let metrics = Self {
            requests: b.counter(
                "fleetgate_requests_total",
                "Requests answered, by listener, route and status class.",
                &["listener", "route", "status_class"],
            )?,
            request_duration: b.histogram(
                "fleetgate_request_duration_seconds",
                "Time to answer a request, by listener and route.",
                &["listener", "route"],
                &REQUEST_BUCKETS,
            )?,
            upstream: UpstreamMetrics::new(&b)?,
            routing_decisions: RoutingDecisions::new(b.counter(
                "fleetgate_routing_decisions_total",
                "Workspace routing decisions by source and kind.",
                &["source", "kind"],
            )?),
            learned_sessions: b.gauge(
                "fleetgate_learned_sessions",
                "Sessions in the learned session table.",
                &["group"],
            )?,
            webhook: WebhookMetrics::new(&b)?,
            connections_closed: b.counter(
                "fleetgate_connections_closed_total",
                "Client connections closed by the gateway's limits, by listener and reason.",
                &["listener", "reason"],
            )?,
            open_connections: b.gauge(
                "fleetgate_open_connections",
                "Open client connections, by listener (fleet and edge listeners).",
                &["listener"],
            )?,
            config: ConfigMetrics::new(&b)?,
            access_log_dropped: b.register(IntCounter::new(
                "fleetgate_access_log_dropped_total",
                "Access log lines dropped because the log writer could not keep up.",
            )?)?,
            hub: HubMetrics::new(&b)?,
            spool: SpoolMetrics::new(&b)?,
            cluster: ClusterMetrics::new(&b)?,
            build_info: build_info(&b)?,
            registry,
        };
        Ok(metrics)
    }

    /// Exports an instance's label sets at 0, so rates read 0, not "no data".
    pub fn init_instance(&self, group: &str, instance: &str) {
        for outcome in UPSTREAM_OUTCOMES {
            self.upstream
                .requests
                .with_label_values(&[group, instance, outcome]);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which `new` rules out.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}
