//! Phase 3 for webhook routes: a verified delivery goes to Laravel, is answered as a replay, or
//! goes to the spool; and what is kept of it for the spool.

use super::*;

impl ProxyApp {
    /// Spools a verified delivery: `202 queued` once it is on disk, or 429 (the sender retries)
    /// when the spool cannot take it.
    pub(super) async fn spool(
        &self,
        snap: &Snapshot,
        index: usize,
        kept: Box<Kept>,
        conn: &Connection,
        obs: &mut Observation,
    ) -> Result<Response<Answer>, Refused> {
        let route = &snap.config.routes[index];
        let spool = self.gateway.spool.as_ref().ok_or(GatewayError::Internal)?;
        let record = spooled::record(&kept.parts, kept.body, conn.client.as_ref());
        match spool.enqueue(&route.name, &record).await {
            Ok(()) => {
                obs.webhook = Some("queued");
                locate::Learn::Delivered(kept.dedupe_key).apply(
                    &self.gateway,
                    snap,
                    route.group,
                    0,
                    index,
                );
                Ok(spooled::queued(&record))
            }
            Err(e) => {
                tracing::error!(route = %route.name, error = %e, "spool: a verified webhook was not spooled");
                Err(GatewayError::SpoolFull.into())
            }
        }
    }

    /// Phase 3 for webhook routes: where a verified delivery goes.
    pub(super) async fn verify(
        &self,
        snap: &Snapshot,
        index: usize,
        parts: &mut http::request::Parts,
        body: &mut ClientBody,
        obs: &mut Observation,
    ) -> Result<Verified, Refused> {
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
            return Ok(Verified::Duplicate);
        };
        let route = &snap.config.routes[index];
        let spool = self.gateway.spool.as_ref();
        // Behind what already waits, so deliveries keep their order.
        if spool.is_some_and(|s| s.depth(&route.name) > 0) {
            return Ok(Verified::Queue(body, dedupe_key));
        }
        let instance = match locate::balance(snap, route.group) {
            Ok(instance) => instance,
            Err(_) if spool.is_some() => return Ok(Verified::Queue(body, dedupe_key)),
            Err(e) => return Err(webhook::defer(e).into()),
        };
        let kept =
            spool.map(|_| Box::new(Kept::from_parts(parts, body.clone(), dedupe_key.clone())));
        let chosen = Chosen {
            instance,
            body: Outgoing::Full(Some(body)),
            learn: Learn::Delivered(dedupe_key),
            source: "none",
            permit: None,
        };
        Ok(Verified::Forward(chosen, kept))
    }
}

/// Where a verified webhook goes.
pub(super) enum Verified {
    /// To Laravel now (and what to spool if Laravel does not take it, when the spool is on).
    Forward(Chosen, Option<Box<Kept>>),
    /// A replay: answered without forwarding.
    Duplicate,
    /// Straight to the spool (its queue is not empty, or no instance is up).
    Queue(bytes::Bytes, String),
}

/// A verified delivery's request as it would be forwarded, kept for the spool.
pub(super) struct Kept {
    pub(super) parts: http::request::Parts,
    pub(super) body: bytes::Bytes,
    pub(super) dedupe_key: String,
}

impl Kept {
    pub(super) fn from_parts(
        parts: &http::request::Parts,
        body: bytes::Bytes,
        dedupe_key: String,
    ) -> Self {
        let mut kept = http::Request::new(());
        *kept.method_mut() = parts.method.clone();
        *kept.uri_mut() = parts.uri.clone();
        *kept.headers_mut() = parts.headers.clone();
        Self {
            parts: kept.into_parts().0,
            body,
            dedupe_key,
        }
    }
}
