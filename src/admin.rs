//! The operators' listener (loopback by default; never public unless configured so). Endpoints:
//!
//! - `GET /metrics`: Prometheus text format (every name in [`crate::metrics`]).
//! - `GET /healthz`: 200 while the process runs.
//! - `GET /readyz`: 200 once the configuration is loaded and every listener accepts; 503 before
//!   that (`starting`) and from the start of shutdown (`draining`).
//! - `GET /admin/config`: the effective configuration, every secret redacted, and its hash (the
//!   `hash` label of `fleetgate_config_info`).
//! - `GET /admin/listeners`: the address every listener (and this one) listens on, as bound: a
//!   listener configured on port 0 shows the port it got.
//! - `GET /admin/upstreams`: every instance with health, since when, last error, in-flight
//!   requests and learned sessions, plus each group's learned-table size and capacity.
//! - `POST /admin/reload`: re-read `gateway.yaml`; all or nothing (422 with every problem).

use crate::bound::Addresses;
use crate::state::Gateway;
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

pub struct AdminApp {
    gateway: Arc<Gateway>,
    /// Where every listener listens, as bound (`GET /admin/listeners`).
    addresses: Arc<Addresses>,
}

impl AdminApp {
    pub fn new(gateway: Arc<Gateway>, addresses: Arc<Addresses>) -> Self {
        Self { gateway, addresses }
    }

    fn upstreams(&self) -> serde_json::Value {
        let snap = self.gateway.snapshot();
        let groups: Vec<_> = snap
            .config
            .groups
            .iter()
            .zip(&snap.groups)
            .map(|(group, state)| {
                let learned = state.learned.counts();
                let instances: Vec<_> = group
                    .instances
                    .iter()
                    .zip(&state.health)
                    .map(|(instance, health)| {
                        let detail = health.detail();
                        json!({
                            "name": instance.name,
                            "addr": instance.addr.to_string(),
                            "healthy": health.is_healthy(),
                            "since_unix": detail.since.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                            "last_error": detail.last_error,
                            "last_check_status": detail.last_status,
                            "in_flight": health.in_flight.load(std::sync::atomic::Ordering::Relaxed),
                            "learned_sessions": learned.get(&instance.name).copied().unwrap_or(0),
                        })
                    })
                    .collect();
                json!({
                    "name": group.name,
                    "learned_sessions": { "size": state.learned.len(), "capacity": state.learned.capacity() },
                    "instances": instances,
                })
            })
            .collect();
        json!({ "groups": groups })
    }
}

impl AdminApp {
    /// `POST /admin/spool/replay` or `/purge` (`?route=NAME`, else every route): the dead letters
    /// go back to the end of their queue, or are deleted.
    async fn spool_action(&self, replay: bool, route: Option<&str>) -> Response<Vec<u8>> {
        let Some(spool) = &self.gateway.spool else {
            return spool_off();
        };
        let routes: Vec<String> = match route {
            Some(route) => vec![route.to_string()],
            None => spool.queues().iter().map(|q| q.route.clone()).collect(),
        };
        let mut done = 0;
        for route in &routes {
            let result = match replay {
                true => spool.replay(route).await,
                false => spool.purge(route).await,
            };
            match result {
                Ok(n) => done += n,
                Err(e) => {
                    let body = json!({"error": {"code": "admin.spool_failed", "message": e.to_string(), "fault": "gateway"}});
                    return reply(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "application/json",
                        body.to_string().into_bytes(),
                    );
                }
            }
        }
        let key = if replay { "replayed" } else { "purged" };
        let body = json!({ key: done, "routes": routes });
        reply(
            StatusCode::OK,
            "application/json",
            body.to_string().into_bytes(),
        )
    }

    fn reload(&self) -> Response<Vec<u8>> {
        let json_type = "application/json";
        match self.gateway.reload() {
            Ok(()) => reply(
                StatusCode::OK,
                json_type,
                br#"{"status":"reloaded"}"#.to_vec(),
            ),
            Err(e) => {
                let problems: Vec<_> = e
                    .problems()
                    .iter()
                    .map(|p| json!({"path": p.path, "message": p.message}))
                    .collect();
                let body = json!({"error": {
                    "code": "config.invalid",
                    "message": "the new configuration was not applied",
                    "fault": "client",
                    "problems": problems,
                }});
                reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json_type,
                    body.to_string().into_bytes(),
                )
            }
        }
    }
}

/// 404 `admin.spool_off`: `spool.enabled: false`.
fn spool_off() -> Response<Vec<u8>> {
    let body = json!({"error": {"code": "admin.spool_off", "message": "the spool is off (spool.enabled: false)", "fault": "client"}});
    reply(
        StatusCode::NOT_FOUND,
        "application/json",
        body.to_string().into_bytes(),
    )
}

/// One `name=value` of a query string, percent-decoded (an app webhook's queue is named
/// `hub-webhook:{app} {url}`).
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .map(|value| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned()
        })
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let json_type = "application/json";
        // `/healthz`, `/readyz` and `/up`, answered as on every listener that serves them.
        if let Some(probe) = self.gateway.probe(req.uri.path()) {
            if req.method == http::Method::GET {
                return reply(probe.status, json_type, probe.body.into_bytes());
            }
        }
        match (req.method.as_str(), req.uri.path()) {
            ("GET", "/metrics") => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.gateway.render_metrics(),
            ),
            ("GET", "/admin/config") => {
                let snap = self.gateway.snapshot();
                let body = json!({ "hash": snap.hash, "config": snap.effective });
                reply(StatusCode::OK, json_type, body.to_string().into_bytes())
            }
            ("GET", "/admin/listeners") => {
                let body = json!(*self.addresses);
                reply(StatusCode::OK, json_type, body.to_string().into_bytes())
            }
            ("GET", "/admin/upstreams") => {
                let body = self.upstreams();
                reply(StatusCode::OK, json_type, body.to_string().into_bytes())
            }
            ("POST", "/admin/reload") => self.reload(),
            ("GET", "/admin/spool") => match &self.gateway.spool {
                Some(spool) => reply(
                    StatusCode::OK,
                    json_type,
                    spool.summary().to_string().into_bytes(),
                ),
                None => spool_off(),
            },
            ("POST", "/admin/spool/replay" | "/admin/spool/purge") => {
                let replay = req.uri.path().ends_with("replay");
                let route = query_param(req.uri.query(), "route");
                self.spool_action(replay, route.as_deref()).await
            }
            _ => {
                let body = json!({"error": {"code": "admin.not_found", "message": "no such admin endpoint", "fault": "client"}});
                reply(
                    StatusCode::NOT_FOUND,
                    json_type,
                    body.to_string().into_bytes(),
                )
            }
        }
    }
}
