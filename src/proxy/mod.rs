//! The HTTP data path of the fleet and edge listeners, on hyper: one hyper server connection per
//! client connection (HTTP/1.1; HTTP/2 when TLS negotiated `h2`), one task per connection, and
//! upstream connections pooled per thread ([`upstream`]). pingora only accepts the connection
//! (and terminates TLS) and hands the stream over ([`ProxyApp`], a pingora `ServerApp`;
//! the connection's life, its limits and deadlines: `connection`).
//!
//! A request walks down these phases, each a module that owns its types:
//! 1. **admit** (here): framing that two parsers could read differently (400, connection closed),
//!    the canonical path ([`hygiene::canonical_path`]: 400 `request.bad_path` when its meaning
//!    depends on the decoder; what routes, deny lists and the instance see), the route by longest
//!    path prefix (404), the deny list (403), `max_body` by `Content-Length`
//!    (413).
//! 2. **locate** ([`locate`]): the instance: round robin for `balance`; for `workspace`, the
//!    workspace from header → session id → query → JSON body, resolved learned → pin → rule,
//!    down → reject or reassign.
//! 3. **verify** ([`webhook`], webhook routes only): signature headers before the body, then the
//!    signature over the raw bytes, replays, instance learning, hub publishes; a verified delivery
//!    Laravel cannot take goes to the spool (`verified`, [`spooled`], [`redelivery`]).
//! 4. **forward** ([`forward`]): hop-by-hop headers removed, `X-Forwarded-*` and the request id
//!    added, `Expect` answered here (hyper sends `100 Continue` when the body is first read, so a
//!    request refused earlier never gets one); sent on a pooled connection; a connect error marks
//!    the instance down (and with `reassign` moves the request); a `101` turns the connection into
//!    a tunnel, and only then are the request's limits lifted.
//! 5. **observe** ([`observe`]): metrics, in-flight count and the access log line, recorded when
//!    the answer's body ends ([`answer::Answer`]).
//!
//! Every request carries a request id (the client's `X-Request-Id` if well-formed, else a new
//! one; see [`crate::access_log::request_id`]), sent upstream and returned to the client.

mod answer;
pub mod app_webhooks;
mod coarse_timer;
mod connection;
mod forward;
pub(crate) mod framing;
pub(crate) mod h1;
pub mod hygiene;
mod locate;
mod observe;
mod probe;
pub(crate) mod proxy_protocol;
pub mod redelivery;
mod request_body;
pub(crate) mod spooled;
mod upstream;
mod verified;
pub mod webhook;

pub(crate) use connection::connection_closed;
use verified::{Kept, Verified};

use crate::config::Treatment;
use crate::errors::GatewayError;
use crate::routing::budget::Permit;
use crate::state::{Gateway, Snapshot};
use answer::Answer;
use async_trait::async_trait;
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
use request_body::{ClientBody, Outgoing};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The most a client connection's read buffer holds.
const MAX_READ_BUF: usize = 64 * 1024;

/// One listener's data path.
pub struct ProxyApp {
    listener: Arc<str>,
    gateway: Arc<Gateway>,
    /// `X-Forwarded-Proto`: `https` when the listener terminates TLS.
    proto: &'static str,
    admission: Arc<crate::admission::Admission>,
}

impl ProxyApp {
    pub fn new(listener: String, gateway: Arc<Gateway>, tls: bool) -> Self {
        Self {
            listener: listener.into(),
            gateway,
            proto: if tls { "https" } else { "http" },
            admission: Arc::default(),
        }
    }
}

/// What every request on one client connection shares.
struct Connection {
    app: Arc<ProxyApp>,
    /// The client's address as an `X-Forwarded-For` element, formatted once.
    client: Option<HeaderValue>,
    /// The peer's address (the PROXY header's, on such listeners).
    peer: Option<IpAddr>,
    /// The peer is a trusted proxy: the `X-Forwarded-*` it sends are believed.
    trusted: bool,
    limits: crate::config::ListenerLimits,
    trust: crate::config::Trust,
    heads: framing::Heads,
    /// The current request's route's `write_timeout` in milliseconds, for [`framing::Guarded`].
    write_timeout: Arc<AtomicU64>,
}

/// What the request carries from the phase that chose its instance to forwarding.
struct Chosen {
    instance: usize,
    body: Outgoing,
    learn: Learn,
    /// Where the workspace was found, for routing metrics if it has to move.
    source: &'static str,
    /// The workspace's request in flight ([`ProxyApp::budget`]), held until the instance answered.
    permit: Option<Permit>,
}

impl ProxyApp {
    async fn handle(&self, req: Request<Incoming>, conn: &Connection) -> Response<Answer> {
        conn.heads.handled();
        let (mut parts, body) = req.into_parts();
        let snap = self.gateway.snapshot();
        let request_id = crate::access_log::request_id(parts.headers.get(&REQUEST_ID));
        let client = match conn.trusted {
            true => hygiene::forwarded_client(&parts.headers, &conn.trust).or(conn.peer),
            false => conn.peer,
        };
        let mut obs = Observation::new(
            self.gateway.clone(),
            snap.clone(),
            self.listener.clone(),
            &parts,
            request_id,
        );
        obs.client = client;
        // A refused request that carried a body closes its connection: what of the body was not
        // read is never parsed as a request.
        let has_body = body.size_hint().upper() != Some(0);
        let walked = match conn.heads.is_ambiguous() {
            true => Err(Refused {
                error: GatewayError::BadRequest("ambiguous request framing"),
                close: true,
            }),
            false => match probe::answer(&self.gateway, &snap, &self.listener, &parts) {
                Some(answer) => Ok(answer),
                None => self.walk(&snap, &mut parts, body, conn, &mut obs).await,
            },
        };
        let mut resp = match walked {
            Ok(resp) => resp,
            Err(mut refused) => {
                refused.close |= has_body;
                refusal(refused, &snap, &mut obs)
            }
        };
        if let Some(route) = obs.route {
            let timeout = snap.config.routes[route].write_timeout;
            conn.write_timeout
                .store(timeout.as_millis() as u64, Ordering::Relaxed);
        }
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
        body: Incoming,
        conn: &Connection,
        obs: &mut Observation,
    ) -> Result<Response<Answer>, Refused> {
        let (index, route) = self.admit(snap, parts, conn, obs)?;
        let mut body = ClientBody::new(body, route.body_timeout);
        // A verified webhook's request, kept to be spooled if Laravel does not take it.
        let mut kept = None;
        let chosen = match route.treatment {
            Treatment::Webhook => match self.verify(snap, index, parts, &mut body, obs).await? {
                Verified::Forward(chosen, keep) => {
                    kept = keep;
                    chosen
                }
                Verified::Duplicate => return Ok(duplicate()),
                Verified::Queue(body, key) => {
                    let kept = Box::new(Kept::from_parts(parts, body, key));
                    return self.spool(snap, index, kept, conn, obs).await;
                }
            },
            _ if hygiene::content_length(&parts.headers).is_some_and(|l| l > route.max_body) => {
                return Err(GatewayError::BodyTooLarge.into());
            }
            Treatment::Balance => Chosen {
                instance: locate::balance(snap, route.group)?,
                body: Outgoing::streamed(body, route.max_body),
                learn: Learn::Nothing,
                source: "none",
                permit: None,
            },
            Treatment::Workspace => self.workspace(snap, route, parts, body, obs).await?,
        };
        obs.set_target(Target {
            group: route.group,
            instance: chosen.instance,
        });
        let request = forward::Prepared {
            gateway: &self.gateway,
            snap,
            route: index,
            client: conn.client.as_ref(),
            believe_forwarded: conn.trusted,
            proto: self.proto,
        };
        let answered = request
            .forward(parts, chosen.body, chosen.learn, chosen.source, obs)
            .await;
        drop(chosen.permit);
        match kept {
            // Laravel did not take the verified delivery: the spool does.
            Some(kept) if spooled::unavailable(&answered) => {
                self.spool(snap, index, kept, conn, obs).await
            }
            _ => answered,
        }
    }

    /// Phases 1–2: a well-formed head, its canonical path, the route it takes and that route's
    /// access rules (deny list, `allow_from`, `require_token`).
    fn admit<'s>(
        &self,
        snap: &'s Snapshot,
        parts: &mut http::request::Parts,
        conn: &Connection,
        obs: &mut Observation,
    ) -> Result<(usize, &'s crate::config::Route), Refused> {
        hygiene::check_framing(&parts.headers).map_err(|error| Refused { error, close: true })?;
        hygiene::check_head_size(parts, &conn.limits)
            .map_err(|error| Refused { error, close: true })?;
        // Routes and deny lists see the canonical path, and so does the instance.
        let path = hygiene::canonical_path(parts.uri.path())?;
        let (index, route) = snap
            .route_for(&self.listener, &path)
            .ok_or(GatewayError::RouteNotFound)?;
        obs.route = Some(index);
        if hygiene::is_denied(&route.deny, &path) {
            return Err(GatewayError::RouteDenied.into());
        }
        if let Some(allowed) = &route.allow_from {
            if !obs
                .client
                .is_some_and(|ip| allowed.iter().any(|c| c.contains(ip)))
            {
                return Err(GatewayError::ClientNotAllowed.into());
            }
        }
        if !route.require_token.is_empty() {
            hygiene::check_token(&parts.headers, &route.require_token)?;
        }
        if let std::borrow::Cow::Owned(path) = path {
            parts.uri = with_path(&parts.uri, path)?;
        }
        Ok((index, route))
    }

    /// Phase 3 of a workspace route: the instance that holds the workspace, within the
    /// workspace's budget (its permit is held until the instance answered).
    async fn workspace(
        &self,
        snap: &Snapshot,
        route: &crate::config::Route,
        parts: &http::request::Parts,
        mut body: ClientBody,
        obs: &mut Observation,
    ) -> Result<Chosen, Refused> {
        match locate::locate(&self.gateway, snap, route, parts, &mut body).await {
            Ok(located) => {
                obs.workspace = located.workspace;
                let permit = self.budget(snap, route.group, located.workspace)?;
                Ok(chosen(located, body, route.max_body, permit))
            }
            Err(refusal) => {
                if let Some(instance) = refusal.down {
                    obs.set_target(Target {
                        group: route.group,
                        instance,
                    });
                    obs.upstream_outcome = Some("unhealthy");
                }
                Err(refusal.error.into())
            }
        }
    }

    /// A request of workspace `ws` within its group's `workspace_limits` (429 beyond them).
    fn budget(
        &self,
        snap: &Snapshot,
        group: usize,
        ws: Option<u64>,
    ) -> Result<Option<Permit>, GatewayError> {
        let rules = snap.config.groups[group].routing.as_ref();
        let (Some(limits), Some(ws)) = (rules.and_then(|r| r.workspace_limits.as_ref()), ws) else {
            return Ok(None);
        };
        self.gateway
            .budgets
            .admit(group, ws, limits)
            .map(Some)
            .map_err(|retry_after_secs| GatewayError::WorkspaceRateLimited { retry_after_secs })
    }
}

/// The gateway's own answer to a refused request.
fn refusal(refused: Refused, snap: &Snapshot, obs: &mut Observation) -> Response<Answer> {
    let is_webhook = obs
        .route
        .is_some_and(|r| snap.config.routes[r].treatment == Treatment::Webhook);
    let error = match is_webhook && obs.target().is_some() {
        // A verified delivery Laravel could not take: the sender retries a 429.
        true => webhook::defer(refused.error),
        false => refused.error,
    };
    let (status, code, fault) = error.parts();
    obs.error = Some(code);
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

/// `uri` with its path replaced by `path` (the query kept).
fn with_path(uri: &http::Uri, mut path: String) -> Result<http::Uri, GatewayError> {
    if let Some(query) = uri.query() {
        path.push('?');
        path.push_str(query);
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(
        http::uri::PathAndQuery::from_maybe_shared(Bytes::from(path))
            .map_err(|_| GatewayError::BadPath("not a valid path"))?,
    );
    http::Uri::from_parts(parts).map_err(|_| GatewayError::BadPath("not a valid path"))
}

fn chosen(located: Located, body: ClientBody, max_body: u64, permit: Option<Permit>) -> Chosen {
    Chosen {
        instance: located.instance,
        body: match located.body {
            Some(read) => Outgoing::Full(Some(read)),
            None => Outgoing::streamed(body, max_body),
        },
        learn: located.learn,
        source: located.source,
        permit,
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
