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

use prometheus::core::{AtomicI64, GenericGauge};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::OnceLock;

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
    /// Upstream attempts by group, instance and outcome ([`UPSTREAM_OUTCOMES`]).
    pub upstream_requests: IntCounterVec,
    /// Time from choosing an instance to the end of the exchange, by group and instance.
    pub upstream_duration: HistogramVec,
    /// Requests in flight per instance (set when scraped).
    pub upstream_in_flight: IntGaugeVec,
    /// 1 while an instance is healthy, 0 while it is down.
    pub instance_healthy: IntGaugeVec,
    /// Routing decisions by source (header, session, query, body, none) and kind.
    pub routing_decisions: RoutingDecisions,
    /// Sessions in the learned session table, by group (set when scraped).
    pub learned_sessions: IntGaugeVec,
    /// Webhook verifications by route and result ([`WEBHOOK_RESULTS`]).
    pub webhook_verifications: IntCounterVec,
    /// Verified webhooks mapped to hub events, by route and result (published, too_large, unmapped).
    pub webhook_publishes: IntCounterVec,
    /// Client connections the gateway closed by itself, by listener and reason
    /// (`max_connections`, `max_connections_per_ip`, `header_timeout`, `write_timeout`,
    /// `proxy_protocol`).
    pub connections_closed: IntCounterVec,
    /// Open client connections per fleet or edge listener.
    pub open_connections: IntGaugeVec,
    /// Configuration reloads by result ([`RELOAD_RESULTS`]).
    pub config_reloads: IntCounterVec,
    /// Unix time of the last configuration that was applied (start or reload).
    pub config_last_success: IntGauge,
    /// 1 for the hash of the configuration being served (see `GET /admin/config`).
    pub config_info: IntGaugeVec,
    /// Access log lines dropped because the writer could not keep up.
    pub access_log_dropped: IntCounter,
    pub hub: HubMetrics,
    pub cluster: ClusterMetrics,
    pub spool: SpoolMetrics,
    /// Build information (always 1).
    pub build_info: IntGaugeVec,
}

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
    fn new(b: &Builder<'_>) -> Result<Self, prometheus::Error> {
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

/// The hub's metrics, labelled by app id.
#[derive(Clone)]
pub struct HubMetrics {
    /// Open WebSocket connections (set when scraped).
    pub connections: IntGaugeVec,
    /// Channels with at least one subscriber (set when scraped).
    pub channels: IntGaugeVec,
    /// Channel subscriptions (set when scraped).
    pub subscriptions: IntGaugeVec,
    /// Events published to a channel (HTTP API, webhook rules, client events, presence).
    pub published: IntCounterVec,
    /// Event frames written to a subscriber's socket.
    pub delivered: IntCounterVec,
    /// Deliveries dropped, by reason (`slow_consumer`: the subscriber's queue was full).
    pub dropped: IntCounterVec,
    /// Connections closed, by close code (`client` when the client closed first).
    pub disconnects: IntCounterVec,
    /// Time from publish to the frame being written to the subscriber's socket.
    pub delivery_latency: HistogramVec,
    /// Pusher HTTP API calls by result (`ok` or the error code).
    pub api_requests: IntCounterVec,
}

/// The cluster link's metrics (exported only with `cluster` configured… and at 0 otherwise).
#[derive(Clone)]
pub struct ClusterMetrics {
    /// 1 while the Redis link is up.
    pub link_up: IntGauge,
    /// Hub messages by kind: `sent` to Redis, `received` from it, `local_fallback` (delivered
    /// here because Redis refused or the link was down), `overflow` (the outbox was full).
    pub messages: IntCounterVec,
}

/// One app's hub counters with their labels resolved once (the fan-out path never hashes labels).
#[derive(Clone)]
pub struct AppMetrics {
    pub published: IntCounter,
    pub delivered: IntCounter,
    pub dropped_slow: IntCounter,
    pub delivery_latency: Histogram,
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
            upstream_requests: b.counter(
                "fleetgate_upstream_requests_total",
                "Upstream requests by group, instance and outcome.",
                &["group", "instance_name", "outcome"],
            )?,
            upstream_duration: b.histogram(
                "fleetgate_upstream_request_duration_seconds",
                "Time from choosing an instance to the end of the exchange, by group and instance.",
                &["group", "instance_name"],
                &REQUEST_BUCKETS,
            )?,
            upstream_in_flight: b.gauge(
                "fleetgate_upstream_in_flight_requests",
                "Requests in flight to an instance.",
                &["group", "instance_name"],
            )?,
            instance_healthy: b.gauge(
                "fleetgate_instance_healthy",
                "1 while the instance passes health checks, else 0.",
                &["group", "instance_name"],
            )?,
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
            webhook_verifications: b.counter(
                "fleetgate_webhook_verifications_total",
                "Webhook verifications by route and result.",
                &["route", "result"],
            )?,
            webhook_publishes: b.counter(
                "fleetgate_webhook_publishes_total",
                "Verified webhooks mapped to hub events, by route and result.",
                &["route", "result"],
            )?,
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
            config_reloads: b.counter(
                "fleetgate_config_reloads_total",
                "Configuration reloads by result (ok, invalid, needs_restart).",
                &["result"],
            )?,
            config_last_success: b.register(IntGauge::new(
                "fleetgate_config_last_reload_success_timestamp_seconds",
                "Unix time the configuration being served was applied.",
            )?)?,
            config_info: b.gauge(
                "fleetgate_config_info",
                "1 for the hash of the configuration being served.",
                &["hash"],
            )?,
            access_log_dropped: b.register(IntCounter::new(
                "fleetgate_access_log_dropped_total",
                "Access log lines dropped because the log writer could not keep up.",
            )?)?,
            hub: HubMetrics::new(&b)?,
            spool: SpoolMetrics::new(&b)?,
            cluster: ClusterMetrics {
                link_up: b.register(IntGauge::new(
                    "fleetgate_cluster_link_up",
                    "1 while the Redis cluster link is up (0 when down or not clustered).",
                )?)?,
                messages: b.counter(
                    "fleetgate_cluster_messages_total",
                    "Hub messages through the cluster link, by kind (sent, received, local_fallback, overflow).",
                    &["kind"],
                )?,
            },
            build_info: b.gauge(
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
        for result in RELOAD_RESULTS {
            metrics.config_reloads.with_label_values(&[result]);
        }
        for kind in CLUSTER_MESSAGE_KINDS {
            metrics.cluster.messages.with_label_values(&[kind]);
        }
        Ok(metrics)
    }

    /// Exports a webhook route's and an instance's label sets at 0, so rates read 0, not "no data".
    pub fn init_route(&self, route: &str, webhook: bool) {
        if webhook {
            for result in WEBHOOK_RESULTS {
                self.webhook_verifications
                    .with_label_values(&[route, result]);
            }
        }
    }

    pub fn init_instance(&self, group: &str, instance: &str) {
        for outcome in UPSTREAM_OUTCOMES {
            self.upstream_requests
                .with_label_values(&[group, instance, outcome]);
        }
    }

    /// Marks `hash` as the configuration being served.
    pub fn config_applied(&self, hash: &str) {
        self.config_info.reset();
        self.config_info.with_label_values(&[hash]).set(1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.config_last_success.set(now);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which `new` rules out.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl HubMetrics {
    fn new(b: &Builder<'_>) -> Result<Self, prometheus::Error> {
        Ok(Self {
            connections: b.gauge(
                "fleetgate_hub_connections",
                "Open hub WebSocket connections, by app.",
                &["app"],
            )?,
            channels: b.gauge(
                "fleetgate_hub_channels",
                "Hub channels with at least one subscriber, by app.",
                &["app"],
            )?,
            subscriptions: b.gauge(
                "fleetgate_hub_subscriptions",
                "Hub channel subscriptions, by app.",
                &["app"],
            )?,
            published: b.counter(
                "fleetgate_hub_messages_published_total",
                "Events published to a hub channel, by app.",
                &["app"],
            )?,
            delivered: b.counter(
                "fleetgate_hub_messages_delivered_total",
                "Event frames written to subscribers' sockets, by app.",
                &["app"],
            )?,
            dropped: b.counter(
                "fleetgate_hub_deliveries_dropped_total",
                "Deliveries dropped, by app and reason.",
                &["app", "reason"],
            )?,
            disconnects: b.counter(
                "fleetgate_hub_disconnects_total",
                "Hub connections closed, by app and close code (client: closed by the client).",
                &["app", "code"],
            )?,
            delivery_latency: b.histogram(
                "fleetgate_hub_delivery_latency_seconds",
                "Time from publish to the frame being written to the subscriber's socket.",
                &["app"],
                &DELIVERY_BUCKETS,
            )?,
            api_requests: b.counter(
                "fleetgate_hub_api_requests_total",
                "Pusher HTTP API calls by app and result (ok or the error code).",
                &["app", "result"],
            )?,
        })
    }

    /// The label-resolved counters for `app` (its series exported at 0 from now on).
    pub fn for_app(&self, app: &str) -> AppMetrics {
        self.connections.with_label_values(&[app]);
        self.channels.with_label_values(&[app]);
        self.subscriptions.with_label_values(&[app]);
        self.api_requests.with_label_values(&[app, "ok"]);
        AppMetrics {
            published: self.published.with_label_values(&[app]),
            delivered: self.delivered.with_label_values(&[app]),
            dropped_slow: self.dropped.with_label_values(&[app, "slow_consumer"]),
            delivery_latency: self.delivery_latency.with_label_values(&[app]),
        }
    }

    /// Sets an app's scrape-time gauges.
    pub fn set_app_gauges(&self, app: &str, connections: usize, channels: usize, subs: usize) {
        let set = |g: GenericGauge<AtomicI64>, v: usize| g.set(v as i64);
        set(self.connections.with_label_values(&[app]), connections);
        set(self.channels.with_label_values(&[app]), channels);
        set(self.subscriptions.with_label_values(&[app]), subs);
    }
}

/// `2xx`, `4xx`…: the bounded label for a status code.
/// `fleetgate_routing_decisions_total`, each series resolved on first use so a request does no
/// label lookup.
pub struct RoutingDecisions {
    vec: IntCounterVec,
    series: [[OnceLock<IntCounter>; DECISION_KINDS.len()]; DECISION_SOURCES.len()],
}

const DECISION_SOURCES: [&str; 5] = ["header", "session", "query", "body", "none"];
const DECISION_KINDS: [&str; 7] = [
    "learned",
    "pin",
    "modulo",
    "rendezvous",
    "reassigned",
    "any",
    "rejected",
];

impl RoutingDecisions {
    fn new(vec: IntCounterVec) -> Self {
        Self {
            vec,
            series: Default::default(),
        }
    }

    /// Counts one decision.
    pub fn inc(&self, source: &str, kind: &str) {
        let source_at = DECISION_SOURCES.iter().position(|s| *s == source);
        let kind_at = DECISION_KINDS.iter().position(|k| *k == kind);
        match (source_at, kind_at) {
            (Some(s), Some(k)) => self.series[s][k]
                .get_or_init(|| self.vec.with_label_values(&[source, kind]))
                .inc(),
            _ => self.vec.with_label_values(&[source, kind]).inc(),
        }
    }
}

/// One route's request metrics, resolved once per configuration so a request does no label
/// lookup. Series are created on first use, as `with_label_values` would.
pub struct RouteMetrics {
    requests: IntCounterVec,
    request_duration: HistogramVec,
    labels: [String; 2],
    by_class: [OnceLock<IntCounter>; STATUS_CLASSES.len()],
    duration: OnceLock<Histogram>,
}

impl RouteMetrics {
    pub fn new(metrics: &Metrics, listener: &str, route: &str) -> Self {
        Self {
            requests: metrics.requests.clone(),
            request_duration: metrics.request_duration.clone(),
            labels: [listener.to_string(), route.to_string()],
            by_class: Default::default(),
            duration: OnceLock::new(),
        }
    }

    /// Counts one answered request with `status`, which took `seconds`.
    pub fn observe(&self, status: u16, seconds: f64) {
        let [listener, route] = &self.labels;
        let class = class_index(status);
        self.by_class[class]
            .get_or_init(|| {
                self.requests
                    .with_label_values(&[listener, route, STATUS_CLASSES[class]])
            })
            .inc();
        self.duration
            .get_or_init(|| self.request_duration.with_label_values(&[listener, route]))
            .observe(seconds);
    }
}

/// One instance's upstream metrics, resolved once per configuration.
pub struct InstanceMetrics {
    by_outcome: [IntCounter; UPSTREAM_OUTCOMES.len()],
    upstream_duration: HistogramVec,
    labels: [String; 2],
    duration: OnceLock<Histogram>,
}

impl InstanceMetrics {
    pub fn new(metrics: &Metrics, group: &str, instance: &str) -> Self {
        Self {
            by_outcome: UPSTREAM_OUTCOMES.map(|o| {
                metrics
                    .upstream_requests
                    .with_label_values(&[group, instance, o])
            }),
            upstream_duration: metrics.upstream_duration.clone(),
            labels: [group.to_string(), instance.to_string()],
            duration: OnceLock::new(),
        }
    }

    /// Counts one attempt that ended with `outcome` (one of [`UPSTREAM_OUTCOMES`]).
    pub fn outcome(&self, outcome: &str) {
        if let Some(i) = UPSTREAM_OUTCOMES.iter().position(|o| *o == outcome) {
            self.by_outcome[i].inc();
        }
    }

    /// Records an exchange that took `seconds`.
    pub fn duration(&self, seconds: f64) {
        let [group, instance] = &self.labels;
        self.duration
            .get_or_init(|| self.upstream_duration.with_label_values(&[group, instance]))
            .observe(seconds);
    }
}

/// The `status_class` label values, in [`class_index`] order.
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

fn class_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => 5,
    }
}

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
