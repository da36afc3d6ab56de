//! Request and header hygiene: smuggling defences, canonical paths, path normalisation for deny
//! lists, hop-by-hop headers and `X-Forwarded-*`. Pure functions over headers and paths.

use crate::errors::GatewayError;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

mod path;

pub use path::{canonical_path, is_denied, normalize_path};

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
mod tests;
