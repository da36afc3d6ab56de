//! The probe endpoints on a proxy listener with `health: true`: `GET /healthz`, `/readyz` and
//! `/up` answered as the admin listener answers them, so a load balancer's or Kubernetes' probe
//! needs no access to the admin listener. Nothing is forwarded.

use super::Answer;
use crate::state::{Gateway, Snapshot};
use bytes::Bytes;
use http::{HeaderValue, Response};

/// The probe's answer when `parts` asks for one on `listener` and the listener serves them.
pub(super) fn answer(
    gateway: &Gateway,
    snap: &Snapshot,
    listener: &str,
    parts: &http::request::Parts,
) -> Option<Response<Answer>> {
    // The path first: every other request is told no without a look at the configuration.
    let probe = gateway.probe(parts.uri.path())?;
    if parts.method != http::Method::GET || !snap.config.listener(listener)?.health {
        return None;
    }
    let mut resp = Response::new(Answer::full(Bytes::from(probe.body)));
    *resp.status_mut() = probe.status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Some(resp)
}
