//! Phase 4, forward: the request as the instance sees it, sent on a pooled connection; the
//! instance's answer as the client sees it; what a 2xx teaches; tunnels after a `101`.
//!
//! Upstream request: origin-form URI, HTTP/1.1, hop-by-hop headers removed (the upgrade
//! handshake kept on upgrade requests), `Expect` removed (the gateway answers it), the
//! `X-Forwarded-*` values appended, the request id set. A connect error, or a fresh connection
//! closed before any answer, marks the instance down (passive health check) and, with
//! `when_instance_down: reassign`, sends the untouched request (body included) to the next
//! healthy instance when it may be sent again (not after a fresh connection dropped a POST). The route's `max_body` and read timeout hold until the instance
//! answered `101 Switching Protocols`; only the tunnel after it has neither.

use super::answer::Answer;
use super::hygiene::{self, Forwarding};
use super::locate::{reassign, Learn};
use super::observe::{Observation, Target};
use super::request_body::Outgoing;
use super::upstream::{self, Failure, SendError, Timeouts};
use crate::errors::GatewayError;
use crate::state::{Gateway, Snapshot};
use http::header::HeaderValue;
use http::{Response, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// A request the gateway answers itself: the error, and whether to close the connection after
/// (when the request's framing or body cannot be trusted or was left unread).
pub struct Refused {
    pub error: GatewayError,
    pub close: bool,
}

impl From<GatewayError> for Refused {
    fn from(error: GatewayError) -> Self {
        Refused {
            error,
            close: false,
        }
    }
}

/// Everything forwarding needs besides the request itself.
pub struct Prepared<'a> {
    pub gateway: &'a Arc<Gateway>,
    pub snap: &'a Arc<Snapshot>,
    pub route: usize,
    /// The client's address as an `X-Forwarded-For` element.
    pub client: Option<&'a HeaderValue>,
    /// The peer is a trusted proxy: the `X-Forwarded-*` it sent are kept (else replaced).
    pub believe_forwarded: bool,
    pub proto: &'static str,
}

impl Prepared<'_> {
    /// Sends the request to the observation's target (moving it if allowed and needed) and
    /// turns the instance's answer into the client's.
    pub async fn forward(
        &self,
        parts: &mut http::request::Parts,
        body: Outgoing,
        learn: Learn,
        source: &'static str,
        obs: &mut Observation,
    ) -> Result<Response<Answer>, Refused> {
        let upgrade = hygiene::is_upgrade(&parts.headers);
        let client_upgrade = match upgrade {
            true => parts.extensions.remove::<OnUpgrade>(),
            false => None,
        };
        let mut request = Some(upstream_request(parts, body));
        let request_id = obs.request_id.clone();
        let add = Forwarding {
            client: self.client,
            believe: self.believe_forwarded,
            proto: self.proto,
            request_id: &request_id,
            upgrade,
        };
        let route = &self.snap.config.routes[self.route];
        let resp = loop {
            let target = obs.target().ok_or(GatewayError::Internal)?;
            let group = &self.snap.config.groups[target.group];
            let timeouts = Timeouts {
                connect: route.connect_timeout,
                read: route.read_timeout,
                idle: group.idle_timeout,
            };
            let addr = group.instances[target.instance].addr;
            let req = request.take().ok_or(GatewayError::Internal)?;
            // Boxed: an exchange's state (~1.8 KB) would otherwise be copied into every future
            // that awaits it, twice per level (the request's future was 9.9 KB; now ~2 KB).
            match Box::pin(upstream::send(addr, req, &add, timeouts)).await {
                Ok(answered) => break answered,
                Err(failure) => {
                    request = self.failed(failure, target, source, obs)?;
                }
            }
        };
        self.answered(resp, client_upgrade, learn, obs)
    }

    /// The instance's answer: learned from when it succeeded, a tunnel when it switched
    /// protocols, else relayed.
    fn answered(
        &self,
        resp: Response<upstream::UpstreamBody>,
        client_upgrade: Option<OnUpgrade>,
        learn: Learn,
        obs: &mut Observation,
    ) -> Result<Response<Answer>, Refused> {
        let status = resp.status();
        obs.upstream_outcome = Some("ok");
        obs.upstream_status = Some(status.as_u16());
        let target = obs.target().ok_or(GatewayError::Internal)?;
        if status.is_success() {
            learn.apply(
                self.gateway,
                self.snap,
                target.group,
                target.instance,
                self.route,
            );
        }
        // Hop-by-hop headers were left out as the head was read (`h1::parse_response`).
        if status == http::StatusCode::SWITCHING_PROTOCOLS {
            let (parts, body) = resp.into_parts();
            let (Some(client), Some(instance)) = (client_upgrade, body.into_tunnel()) else {
                return Err(GatewayError::UpstreamBroken.into());
            };
            tunnel(client, instance);
            return Ok(Response::from_parts(
                parts,
                Answer::full(bytes::Bytes::new()),
            ));
        }
        Ok(resp.map(Answer::upstream))
    }

    /// A failed attempt: counted, the instance marked down when it did not serve (a refused
    /// connect, a fresh connection closed unanswered), and the request back for another instance
    /// when the rules move it; otherwise the error to answer.
    fn failed(
        &self,
        failure: Failure,
        target: Target,
        source: &'static str,
        obs: &mut Observation,
    ) -> Result<Option<http::Request<Outgoing>>, Refused> {
        let (outcome, unmoved) = match failure.error {
            SendError::Connect(_) => ("connect_error", GatewayError::UpstreamConnect),
            _ => ("reset", GatewayError::UpstreamBroken),
        };
        let error = match failure.error {
            SendError::Connect(reason) | SendError::Dropped(reason) => {
                self.instance_failed(target, outcome, reason);
                let moved = failure.request.and_then(|req| {
                    let instance = self.reassigned(target, source, obs)?;
                    obs.set_target(Target {
                        group: target.group,
                        instance,
                    });
                    Some(req)
                });
                if moved.is_some() {
                    return Ok(moved);
                }
                unmoved
            }
            SendError::Timeout => {
                obs.upstream_outcome = Some("timeout");
                GatewayError::UpstreamTimeout
            }
            SendError::TooLarge => GatewayError::BodyTooLarge,
            SendError::ClientBody(error) => error,
            SendError::Broken(reason) => {
                tracing::debug!(%reason, "upstream connection failed");
                obs.upstream_outcome = Some("reset");
                GatewayError::UpstreamBroken
            }
        };
        let close = matches!(
            error,
            GatewayError::BodyTooLarge | GatewayError::BadRequest(_) | GatewayError::BodyTimeout
        );
        Err(Refused { error, close })
    }

    /// With `reassign`, the healthy instance a workspace moves to from the down `target`.
    fn reassigned(&self, target: Target, source: &str, obs: &Observation) -> Option<usize> {
        let route = &self.snap.config.routes[self.route];
        if route.treatment != crate::config::Treatment::Workspace {
            return None;
        }
        let rules = self.snap.config.groups[target.group].routing.as_ref()?;
        let state = &self.snap.groups[target.group];
        reassign(rules, state, obs.workspace?, self.gateway, source)
            .filter(|&i| i != target.instance)
    }

    /// Counts the failed attempt (a refused connect, a fresh connection closed unanswered) and
    /// marks the instance down (passive health check).
    fn instance_failed(&self, target: Target, outcome: &str, reason: String) {
        let group = &self.snap.config.groups[target.group];
        let instance = &group.instances[target.instance].name;
        self.gateway
            .metrics
            .upstream
            .requests
            .with_label_values(&[&group.name, instance, outcome])
            .inc();
        let health = &self.snap.groups[target.group].health[target.instance];
        if let Some(healthy) = health.mark_down(reason) {
            self.gateway.health_changed(&group.name, instance, healthy);
        }
    }
}

/// The request as the instance gets it (its headers are filtered and extended as they are
/// written: [`super::h1::encode_request`]).
fn upstream_request(parts: &mut http::request::Parts, body: Outgoing) -> http::Request<Outgoing> {
    let mut req = http::Request::new(body);
    *req.method_mut() = parts.method.clone();
    // Written in origin form (`/path?query`); an HTTP/2 authority becomes `Host`.
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = Version::HTTP_11;
    // The client's headers are not needed after this: moved, not copied.
    *req.headers_mut() = std::mem::take(&mut parts.headers);
    req
}

/// Copies bytes both ways between the client and the instance once the client's side switched
/// too (bytes the instance sent right after its `101` go first).
fn tunnel(client: OnUpgrade, (mut instance, early): (tokio::net::TcpStream, bytes::BytesMut)) {
    tokio::spawn(async move {
        let Ok(client) = client.await else {
            return;
        };
        let mut client = TokioIo::new(client);
        if !early.is_empty() && client.write_all(&early).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut instance).await;
    });
}
