//! Webhook routes: verify the signature at the edge over the raw bytes, answer replays, learn
//! which Node instance holds a session, then forward the identical bytes to Laravel.
//!
//! Order: body read with the route's `max_body` cap (413) → signature check (401/400, nothing
//! reaches Laravel, connection closed) → replay check (200 + `X-Fleetgate-Duplicate`) →
//! `X-Instance-Url` learned and rewritten → forwarded. A delivery is recorded as seen only once
//! Laravel answered 2xx, so a failed attempt can be retried. If Laravel cannot be reached the
//! sender gets 429 + `Retry-After`: the Node sender retries 429 (re-signed), but drops on 5xx.

use super::{read_body, Admission, Ctx, FleetProxy, Learn};
use crate::config::{PublishRule, Route, WebhookConfig};
use crate::errors::{json_header, Fault, GatewayError};
use crate::hub::channel::ChannelName;
use crate::hub::fanout::{Frame, Hub};
use crate::hub::protocol;
use crate::publish::{lookup, render_str, render_value};
use crate::signing::{self, VerifyError};
use crate::state::Snapshot;
use bytes::Bytes;
use pingora::prelude::*;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Bodies up to this size are parsed for `data.session_id` and publish rules (session and QR
/// events are small; a 50 MiB `message_received` is not worth parsing).
const JSON_BODY_LIMIT: usize = 1 << 20;

/// How long a sender should wait before retrying a deferred delivery.
const DEFER_RETRY_SECS: u64 = 1;

impl FleetProxy {
    pub(super) async fn webhook(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        index: usize,
        route: &Route,
    ) -> Result<Admission, GatewayError> {
        let conf = route.webhook.as_ref().ok_or(GatewayError::Internal)?;
        let count = |ctx: &mut Ctx, result: &'static str| {
            ctx.webhook = Some(result);
            self.gateway
                .metrics
                .webhook_verifications
                .with_label_values(&[&route.name, result])
                .inc();
        };
        let declared = super::hygiene::content_length(&session.req_header().headers);
        let body = match declared.filter(|&len| len > route.max_body) {
            Some(_) => Err(GatewayError::BodyTooLarge),
            None => read_body(session, route.max_body).await,
        }
        .inspect_err(|e| {
            if *e == GatewayError::BodyTooLarge {
                count(ctx, "too_large");
            }
        })?;

        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let headers = &session.req_header().headers;
        let verified = signing::verify(
            conf.scheme,
            headers,
            &body,
            &conf.secrets,
            now,
            conf.tolerance,
        )
        .map_err(|e| {
            count(ctx, e.as_str());
            match e {
                VerifyError::Missing => GatewayError::WebhookMissing,
                VerifyError::Stale => GatewayError::WebhookStale,
                VerifyError::Malformed => GatewayError::WebhookMalformed,
                VerifyError::Mismatch => GatewayError::WebhookMismatch,
            }
        })?;
        let snap = ctx.snap.clone();
        if snap.seen[index]
            .as_ref()
            .is_some_and(|seen| seen.contains(&verified.dedupe_key, Instant::now()))
        {
            count(ctx, "duplicate");
            answer_duplicate(session, ctx).await;
            return Ok(Admission::Answered);
        }
        count(ctx, "ok");

        let needs_json = conf.instances_group.is_some() || !conf.publish.is_empty();
        let parsed: Option<Value> = (needs_json && body.len() <= JSON_BODY_LIMIT)
            .then(|| serde_json::from_slice(&body).ok())
            .flatten();
        self.learn_instance(session, &snap, conf, parsed.as_ref());
        self.publish_mapped(&route.name, conf, parsed.as_ref());
        let instance = self.balance(&snap, route.group)?;
        ctx.set_target(route.group, instance);
        ctx.learn = Learn::Delivered(verified.dedupe_key);
        Ok(Admission::Forward(body))
    }

    /// Records which instance holds `data.session_id` (from `X-Instance-Url`) and rewrites the
    /// header to the gateway's public URL, so Laravel never talks to an instance directly.
    fn learn_instance(
        &self,
        session: &mut Session,
        snap: &Snapshot,
        conf: &WebhookConfig,
        body: Option<&Value>,
    ) {
        let Some(group) = conf.instances_group else {
            return;
        };
        let Some(url) = session
            .req_header()
            .headers
            .get("x-instance-url")
            .and_then(|v| v.to_str().ok())
        else {
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
            self.gateway
                .learn_session(state, name, session_id, &state.names[instance]);
        }
        if let Some(public) = &conf.public_url {
            if session
                .req_header_mut()
                .insert_header("x-instance-url", public.as_str())
                .is_err()
            {
                tracing::warn!("could not rewrite X-Instance-Url");
            }
        }
    }
}

impl FleetProxy {
    /// Publishes the hub events the route's rules map this verified webhook to.
    fn publish_mapped(&self, route: &str, conf: &WebhookConfig, input: Option<&Value>) {
        let (Some(hub), Some(input)) = (&self.gateway.hub, input) else {
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
            self.gateway
                .metrics
                .webhook_publishes
                .with_label_values(&[route, result])
                .inc();
        }
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
    if ChannelName::parse_publishable(&channel).is_err() {
        tracing::warn!(event = %rule.event, "a publish rule rendered an invalid channel name");
        return "unmapped";
    }
    let Some(app) = hub.app_by_id(&rule.app) else {
        tracing::warn!(event = %rule.event, app = %rule.app, "a publish rule names an app the hub no longer has");
        return "unmapped";
    };
    let data = payload.to_string();
    let limit = app.conf().max_message_size;
    if data.len() > limit {
        tracing::warn!(event = %rule.event, size = data.len(), limit, "mapped event over the app's message limit: not published");
        return "too_large";
    }
    let frame = Frame::from(protocol::event(&channel, &name, &data, None));
    hub.publish(&app, &channel, &frame, None);
    "published"
}

/// Laravel unreachable (or failing mid-answer) with a verified webhook: ask the sender to retry.
pub(super) fn defer_if_webhook(ctx: &Ctx, error: GatewayError) -> GatewayError {
    let is_webhook = ctx.route_conf().is_some_and(|r| r.webhook.is_some());
    let upstream_fault = error.parts().2 == Fault::Upstream;
    let verified = matches!(ctx.learn, Learn::Delivered(_)) || ctx.target.is_some();
    if is_webhook && upstream_fault && verified {
        GatewayError::WebhookDeferred {
            retry_after_secs: DEFER_RETRY_SECS,
        }
    } else {
        error
    }
}

async fn answer_duplicate(session: &mut Session, ctx: &Ctx) {
    let body = Bytes::from_static(br#"{"status":"duplicate"}"#);
    let header = json_header(200, body.len(), None).and_then(|mut h| {
        h.insert_header("x-fleetgate-duplicate", "true")?;
        Ok(h)
    });
    match header {
        Ok(header) => super::answer(session, ctx, header, body).await,
        Err(e) => tracing::debug!(error = %e, "could not answer a duplicate delivery"),
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
