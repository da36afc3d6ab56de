//! Request and header hygiene: smuggling defences, path normalisation for deny lists, hop-by-hop
//! headers and `X-Forwarded-*`. Pure functions over headers.

use crate::errors::GatewayError;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

/// Rejects requests whose framing two parsers could read differently (request smuggling):
/// both `Content-Length` and `Transfer-Encoding`, several `Content-Length`s, several `Host`s,
/// or a `Content-Length` that is not a plain number.
pub fn check_framing(headers: &HeaderMap) -> Result<(), GatewayError> {
    let lengths = headers.get_all(header::CONTENT_LENGTH).iter().count();
    if lengths > 1 {
        return Err(GatewayError::BadRequest("duplicate Content-Length"));
    }
    if lengths == 1 && headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(GatewayError::BadRequest(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    if headers.get_all(header::HOST).iter().count() > 1 {
        return Err(GatewayError::BadRequest("duplicate Host"));
    }
    if let Some(value) = headers.get(header::CONTENT_LENGTH) {
        let digits = value.as_bytes();
        if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(GatewayError::BadRequest("invalid Content-Length"));
        }
    }
    Ok(())
}

/// The declared body length, if any (after [`check_framing`] it is well-formed).
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Whether the body is JSON by its `Content-Type`.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

/// The path as a Node/Express router would match it, for deny checks: percent-decoded, lower-case
/// (Express routes are case-insensitive), repeated slashes collapsed, `.`/`..` resolved.
pub fn normalize_path(path: &str) -> std::borrow::Cow<'_, str> {
    // Fast path (nearly every request): nothing to decode, fold or resolve.
    let plain = !path
        .bytes()
        .any(|b| matches!(b, b'%' | b'.' | b'\\' | b'A'..=b'Z'))
        && !path.contains("//");
    if plain && path.starts_with('/') {
        return std::borrow::Cow::Borrowed(path);
    }
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .to_ascii_lowercase();
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        match segment {
            "" | "." => {}
            ".." => drop(segments.pop()),
            s => segments.push(s),
        }
    }
    let trailing = decoded.ends_with('/') && !segments.is_empty();
    let mut out = format!("/{}", segments.join("/"));
    if trailing {
        out.push('/');
    }
    std::borrow::Cow::Owned(out)
}

/// Whether `path` falls under any deny prefix (`/cleanup/` also denies `/cleanup`).
pub fn is_denied(deny: &[String], path: &str) -> bool {
    if deny.is_empty() {
        return false;
    }
    let normalized = normalize_path(path);
    deny.iter().any(|prefix| {
        let prefix = prefix.to_ascii_lowercase();
        normalized.starts_with(&prefix) || normalized == prefix.trim_end_matches('/')
    })
}

/// Whether the request asks to switch protocols (WebSocket).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// The fixed hop-by-hop headers besides `Connection` and `Upgrade` (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 4] = [
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes hop-by-hop headers in place: the fixed set plus those named in `Connection`,
/// keeping the upgrade handshake (`Connection`, `Upgrade`) when `upgrade` is true.
/// `Transfer-Encoding` is left to the HTTP layer, which re-frames the body.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .filter(|h| {
                let framing = h == header::TRANSFER_ENCODING
                    || h == header::CONTENT_LENGTH
                    || h == header::HOST;
                let handshake = upgrade && (h == header::UPGRADE || h == header::CONNECTION);
                !framing && !handshake
            })
            .collect();
        for name in named {
            headers.remove(name);
        }
        if !upgrade {
            headers.remove(header::CONNECTION);
        }
    }
    if !upgrade {
        headers.remove(header::UPGRADE);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// `existing, value` when `name` is already there (several lines joined), else `value`.
fn appended(headers: &HeaderMap, name: &HeaderName, value: HeaderValue) -> HeaderValue {
    let mut existing = headers.get_all(name).iter().peekable();
    if existing.peek().is_none() {
        return value;
    }
    let mut joined = Vec::with_capacity(64);
    for v in existing {
        joined.extend_from_slice(v.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(value.as_bytes());
    HeaderValue::from_bytes(&joined).unwrap_or(value)
}

/// Sets the `X-Forwarded-*` headers: the client's address, the scheme and the host each
/// appended to what came in.
pub fn add_forwarded(headers: &mut HeaderMap, client: Option<IpAddr>, proto: &'static str) {
    if let Some(ip) = client.and_then(|ip| HeaderValue::try_from(ip.to_string()).ok()) {
        let value = appended(headers, &X_FORWARDED_FOR, ip);
        headers.insert(X_FORWARDED_FOR, value);
    }
    let value = appended(headers, &X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    headers.insert(X_FORWARDED_PROTO, value);
    if let Some(host) = headers.get(header::HOST).cloned() {
        let value = appended(headers, &X_FORWARDED_HOST, host);
        headers.insert(X_FORWARDED_HOST, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn ambiguous_framing_is_rejected() {
        let bad = [
            headers(&[("content-length", "5"), ("transfer-encoding", "chunked")]),
            headers(&[("content-length", "5"), ("content-length", "5")]),
            headers(&[("host", "a"), ("host", "b")]),
            headers(&[("content-length", "+5")]),
            headers(&[("content-length", "")]),
        ];
        for h in bad {
            assert!(check_framing(&h).is_err(), "{h:?}");
        }
        assert!(check_framing(&headers(&[("content-length", "5"), ("host", "a")])).is_ok());
    }

    #[test]
    fn deny_lists_see_through_encoding_case_dots_and_slashes() {
        let deny: Vec<String> = ["/cleanup/", "/remoteauth/", "/api/internal/"]
            .map(String::from)
            .to_vec();
        for path in [
            "/cleanup/x",
            "/cleanup",
            "//cleanup/x",
            "/CleanUp/x",
            "/%63leanup/x",
            "/api/../cleanup/x",
            "/api/./internal/x",
            "/api//internal/y",
        ] {
            assert!(is_denied(&deny, path), "{path}");
        }
        for path in ["/api/sessions", "/cleanupx", "/api/internalx/y"] {
            assert!(!is_denied(&deny, path), "{path}");
        }
    }

    #[test]
    fn hop_by_hop_headers_go_but_the_upgrade_handshake_stays() {
        let h = headers(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("x-kept", "1"),
        ]);
        let mut plain = h.clone();
        remove_hop_by_hop(&mut plain, false);
        let mut left: Vec<&str> = plain.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["transfer-encoding", "x-kept"]);
        let mut upgrade = h.clone();
        remove_hop_by_hop(&mut upgrade, true);
        let mut left: Vec<&str> = upgrade.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(
            left,
            ["connection", "transfer-encoding", "upgrade", "x-kept"]
        );
    }

    #[test]
    fn forwarded_headers_are_appended() {
        let mut h = headers(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
            ("host", "gw:3000"),
        ]);
        add_forwarded(&mut h, Some("127.0.0.9".parse().unwrap()), "http");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 127.0.0.9");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "gw:3000");
    }
}
