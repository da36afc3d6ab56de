//! HTTP/1.1 as the gateway speaks it to instances: the request head it writes, the response
//! head it reads, and how the response body is framed. Pure functions over bytes (no I/O), so
//! the upstream client ([`super::upstream`]) drives them inside the request's own task.

use super::hygiene::{self, Added, Forwarding, Hop};
use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use std::mem::MaybeUninit;

/// Response heads longer than this are refused (nginx's default `proxy_buffer_size` is 4–8 KiB;
/// Node sends far less).
pub const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("malformed response head")]
    Head,
    #[error("response head over {MAX_HEAD} bytes")]
    TooLarge,
    #[error("malformed chunked body")]
    Chunk,
}

/// Writes the request head an instance gets (request line, headers, framing, blank line) into
/// `out`: the client's headers but the hop-by-hop ones ([`hygiene::hop_by_hop`], those named by
/// `Connection`; the upgrade handshake kept on upgrades) and those the gateway sets, then
/// `Host` (from an HTTP/2 authority), `X-Forwarded-*` (appended to what came in), the upgrade's
/// `Connection` and the request id. `body_len` is the length of a body sent whole
/// (`Content-Length` is set to it, any `Transfer-Encoding` dropped); `None` keeps the client's
/// framing headers for a streamed body.
pub fn encode_request(
    out: &mut Vec<u8>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body_len: Option<usize>,
    add: &Forwarding<'_>,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // What came in of the headers the gateway appends to (rarely anything).
    let mut prior: [Vec<u8>; 3] = Default::default();
    let mut host = client_fields(out, headers, body_len.is_some(), add, &mut prior);
    if host.is_none() {
        // HTTP/2 carries the host in the URI's authority.
        host = uri.authority().map(|a| a.as_str().as_bytes());
        if let Some(host) = host {
            field(out, b"host", host);
        }
    }
    let [for_, proto, forwarded_host] = &mut prior;
    appended(
        out,
        b"x-forwarded-for",
        for_,
        add.client.map(HeaderValue::as_bytes),
    );
    appended(out, b"x-forwarded-proto", proto, Some(add.proto.as_bytes()));
    appended(out, b"x-forwarded-host", forwarded_host, host);
    if add.upgrade {
        field(out, b"connection", b"upgrade");
    }
    field(out, b"x-request-id", add.request_id.as_bytes());
    match body_len {
        Some(0) if !needs_length(method) => {}
        Some(len) => field(
            out,
            b"content-length",
            itoa::Buffer::new().format(len).as_bytes(),
        ),
        None => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// The client's headers an instance gets, written into `out`; what came in of the headers the
/// gateway appends to goes into `prior` instead. Returns the client's `Host`.
fn client_fields<'h>(
    out: &mut Vec<u8>,
    headers: &'h HeaderMap,
    whole: bool,
    add: &Forwarding<'_>,
    prior: &mut [Vec<u8>; 3],
) -> Option<&'h [u8]> {
    let named = match headers.contains_key(header::CONNECTION) {
        true => hygiene::connection_named(
            headers
                .get_all(header::CONNECTION)
                .iter()
                .map(HeaderValue::as_bytes),
            add.upgrade,
        ),
        false => Vec::new(),
    };
    let mut host = None;
    for (name, value) in headers {
        let framing = name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING;
        if framing && whole {
            continue;
        }
        match hygiene::hop_by_hop(name.as_str().as_bytes()) {
            Some(Hop::Upgrade) if add.upgrade => {}
            Some(_) => continue,
            None => {}
        }
        match hygiene::added(name.as_str()) {
            Some(Added::Forwarded(_)) if !add.believe => continue,
            Some(Added::Forwarded(which)) => {
                let joined = &mut prior[which as usize];
                joined.extend_from_slice(value.as_bytes());
                joined.extend_from_slice(b", ");
                continue;
            }
            Some(Added::Replaced) => continue,
            None => {}
        }
        if !named.is_empty() && named.contains(name) {
            continue;
        }
        if name == header::HOST {
            host.get_or_insert(value.as_bytes());
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    host
}

/// `name: <what came in>, <last>` (or either alone).
fn appended(out: &mut Vec<u8>, name: &[u8], prior: &mut Vec<u8>, last: Option<&[u8]>) {
    match last {
        Some(last) if prior.is_empty() => field(out, name, last),
        Some(last) => {
            prior.extend_from_slice(last);
            field(out, name, prior);
        }
        None if prior.is_empty() => {}
        None => field(out, name, &prior[..prior.len() - 2]),
    }
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Methods whose empty body is still announced (`Content-Length: 0`), as clients send them.
fn needs_length(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// A parsed response head, its hop-by-hop headers removed (but the handshake of a `101`).
#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The connection can carry another request after this response (HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `keep-alive`).
    pub keep_alive: bool,
}

/// Parses a response head off the front of `buf` (consuming it) when complete.
pub fn parse_response(buf: &mut BytesMut) -> Result<Option<Head>, ParseError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(ParseError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ParseError::Head),
    };
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(ParseError::Head)?;
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    // Offsets into the head (name, value), so the values can share its bytes once frozen.
    let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
    let mut said = ConnectionSaid::default();
    let kept = end_to_end(
        resp.headers,
        buf.as_ptr() as usize,
        switching,
        &mut spans,
        &mut said,
    );
    let keep_alive = !said.close && (resp.version == Some(1) || said.keep);
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(kept);
    for &(name, name_end, value, value_end) in &spans[..kept] {
        let name = HeaderName::from_bytes(&head[name as usize..name_end as usize])
            .map_err(|_| ParseError::Head)?;
        let value = HeaderValue::from_maybe_shared(head.slice(value as usize..value_end as usize))
            .map_err(|_| ParseError::Head)?;
        headers.append(name, value);
    }
    for name in said.named {
        headers.remove(name);
    }
    Ok(Some(Head {
        status,
        headers,
        keep_alive,
    }))
}

/// What an instance's `Connection` headers said.
#[derive(Default)]
struct ConnectionSaid {
    close: bool,
    keep: bool,
    /// Headers it named, hop-by-hop too (rarely any).
    named: Vec<HeaderName>,
}

/// A header's name and value as offsets into the head: name start, end, value start, end.
type Span = (u32, u32, u32, u32);

/// Finds the end-to-end headers of a response head starting at `base` (the hop-by-hop ones are
/// left out but for the handshake of a `101`): their spans, how many, and what `Connection` said.
fn end_to_end(
    headers: &[httparse::Header<'_>],
    base: usize,
    switching: bool,
    spans: &mut [Span; MAX_HEADERS],
    said: &mut ConnectionSaid,
) -> usize {
    let mut kept = 0;
    for h in headers {
        let name = h.name.as_bytes();
        match hygiene::hop_by_hop(name) {
            Some(Hop::Connection) => {
                for token in hygiene::connection_tokens(std::iter::once(h.value)) {
                    let is = |t: &[u8]| token.eq_ignore_ascii_case(t);
                    said.close |= is(b"close");
                    said.keep |= is(b"keep-alive");
                }
                said.named.extend(hygiene::connection_named(
                    std::iter::once(h.value),
                    switching,
                ));
                if !switching {
                    continue;
                }
            }
            Some(Hop::Upgrade) if switching => {}
            Some(_) => continue,
            None => {}
        }
        let offset = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
        let (name_at, value_at) = (offset(name), offset(h.value));
        spans[kept] = (
            name_at,
            name_at + name.len() as u32,
            value_at,
            value_at + h.value.len() as u32,
        );
        kept += 1;
    }
    kept
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the instance closes the connection.
    Close,
}

/// The framing of a response to `method` (RFC 9112 §6.3).
pub fn response_framing(method: &Method, head: &Head) -> Result<Framing, ParseError> {
    let status = head.status.as_u16();
    if *method == Method::HEAD || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    if let Some(te) = last_value(&head.headers, &header::TRANSFER_ENCODING) {
        let last = te.rsplit(|b| *b == b',').next().unwrap_or_default();
        return Ok(match last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            true => Framing::Chunked,
            false => Framing::Close,
        });
    }
    let mut lengths = head.headers.get_all(header::CONTENT_LENGTH).iter();
    match (lengths.next(), lengths.next()) {
        (None, _) => Ok(Framing::Close),
        (Some(len), None) => std::str::from_utf8(len.as_bytes())
            .ok()
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .map(Framing::Length)
            .ok_or(ParseError::Head),
        // Several lengths: an instance that frames ambiguously is not trusted.
        (Some(_), Some(_)) => Err(ParseError::Head),
    }
}

fn last_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a [u8]> {
    headers
        .get_all(name)
        .iter()
        .next_back()
        .map(HeaderValue::as_bytes)
}

mod chunked;
#[cfg(test)]
mod tests;

pub use chunked::{chunk_prefix, Chunked, Decoded};
