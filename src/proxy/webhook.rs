//! Phase 3, verify (webhook routes): check the signature at the edge over the raw bytes, answer
//! replays, learn which Node instance holds a session, publish mapped hub events; the identical
//! bytes then go to Laravel.
//!
//! Order: signature headers checked before the body is read (presence, shape, timestamp window:
//! a delivery that cannot pass is refused without reading its body or sending `100 Continue`) →
//! body read with the route's `max_body` cap (413) → signature check over the raw bytes
//! (401/400; nothing reaches Laravel) → replay check (200 + `X-Fleetgate-Duplicate`) →
//! `X-Instance-Url` learned and rewritten → forwarded. A delivery is recorded as seen only once
//! Laravel answered 2xx, so a failed attempt can be retried. If Laravel cannot be reached the
//! sender gets 429 + `Retry-After` ([`defer`]): the Node sender retries 429 (re-signed), but
//! drops on 5xx.

use super::hygiene;
use super::request_body::read_whole;
use super::request_body::ClientBody;
use crate::config::{PublishRule, Route, WebhookConfig};
use crate::errors::{Fault, GatewayError};
use crate::hub::events::{Event, PublishError};
use crate::hub::fanout::Hub;
use crate::publish::{lookup, render_str, render_value};
use crate::signing::{self, VerifyError};
use crate::state::{Gateway, Snapshot};
use bytes::Bytes;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Bodies up to this size are parsed for `data.session_id` and publish rules (session and QR
/// events are small; a 50 MiB `message_received` is not worth parsing).
const JSON_BODY_LIMIT: usize = 1 << 20;

/// How long a sender should wait before retrying a deferred delivery.
const DEFER_RETRY_SECS: u64 = 1;

/// What verification decided.
pub enum Verdict {
    /// Verified and new: forward `body`; record `dedupe_key` as seen once Laravel answered 2xx.
    Forward { body: Bytes, dedupe_key: String },
    /// Verified, but delivered before: answer 200 + `X-Fleetgate-Duplicate` without forwarding.
    Duplicate,
}

/// A refused delivery: the error to answer and the metric result it was counted under.
pub struct Rejected {
    pub error: GatewayError,
    pub result: &'static str,
}

/// Verifies one delivery on webhook route `index`; on success `headers` has `X-Instance-Url`
/// rewritten and the delivery's hub events are published. Every outcome is counted.
pub async fn verify(
    gateway: &Gateway,
    snap: &Snapshot,
    index: usize,
    headers: &mut http::HeaderMap,
    body: &mut ClientBody,
) -> Result<(Verdict, &'static str), Rejected> {
    let route = &snap.config.routes[index];
    let verdict = check(snap, index, headers, body).await;
    let result = match &verdict {
        Ok(Verdict::Forward { .. }) => "ok",
        Ok(Verdict::Duplicate) => "duplicate",
        Err(rejected) => rejected.result,
    };
    gateway
        .metrics
        .webhook
        .verifications
        .with_label_values(&[&route.name, result])
        .inc();
    let verdict = verdict?;
    if let (Verdict::Forward { body, .. }, Some(conf)) = (&verdict, &route.webhook) {
        let needs_json = conf.instances_group.is_some() || !conf.publish.is_empty();
        let parsed: Option<Value> = (needs_json && body.len() <= JSON_BODY_LIMIT)
            .then(|| serde_json::from_slice(body).ok())
            .flatten();
        learn_instance(gateway, snap, conf, headers, parsed.as_ref());
        publish_mapped(gateway, &route.name, conf, parsed.as_ref());
    }
    Ok((verdict, result))
}

async fn check(
    snap: &Snapshot,
    index: usize,
    headers: &http::HeaderMap,
    body: &mut ClientBody,
) -> Result<Verdict, Rejected> {
    let route: &Route = &snap.config.routes[index];
    let internal = Rejected {
        error: GatewayError::Internal,
        result: "error",
    };
    let conf = route.webhook.as_ref().ok_or(internal)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    signing::precheck(conf.scheme, headers, now, conf.tolerance).map_err(rejected)?;
    let declared = hygiene::content_length(headers);
    let too_large = Rejected {
        error: GatewayError::BodyTooLarge,
        result: "too_large",
    };
    if declared.is_some_and(|len| len > route.max_body) {
        return Err(too_large);
    }
    let bytes = read_whole(body, route.max_body)
        .await
        .map_err(|error| Rejected {
            result: if error == GatewayError::BodyTooLarge {
                "too_large"
            } else {
                "unreadable"
            },
            error,
        })?;
    let verified = signing::verify(
        conf.scheme,
        headers,
        &bytes,
        &conf.secrets,
        now,
        conf.tolerance,
    )
    .map_err(rejected)?;
    let seen = snap.seen[index].as_ref();
    if seen.is_some_and(|seen| seen.contains(&verified.dedupe_key, Instant::now())) {
        return Ok(Verdict::Duplicate);
    }
    Ok(Verdict::Forward {
        body: bytes,
        dedupe_key: verified.dedupe_key,
    })
}

fn rejected(e: VerifyError) -> Rejected {
    Rejected {
        result: e.as_str(),
        error: match e {
            VerifyError::Missing => GatewayError::WebhookMissing,
            VerifyError::Stale => GatewayError::WebhookStale,
            VerifyError::Malformed => GatewayError::WebhookMalformed,
            VerifyError::Mismatch => GatewayError::WebhookMismatch,
        },
    }
}

/// Records which instance holds `data.session_id` (from `X-Instance-Url`) and rewrites the
/// header to the gateway's public URL, so Laravel never talks to an instance directly.
fn learn_instance(
    gateway: &Gateway,
    snap: &Snapshot,
    conf: &WebhookConfig,
    headers: &mut http::HeaderMap,
    body: Option<&Value>,
) {
    let Some(group) = conf.instances_group else {
        return;
    };
    let Some(url) = headers.get("x-instance-url").and_then(|v| v.to_str().ok()) else {
        return;
    };
    let instance = instance_by_url(
        snap.config.groups[group].instances.iter().map(|i| i.addr),
        url,
    );
    let session_id = body
        .and_then(|b| lookup(b, "data.session_id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty());
    if let (Some(instance), Some(session_id)) = (instance, session_id) {
        let state = &snap.groups[group];
        let name = &snap.config.groups[group].name;
        gateway.learn_session(state, name, session_id, &state.names[instance]);
    }
    if let Some(public) = &conf.public_url {
        match http::HeaderValue::from_str(public) {
            Ok(value) => drop(headers.insert("x-instance-url", value)),
            Err(_) => tracing::warn!("could not rewrite X-Instance-Url"),
        }
    }
}

/// Publishes the hub events the route's rules map this verified webhook to.
fn publish_mapped(gateway: &Gateway, route: &str, conf: &WebhookConfig, input: Option<&Value>) {
    let (Some(hub), Some(input)) = (&gateway.hub, input) else {
        return;
    };
    let event = input.get("event").and_then(Value::as_str);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    for rule in conf
        .publish
        .iter()
        .filter(|r| Some(r.event.as_str()) == event)
    {
        let result = publish_one(hub, rule, input, now);
        gateway
            .metrics
            .webhook
            .publishes
            .with_label_values(&[route, result])
            .inc();
    }
}

/// Renders and publishes one rule; returns the metric result.
fn publish_one(hub: &Hub, rule: &PublishRule, input: &Value, now: i64) -> &'static str {
    let rendered = (
        render_str(&rule.channel, input, now),
        render_str(&rule.name, input, now),
        render_value(&rule.payload, input, now),
    );
    let (Some(channel), Some(name), Some(payload)) = rendered else {
        tracing::warn!(event = %rule.event, "a publish rule's fields are missing from the webhook");
        return "unmapped";
    };
    let Some(app) = hub.app_by_id(&rule.app) else {
        tracing::warn!(event = %rule.event, app = %rule.app, "a publish rule names an app the hub no longer has");
        return "unmapped";
    };
    let event = Event {
        channels: std::slice::from_ref(&channel),
        name: &name,
        data: &payload.to_string(),
        except: None,
    };
    match hub.publish_event(&app, event) {
        Ok(_) => "published",
        Err(e @ PublishError::TooLarge { .. }) => {
            tracing::warn!(event = %rule.event, error = %e, "a mapped event was not published");
            "too_large"
        }
        Err(e) => {
            tracing::warn!(event = %rule.event, error = %e, "a publish rule rendered an event that cannot be published");
            "unmapped"
        }
    }
}

/// A verified delivery that Laravel could not take (unreachable, or failing mid-answer) is
/// answered 429 + `Retry-After`, the one answer the Node sender retries; other errors stand.
pub fn defer(error: GatewayError) -> GatewayError {
    if error.parts().2 == Fault::Upstream {
        GatewayError::WebhookDeferred {
            retry_after_secs: DEFER_RETRY_SECS,
        }
    } else {
        error
    }
}

/// The index of the instance an `X-Instance-Url` (`http://localhost:3001`) names.
pub fn instance_by_url(addrs: impl Iterator<Item = SocketAddr>, url: &str) -> Option<usize> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let (host, port) = authority.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let wanted: Option<IpAddr> = host.parse().ok();
    let localhost = host.eq_ignore_ascii_case("localhost");
    let mut found = None;
    for (index, addr) in addrs.enumerate() {
        let host_matches = match wanted {
            Some(ip) => ip == addr.ip(),
            None => localhost && addr.ip().is_loopback(),
        };
        if addr.port() == port && host_matches {
            if found.is_some() {
                return None; // ambiguous: learn nothing rather than the wrong instance
            }
            found = Some(index);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_urls_match_by_port_and_loopback_host() {
        let addrs: Vec<SocketAddr> = ["127.0.0.1:3001", "127.0.0.1:3002"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let find = |url: &str| instance_by_url(addrs.iter().copied(), url);
        assert_eq!(find("http://localhost:3002"), Some(1));
        assert_eq!(find("http://127.0.0.1:3001/"), Some(0));
        assert_eq!(find("http://10.0.0.5:3001"), None);
        assert_eq!(find("http://localhost:4000"), None);
        assert_eq!(find("garbage"), None);
    }
}
