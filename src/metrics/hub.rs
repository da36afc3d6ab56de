//! The hub's and the cluster link's metrics.

use super::*;
use prometheus::core::{AtomicI64, GenericGauge};
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

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
    /// App webhook events by app, event and result (`batched`; `dropped`: the batcher's queue
    /// was full; `lost`: the spool refused their batch).
    pub webhook_events: IntCounterVec,
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

impl ClusterMetrics {
    pub(super) fn new(b: &Builder<'_>) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            link_up: b.register(IntGauge::new(
                "fleetgate_cluster_link_up",
                "1 while the Redis cluster link is up (0 when down or not clustered).",
            )?)?,
            messages: b.counter(
                "fleetgate_cluster_messages_total",
                "Hub messages through the cluster link, by kind (sent, received, local_fallback, overflow).",
                &["kind"],
            )?,
        };
        for kind in CLUSTER_MESSAGE_KINDS {
            metrics.messages.with_label_values(&[kind]);
        }
        Ok(metrics)
    }
}

impl HubMetrics {
    pub(super) fn new(b: &Builder<'_>) -> Result<Self, prometheus::Error> {
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
            webhook_events: b.counter(
                "fleetgate_hub_webhook_events_total",
                "App webhook events by app, event and result (batched, dropped, lost).",
                &["app", "event", "result"],
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
