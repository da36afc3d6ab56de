//! The gateway's own error answers: one enum, one mapping to status + stable JSON code.
//!
//! Every error says who was at fault (client, upstream, gateway): that picks the status code, the
//! log level and the metric label. Bodies never carry internals (addresses, stack, secrets).

use bytes::Bytes;
use pingora_http::ResponseHeader;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Client,
    Upstream,
    Gateway,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Client => "client",
            Fault::Upstream => "upstream",
            Fault::Gateway => "gateway",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("the request is malformed: {0}")]
    BadRequest(&'static str),
    #[error("no route for this path")]
    RouteNotFound,
    #[error("this path is not reachable through the gateway")]
    RouteDenied,
    #[error("the request body is larger than this route accepts")]
    BodyTooLarge,
    #[error("no workspace found in the request (header, session id, query or JSON body)")]
    NoWorkspace,
    #[error("the instance that holds this workspace is down")]
    InstanceDown { retry_after_secs: u64 },
    #[error("no healthy instance is available")]
    NoHealthyInstance { retry_after_secs: u64 },
    #[error("the upstream instance could not be reached")]
    UpstreamConnect,
    #[error("the upstream instance did not answer in time")]
    UpstreamTimeout,
    #[error("the upstream instance failed while answering")]
    UpstreamBroken,
    #[error("the gateway failed to handle the request")]
    Internal,
    // Webhook rejections keep Laravel's wording (CONTRACTS.md §2) so senders log the same thing.
    #[error("Missing required security headers")]
    WebhookMissing,
    #[error("Request timestamp expired")]
    WebhookStale,
    #[error("Invalid signature")]
    WebhookMismatch,
    #[error("Malformed signature")]
    WebhookMalformed,
    /// Laravel could not be reached with a verified webhook. 429 is the one answer the Node sender
    /// retries (re-signed, after 1, 2, 4 s); any 5xx would make it drop the event.
    #[error("Too many requests")]
    WebhookDeferred { retry_after_secs: u64 },
}

impl GatewayError {
    /// `(status, stable code, fault)`: the one mapping, pinned by tests.
    pub fn parts(&self) -> (u16, &'static str, Fault) {
        use GatewayError::*;
        match self {
            BadRequest(_) => (400, "request.malformed", Fault::Client),
            RouteNotFound => (404, "route.not_found", Fault::Client),
            RouteDenied => (403, "route.denied", Fault::Client),
            BodyTooLarge => (413, "request.body_too_large", Fault::Client),
            NoWorkspace => (400, "routing.no_workspace", Fault::Client),
            InstanceDown { .. } => (503, "routing.instance_down", Fault::Upstream),
            NoHealthyInstance { .. } => (503, "upstream.no_healthy_instance", Fault::Upstream),
            UpstreamConnect => (502, "upstream.connect_failed", Fault::Upstream),
            UpstreamTimeout => (504, "upstream.timeout", Fault::Upstream),
            UpstreamBroken => (502, "upstream.broken", Fault::Upstream),
            Internal => (500, "gateway.internal", Fault::Gateway),
            WebhookMissing => (401, "webhook.missing_signature", Fault::Client),
            WebhookStale => (401, "webhook.timestamp_out_of_tolerance", Fault::Client),
            WebhookMismatch => (401, "webhook.signature_mismatch", Fault::Client),
            WebhookMalformed => (400, "webhook.malformed_signature", Fault::Client),
            WebhookDeferred { .. } => (429, "webhook.upstream_unavailable", Fault::Upstream),
        }
    }

    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            GatewayError::InstanceDown { retry_after_secs }
            | GatewayError::NoHealthyInstance { retry_after_secs }
            | GatewayError::WebhookDeferred { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The JSON body: `{"message", "error":{"code","message","fault"}}` (the top-level `message`
    /// is Laravel's error shape, so Laravel-style clients log it as they would Laravel's own).
    pub fn body(&self) -> Bytes {
        let (_, code, fault) = self.parts();
        let body = serde_json::json!({
            "message": self.to_string(),
            "error": { "code": code, "message": self.to_string(), "fault": fault.as_str() }
        });
        Bytes::from(body.to_string())
    }

    /// The answer as an HTTP response: JSON body, `Cache-Control: no-store`, `Retry-After` when
    /// the client should come back.
    pub fn http_response(&self) -> http::Response<Bytes> {
        let (status, _, _) = self.parts();
        let mut builder = http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::CACHE_CONTROL, "no-store");
        if let Some(secs) = self.retry_after() {
            builder = builder.header(http::header::RETRY_AFTER, secs);
        }
        builder.body(self.body()).unwrap_or_default()
    }
}

/// A JSON response header with `Content-Length` and, when given, `Retry-After`.
pub fn json_header(
    status: u16,
    len: usize,
    retry_after: Option<u64>,
) -> pingora_error::Result<ResponseHeader> {
    let mut header = ResponseHeader::build(status, Some(4))?;
    header.insert_header("content-type", "application/json")?;
    header.insert_header("content-length", len.to_string())?;
    header.insert_header("cache-control", "no-store")?;
    if let Some(secs) = retry_after {
        header.insert_header("retry-after", secs.to_string())?;
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_a_stable_status_code_and_fault() {
        use GatewayError::*;
        let table = [
            (BadRequest("x"), 400, "request.malformed", "client"),
            (RouteNotFound, 404, "route.not_found", "client"),
            (RouteDenied, 403, "route.denied", "client"),
            (BodyTooLarge, 413, "request.body_too_large", "client"),
            (NoWorkspace, 400, "routing.no_workspace", "client"),
            (
                InstanceDown {
                    retry_after_secs: 5,
                },
                503,
                "routing.instance_down",
                "upstream",
            ),
            (
                NoHealthyInstance {
                    retry_after_secs: 5,
                },
                503,
                "upstream.no_healthy_instance",
                "upstream",
            ),
            (UpstreamConnect, 502, "upstream.connect_failed", "upstream"),
            (UpstreamTimeout, 504, "upstream.timeout", "upstream"),
            (UpstreamBroken, 502, "upstream.broken", "upstream"),
            (Internal, 500, "gateway.internal", "gateway"),
            (WebhookMissing, 401, "webhook.missing_signature", "client"),
            (
                WebhookStale,
                401,
                "webhook.timestamp_out_of_tolerance",
                "client",
            ),
            (WebhookMismatch, 401, "webhook.signature_mismatch", "client"),
            (
                WebhookMalformed,
                400,
                "webhook.malformed_signature",
                "client",
            ),
            (
                WebhookDeferred {
                    retry_after_secs: 1,
                },
                429,
                "webhook.upstream_unavailable",
                "upstream",
            ),
        ];
        for (error, status, code, fault) in table {
            let resp = error.http_response();
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(resp.headers()["content-type"], "application/json");
            let json: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
            assert_eq!(json["error"]["code"], code);
            assert_eq!(json["error"]["fault"], fault);
        }
        let resp = InstanceDown {
            retry_after_secs: 5,
        }
        .http_response();
        assert_eq!(resp.headers()["retry-after"], "5");
    }
}
