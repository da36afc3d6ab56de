//! The HTTP data path of the fleet and edge listeners, on hyper: one hyper server connection per
//! client connection (HTTP/1.1; HTTP/2 when TLS negotiated `h2`), one task per connection, and
//! upstream connections pooled per thread ([`upstream`]). pingora only accepts the connection
//! (and terminates TLS) and hands the stream over ([`ProxyApp`], a pingora `ServerApp`).
//!
//! A request walks down these phases, each a module that owns its types:
//! 1. **admit** (here): framing that two parsers could read differently (400, connection closed),
//!    the route by longest path prefix (404), the deny list (403), `max_body` by `Content-Length`
//!    (413).
//! 2. **locate** ([`locate`]): the instance: round robin for `balance`; for `workspace`, the
//!    workspace from header → session id → query → JSON body, resolved learned → pin → rule,
//!    down → reject or reassign.
//! 3. **verify** ([`webhook`], webhook routes only): signature headers before the body, then the
//!    signature over the raw bytes, replays, instance learning, hub publishes.
//! 4. **forward** ([`forward`]): hop-by-hop headers removed, `X-Forwarded-*` and the request id
//!    added, `Expect` answered here (hyper sends `100 Continue` when the body is first read, so a
//!    request refused earlier never gets one); sent on a pooled connection; a connect error marks
//!    the instance down (and with `reassign` moves the request); a `101` turns the connection into
//!    a tunnel, and only then are the request's limits lifted.
//! 5. **observe** ([`observe`]): metrics, in-flight count and the access log line, recorded when
//!    the answer's body ends ([`body::Answer`]).
//!
//! Every request carries a request id (the client's `X-Request-Id` if well-formed, else a new
//! one; see [`crate::access_log::request_id`]), sent upstream and returned to the client.

mod body;
mod forward;
mod framing;
mod h1;
pub mod hygiene;
mod locate;
mod observe;
mod upstream;
pub mod webhook;

use crate::config::Treatment;
use crate::errors::GatewayError;
use crate::state::{Gateway, Snapshot};
use async_trait::async_trait;
use body::{Answer, Outgoing};
use bytes::Bytes;
use forward::Refused;
use http::{HeaderValue, Request, Response};
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use locate::{Learn, Located};
use observe::{Observation, Target, REQUEST_ID};
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

/// One listener's data path.
pub struct ProxyApp {
    listener: Arc<str>,
    gateway: Arc<Gateway>,
    /// `X-Forwarded-Proto`: `https` when the listener terminates TLS.
    proto: &'static str,
}

impl ProxyApp {
    pub fn new(listener: String, gateway: Arc<Gateway>, tls: bool) -> Self {
        Self {
            listener: listener.into(),
            gateway,
            proto: if tls { "https" } else { "http" },
        }
    }
}

#[async_trait]
impl ServerApp for ProxyApp {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let client = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let h2 = stream.selected_alpn_proto() == Some(pingora::protocols::ALPN::H2);
        let (stream, ambiguous) = framing::Guarded::new(stream);
        let app = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let (app, ambiguous) = (app.clone(), ambiguous.clone());
            async move { Ok::<_, Infallible>(app.handle(req, client, &ambiguous).await) }
        });
        let io = TokioIo::new(stream);
        let mut shutdown = shutdown.clone();
        if h2 {
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .serve_connection(io, service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return None,
                _ = shutdown.changed() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        } else {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(io, service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return None,
                _ = shutdown.changed() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        }
        None
    }
}

/// What the request carries from the phase that chose its instance to forwarding.
struct Chosen {
    instance: usize,
    body: Outgoing,
    learn: Learn,
    /// Where the workspace was found, for routing metrics if it has to move.
    source: &'static str,
}

impl ProxyApp {
    async fn handle(
        &self,
        req: Request<Incoming>,
        client: Option<IpAddr>,
        ambiguous: &framing::Ambiguous,
    ) -> Response<Answer> {
        let (mut parts, body) = req.into_parts();
        let snap = self.gateway.snapshot();
        let request_id = crate::access_log::request_id(parts.headers.get(&REQUEST_ID));
        let mut obs = Observation::new(
            self.gateway.clone(),
            snap.clone(),
            self.listener.clone(),
            &parts,
            request_id,
        );
        // A refused request that carried a body closes its connection: what of the body was not
        // read is never parsed as a request.
        let has_body = body.size_hint().upper() != Some(0);
        let walked = match ambiguous.is_set() {
            true => Err(Refused {
                error: GatewayError::BadRequest("ambiguous request framing"),
                close: true,
            }),
            false => self.walk(&snap, &mut parts, body, client, &mut obs).await,
        };
        let mut resp = match walked {
            Ok(resp) => resp,
            Err(mut refused) => {
                refused.close |= has_body;
                refusal(refused, &snap, &obs)
            }
        };
        resp.headers_mut()
            .insert(REQUEST_ID, obs.request_id.clone());
        obs.status = resp.status().as_u16();
        resp.map(|body| body.observed(obs))
    }

    /// Phases 1–4.
    async fn walk(
        &self,
        snap: &Arc<Snapshot>,
        parts: &mut http::request::Parts,
        mut body: Incoming,
        client: Option<IpAddr>,
        obs: &mut Observation,
    ) -> Result<Response<Answer>, Refused> {
        hygiene::check_framing(&parts.headers).map_err(|error| Refused { error, close: true })?;
        let path = parts.uri.path();
        let (index, route) = snap
            .route_for(&self.listener, path)
            .ok_or(GatewayError::RouteNotFound)?;
        obs.route = Some(index);
        if hygiene::is_denied(&route.deny, path) {
            return Err(GatewayError::RouteDenied.into());
        }
        let chosen = match route.treatment {
            Treatment::Webhook => match self.verify(snap, index, parts, &mut body, obs).await? {
                Some(chosen) => chosen,
                None => return Ok(duplicate()),
            },
            _ if hygiene::content_length(&parts.headers).is_some_and(|l| l > route.max_body) => {
                return Err(GatewayError::BodyTooLarge.into());
            }
            Treatment::Balance => Chosen {
                instance: locate::balance(snap, route.group)?,
                body: Outgoing::streamed(body, route.max_body),
                learn: Learn::Nothing,
                source: "none",
            },
            Treatment::Workspace => {
                match locate::locate(&self.gateway, snap, route, parts, &mut body).await {
                    Ok(located) => {
                        obs.workspace = located.workspace;
                        chosen(located, body, route.max_body)
                    }
                    Err(refusal) => {
                        if let Some(instance) = refusal.down {
                            obs.set_target(Target {
                                group: route.group,
                                instance,
                            });
                            obs.upstream_outcome = Some("unhealthy");
                        }
                        return Err(refusal.error.into());
                    }
                }
            }
        };
        obs.set_target(Target {
            group: route.group,
            instance: chosen.instance,
        });
        let request = forward::Prepared {
            gateway: &self.gateway,
            snap,
            route: index,
            client,
            proto: self.proto,
        };
        request
            .forward(parts, chosen.body, chosen.learn, chosen.source, obs)
            .await
    }

    /// Phase 3 for webhook routes: the chosen instance and verified body, or `None` for a replay.
    async fn verify(
        &self,
        snap: &Snapshot,
        index: usize,
        parts: &mut http::request::Parts,
        body: &mut Incoming,
        obs: &mut Observation,
    ) -> Result<Option<Chosen>, Refused> {
        let verdict = webhook::verify(&self.gateway, snap, index, &mut parts.headers, body).await;
        let (verdict, result) = verdict.map_err(|rejected| {
            obs.webhook = Some(rejected.result);
            // Nothing of a refused delivery is read further: the connection closes after the answer.
            Refused {
                error: rejected.error,
                close: true,
            }
        })?;
        obs.webhook = Some(result);
        let webhook::Verdict::Forward { body, dedupe_key } = verdict else {
            return Ok(None);
        };
        let group = snap.config.routes[index].group;
        let instance = locate::balance(snap, group).map_err(webhook::defer)?;
        Ok(Some(Chosen {
            instance,
            body: Outgoing::Full(Some(body)),
            learn: Learn::Delivered(dedupe_key),
            source: "none",
        }))
    }
}

/// The gateway's own answer to a refused request.
fn refusal(refused: Refused, snap: &Snapshot, obs: &Observation) -> Response<Answer> {
    let is_webhook = obs
        .route
        .is_some_and(|r| snap.config.routes[r].treatment == Treatment::Webhook);
    let error = match is_webhook && obs.target().is_some() {
        // A verified delivery Laravel could not take: the sender retries a 429.
        true => webhook::defer(refused.error),
        false => refused.error,
    };
    let (status, code, fault) = error.parts();
    match fault {
        crate::errors::Fault::Client => tracing::debug!(status, code, "rejected request"),
        _ => {
            let id = obs.request_id.to_str().unwrap_or_default();
            tracing::warn!(
                status,
                code,
                fault = fault.as_str(),
                request_id = id,
                "request failed"
            )
        }
    }
    let mut resp = error.http_response().map(Answer::full);
    if refused.close {
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn chosen(located: Located, body: Incoming, max_body: u64) -> Chosen {
    Chosen {
        instance: located.instance,
        body: match located.body {
            Some(read) => Outgoing::Full(Some(read)),
            None => Outgoing::streamed(body, max_body),
        },
        learn: located.learn,
        source: located.source,
    }
}

/// A webhook delivered before: 200 + `X-Fleetgate-Duplicate`, nothing forwarded.
fn duplicate() -> Response<Answer> {
    let body = Bytes::from_static(br#"{"status":"duplicate"}"#);
    let mut resp = Response::new(Answer::full(body));
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("x-fleetgate-duplicate", HeaderValue::from_static("true"));
    resp
}
