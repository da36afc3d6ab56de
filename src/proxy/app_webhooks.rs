//! Sending one batch of an app's webhook events (kept in the spool by `hub::webhooks`) to the
//! app's webhook URL, signed as Pusher signs them: `X-Pusher-Key` and `X-Pusher-Signature`, the
//! hex HMAC-SHA256 of the body with the app's current secret.

use super::spooled::{send_record, Attempt};
use super::upstream::Timeouts;
use crate::config::{App, AppWebhook};
use crate::hub::auth::webhook_signature;
use crate::spool::record::Record;
use crate::state::Gateway;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

/// How long connecting to a webhook URL (its name resolved) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the app may take to answer a webhook request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle connection to a webhook URL is reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `record` (a batch of `app`'s events) to its webhook at `url`: the app's 2xx delivers it,
/// its 4xx (but 408/429) buries it, anything else is tried again later.
pub async fn deliver(
    gateway: &Gateway,
    (app, url): (&str, &str),
    record: &Record,
    attempt: u32,
) -> Attempt {
    let snap = gateway.snapshot();
    let apps = snap.config.hub.iter().flat_map(|h| &h.apps);
    let Some(conf) = apps.into_iter().find(|a| a.id == app) else {
        return Attempt::Failed(format!("no app `{app}` is configured"));
    };
    let Some(hook) = conf.webhooks.iter().find(|w| w.url == url) else {
        return Attempt::Failed(format!("app `{app}` has no webhook to {url}"));
    };
    let addr = match resolve(&hook.authority).await {
        Ok(addr) => addr,
        Err(reason) => return Attempt::Failed(reason),
    };
    let timeouts = Timeouts {
        connect: CONNECT_TIMEOUT,
        read: READ_TIMEOUT,
        idle: IDLE_TIMEOUT,
    };
    let headers = headers(conf, hook, record);
    send_record(addr, &hook.target, headers, record, attempt, timeouts).await
}

/// The request's headers: the webhook's own, then Pusher's.
fn headers(app: &App, hook: &AppWebhook, record: &Record) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(hook.headers.len() + 6);
    for (name, value) in &hook.headers {
        headers.append(name.clone(), value.clone());
    }
    let body = String::from_utf8_lossy(&record.body);
    let signature = webhook_signature(&app.secret, &body);
    let pusher = [
        (http::header::HOST, hook.authority.as_str()),
        (http::header::CONTENT_TYPE, "application/json"),
        (HeaderName::from_static("x-pusher-key"), &app.key),
        (HeaderName::from_static("x-pusher-signature"), &signature),
    ];
    for (name, value) in pusher {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    headers
}

/// The first address `host:port` resolves to, within the connect timeout.
async fn resolve(authority: &str) -> Result<std::net::SocketAddr, String> {
    let lookup = tokio::net::lookup_host(authority);
    match tokio::time::timeout(CONNECT_TIMEOUT, lookup).await {
        Ok(Ok(mut addrs)) => addrs
            .next()
            .ok_or_else(|| format!("{authority} resolves to no address")),
        Ok(Err(e)) => Err(format!("cannot resolve {authority}: {e}")),
        Err(_) => Err(format!("resolving {authority} timed out")),
    }
}
