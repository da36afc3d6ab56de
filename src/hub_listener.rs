//! The hub's listener: WebSocket upgrades at `/app/{key}` and the Pusher HTTP API under
//! `/apps/{id}/…`, as a pingora `HttpServerApp` (pingora's `ServeHttp` cannot do WebSockets).
//!
//! HTTP API (every request checks `auth_key`, `auth_timestamp` ±600 s, `body_md5`, and
//! `auth_signature` in constant time; errors are JSON with 400/401/403/404/413):
//! - `POST /apps/{id}/events` and `/batch_events` (≤ 10 events, ≤ 100 channels, `socket_id` excluded)
//! - `GET /apps/{id}/channels` (`filter_by_prefix`, `info=user_count`)
//! - `GET /apps/{id}/channels/{name}` (`info=user_count,subscription_count,cache`)
//! - `GET /apps/{id}/channels/{name}/users`
//! - `POST /apps/{id}/users/{user_id}/terminate_connections`
//! - `GET /apps/{id}/connections` (Reverb's: `{"connections": N}`, cluster-wide when clustered)
//!
//! Probes: `GET /up` (200 `ready`, 503 while starting or draining), and with `health: true` on
//! the listener `GET /healthz` and `GET /readyz` as the admin listener answers them.
//!
//! The listener's limits hold here as on the proxy listeners: a request head must be whole within
//! `header_timeout` (a kept-alive API connection may first wait `idle_timeout`), and a head over
//! `max_head_size` or a target over `max_uri_length` is refused (431 / 414) and the connection
//! closed.

use crate::hub::fanout::Hub;
use crate::hub::{api, session};
use async_trait::async_trait;
use bytes::Bytes;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use pingora_http::ResponseHeader;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

pub struct HubApp {
    pub hub: Arc<Hub>,
    /// For the hub listener's settings (its trusted proxies).
    pub gateway: Arc<crate::state::Gateway>,
    pub listener: String,
}

#[async_trait]
impl HttpServerApp for HubApp {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let limits = {
            let snap = self.gateway.snapshot();
            snap.config.listener(&self.listener)?.limits
        };
        // A reused connection carries the keep-alive time set below; a new one waits for its
        // first head only. (pingora's own timer is per read: a head sent a byte at a time would
        // never end.)
        let wait = match session.get_keepalive() {
            Some(_) => limits.idle_timeout + limits.header_timeout,
            None => limits.header_timeout,
        };
        match tokio::time::timeout(wait, session.read_request()).await {
            Ok(Ok(true)) => {}
            Ok(_) => return None,
            Err(_) => {
                self.closed(&session, "header_timeout");
                return None;
            }
        }
        if let Err(error) = crate::proxy::hygiene::check_head_size(session.req_header(), &limits) {
            let (status, code, _) = error.parts();
            self.closed(&session, code_reason(code));
            respond(&mut session, status, error.body()).await;
            return None;
        }
        let path = session.req_header().uri.path().to_string();
        if let Some(key) = path.strip_prefix("/app/") {
            self.upgrade(session, key, shutdown.clone()).await;
            return None;
        }
        let reply = match self.probe(&session, &path) {
            Some(reply) => reply,
            None => api::handle(&self.hub, &mut session).await,
        };
        session.set_keepalive(Some(limits.idle_timeout.as_secs()));
        respond(&mut session, reply.status, reply.body).await;
        let settings = HttpPersistentSettings::for_session(&session);
        session
            .finish()
            .await
            .ok()
            .flatten()
            .map(|s| ReusedHttpStream::from_reusable_stream(s, settings))
    }
}

/// The `fleetgate_connections_closed_total` reason of a head refused for its size.
fn code_reason(code: &str) -> &'static str {
    match code {
        "request.uri_too_long" => "uri_too_long",
        _ => "header_too_large",
    }
}

impl HubApp {
    /// A probe's answer for a GET: `/up` always (Reverb's and Laravel's health path), `/healthz`
    /// and `/readyz` when the listener has `health: true`.
    fn probe(&self, session: &ServerSession, path: &str) -> Option<api::Reply> {
        // The path first: API requests are told no without a look at the configuration.
        let answer = self.gateway.probe(path)?;
        if session.req_header().method != http::Method::GET {
            return None;
        }
        let snap = self.gateway.snapshot();
        if path != "/up" && !snap.config.listener(&self.listener)?.health {
            return None;
        }
        Some(api::Reply {
            status: answer.status.as_u16(),
            body: answer.body.into(),
            result: "probe",
        })
    }

    /// Counts a connection the listener closed by its limits (and logs it).
    fn closed(&self, session: &ServerSession, reason: &str) {
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        crate::proxy::connection_closed(&self.gateway, &self.listener, reason, client);
    }

    async fn upgrade(&self, session: ServerSession, key: &str, shutdown: ShutdownWatch) {
        let Some((stream, origin)) = handshake(session).await else {
            return;
        };
        let client = self.untrusted_client(&stream);
        let hub = self.hub.clone();
        let Some(app) = hub.app_by_key(key) else {
            return session::reject(stream, &hub, None, 4001, "App key does not exist").await;
        };
        let conf = app.conf();
        let allowed = conf
            .allowed_origins
            .iter()
            .any(|o| o == "*" || Some(o) == origin.as_ref());
        if !allowed {
            return session::reject(stream, &hub, Some(&app), 4009, "Origin not allowed").await;
        }
        // One address may hold only part of the app's connections (4004, as over the quota).
        let admitted = hub
            .admission
            .admit(client, usize::MAX, conf.max_connections_per_ip);
        let Ok(slot) = admitted else {
            let message = "Over connection quota for this address";
            return session::reject(stream, &hub, Some(&app), 4004, message).await;
        };
        if !app.open_connection(conf.max_connections) {
            return session::reject(stream, &hub, Some(&app), 4004, "Over connection quota").await;
        }
        drop(conf);
        // A plain TCP socket can be written to directly by the fan-out (TLS needs its session).
        let direct = stream
            .as_any()
            .is::<pingora::protocols::l4::stream::Stream>()
            .then(|| stream.id());
        // A task of its own: the WebSocket outlives this HTTP exchange, and the connection
        // then holds only the session's state, not pingora's request handling around it.
        tokio::spawn(async move {
            let _slot = slot;
            session::serve(stream, direct, hub, app, shutdown).await;
        });
    }

    /// The client's address, or `None` when it is a trusted proxy: a proxy carries many
    /// clients, so only the app's total applies to it.
    fn untrusted_client(&self, stream: &Stream) -> Option<IpAddr> {
        let client = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()))?;
        let snap = self.gateway.snapshot();
        let trusted = snap
            .config
            .listener(&self.listener)
            .is_some_and(|l| l.trust.trusts(client));
        (!trusted).then_some(client)
    }
}

/// Answers a WebSocket upgrade with 101 (400 when it is not one) and hands over the stream and
/// the request's `Origin`.
async fn handshake(mut session: ServerSession) -> Option<(Stream, Option<String>)> {
    let headers = &session.req_header().headers;
    let ws_key = headers
        .get("sec-websocket-key")
        .map(|k| derive_accept_key(k.as_bytes()));
    let (Some(accept), true) = (ws_key, session.is_upgrade_req()) else {
        let body = api::error_body("hub.not_websocket", "expected a WebSocket upgrade");
        respond(&mut session, 400, body).await;
        return None;
    };
    let origin = headers
        .get("origin")
        .and_then(|o| o.to_str().ok())
        .map(str::to_string);
    let mut resp = ResponseHeader::build(101, Some(3)).ok()?;
    resp.insert_header("upgrade", "websocket").ok()?;
    resp.insert_header("connection", "Upgrade").ok()?;
    resp.insert_header("sec-websocket-accept", accept).ok()?;
    session.write_response_header(Box::new(resp)).await.ok()?;
    let ServerSession::H1(h1) = session else {
        return None;
    };
    // Everything written so far is on the socket before the fan-out may write to it directly.
    let mut stream = h1.into_inner();
    stream.flush().await.ok()?;
    Some((stream, origin))
}

async fn respond(session: &mut ServerSession, status: u16, body: Bytes) {
    let Ok(header) = crate::errors::json_header(status, body.len(), None) else {
        return;
    };
    if session
        .write_response_header(Box::new(header))
        .await
        .is_ok()
    {
        let _ = session.write_response_body(body, true).await;
    }
}
