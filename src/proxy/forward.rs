//! Phase 4, forward: the request as the instance sees it, sent on a pooled connection; the
//! instance's answer as the client sees it; what a 2xx teaches; tunnels after a `101`.
//!
//! Upstream request: origin-form URI, HTTP/1.1, hop-by-hop headers removed (the upgrade
//! handshake kept on upgrade requests), `Expect` removed (the gateway answers it), the
//! `X-Forwarded-*` values appended, the request id set. A connect error marks the instance down
//! (passive health check) and, with `when_instance_down: reassign`, sends the untouched request
//! to the next healthy instance. The route's `max_body` and read timeout hold until the instance
//! answered `101 Switching Protocols`; only the tunnel after it has neither.

use super::body::{Answer, Outgoing};
use super::hygiene;
use super::locate::{reassign, Learn};
use super::observe::{Observation, Target, REQUEST_ID};
use super::upstream::{self, Failure, SendError, Timeouts};
use crate::errors::GatewayError;
use crate::state::{Gateway, Snapshot};
use http::header::{self, HeaderValue};
use http::{Response, Uri, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::net::IpAddr;
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
    pub client: Option<IpAddr>,
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
        let mut request = Some(self.upstream_request(parts, body, upgrade, &obs.request_id));
        let route = &self.snap.config.routes[self.route];
        let mut resp = loop {
            let target = obs.target().ok_or(GatewayError::Internal)?;
            let group = &self.snap.config.groups[target.group];
            let timeouts = Timeouts {
                connect: route.connect_timeout,
                read: route.read_timeout,
                idle: group.idle_timeout,
            };
            let addr = group.instances[target.instance].addr;
            let req = request.take().ok_or(GatewayError::Internal)?;
            match upstream::send(addr, req, timeouts).await {
                Ok(answered) => break answered,
                Err(failure) => {
                    request = self.failed(failure, target, source, obs)?;
                }
            }
        };
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
        let upgraded = status == http::StatusCode::SWITCHING_PROTOCOLS;
        hygiene::remove_hop_by_hop(resp.headers_mut(), upgraded);
        if upgraded {
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

    /// A failed attempt: counted, the instance marked down on a connect error, and the request
    /// back for another instance when the rules move it; otherwise the error to answer.
    fn failed(
        &self,
        failure: Failure,
        target: Target,
        source: &'static str,
        obs: &mut Observation,
    ) -> Result<Option<http::Request<Outgoing>>, Refused> {
        let error = match failure.error {
            SendError::Connect(reason) => {
                self.connect_failed(target, reason);
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
                GatewayError::UpstreamConnect
            }
            SendError::Timeout => {
                obs.upstream_outcome = Some("timeout");
                GatewayError::UpstreamTimeout
            }
            SendError::TooLarge => GatewayError::BodyTooLarge,
            SendError::ClientBody => GatewayError::BadRequest("the request body could not be read"),
            SendError::Broken(reason) => {
                tracing::debug!(%reason, "upstream connection failed");
                obs.upstream_outcome = Some("reset");
                GatewayError::UpstreamBroken
            }
        };
        let close = matches!(
            error,
            GatewayError::BodyTooLarge | GatewayError::BadRequest(_)
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

    /// Counts the failed connect and marks the instance down (passive health check).
    fn connect_failed(&self, target: Target, reason: String) {
        let group = &self.snap.config.groups[target.group];
        let instance = &group.instances[target.instance].name;
        self.gateway
            .metrics
            .upstream_requests
            .with_label_values(&[&group.name, instance, "connect_error"])
            .inc();
        let health = &self.snap.groups[target.group].health[target.instance];
        if let Some(healthy) = health.mark_down(reason) {
            self.gateway.health_changed(&group.name, instance, healthy);
        }
    }

    /// The request as the instance gets it.
    fn upstream_request(
        &self,
        parts: &mut http::request::Parts,
        body: Outgoing,
        upgrade: bool,
        request_id: &HeaderValue,
    ) -> http::Request<Outgoing> {
        let mut req = http::Request::new(body);
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = origin_form(&parts.uri);
        *req.version_mut() = Version::HTTP_11;
        let headers = req.headers_mut();
        // The client's headers are not needed after this: moved, not copied.
        *headers = std::mem::take(&mut parts.headers);
        hygiene::remove_hop_by_hop(headers, upgrade);
        headers.remove(header::EXPECT);
        if !headers.contains_key(header::HOST) {
            // HTTP/2 carries the host in the URI's authority.
            if let Some(host) = parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                headers.insert(header::HOST, host);
            }
        }
        hygiene::add_forwarded(headers, self.client, self.proto);
        if upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        headers.insert(REQUEST_ID, request_id.clone());
        req
    }
}

/// `/path?query` of any request target.
fn origin_form(uri: &Uri) -> Uri {
    if uri.scheme().is_none() && uri.authority().is_none() {
        return uri.clone();
    }
    uri.path_and_query()
        .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()))
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
