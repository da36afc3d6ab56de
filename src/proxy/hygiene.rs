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

const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop headers (the fixed set plus those named in `Connection`), keeping the
/// upgrade handshake when `upgrade` is true. `Transfer-Encoding` is left to the HTTP layer, which
/// re-frames the body.
pub fn strip_hop_by_hop(headers: &HeaderMap, upgrade: bool) -> Vec<HeaderName> {
    let mut named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    named.extend(HOP_BY_HOP.iter().map(|h| HeaderName::from_static(h)));
    named.retain(|h| {
        let framing =
            h == header::TRANSFER_ENCODING || h == header::CONTENT_LENGTH || h == header::HOST;
        let handshake = upgrade && (h == header::UPGRADE || h == header::CONNECTION);
        !framing && !handshake
    });
    named
}

/// Appends `value` to a comma-separated header (`X-Forwarded-For: a, b`).
pub fn append_list(headers: &HeaderMap, name: &str, value: &str) -> Option<HeaderValue> {
    let existing: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let joined = if existing.is_empty() {
        value.to_string()
    } else {
        format!("{}, {value}", existing.join(", "))
    };
    HeaderValue::from_str(&joined).ok()
}

/// The `X-Forwarded-*` values to send upstream: `(name, value)` pairs, each appended to what came in.
pub fn forwarded_headers(
    headers: &HeaderMap,
    client: Option<IpAddr>,
    proto: &str,
) -> Vec<(&'static str, HeaderValue)> {
    let mut out = Vec::with_capacity(3);
    if let Some(value) =
        client.and_then(|ip| append_list(headers, "x-forwarded-for", &ip.to_string()))
    {
        out.push(("x-forwarded-for", value));
    }
    if let Some(value) = append_list(headers, "x-forwarded-proto", proto) {
        out.push(("x-forwarded-proto", value));
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if let Some(value) = host.and_then(|h| append_list(headers, "x-forwarded-host", h)) {
        out.push(("x-forwarded-host", value));
    }
    out
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
            ("x-secret-hop", "1"),
            ("upgrade", "websocket"),
        ]);
        let strip = strip_hop_by_hop(&h, false);
        for name in ["connection", "keep-alive", "x-secret-hop", "upgrade", "te"] {
            assert!(strip.iter().any(|n| n == name), "{name}");
        }
        let strip = strip_hop_by_hop(&h, true);
        assert!(!strip.iter().any(|n| n == "upgrade" || n == "connection"));
    }

    #[test]
    fn forwarded_headers_are_appended() {
        let h = headers(&[("x-forwarded-for", "10.0.0.1"), ("host", "gw:3000")]);
        let out = forwarded_headers(&h, Some("127.0.0.9".parse().unwrap()), "http");
        assert_eq!(
            out[0],
            (
                "x-forwarded-for",
                HeaderValue::from_static("10.0.0.1, 127.0.0.9")
            )
        );
        assert_eq!(
            out[1],
            ("x-forwarded-proto", HeaderValue::from_static("http"))
        );
        assert_eq!(
            out[2],
            ("x-forwarded-host", HeaderValue::from_static("gw:3000"))
        );
    }
}
