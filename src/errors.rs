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
    /// A path whose meaning depends on who decodes it: encoded slashes or backslashes, dot
    /// segments above the root, broken percent-encoding.
    #[error("the request path is not canonical: {0}")]
    BadPath(&'static str),
    #[error("the client paused sending the request body longer than this route waits")]
    BodyTimeout,
    /// A connection over the listener's `max_connections` (or `max_connections_per_ip`).
    #[error("too many connections ({0})")]
    TooManyConnections(&'static str),
    #[error("the request target is longer than the gateway accepts")]
    UriTooLong,
    #[error("the request head is larger than the gateway accepts")]
    HeadTooLarge,
    /// The request head did not arrive whole within the listener's `header_timeout`: the
    /// connection is closed without an answer (the code is for the access log, as nginx's 408).
    #[error("the request head did not arrive in time")]
    HeaderTimeout,
    /// The connection did not start with a valid PROXY protocol header: closed without an answer.
    #[error("the connection did not start with a valid PROXY protocol header")]
    BadProxyProtocol,
    #[error("no route for this path")]
    RouteNotFound,
    /// The route requires a static token and none came.
    #[error("this path requires a token")]
    TokenMissing,
    #[error("the token is not valid for this path")]
    TokenInvalid,
    /// The route's `allow_from` does not include the client's address.
    #[error("this path is not reachable from this address")]
    ClientNotAllowed,
    #[error("this path is not reachable through the gateway")]
    RouteDenied,
    #[error("the request body is larger than this route accepts")]
    BodyTooLarge,
    #[error("no workspace found in the request (header, session id, query or JSON body)")]
    NoWorkspace,
    /// The workspace is over its `routing.workspace_limits`.
    #[error("this workspace is over its request budget")]
    WorkspaceRateLimited { retry_after_secs: u64 },
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
    /// A verified webhook Laravel could not take, and the spool could not keep (full, or its
    /// disk failing): 429, which the sender retries.
    #[error("Too many requests")]
    SpoolFull,
}

impl GatewayError {
    /// `(status, stable code, fault)`: the one mapping, pinned by tests.
    pub fn parts(&self) -> (u16, &'static str, Fault) {
        use GatewayError::*;
        match self {
            BadRequest(_) => (400, "request.malformed", Fault::Client),
            BadPath(_) => (400, "request.bad_path", Fault::Client),
            BodyTimeout => (408, "request.body_timeout", Fault::Client),
            TooManyConnections(_) => (503, "listener.too_many_connections", Fault::Client),
            UriTooLong => (414, "request.uri_too_long", Fault::Client),
            HeadTooLarge => (431, "request.header_too_large", Fault::Client),
            HeaderTimeout => (408, "request.header_timeout", Fault::Client),
            BadProxyProtocol => (400, "request.bad_proxy_protocol", Fault::Client),
            RouteNotFound => (404, "route.not_found", Fault::Client),
            TokenMissing => (401, "auth.missing_token", Fault::Client),
            TokenInvalid => (401, "auth.invalid_token", Fault::Client),
            ClientNotAllowed => (403, "route.client_not_allowed", Fault::Client),
            RouteDenied => (403, "route.denied", Fault::Client),
            BodyTooLarge => (413, "request.body_too_large", Fault::Client),
            NoWorkspace => (400, "routing.no_workspace", Fault::Client),
            WorkspaceRateLimited { .. } => (429, "routing.workspace_rate_limited", Fault::Client),
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
            SpoolFull => (429, "webhook.spool_full", Fault::Gateway),
        }
    }

    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            GatewayError::InstanceDown { retry_after_secs }
            | GatewayError::NoHealthyInstance { retry_after_secs }
            | GatewayError::WebhookDeferred { retry_after_secs }
            | GatewayError::WorkspaceRateLimited { retry_after_secs } => Some(*retry_after_secs),
            // A place frees up as soon as any connection closes.
            GatewayError::TooManyConnections(_) => Some(1),
            GatewayError::SpoolFull => Some(5),
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

    /// The answer as bytes on the wire, for a connection closed right after it (written below
    /// hyper: an over-limit connection, a head hyper's parser refused).
    pub fn wire_answer(&self) -> Vec<u8> {
        let response = self.http_response();
        let status = response.status();
        let mut out = format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_str(),
            status.canonical_reason().unwrap_or("")
        );
        for (name, value) in response.headers() {
            let value = String::from_utf8_lossy(value.as_bytes());
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = response.into_body();
        out.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        ));
        let mut out = out.into_bytes();
        out.extend_from_slice(&body);
        out
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

    use GatewayError::*;

    /// Every error, its status, code and fault: the answers are part of the contract.
    const TABLE: &[(GatewayError, u16, &str, &str)] = &[
        (BadRequest("x"), 400, "request.malformed", "client"),
        (BadPath("x"), 400, "request.bad_path", "client"),
        (BodyTimeout, 408, "request.body_timeout", "client"),
        (
            TooManyConnections("max_connections"),
            503,
            "listener.too_many_connections",
            "client",
        ),
        (UriTooLong, 414, "request.uri_too_long", "client"),
        (HeadTooLarge, 431, "request.header_too_large", "client"),
        (HeaderTimeout, 408, "request.header_timeout", "client"),
        (
            BadProxyProtocol,
            400,
            "request.bad_proxy_protocol",
            "client",
        ),
        (RouteNotFound, 404, "route.not_found", "client"),
        (TokenMissing, 401, "auth.missing_token", "client"),
        (TokenInvalid, 401, "auth.invalid_token", "client"),
        (ClientNotAllowed, 403, "route.client_not_allowed", "client"),
        (RouteDenied, 403, "route.denied", "client"),
        (BodyTooLarge, 413, "request.body_too_large", "client"),
        (NoWorkspace, 400, "routing.no_workspace", "client"),
        (
            WorkspaceRateLimited {
                retry_after_secs: 1,
            },
            429,
            "routing.workspace_rate_limited",
            "client",
        ),
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

    #[test]
    fn every_error_maps_to_a_stable_status_code_and_fault() {
        for (error, status, code, fault) in TABLE {
            let resp = error.http_response();
            assert_eq!(resp.status().as_u16(), *status);
            assert_eq!(resp.headers()["content-type"], "application/json");
            let json: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
            assert_eq!(json["error"]["code"], *code);
            assert_eq!(json["error"]["fault"], *fault);
        }
        let resp = GatewayError::InstanceDown {
            retry_after_secs: 5,
        }
        .http_response();
        assert_eq!(resp.headers()["retry-after"], "5");
    }
}
