//! Webhook routes: verify the signature at the edge over the raw bytes, answer replays, learn
//! which Node instance holds a session, then forward the identical bytes to Laravel.
//!
//! Order: body read with the route's `max_body` cap (413) → signature check (401/400, nothing
//! reaches Laravel, connection closed) → replay check (200 + `X-Fleetgate-Duplicate`) →
//! `X-Instance-Url` learned and rewritten → forwarded. A delivery is recorded as seen only once
//! Laravel answered 2xx, so a failed attempt can be retried. If Laravel cannot be reached the
//! sender gets 429 + `Retry-After`: the Node sender retries 429 (re-signed), but drops on 5xx.

use super::{read_body, Admission, Ctx, FleetProxy, Learn};
use crate::config::{Route, WebhookConfig};
use crate::errors::{json_header, Fault, GatewayError};
use crate::signing::{self, VerifyError};
use crate::state::Snapshot;
use bytes::Bytes;
use pingora::prelude::*;
use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Bodies up to this size are parsed for `data.session_id` (session events are small; a 50 MiB
/// `message_received` is not worth parsing to learn what smaller events already tell).
const LEARN_BODY_LIMIT: usize = 1 << 20;

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
        let count = |result: &str| {
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
                count("too_large");
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
            count(e.as_str());
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
            count("duplicate");
            answer_duplicate(session).await;
            return Ok(Admission::Answered);
        }
        count("ok");

        self.learn_instance(session, &snap, conf, &body);
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
        body: &[u8],
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
        let session_id = (body.len() <= LEARN_BODY_LIMIT)
            .then(|| data_session_id(body))
            .flatten();
        if let (Some(instance), Some(session_id)) = (instance, session_id) {
            let state = &snap.groups[group];
            state.learned.learn(&session_id, &state.names[instance]);
            self.publish_learned(snap, group);
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

async fn answer_duplicate(session: &mut Session) {
    let body = Bytes::from_static(br#"{"status":"duplicate"}"#);
    let header = json_header(200, body.len(), None).and_then(|mut h| {
        h.insert_header("x-fleetgate-duplicate", "true")?;
        Ok(h)
    });
    let written = match header {
        Ok(header) => session.as_mut().write_error_response(header, body).await,
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        tracing::debug!(error = %e, "could not answer a duplicate delivery");
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

/// `data.session_id` of a webhook envelope, if it is a JSON object that has one.
fn data_session_id(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        data: Option<Data>,
    }
    #[derive(serde::Deserialize)]
    struct Data {
        session_id: Option<serde_json::Value>,
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    match envelope.data?.session_id? {
        serde_json::Value::String(id) if !id.is_empty() => Some(id),
        _ => None,
    }
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

    #[test]
    fn the_session_id_comes_from_the_data_object() {
        assert_eq!(
            data_session_id(br#"{"event":"x","data":{"session_id":"webjs_1_2_ab"}}"#).as_deref(),
            Some("webjs_1_2_ab")
        );
        assert_eq!(data_session_id(br#"{"event":"connection_test"}"#), None);
        assert_eq!(data_session_id(b"[1]"), None);
    }
}
