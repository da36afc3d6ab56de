//! Request and header hygiene: smuggling defences, canonical paths, path normalisation for deny
//! lists, hop-by-hop headers and `X-Forwarded-*`. Pure functions over headers and paths.

use crate::errors::GatewayError;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::borrow::Cow;
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
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let value = value.as_bytes();
    let mime = value
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let starts = |prefix: &[u8]| {
        mime.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    let ends = |suffix: &[u8]| {
        mime.len() >= suffix.len() && mime[mime.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    mime.eq_ignore_ascii_case(b"application/json") || (starts(b"application/") && ends(b"+json"))
}

/// Refuses a request target over `limits.max_uri_length` (414) and a head over
/// `limits.max_head_size` (431), counted as written on the wire. (hyper refuses more than 100
/// header fields itself, with 431.)
pub fn check_head_size(
    parts: &http::request::Parts,
    limits: &crate::config::ListenerLimits,
) -> Result<(), GatewayError> {
    let target = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path().len(), |pq| pq.as_str().len());
    if target > limits.max_uri_length {
        return Err(GatewayError::UriTooLong);
    }
    // "METHOD SP target SP HTTP/1.1 CRLF", each "name: value CRLF", the final CRLF.
    let mut size = parts.method.as_str().len() + target + 12 + 2;
    for (name, value) in &parts.headers {
        size += name.as_str().len() + value.len() + 4;
        if size > limits.max_head_size {
            return Err(GatewayError::HeadTooLarge);
        }
    }
    Ok(())
}

/// The path routes, deny lists and the instance see (RFC 3986, 6.2.2): percent-encoded unreserved
/// characters decoded, other escapes kept (hex in upper case), repeated slashes collapsed, `.` and
/// `..` segments resolved. Refused with 400 `request.bad_path`, as no two backends agree on them:
/// an encoded `/` or `\` (a backend that decodes before splitting sees other segments), a raw `\`,
/// `..` above the root, and a `%` without two hex digits.
pub fn canonical_path(path: &str) -> Result<Cow<'_, str>, GatewayError> {
    match path.strip_prefix('/') {
        None if path == "*" => return Ok(Cow::Borrowed(path)),
        None => return Err(GatewayError::BadPath("the path must start with /")),
        Some(rest) if is_canonical(rest) => return Ok(Cow::Borrowed(path)),
        Some(_) => {}
    }
    let mut out = String::with_capacity(path.len());
    // Where each kept segment starts in `out` (its `/`), for `..`.
    let mut starts: Vec<usize> = Vec::new();
    let mut trailing = false;
    let segments: Vec<&str> = path[1..].split('/').collect();
    for (i, raw) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let start = out.len();
        out.push('/');
        decode_segment(raw, &mut out)?;
        let segment = &out[start + 1..];
        trailing = last;
        match segment {
            "" | "." => out.truncate(start),
            ".." => {
                out.truncate(start);
                let above = starts
                    .pop()
                    .ok_or(GatewayError::BadPath("a dot segment above the root"))?;
                out.truncate(above);
            }
            _ => {
                starts.push(start);
                trailing = false;
            }
        }
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// Whether a path (after its first `/`) is canonical already: no escapes, backslashes, empty
/// segments (but a trailing slash) or dot segments.
fn is_canonical(rest: &str) -> bool {
    if rest.bytes().any(|b| b == b'%' || b == b'\\') {
        return false;
    }
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if (segment.is_empty() && !last) || segment == "." || segment == ".." {
            return false;
        }
    }
    true
}

/// Appends one raw path segment to `out`, unreserved escapes decoded.
fn decode_segment(raw: &str, out: &mut String) -> Result<(), GatewayError> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' => return Err(GatewayError::BadPath("a backslash")),
            b'%' => {
                let hex = |at: usize| bytes.get(at).and_then(|h| (*h as char).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    return Err(GatewayError::BadPath("broken percent-encoding"));
                };
                let decoded = (hi * 16 + lo) as u8;
                match decoded {
                    b'/' | b'\\' => {
                        return Err(GatewayError::BadPath("an encoded slash or backslash"))
                    }
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        out.push(decoded as char)
                    }
                    _ => {
                        out.push('%');
                        out.push_str(&raw[i + 1..i + 3].to_ascii_uppercase());
                    }
                }
                i += 3;
            }
            _ => {
                // Up to the next escape or backslash (ASCII, so a char boundary): raw UTF-8
                // stays as it came.
                let run = bytes[i..]
                    .iter()
                    .position(|&b| b == b'%' || b == b'\\')
                    .map_or(bytes.len(), |n| i + n);
                out.push_str(&raw[i..run]);
                i = run;
            }
        }
    }
    Ok(())
}

/// The path as a Node/Express router would match it, for deny checks: percent-decoded, lower-case
/// (Express routes are case-insensitive), repeated slashes collapsed, `.`/`..` resolved.
pub fn normalize_path(path: &str) -> std::borrow::Cow<'_, str> {
    // Fast path (nearly every request): nothing to decode, fold or resolve.
    let mut previous = 0;
    let plain = path.bytes().all(|b| {
        let folded =
            matches!(b, b'%' | b'.' | b'\\' | b'A'..=b'Z') || (b == b'/' && previous == b'/');
        previous = b;
        !folded
    });
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
    let normalized = normalized.as_bytes();
    // `normalized` is lower-case; prefixes are compared ignoring case, without a copy.
    deny.iter().any(|prefix| {
        let prefix = prefix.as_bytes();
        let whole = prefix.strip_suffix(b"/").unwrap_or(prefix);
        normalized
            .get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
            || normalized.eq_ignore_ascii_case(whole)
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

/// A hop-by-hop header (RFC 9110 §7.6.1): meant for one connection, never forwarded as is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// `Connection`: its tokens name more hop-by-hop headers.
    Connection,
    /// `Upgrade`: kept, with `Connection: upgrade`, on an upgrade handshake.
    Upgrade,
    /// `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`.
    Other,
}

/// Whether a header name (any case) is hop-by-hop. `Transfer-Encoding` is not listed: the HTTP
/// layer re-frames bodies.
pub fn hop_by_hop(name: &[u8]) -> Option<Hop> {
    let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
    match name.len() {
        2 if is(b"te") => Some(Hop::Other),
        7 if is(b"upgrade") => Some(Hop::Upgrade),
        7 if is(b"trailer") => Some(Hop::Other),
        10 if is(b"connection") => Some(Hop::Connection),
        10 if is(b"keep-alive") => Some(Hop::Other),
        16 if is(b"proxy-connection") => Some(Hop::Other),
        _ => None,
    }
}

/// The tokens of `Connection` values, trimmed (`close`, `keep-alive`, `upgrade`, or header names).
pub fn connection_tokens<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> impl Iterator<Item = &'a [u8]> {
    values
        .flat_map(|v| v.split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Headers named by `Connection` beyond the usual tokens (they are hop-by-hop too), except the
/// framing headers and the upgrade handshake. Empty, with no allocation, in nearly every request.
pub fn connection_named<'a>(
    values: impl Iterator<Item = &'a [u8]>,
    upgrade: bool,
) -> Vec<HeaderName> {
    connection_tokens(values)
        .filter(|t| {
            let usual = [&b"close"[..], b"keep-alive", b"upgrade"];
            !usual.iter().any(|u| t.eq_ignore_ascii_case(u))
        })
        .filter_map(|t| HeaderName::from_bytes(t).ok())
        .filter(|h| {
            let framing =
                h == header::TRANSFER_ENCODING || h == header::CONTENT_LENGTH || h == header::HOST;
            let handshake = upgrade && (h == header::UPGRADE || h == header::CONNECTION);
            !framing && !handshake
        })
        .collect()
}

/// What the gateway sets or extends on every request it forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`: appended to what came in.
    Forwarded(Forwarded),
    /// `X-Request-Id` (the client's when well-formed, already taken) and `Expect` (answered by
    /// the gateway): replaced or dropped.
    Replaced,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarded {
    For,
    Proto,
    Host,
}

/// Whether a (lower-case) request header name is one the gateway sets itself.
pub fn added(name: &str) -> Option<Added> {
    match name {
        "x-forwarded-for" => Some(Added::Forwarded(Forwarded::For)),
        "x-forwarded-proto" => Some(Added::Forwarded(Forwarded::Proto)),
        "x-forwarded-host" => Some(Added::Forwarded(Forwarded::Host)),
        "x-request-id" | "expect" => Some(Added::Replaced),
        _ => None,
    }
}

/// What forwarding adds to a request: the client's address (formatted once per connection),
/// the scheme, the request id, and whether it is an upgrade handshake.
pub struct Forwarding<'a> {
    pub client: Option<&'a HeaderValue>,
    /// Keep the `X-Forwarded-*` values that came in (the peer is a trusted proxy); otherwise
    /// they are replaced by the gateway's own, so a client cannot name another address.
    pub believe: bool,
    pub proto: &'static str,
    pub request_id: &'a HeaderValue,
    pub upgrade: bool,
}

/// The client a trusted proxy speaks for: the nearest `X-Forwarded-For` address that is not a
/// trusted proxy itself, read from the right (nginx's `real_ip_recursive on`); the leftmost when
/// all are trusted; `None` when no element is an address.
pub fn forwarded_client(headers: &HeaderMap, trust: &crate::config::Trust) -> Option<IpAddr> {
    let mut chain: Vec<IpAddr> = Vec::new();
    for value in headers.get_all(header::HeaderName::from_static("x-forwarded-for")) {
        let Ok(text) = value.to_str() else { continue };
        chain.extend(
            text.split(',')
                .filter_map(|e| e.trim().parse::<IpAddr>().ok()),
        );
    }
    chain
        .iter()
        .rev()
        .find(|ip| !trust.trusts(**ip))
        .or(chain.first())
        .copied()
}

/// A route's static credentials: passes when any rule finds one of its tokens in its header.
pub fn check_token(
    headers: &HeaderMap,
    rules: &[crate::config::TokenRule],
) -> Result<(), GatewayError> {
    let mut presented = false;
    for rule in rules {
        for value in headers.get_all(&rule.header) {
            let value = value.as_bytes();
            let token = match rule.bearer {
                true => match value.get(..7) {
                    Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => &value[7..],
                    _ => continue,
                },
                false => value,
            };
            presented = true;
            // Every token is compared, in time independent of where they differ.
            let matched = rule
                .tokens
                .iter()
                .fold(false, |any, t| any | constant_time_eq(t.as_bytes(), token));
            if matched {
                return Ok(());
            }
        }
    }
    Err(match presented {
        true => GatewayError::TokenInvalid,
        false => GatewayError::TokenMissing,
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && std::hint::black_box(a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y))) == 0
}

/// The client's address as an `X-Forwarded-For` element.
pub fn client_value(client: Option<IpAddr>) -> Option<HeaderValue> {
    client.and_then(|ip| HeaderValue::try_from(ip.to_string()).ok())
}

/// A header map of name/value pairs, in order (for tests).
#[cfg(test)]
pub fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::header_map as headers;

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
    fn canonical_paths_decode_unreserved_collapse_slashes_and_resolve_dots() {
        let cases = [
            ("/api/sessions", "/api/sessions"),
            ("/", "/"),
            ("/api/sessions/", "/api/sessions/"),
            ("/.well-known/x", "/.well-known/x"),
            (
                "//api/whatsapp/webhooks/webjs",
                "/api/whatsapp/webhooks/webjs",
            ),
            (
                "/api/whatsapp/webhooks/webj%73",
                "/api/whatsapp/webhooks/webjs",
            ),
            (
                "/api/%77hatsapp//webhooks/./webjs",
                "/api/whatsapp/webhooks/webjs",
            ),
            ("/cleanup/..", "/"),
            ("/cleanup/%2e%2e/all", "/all"),
            ("/api/internal/%2E%2E", "/api/"),
            ("/remoteauth/..", "/"),
            ("/a/b/../c", "/a/c"),
            ("/a/b/.", "/a/b/"),
            ("/a%20b/%7e%41", "/a%20b/~A"),
            ("/a%c3%a9", "/a%C3%A9"),
            // Raw UTF-8 (which http's parser lets through) stays as it came (found by fuzzing).
            ("//caf\u{e9}/./x", "/caf\u{e9}/x"),
            ("/%7e\u{e9}%7e", "/~\u{e9}~"),
            ("*", "*"),
        ];
        for (raw, want) in cases {
            assert_eq!(canonical_path(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn paths_whose_meaning_depends_on_the_decoder_are_refused() {
        for raw in [
            "/api/whatsapp/webhooks%2Fwebjs",
            "/api/whatsapp/webhooks%2fwebjs",
            "/api%5Cinternal",
            "/api\\internal",
            "/..",
            "/a/../../b",
            "/%2e%2e/etc",
            "/a%2",
            "/a%zz",
            "api",
        ] {
            assert_eq!(
                canonical_path(raw).map_err(|e| e.code()),
                Err("request.bad_path"),
                "{raw}"
            );
        }
    }

    #[test]
    fn hop_by_hop_names_are_matched_in_any_case() {
        for (name, hop) in [
            (&b"Connection"[..], Some(Hop::Connection)),
            (b"UPGRADE", Some(Hop::Upgrade)),
            (b"te", Some(Hop::Other)),
            (b"Keep-Alive", Some(Hop::Other)),
            (b"proxy-connection", Some(Hop::Other)),
            (b"Trailer", Some(Hop::Other)),
            (b"transfer-encoding", None),
            (b"tx", None),
        ] {
            assert_eq!(hop_by_hop(name), hop, "{name:?}");
        }
    }

    #[test]
    fn json_bodies_are_known_by_their_media_type_in_any_case() {
        for (value, json) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/vnd.api+json", true),
            (" application/problem+JSON ;q=1", true),
            ("text/json", false),
            ("application/jsonx", false),
            ("application/x-www-form-urlencoded", false),
            ("+json", false),
        ] {
            assert_eq!(
                is_json(&headers(&[("content-type", value)])),
                json,
                "{value}"
            );
        }
        assert!(!is_json(&headers(&[])));
    }
}
