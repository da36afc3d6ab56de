//! What is recorded about every request, once, when its answer ends (or the client goes away):
//! the request metrics, the upstream metrics and in-flight count of the instance it went to, and
//! the access log line.
//!
//! An [`Observation`] is filled in as the request walks through the phases and travels inside the
//! answer's body ([`super::answer::Answer`]), so it is recorded after the last byte was handed to
//! the connection, as nginx logs.

use crate::state::{Gateway, Snapshot};
use http::{Method, Uri};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// The header carrying the request id, both ways.
pub const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The instance a request went to: indices into the snapshot's groups and their instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub group: usize,
    pub instance: usize,
}

pub struct Observation {
    gateway: Arc<Gateway>,
    snap: Arc<Snapshot>,
    listener: Arc<str>,
    started: Instant,
    method: Method,
    uri: Uri,
    pub request_id: http::HeaderValue,
    pub route: Option<usize>,
    target: Option<Target>,
    /// When the instance was chosen (for the upstream duration).
    target_at: Option<Instant>,
    pub workspace: Option<u64>,
    /// How the upstream attempt ended (`ok`, `timeout`, `reset`, `unhealthy`), if one was made.
    pub upstream_outcome: Option<&'static str>,
    pub upstream_status: Option<u16>,
    pub status: u16,
    pub bytes_sent: u64,
    /// The webhook verification result, on webhook routes.
    pub webhook: Option<&'static str>,
    /// The client's address, for the access log.
    pub client: Option<std::net::IpAddr>,
    /// The code of the gateway's own error answer, if it gave one.
    pub error: Option<&'static str>,
}

impl Observation {
    pub fn new(
        gateway: Arc<Gateway>,
        snap: Arc<Snapshot>,
        listener: Arc<str>,
        parts: &http::request::Parts,
        request_id: http::HeaderValue,
    ) -> Self {
        Self {
            gateway,
            snap,
            listener,
            started: Instant::now(),
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            request_id,
            route: None,
            target: None,
            target_at: None,
            workspace: None,
            upstream_outcome: None,
            upstream_status: None,
            status: 0,
            bytes_sent: 0,
            webhook: None,
            client: None,
            error: None,
        }
    }

    pub fn target(&self) -> Option<Target> {
        self.target
    }

    /// Sets the chosen instance and counts the request in flight there (until recorded).
    pub fn set_target(&mut self, target: Target) {
        if let Some(old) = self.target.replace(target) {
            self.in_flight(old).fetch_sub(1, Ordering::Relaxed);
        }
        self.target_at.get_or_insert_with(Instant::now);
        self.in_flight(target).fetch_add(1, Ordering::Relaxed);
    }

    fn in_flight(&self, t: Target) -> &std::sync::atomic::AtomicI64 {
        &self.snap.groups[t.group].health[t.instance].in_flight
    }

    /// The instance's answer broke off after its head.
    pub fn upstream_broke(&mut self) {
        self.upstream_outcome = Some("reset");
    }

    /// Records the request: metrics, in-flight count, access log line.
    pub fn record(self) {
        let duration = self.started.elapsed();
        let route = self.route.map(|r| self.snap.config.routes[r].name.as_str());
        match self.route {
            Some(r) => self.snap.route_metrics[r].observe(self.status, duration.as_secs_f64()),
            None => self.record_unrouted(duration.as_secs_f64()),
        }
        let instance = self.target.map(|t| {
            let metrics = &self.snap.groups[t.group].metrics[t.instance];
            if let Some(outcome) = self.upstream_outcome {
                metrics.outcome(outcome);
            }
            if let (Some(at), Some(_)) = (self.target_at, self.upstream_status) {
                metrics.duration(at.elapsed().as_secs_f64());
            }
            self.in_flight(t).fetch_sub(1, Ordering::Relaxed);
            self.snap.config.groups[t.group].instances[t.instance]
                .name
                .as_str()
        });
        if let Some(log) = self.gateway.access_log.load().as_ref() {
            let mut ts = [0; 24];
            log.write(&crate::access_log::Entry {
                ts: crate::access_log::timestamp_into(&mut ts),
                request_id: self.request_id.to_str().unwrap_or_default(),
                listener: &self.listener,
                route,
                method: self.method.as_str(),
                path: self.uri.path(),
                status: self.status,
                duration_ms: duration.as_secs_f64() * 1e3,
                workspace: self.workspace,
                instance,
                upstream_status: self.upstream_status,
                bytes_sent: self.bytes_sent as usize,
                webhook: self.webhook,
                client: self.client,
                error: self.error,
            });
        }
    }

    /// A request no route took (404 `route.not_found`, or refused before routing).
    fn record_unrouted(&self, seconds: f64) {
        let metrics = &self.gateway.metrics;
        let class = crate::metrics::status_class(self.status);
        metrics
            .requests
            .with_label_values(&[&*self.listener, "none", class])
            .inc();
        metrics
            .request_duration
            .with_label_values(&[&*self.listener, "none"])
            .observe(seconds);
    }
}
