//! Forwarding a request whose body was already read, through pingora's pooled [`Connector`].
//!
//! pingora replays a pre-read body only from its 64 KiB retry buffer (DESIGN.md); a larger body
//! read for routing is sent here instead, byte for byte, and the answer streamed back.

use super::{prepare_upstream_request, Ctx, FleetProxy};
use crate::errors::GatewayError;
use bytes::Bytes;
use pingora::prelude::*;

impl FleetProxy {
    /// Sends the request with `body` to the chosen instance and streams its answer downstream.
    pub(super) async fn forward(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        body: Bytes,
    ) -> Result<(), GatewayError> {
        ctx.replay = None;
        let peer = self.peer(ctx).ok_or(GatewayError::Internal)?;
        let mut req = session.req_header().clone();
        prepare_upstream_request(&mut req, session.client_addr(), ctx)
            .map_err(|_| GatewayError::Internal)?;

        let (mut upstream, _reused) = match self.connector.get_http_session(&peer).await {
            Ok(connected) => connected,
            Err(e) => {
                self.connect_failed(ctx, &e.to_string());
                return Err(GatewayError::UpstreamConnect);
            }
        };
        let sent = async {
            upstream.write_request_header(Box::new(req)).await?;
            upstream.write_request_body(body, true).await?;
            upstream.finish_request_body().await?;
            upstream.read_response_header().await
        }
        .await;
        if let Err(e) = sent {
            ctx.upstream_outcome = Some(if e.etype() == &ErrorType::ReadTimedout {
                "timeout"
            } else {
                "reset"
            });
            return Err(super::classify(&e).unwrap_or(GatewayError::UpstreamBroken));
        }
        let mut resp = upstream
            .response_header()
            .cloned()
            .ok_or(GatewayError::UpstreamBroken)?;
        self.after_upstream_response(&mut resp, ctx);
        session
            .write_response_header(Box::new(resp), false)
            .await
            .map_err(|_| GatewayError::Internal)?;
        loop {
            match upstream.read_response_body().await {
                Ok(Some(chunk)) => {
                    if session
                        .write_response_body(Some(chunk), false)
                        .await
                        .is_err()
                    {
                        return Ok(()); // the client left; nothing more to answer
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    ctx.upstream_outcome = Some("reset");
                    session.as_mut().set_keepalive(None);
                    return Ok(()); // headers are out: closing is the only signal left
                }
            }
        }
        let _ = session.write_response_body(None, true).await;
        if upstream.response_done() {
            self.connector
                .release_http_session(upstream, &peer, peer.options.idle_timeout)
                .await;
        }
        Ok(())
    }
}
