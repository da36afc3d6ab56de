//! Verified webhooks and the spool (see [`crate::spool`]): when a delivery is spooled instead of
//! forwarded, what is kept of it, the sender's answer, and how it is sent to Laravel again.

use super::answer::Answer;
use super::forward::Refused;
use super::hygiene::Forwarding;
use super::request_body::Outgoing;
use super::upstream::{self, SendError, Timeouts};
use crate::signing;
use crate::spool::now_ms;
use crate::spool::record::Record;
use crate::state::Gateway;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;

/// The header carrying a spooled delivery's stable id, for Laravel to deduplicate on.
pub const DELIVERY_ID: HeaderName = HeaderName::from_static("x-fleetgate-delivery-id");
/// The header carrying the redelivery attempt (1, 2, …).
pub const ATTEMPT: HeaderName = HeaderName::from_static("x-fleetgate-attempt");

/// Laravel's answers that are not a verdict on the delivery ("not now", or a failure on its
/// side): the delivery is spooled (or tried again) instead of passed back to a sender that drops
/// an event on any 5xx. Only Laravel's own 4xx (but 408 and 429) reaches the sender as it is.
pub fn is_unavailable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429) || status.is_server_error()
}

/// Laravel did not take a forwarded delivery: it answered [`is_unavailable`], or the
/// exchange failed on its side (nothing the client did wrong).
pub(super) fn unavailable(answered: &Result<Response<Answer>, Refused>) -> bool {
    match answered {
        Ok(resp) => is_unavailable(resp.status()),
        Err(refused) => refused.error.parts().2 == crate::errors::Fault::Upstream,
    }
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Laravel took it (2xx).
    Delivered,
    /// Laravel refused it for good (a 4xx other than 408/429): the dead letters, with the reason.
    Refused(String),
    /// Laravel did not take it now: again later.
    Failed(String),
}

/// What is kept of a verified delivery: its request as forwarded (method, path, headers, client)
/// and its body bytes.
pub fn record(parts: &http::request::Parts, body: Bytes, client: Option<&HeaderValue>) -> Record {
    let id = crate::access_log::new_request_id();
    Record {
        id: String::from_utf8_lossy(&id).into_owned(),
        enqueued_ms: now_ms(),
        method: parts.method.as_str().to_string(),
        target: parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
            .collect(),
        client: client.and_then(|c| c.to_str().ok()).map(str::to_string),
        body,
    }
}

/// The sender's answer to a spooled delivery: `202 {"status":"queued"}` (a 2xx: the Node sender
/// counts it delivered) with the delivery id.
pub fn queued(record: &Record) -> Response<Answer> {
    let body = serde_json::json!({"status": "queued", "delivery_id": record.id}).to_string();
    let mut resp = Response::new(Answer::full(Bytes::from(body)));
    *resp.status_mut() = StatusCode::ACCEPTED;
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(id) = HeaderValue::from_str(&record.id) {
        headers.insert(DELIVERY_ID, id);
    }
    resp
}

/// Sends a spooled delivery of route `route` to Laravel, signed again for now.
pub async fn redeliver(gateway: &Gateway, route: &str, record: &Record, attempt: u32) -> Attempt {
    let snap = gateway.snapshot();
    let found = snap.config.routes.iter().find(|r| r.name == route);
    let Some((route, webhook)) = found.and_then(|r| Some((r, r.webhook.as_ref()?))) else {
        return Attempt::Failed("the route is no longer a webhook route".into());
    };
    let Some(secret) = webhook.secrets.first() else {
        return Attempt::Failed("the route has no secret".into());
    };
    let instance = match super::locate::balance(&snap, route.group) {
        Ok(instance) => instance,
        Err(_) => return Attempt::Failed("no healthy instance".into()),
    };
    let group = &snap.config.groups[route.group];
    let headers = signed_headers(record, webhook.scheme, secret);
    let timeouts = Timeouts {
        connect: route.connect_timeout,
        read: route.read_timeout,
        idle: group.idle_timeout,
    };
    let addr = group.instances[instance].addr;
    send_record(addr, &record.target, headers, record, attempt, timeouts).await
}

/// Sends a spooled `record`'s body to `addr` (`target`, `headers`, its delivery id and `attempt`
/// added): what the answer means for it.
pub(super) async fn send_record(
    addr: std::net::SocketAddr,
    target: &str,
    mut headers: HeaderMap,
    record: &Record,
    attempt: u32,
    timeouts: Timeouts,
) -> Attempt {
    let delivery = HeaderValue::from_str(&record.id).unwrap_or(HeaderValue::from_static("-"));
    headers.insert(DELIVERY_ID, delivery.clone());
    headers.insert(ATTEMPT, HeaderValue::from(attempt));
    let mut req = http::Request::new(Outgoing::Full(Some(record.body.clone())));
    *req.method_mut() = record.method.parse().unwrap_or(http::Method::POST);
    *req.uri_mut() = target.parse().unwrap_or_default();
    *req.headers_mut() = headers;
    let client = record
        .client
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok());
    let add = Forwarding {
        client: client.as_ref(),
        believe: false,
        proto: "http",
        request_id: &delivery,
        upgrade: false,
    };
    verdict(upstream::send(addr, req, &add, timeouts).await).await
}

/// The record's headers as kept, signed again for now over its body with `secret` (the
/// `webhook-id` kept).
fn signed_headers(record: &Record, scheme: signing::Scheme, secret: &signing::Secret) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(record.headers.len() + 4);
    for (name, value) in &record.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let now = (now_ms() / 1000) as i64;
    for (name, value) in signing::sign(scheme, secret, &record.body, now, id.as_deref()) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers
}

/// What Laravel's answer (or its absence) means for the spooled delivery.
async fn verdict(sent: Result<Response<upstream::UpstreamBody>, upstream::Failure>) -> Attempt {
    match sent {
        Ok(resp) => {
            let status = resp.status();
            // Read to the end, so the connection goes back to the pool.
            let _ = resp.into_body().collect().await;
            match status {
                s if s.is_success() => Attempt::Delivered,
                s if is_unavailable(s) => {
                    Attempt::Failed(format!("Laravel answered {}", s.as_u16()))
                }
                s => Attempt::Refused(format!("Laravel answered {}", s.as_u16())),
            }
        }
        Err(failure) => Attempt::Failed(match failure.error {
            SendError::Connect(reason) => format!("connect: {reason}"),
            SendError::Timeout => "no answer within the route's read_timeout".into(),
            SendError::Dropped(reason) | SendError::Broken(reason) => reason,
            SendError::TooLarge => "too large".into(),
            SendError::ClientBody(e) => e.to_string(),
        }),
    }
}
