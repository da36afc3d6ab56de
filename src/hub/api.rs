//! The Pusher HTTP API (what Laravel's `pusher` broadcaster and the `pusher` server libraries call).

use super::events as publishing;
use super::fanout::{AppState, Hub};
use super::{auth, channel::ChannelName};
use bytes::{Bytes, BytesMut};
use errors::ApiError;
use pingora::protocols::http::ServerSession;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

mod errors;

/// The smallest limit on an API request body; an app whose batches may be larger gets more
/// (see [`body_limit`]).
const MIN_API_BODY_LIMIT: usize = 1 << 20;
/// How long an API publish waits for the cluster to take it before answering anyway.
const PUBLISH_ACK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Clustered publishes not yet taken by Redis.
type Acks = Vec<tokio::sync::oneshot::Receiver<()>>;

pub fn error_body(code: &str, message: &str) -> Bytes {
    Bytes::from(
        json!({"message": message, "error": {"code": code, "message": message, "fault": "client"}})
            .to_string(),
    )
}

/// One API answer: status, JSON body, and the result it is counted as (`ok` or the error code).
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    pub result: &'static str,
}

fn fail(error: ApiError) -> Reply {
    let (status, code) = error.status_and_code();
    Reply {
        status,
        body: error_body(code, &error.to_string()),
        result: code,
    }
}

fn ok(body: Bytes) -> Reply {
    Reply {
        status: 200,
        body,
        result: "ok",
    }
}

/// Answers one API request and counts its result by app (`unknown` for an unknown app id).
pub async fn handle(hub: &Hub, session: &mut ServerSession) -> Reply {
    let (app, reply) = route(hub, session).await;
    hub.metrics
        .api_requests
        .with_label_values(&[
            app.as_ref().map_or("unknown", |a| a.id.as_str()),
            reply.result,
        ])
        .inc();
    reply
}

/// Routes one API request; returns the app it named (if configured) and the answer.
async fn route(hub: &Hub, session: &mut ServerSession) -> (Option<Arc<AppState>>, Reply) {
    let req = session.req_header();
    let method = req.method.as_str().to_string();
    let path = req.uri.path().to_string();
    let query = req.uri.query().unwrap_or("").to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["apps", app_id, rest @ ..] = segments.as_slice() else {
        return (None, fail(ApiError::NotFound));
    };
    let Some(app) = hub.app_by_id(app_id) else {
        return (None, fail(ApiError::UnknownApp));
    };
    let body = match read_body(session, body_limit(&app.conf())).await {
        Ok(body) => body,
        Err(response) => return (Some(app), response),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if let Err(e) = auth::verify_api_request(
        &app.conf().key,
        &app.conf().secret,
        &method,
        &path,
        &query,
        &body,
        now,
    ) {
        return (Some(app), fail(ApiError::Auth(e)));
    }
    if !app.take_api_request() {
        return (Some(app), fail(ApiError::RateLimited));
    }
    // Clustered publishes are answered once Redis took them, so events published one after the
    // other through different nodes keep their order.
    let mut acks = Acks::new();
    let reply = match (method.as_str(), rest) {
        ("POST", ["events"]) => events(hub, &app, &body, &mut acks),
        ("POST", ["batch_events"]) => batch_events(hub, &app, &body, &mut acks),
        ("GET", ["channels"]) => channels(&View::of(hub, &app, None).await, &query),
        ("GET", ["channels", name]) => {
            channel_info(&app, &View::of(hub, &app, Some(name)).await, name, &query)
        }
        ("GET", ["channels", name, "users"]) => {
            channel_users(&View::of(hub, &app, Some(name)).await, name)
        }
        ("POST", ["users", user, "terminate_connections"]) => terminate(hub, &app, user).await,
        ("GET", ["connections"]) => connections(hub, &app).await,
        _ => fail(ApiError::NotFound),
    };
    for ack in acks {
        let _ = tokio::time::timeout(PUBLISH_ACK_WAIT, ack).await;
    }
    (Some(app), reply)
}

/// The largest API request body `app` reads: a whole batch of events at the message limit (their
/// data JSON-escaped, with room for their channel names), at least [`MIN_API_BODY_LIMIT`].
fn body_limit(app: &crate::config::App) -> usize {
    let event = 2 * app.max_message_size + 32 * 1024;
    app.max_batch_size
        .saturating_mul(event)
        .max(MIN_API_BODY_LIMIT)
}

async fn read_body(session: &mut ServerSession, limit: usize) -> Result<Bytes, Reply> {
    let mut buf = BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) if buf.len() + chunk.len() > limit => {
                return Err(fail(ApiError::BodyTooLarge))
            }
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            Ok(None) => return Ok(buf.freeze()),
            Err(_) => return Err(fail(ApiError::BodyUnreadable)),
        }
    }
}

#[derive(Deserialize)]
struct Event {
    name: String,
    data: Value,
    channel: Option<String>,
    channels: Option<Vec<String>>,
    socket_id: Option<String>,
}

/// An API event in the shape [`Hub::publish_event`] takes.
struct Parsed {
    name: String,
    data: String,
    channels: Vec<String>,
    except: Option<String>,
}

impl Parsed {
    fn from(event: Event) -> Result<Self, Reply> {
        let channels: Vec<String> = match (event.channel, event.channels) {
            (Some(one), None) => vec![one],
            (None, Some(many)) => many,
            _ => {
                return Err(fail(ApiError::InvalidEvent(
                    "give exactly one of `channel` or `channels`",
                )))
            }
        };
        // `data` is a string on the wire; a JSON value is accepted and sent as its text.
        let data = match event.data {
            Value::String(s) => s,
            other => other.to_string(),
        };
        Ok(Self {
            name: event.name,
            data,
            channels,
            except: event.socket_id,
        })
    }

    fn event(&self) -> publishing::Event<'_> {
        publishing::Event {
            channels: &self.channels,
            name: &self.name,
            data: &self.data,
            except: self.except.as_deref(),
        }
    }
}

fn events(hub: &Hub, app: &AppState, body: &[u8], acks: &mut Acks) -> Reply {
    let Ok(event) = serde_json::from_slice::<Event>(body) else {
        return fail(ApiError::InvalidEvent(
            "the body must be an event object with name and data",
        ));
    };
    let event = match Parsed::from(event) {
        Ok(event) => event,
        Err(response) => return response,
    };
    match hub.publish_event(app, event.event()) {
        Ok(published) => {
            acks.extend(published);
            ok(Bytes::from_static(b"{}"))
        }
        Err(e) => fail(ApiError::Publish(e)),
    }
}

/// Publishes every event of the batch or, when one of them is refused, none.
fn batch_events(hub: &Hub, app: &AppState, body: &[u8], acks: &mut Acks) -> Reply {
    #[derive(Deserialize)]
    struct Batch {
        batch: Vec<Event>,
    }
    let Ok(batch) = serde_json::from_slice::<Batch>(body) else {
        return fail(ApiError::InvalidEvent(
            "the body must be {\"batch\": [events]}",
        ));
    };
    let limit = app.conf().max_batch_size;
    if batch.batch.len() > limit {
        return fail(ApiError::BatchTooLarge(limit));
    }
    let parsed: Result<Vec<Parsed>, Reply> = batch.batch.into_iter().map(Parsed::from).collect();
    let events = match parsed {
        Ok(events) => events,
        Err(response) => return response,
    };
    let checked: Result<Vec<_>, _> = events
        .iter()
        .map(|e| hub.check_event(app, e.event()))
        .collect();
    match checked {
        Ok(checked) => checked
            .into_iter()
            .for_each(|event| acks.extend(hub.publish_checked(app, event))),
        Err(e) => return fail(ApiError::Publish(e)),
    }
    ok(Bytes::from_static(b"{\"batch\":[]}"))
}

/// A decoded query parameter (the query already passed `verify_api_request`, so it parses).
fn param(query: &str, name: &str) -> Option<String> {
    auth::query_params(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn wants(query: &str, info: &str) -> bool {
    param(query, "info").is_some_and(|v| v.split(',').any(|p| p == info))
}

pub use crate::cluster::ChannelView;

type View = ChannelView;

impl View {
    /// `only`: the one channel asked about (this node's view then looks at no other).
    async fn of(hub: &Hub, app: &AppState, only: Option<&str>) -> Self {
        let cluster = match hub.cluster() {
            Some(cluster) => cluster.view(&app.id).await,
            None => None,
        };
        cluster.unwrap_or_else(|| Self::local(app, only))
    }

    fn local(app: &AppState, only: Option<&str>) -> Self {
        let (mut subscriptions, mut members) = (HashMap::new(), HashMap::new());
        let names = match only {
            Some(name) => vec![name.to_string()],
            None => app.channel_names(),
        };
        for name in names {
            let Some(ch) = app.channel(&name) else {
                continue;
            };
            if name.starts_with("presence-") {
                members.insert(
                    name.clone(),
                    ch.members().into_iter().map(|(id, _)| id).collect(),
                );
            }
            let count = ch.subscription_count();
            if count > 0 {
                subscriptions.insert(name, count);
            }
        }
        Self {
            subscriptions,
            members,
        }
    }

    fn user_count(&self, channel: &str) -> usize {
        self.members.get(channel).map_or(0, Vec::len)
    }
}

fn channels(view: &View, query: &str) -> Reply {
    let prefix = param(query, "filter_by_prefix").unwrap_or_default();
    let user_count = wants(query, "user_count");
    if user_count && !prefix.starts_with("presence-") {
        return fail(ApiError::InvalidQuery(
            "info=user_count needs filter_by_prefix=presence-",
        ));
    }
    let mut out = Map::new();
    // `#server-to-user-…` channels are the hub's own, not the app's.
    let listed = view.subscriptions.keys().filter(|n| !n.starts_with('#'));
    for name in listed.filter(|n| n.starts_with(&prefix)) {
        let info = match user_count {
            true => json!({"user_count": view.user_count(name)}),
            false => json!({}),
        };
        out.insert(name.clone(), info);
    }
    ok(Bytes::from(json!({"channels": out}).to_string()))
}

fn channel_info(app: &AppState, view: &View, name: &str, query: &str) -> Reply {
    let Ok(channel) = ChannelName::parse(name) else {
        return fail(ApiError::InvalidChannel("invalid channel name"));
    };
    let subscriptions = view.subscriptions.get(name).copied().unwrap_or(0);
    let mut out = json!({"occupied": subscriptions > 0});
    if wants(query, "subscription_count") {
        out["subscription_count"] = json!(subscriptions);
    }
    if wants(query, "user_count") {
        if !channel.is_presence() {
            return fail(ApiError::InvalidQuery(
                "user_count is only available for presence channels",
            ));
        }
        out["user_count"] = json!(view.user_count(name));
    }
    if wants(query, "cache") && channel.is_cache() {
        let cached = app.channel(name).and_then(|c| c.last_event());
        if let Some(frame) = cached {
            if let Ok(value) = serde_json::from_str::<Value>(&frame.as_text()) {
                out["cache"] = json!({"event": value["event"], "data": value["data"], "ttl": null});
            }
        }
    }
    ok(Bytes::from(out.to_string()))
}

fn channel_users(view: &View, name: &str) -> Reply {
    if !ChannelName::parse(name).is_ok_and(|c| c.is_presence()) {
        return fail(ApiError::InvalidChannel(
            "users are only listed for presence channels",
        ));
    }
    let users: Vec<Value> = view
        .members
        .get(name)
        .map(|ids| ids.iter().map(|id| json!({"id": id})).collect())
        .unwrap_or_default();
    ok(Bytes::from(json!({"users": users}).to_string()))
}

/// Reverb's `GET /apps/{id}/connections`: `{"connections": N}`, over the cluster when there is
/// one and its link is up.
async fn connections(hub: &Hub, app: &AppState) -> Reply {
    let here = app.connections.load(std::sync::atomic::Ordering::Relaxed);
    let count = match hub.cluster() {
        Some(cluster) => cluster.connections(&app.id).await.unwrap_or(here),
        None => here,
    };
    ok(json!({ "connections": count }).to_string().into())
}

/// Closes the user's sockets on every node (clustered), else on this one.
async fn terminate(hub: &Hub, app: &AppState, user: &str) -> Reply {
    let everywhere = match hub.cluster() {
        Some(cluster) => cluster.terminate(&app.id, user).await,
        None => false,
    };
    if !everywhere {
        app.terminate(user);
    }
    ok(Bytes::from_static(b"{}"))
}
