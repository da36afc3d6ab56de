//! Per-request handles with their labels resolved once: routing decisions, a route's and an
//! instance's metrics, and the status-class label.

use super::*;
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec};
use std::sync::OnceLock;

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
    pub(super) fn new(vec: IntCounterVec) -> Self {
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
                    .upstream
                    .requests
                    .with_label_values(&[group, instance, o])
            }),
            upstream_duration: metrics.upstream.duration.clone(),
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
