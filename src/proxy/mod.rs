//! The HTTP proxy for one listener (pingora `ProxyHttp`).
//!
//! Request phases, in order:
//! 1. `request_filter`: load the snapshot; reject ambiguous framing (400); match the route by
//!    longest path prefix (404); deny list (403); body limit by `Content-Length` (413); pick the
//!    instance: round robin for `balance`, or extract the workspace (header → session id → query →
//!    JSON body, in the configured order; the body is read only when needed, only if JSON and
//!    within `body_limit`) and resolve it (learned → pin → rule; down → reject/reassign): see
//!    [`locate`]. A read body larger than pingora's 64 KiB replay buffer is forwarded here by [`forward`].
//! 2. `upstream_peer`: the chosen instance with the route's timeouts (no read timeout on upgrades).
//! 3. `upstream_request_filter`: hop-by-hop headers removed, `X-Forwarded-*` appended.
//! 4. `request_body_filter`: replays a body read in phase 1; enforces `max_body` on streamed bodies.
//! 5. `response_filter`: hop-by-hop headers removed; `POST /api/sessions` successes are learned.
//! 6. `fail_to_connect` / `fail_to_proxy`: passive health marking; JSON errors with stable codes.
//! 7. `logging`: metrics and the access log line.
//!
//! Every request carries a request id (the client's `X-Request-Id` if well-formed, else a new one;
//! see [`crate::access_log::request_id`]), sent upstream and returned to the client.

mod forward;
pub mod hygiene;
mod locate;
mod webhook;

use crate::config::{Route, Treatment};
use crate::errors::GatewayError;
use crate::routing;
use crate::state::{Gateway, Snapshot};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::prelude::*;
use pingora_core::connectors::http::Connector;
use pingora_error::{ErrorSource, ErrorType};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::FailToProxy;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// pingora replays a body read before proxying from a buffer of this size; larger bodies are
/// forwarded by [`forward`].
const REPLAY_LIMIT: usize = 64 * 1024;

const REQUEST_ID: &str = "x-request-id";

pub struct FleetProxy {
    listener: String,
    gateway: Arc<Gateway>,
    connector: Connector,
    /// `X-Forwarded-Proto`: `https` when the listener terminates TLS.
    proto: &'static str,
}

impl FleetProxy {
    pub fn new(listener: String, gateway: Arc<Gateway>, tls: bool) -> Self {
        Self {
            listener,
            gateway,
            connector: Connector::new(None),
            proto: if tls { "https" } else { "http" },
        }
    }
}

/// Per-request state.
pub struct Ctx {
    snap: Arc<Snapshot>,
    started: Instant,
    route: Option<usize>,
    target: Option<Target>,
    /// A body read in `request_filter`, to be sent upstream unchanged.
    replay: Option<Bytes>,
    upgrade: bool,
    /// Streamed request body bytes seen so far (for `max_body` without Content-Length).
    streamed: u64,
    learn: Learn,
    upstream_outcome: Option<&'static str>,
    /// The status the instance answered with.
    upstream_status: Option<u16>,
    /// When the instance was chosen (for the upstream duration).
    target_at: Option<Instant>,
    /// The workspace the request was routed by, if any, and where it was found.
    workspace: Option<u64>,
    source: &'static str,
    request_id: String,
    /// The webhook verification result, on webhook routes.
    webhook: Option<&'static str>,
    /// The listener's scheme, for `X-Forwarded-Proto`.
    proto: &'static str,
}

#[derive(Clone, Copy)]
struct Target {
    group: usize,
    instance: usize,
}

/// What a successful (2xx) upstream answer teaches the gateway.
enum Learn {
    Nothing,
    /// The learned session table: this session now lives on the instance that answered.
    Created(String),
    /// The learned session table: this session is gone.
    Deleted(String),
    /// The route's seen deliveries: this webhook delivery reached Laravel.
    Delivered(String),
}

#[async_trait]
impl ProxyHttp for FleetProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            snap: self.gateway.snapshot(),
            started: Instant::now(),
            route: None,
            target: None,
            replay: None,
            upgrade: false,
            streamed: 0,
            learn: Learn::Nothing,
            upstream_outcome: None,
            upstream_status: None,
            target_at: None,
            workspace: None,
            source: "none",
            request_id: String::new(),
            webhook: None,
            proto: self.proto,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let incoming = session.req_header().headers.get(REQUEST_ID);
        ctx.request_id = crate::access_log::request_id(incoming.map(|v| v.as_bytes()));
        let answered = match self.admit(session, ctx).await {
            Ok(Admission::Proxy) => false,
            Ok(Admission::Answered) => true,
            Ok(Admission::Forward(body)) => {
                if let Err(e) = self.forward(session, ctx, body).await {
                    let e = webhook::defer_if_webhook(ctx, e);
                    self.answer_error(session, ctx, &e).await;
                }
                true
            }
            Err(e) => {
                let e = webhook::defer_if_webhook(ctx, e);
                self.answer_error(session, ctx, &e).await;
                true
            }
        };
        Ok(answered)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        self.reassign_if_down(ctx)?;
        let peer = self
            .peer(ctx)
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no target chosen"))?;
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        prepare_upstream_request(req, session.client_addr(), ctx)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(replay) = ctx.replay.take() {
            *body = Some(replay);
            return Ok(());
        }
        if !ctx.upgrade {
            ctx.streamed += body.as_ref().map_or(0, |b| b.len() as u64);
            if ctx.route_conf().is_some_and(|r| ctx.streamed > r.max_body) {
                return Error::e_explain(ErrorType::HTTPStatus(413), "request body over max_body");
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        self.after_upstream_response(resp, ctx);
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        self.connect_failed(ctx, &e.to_string());
        // A workspace's instance is fixed unless `when_instance_down: reassign` lets it move; then
        // `upstream_peer` picks the next healthy instance (nothing was sent, so a retry is safe).
        e.set_retry(ctx.reassignable().is_some());
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let error = classify(e);
        if ctx.target.is_some() && e.esource() == &ErrorSource::Upstream {
            // Connect errors were counted as they happened (`connect_failed`).
            ctx.upstream_outcome = match error {
                Some(GatewayError::UpstreamTimeout) => Some("timeout"),
                Some(GatewayError::UpstreamConnect) => None,
                _ => Some("reset"),
            };
        }
        let code = match error {
            Some(error) => {
                self.answer_error(session, ctx, &error).await;
                error.parts().0
            }
            None => 0,
        };
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        let metrics = &self.gateway.metrics;
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let route = ctx.route_conf().map(|r| r.name.as_str());
        let duration = ctx.started.elapsed();
        metrics
            .requests
            .with_label_values(&[
                &self.listener,
                route.unwrap_or("none"),
                crate::metrics::status_class(status),
            ])
            .inc();
        metrics
            .request_duration
            .with_label_values(&[&self.listener, route.unwrap_or("none")])
            .observe(duration.as_secs_f64());
        let instance = ctx.target.map(|t| {
            let group = &ctx.snap.config.groups[t.group];
            let instance = group.instances[t.instance].name.as_str();
            if let Some(outcome) = ctx.upstream_outcome {
                metrics
                    .upstream_requests
                    .with_label_values(&[&group.name, instance, outcome])
                    .inc();
            }
            if let (Some(at), Some(_)) = (ctx.target_at, ctx.upstream_status) {
                metrics
                    .upstream_duration
                    .with_label_values(&[&group.name, instance])
                    .observe(at.elapsed().as_secs_f64());
            }
            ctx.snap.groups[t.group].health[t.instance]
                .in_flight
                .fetch_sub(1, Ordering::Relaxed);
            instance
        });
        if let Some(log) = self.gateway.access_log.load().as_ref() {
            let req = session.req_header();
            log.write(&crate::access_log::Entry {
                ts: crate::access_log::timestamp(),
                request_id: &ctx.request_id,
                listener: &self.listener,
                route,
                method: req.method.as_str(),
                path: req.uri.path(),
                status,
                duration_ms: duration.as_secs_f64() * 1e3,
                workspace: ctx.workspace,
                instance,
                upstream_status: ctx.upstream_status,
                bytes_sent: session.body_bytes_sent(),
                webhook: ctx.webhook,
            });
        }
    }
}

/// What phase 1 decided.
enum Admission {
    /// Let pingora proxy the request (a body read for routing is replayed from `Ctx::replay`).
    Proxy,
    /// Forward this already-read body ourselves ([`forward`]).
    Forward(Bytes),
    /// An answer was already written.
    Answered,
}

impl Ctx {
    /// Sets the chosen instance and counts the request as in flight there.
    fn set_target(&mut self, group: usize, instance: usize) {
        self.target = Some(Target { group, instance });
        self.target_at = Some(Instant::now());
        self.snap.groups[group].health[instance]
            .in_flight
            .fetch_add(1, Ordering::Relaxed);
    }

    fn route_conf(&self) -> Option<&Route> {
        self.route.map(|r| &self.snap.config.routes[r])
    }

    /// The routing rules and workspace, when the request may move off a down instance.
    fn reassignable(&self) -> Option<(&crate::config::RoutingConfig, u64)> {
        let route = self
            .route_conf()
            .filter(|r| r.treatment == Treatment::Workspace)?;
        let rules = self.snap.config.groups[route.group].routing.as_ref()?;
        (rules.when_instance_down == routing::DownPolicy::Reassign)
            .then_some((rules, self.workspace?))
    }
}

impl FleetProxy {
    /// Phase 1: decide where the request goes, or fail with the error to answer.
    async fn admit(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Admission, GatewayError> {
        let snap = ctx.snap.clone();
        let req = session.req_header();
        hygiene::check_framing(&req.headers)?;
        if req.headers.contains_key(http::header::TRANSFER_ENCODING) {
            let raw = session
                .as_downstream()
                .as_http1()
                .map(|h1| h1.get_headers_raw_bytes());
            if raw.is_some_and(|raw| hygiene::raw_has_content_length(&raw)) {
                return Err(GatewayError::BadRequest(
                    "both Content-Length and Transfer-Encoding",
                ));
            }
        }
        let path = req.uri.path().to_string();
        let (index, route) = snap
            .route_for(&self.listener, &path)
            .ok_or(GatewayError::RouteNotFound)?;
        ctx.route = Some(index);
        if hygiene::is_denied(&route.deny, &path) {
            return Err(GatewayError::RouteDenied);
        }
        if route.treatment == Treatment::Webhook {
            return self.webhook(session, ctx, index, route).await;
        }
        if hygiene::content_length(&req.headers).is_some_and(|len| len > route.max_body) {
            return Err(GatewayError::BodyTooLarge);
        }
        ctx.upgrade = hygiene::is_upgrade(&req.headers);
        if ctx.upgrade {
            // Idle WebSockets live on pings, not on proxy read timeouts.
            session.set_read_timeout(None);
        }
        let instance = match route.treatment {
            Treatment::Workspace => self.locate(session, ctx, route).await?,
            Treatment::Balance | Treatment::Webhook => self.balance(&snap, route.group)?,
        };
        ctx.set_target(route.group, instance);
        // pingora replays a pre-read body only up to its 64 KiB buffer: forward larger ones ourselves.
        Ok(
            match ctx.replay.as_ref().filter(|b| b.len() > REPLAY_LIMIT) {
                Some(body) => Admission::Forward(body.clone()),
                None => Admission::Proxy,
            },
        )
    }

    /// The peer for the chosen instance, with the route's timeouts.
    fn peer(&self, ctx: &Ctx) -> Option<HttpPeer> {
        let target = ctx.target?;
        let route = ctx.route_conf()?;
        let group = &ctx.snap.config.groups[target.group];
        let mut peer = HttpPeer::new(group.instances[target.instance].addr, false, String::new());
        peer.options.connection_timeout = Some(route.connect_timeout);
        peer.options.read_timeout = (!ctx.upgrade).then_some(route.read_timeout);
        peer.options.write_timeout = Some(route.write_timeout);
        peer.options.idle_timeout = Some(group.idle_timeout);
        Some(peer)
    }

    /// Response hygiene and learning, shared by the proxied and the forwarded path.
    fn after_upstream_response(&self, resp: &mut ResponseHeader, ctx: &mut Ctx) {
        ctx.upstream_outcome = Some("ok");
        ctx.upstream_status = Some(resp.status.as_u16());
        let upgraded = resp.status.as_u16() == 101;
        for name in hygiene::strip_hop_by_hop(&resp.headers, upgraded) {
            resp.remove_header(&name);
        }
        // A request id is a header value by construction (checked or generated).
        let _ = resp.insert_header(REQUEST_ID, &ctx.request_id);
        let (Some(target), true) = (ctx.target, resp.status.is_success()) else {
            return;
        };
        let state = &ctx.snap.groups[target.group];
        let group = &ctx.snap.config.groups[target.group].name;
        match std::mem::replace(&mut ctx.learn, Learn::Nothing) {
            Learn::Created(id) => {
                let instance = &state.names[target.instance];
                self.gateway.learn_session(state, group, &id, instance);
            }
            Learn::Deleted(id) => self.gateway.forget_session(state, group, &id),
            Learn::Delivered(key) => {
                if let Some(seen) = ctx.route.and_then(|r| ctx.snap.seen[r].as_ref()) {
                    seen.insert(&key, Instant::now());
                }
            }
            Learn::Nothing => {}
        }
    }

    /// Counts the failed attempt and marks the instance down (passive health check).
    fn connect_failed(&self, ctx: &mut Ctx, error: &str) {
        let Some(target) = ctx.target else { return };
        let group = &ctx.snap.config.groups[target.group];
        let instance = &group.instances[target.instance].name;
        self.gateway
            .metrics
            .upstream_requests
            .with_label_values(&[&group.name, instance, "connect_error"])
            .inc();
        if let Some(healthy) =
            ctx.snap.groups[target.group].health[target.instance].mark_down(error.to_string())
        {
            self.gateway.health_changed(&group.name, instance, healthy);
        }
    }

    async fn answer_error(&self, session: &mut Session, ctx: &Ctx, error: &GatewayError) {
        let (status, code, fault) = error.parts();
        match fault {
            crate::errors::Fault::Client => tracing::debug!(status, code, "rejected request"),
            _ => {
                tracing::warn!(status, code, fault = fault.as_str(), request_id = %ctx.request_id, "request failed")
            }
        }
        match error.response() {
            Ok((header, body)) => answer(session, ctx, header, body).await,
            Err(e) => tracing::debug!(error = %e, "could not build an error response"),
        }
    }
}

/// Writes a gateway-made answer (error or replay), with the request id.
async fn answer(session: &mut Session, ctx: &Ctx, mut header: ResponseHeader, body: Bytes) {
    let written = match header.insert_header(REQUEST_ID, &ctx.request_id) {
        Ok(()) => session.as_mut().write_error_response(header, body).await,
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        tracing::debug!(error = %e, "could not write a response");
    }
}

/// `X-Forwarded-*` appended, hop-by-hop headers removed, the upgrade handshake kept.
fn prepare_upstream_request(
    req: &mut RequestHeader,
    client: Option<&pingora_core::protocols::l4::socket::SocketAddr>,
    ctx: &Ctx,
) -> Result<()> {
    let upgrade = ctx.upgrade;
    let ip = client.and_then(|a| a.as_inet()).map(|a| a.ip());
    let forwarded = hygiene::forwarded_headers(&req.headers, ip, ctx.proto);
    for name in hygiene::strip_hop_by_hop(&req.headers, upgrade) {
        req.remove_header(&name);
    }
    for (name, value) in forwarded {
        req.insert_header(name, value)?;
    }
    if upgrade {
        req.insert_header(http::header::CONNECTION, "upgrade")?;
    }
    req.insert_header(REQUEST_ID, &ctx.request_id)?;
    Ok(())
}

/// Reads the whole request body, failing with 413 past `limit` bytes.
async fn read_body(session: &mut Session, limit: u64) -> Result<Bytes, GatewayError> {
    session.as_mut().enable_retry_buffering();
    // One allocation of the declared size (already checked against `limit`): growing by doubling
    // would briefly hold up to 3x the body while copying.
    let declared =
        hygiene::content_length(&session.req_header().headers).filter(|&len| len <= limit);
    let mut buf = BytesMut::with_capacity(declared.map_or(0, |len| len as usize));
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) if (buf.len() + chunk.len()) as u64 > limit => {
                return Err(GatewayError::BodyTooLarge)
            }
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            Ok(None) => return Ok(buf.freeze()),
            Err(_) => {
                return Err(GatewayError::BadRequest(
                    "the request body could not be read",
                ))
            }
        }
    }
}

/// Maps a pingora error to the answer to send, or `None` when the client is already gone.
fn classify(e: &Error) -> Option<GatewayError> {
    use ErrorType::*;
    match (e.esource(), e.etype()) {
        (_, HTTPStatus(413)) => Some(GatewayError::BodyTooLarge),
        (_, HTTPStatus(503)) => Some(GatewayError::NoHealthyInstance {
            retry_after_secs: 1,
        }),
        (_, HTTPStatus(400)) => Some(GatewayError::BadRequest("the request could not be parsed")),
        (
            ErrorSource::Upstream,
            ConnectTimedout | ConnectRefused | ConnectNoRoute | ConnectError | ConnectProxyFailure
            | SocketError | BindError,
        ) => Some(GatewayError::UpstreamConnect),
        (ErrorSource::Upstream, ReadTimedout | WriteTimedout) => {
            Some(GatewayError::UpstreamTimeout)
        }
        (ErrorSource::Upstream, _) => Some(GatewayError::UpstreamBroken),
        (ErrorSource::Downstream, ReadError | WriteError | ConnectionClosed) => None,
        (ErrorSource::Downstream, _) => {
            Some(GatewayError::BadRequest("the request could not be parsed"))
        }
        _ => Some(GatewayError::Internal),
    }
}
