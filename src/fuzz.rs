//! Entry points of the fuzz targets (`fuzz/fuzz_targets/`), one per surface that hostile bytes
//! reach. Each takes arbitrary bytes, runs them through the real code and checks properties that
//! must hold for every input (a broken one panics, which the fuzzer reports as a crash):
//!
//! - [`request_head`]: the framing scanner sees the same thing however the bytes are split into
//!   reads; a parsed head goes through the edge's checks, path canonicalisation and workspace
//!   extraction over the shipped `gateway.yaml`, and a workspace found picks an instance in range.
//! - [`canonical_path`]: an accepted path is canonical (idempotent, no `//`, no dot segments, no
//!   encoded separators) and deny prefixes hold for it.
//! - [`signatures`]: the three schemes never accept a forged delivery: what `sign` makes verifies,
//!   one changed body byte does not, and `precheck` refuses only what `verify` refuses.
//! - [`pusher_frame`]: a decoded client frame re-encodes to the same message, and server frames
//!   built from hostile strings are valid JSON carrying those strings unchanged.
//! - [`config`]: any text is a config or a list of errors.
//! - [`proxy_protocol`]: a parsed header is stable under more bytes and incomplete before its end.
//! - [`upstream_response`]: an instance's response head and chunked body decode the same however
//!   they are split.
//!
//! The written corpus in `tests/corpus/` seeds the fuzzer and runs through these in `cargo test`.

use crate::hub::{auth, channel::ChannelName, protocol};
use crate::proxy::{framing, h1, hygiene, proxy_protocol as pp};
use crate::routing::{self, extract};
use crate::signing::{self, Scheme, Secret};
use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::OnceLock;
use std::time::Duration;

/// The shipped configuration, for the head checks' limits, trust and routing rules.
fn shipped() -> &'static crate::config::Config {
    static CONFIG: OnceLock<crate::config::Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let text = include_str!("../gateway.yaml");
        crate::config::parse(text, &|_| Some("1".to_string())).expect("the shipped gateway.yaml")
    })
}

/// Up to `n` pieces of `data` cut at positions taken from its first bytes.
fn cuts(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut points: Vec<usize> = data
        .iter()
        .take(n)
        .map(|&b| usize::from(b) * data.len() / 256)
        .collect();
    points.sort_unstable();
    let mut pieces = Vec::with_capacity(n + 1);
    let mut from = 0;
    for at in points {
        pieces.push(&data[from..at]);
        from = at;
    }
    pieces.push(&data[from..]);
    pieces
}

/// A request as read by the edge: framing, head checks, canonical path, workspace extraction.
pub fn request_head(data: &[u8]) {
    let whole = framing::ambiguous_in(&[data]);
    assert_eq!(framing::ambiguous_in(&cuts(data, 3)), whole, "split reads");
    if data.len() <= 2048 {
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(framing::ambiguous_in(&bytes), whole, "byte-by-byte reads");
    }

    // hyper's parser is httparse with these settings.
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = req.parse(data) else {
        return;
    };
    let mut builder = http::Request::builder()
        .method(req.method.unwrap_or("GET"))
        .uri(req.path.unwrap_or("/"));
    for h in req.headers.iter() {
        builder = builder.header(h.name, h.value);
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    let config = shipped();
    let edge = config.listeners.iter().find(|l| l.name == "edge").unwrap();
    let _ = hygiene::check_framing(&parts.headers);
    let _ = hygiene::check_head_size(&parts, &edge.limits);
    let _ = hygiene::forwarded_client(&parts.headers, &edge.trust);
    let _ = hygiene::is_upgrade(&parts.headers);
    let named = parts.headers.get_all(http::header::CONNECTION).iter();
    let _ = hygiene::connection_named(named.map(HeaderValue::as_bytes), false);
    let Ok(path) = hygiene::canonical_path(parts.uri.path()) else {
        return;
    };
    canonical_holds(&path);

    let group = config.groups.iter().find(|g| g.name == "node").unwrap();
    let rules = group.routing.as_ref().unwrap();
    let view = extract::RequestView {
        header: parts.headers.get(&rules.header).map(HeaderValue::as_bytes),
        path: &path,
        query: parts.uri.query(),
        body: extract::Body::Json(&data[len..]),
    };
    if let extract::Outcome::Found { workspace, .. } = extract::extract(&rules.sources, &view) {
        let names: Vec<&str> = group.instances.iter().map(|i| i.name.as_str()).collect();
        let decision = routing::resolve(rules, &names, workspace, None, &|_| true).unwrap();
        assert!(decision.instance < names.len());
    }
}

/// Path canonicalisation over any text.
pub fn canonical_path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(path) = hygiene::canonical_path(text) {
        canonical_holds(&path);
    }
}

/// What every accepted path satisfies.
fn canonical_holds(path: &str) {
    if path == "*" {
        return;
    }
    assert!(path.starts_with('/'), "{path:?} is absolute");
    assert_eq!(
        hygiene::canonical_path(path).as_deref(),
        Ok(path),
        "canonical once, canonical for good"
    );
    assert!(!path.contains("//"), "{path:?} has no empty segment");
    for segment in path.split('/') {
        assert!(
            segment != "." && segment != "..",
            "{path:?} has no dot segment"
        );
    }
    let upper = path.to_ascii_uppercase();
    assert!(!upper.contains("%2F") && !upper.contains("%5C") && !path.contains('\\'));
    // A deny prefix catches the paths below it (and itself without its `/`), in any case
    // (Express routes ignore case), however they were written.
    let deny = ["/cleanup/".to_string()];
    let lower = path.to_ascii_lowercase();
    let below = lower.starts_with("/cleanup/") || lower == "/cleanup";
    assert_eq!(hygiene::is_denied(&deny, path), below, "{path:?}");
}

/// The instant the signature checks run at (any fixed time works: the input brings its own).
const NOW: i64 = 1_767_225_600;
const TOLERANCE: Duration = Duration::from_secs(300);

/// `name: value` lines as a header map (lines that are not a header are left out).
fn header_lines(lines: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in lines.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    headers
}

/// The three webhook signature schemes: `[scheme][secret] 0xFF [name: value lines] 0xFF [body]`.
pub fn signatures(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let scheme = Scheme::ALL[usize::from(selector) % Scheme::ALL.len()];
    let mut parts = rest.splitn(3, |&b| b == 0xFF);
    let (secret, lines, body) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let headers = header_lines(lines);
    let secrets: Vec<Secret> = std::str::from_utf8(secret)
        .ok()
        .and_then(|text| Secret::from_config(scheme, text).ok())
        .into_iter()
        .collect();
    let verified = signing::verify(scheme, &headers, body, &secrets, NOW, TOLERANCE);
    if let Err(refused) = signing::precheck(scheme, &headers, NOW, TOLERANCE) {
        assert_eq!(
            verified,
            Err(refused),
            "precheck refuses only what verify refuses"
        );
    }
    let Some(secret) = secrets.first() else {
        return;
    };
    // A `webhook-id` is graphic ASCII (it is the replay key); others are refused as malformed.
    let id = std::str::from_utf8(lines)
        .ok()
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic()));
    let signed = signing::sign(scheme, secret, body, NOW, id);
    let mut headers = HeaderMap::new();
    for (name, value) in signed {
        headers.append(name, HeaderValue::from_str(&value).unwrap());
    }
    let verified = signing::verify(scheme, &headers, body, &secrets, NOW, TOLERANCE);
    assert!(verified.is_ok(), "{scheme:?}: a signed delivery verifies");
    let mut forged = body.to_vec();
    match forged.first_mut() {
        Some(b) => *b ^= 1,
        None => forged.push(b'x'),
    }
    let verified = signing::verify(scheme, &headers, &forged, &secrets, NOW, TOLERANCE);
    assert_eq!(
        verified,
        Err(signing::VerifyError::Mismatch),
        "{scheme:?}: forged body"
    );
}

/// A client's Pusher frame, and server frames carrying hostile strings.
pub fn pusher_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = protocol::decode_client(text) {
        let again = protocol::decode_client(&protocol::encode_client(&message));
        assert_eq!(again.as_ref(), Ok(&message), "encode then decode");
        if let protocol::ClientMessage::ClientEvent {
            event,
            channel,
            data,
        } = &message
        {
            // `data` is relayed as it came, however deep (serde_json's `Value` stops at 128).
            #[derive(serde::Deserialize)]
            struct Relayed<'a> {
                event: String,
                channel: String,
                #[serde(borrow)]
                data: &'a serde_json::value::RawValue,
                user_id: String,
            }
            let relayed = protocol::client_event(channel, event, data, Some(text));
            let frame: Relayed = serde_json::from_str(&relayed).unwrap();
            assert_eq!(
                (
                    &frame.event,
                    &frame.channel,
                    frame.data.get(),
                    &*frame.user_id
                ),
                (event, channel, data.as_str(), text)
            );
        }
    }
    let _ = ChannelName::parse(text);
    let _ = protocol::decode_channel_data(text);
    let _ = protocol::decode_user_data(text);
    let _ = auth::verify_channel_auth("key", "secret", "1.1", text, Some(text), text);
    let _ = auth::verify_signin("key", "secret", "1.1", text, text);
    for frame in [
        protocol::event(text, text, text, Some(text)),
        protocol::member_added(text, text, text),
        protocol::subscription_error(text, text, text, 401),
        protocol::error(Some(4200), text),
    ] {
        let value: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert!(value["event"].is_string(), "{frame}");
    }
    let event: serde_json::Value =
        serde_json::from_str(&protocol::event(text, "e", text, Some(text))).unwrap();
    assert_eq!(event["channel"], text);
    assert_eq!(event["data"], text);
}

/// Configuration text.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = crate::config::parse(text, &|name| Some(format!("from-{name}"))) {
        let _ = (config.effective(), config.hash());
    }
}

/// A PROXY protocol header at the start of a connection.
pub fn proxy_protocol(data: &[u8]) {
    let parsed = pp::parse(data);
    if let Ok(Some(header)) = &parsed {
        assert!(header.len <= data.len());
        assert_eq!(pp::parse(&data[..header.len]), parsed, "the header alone");
        assert_eq!(
            pp::parse(&data[..header.len - 1]),
            Ok(None),
            "one byte short is incomplete"
        );
    }
}

/// An instance's response: `[method] [head and body]`.
pub fn upstream_response(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let method = match selector % 3 {
        0 => http::Method::GET,
        1 => http::Method::HEAD,
        _ => http::Method::POST,
    };
    let mut buf = BytesMut::from(rest);
    let Ok(Some(head)) = h1::parse_response(&mut buf) else {
        return;
    };
    if h1::response_framing(&method, &head) == Ok(h1::Framing::Chunked) {
        let whole = decode_chunked(&[&buf]);
        assert_eq!(decode_chunked(&cuts(&buf, 4)), whole, "split reads");
    }
}

/// The chunked body decoded from these reads: its data, and whether it ended or failed.
fn decode_chunked(reads: &[&[u8]]) -> (Vec<u8>, Option<bool>) {
    let mut decoder = h1::Chunked::default();
    let (mut buf, mut out) = (BytesMut::new(), Vec::new());
    for read in reads {
        buf.extend_from_slice(read);
        loop {
            match decoder.decode(&mut buf) {
                Ok(h1::Decoded::Data(data)) => out.extend_from_slice(&data),
                Ok(h1::Decoded::More) => break,
                Ok(h1::Decoded::End) => return (out, Some(true)),
                Err(_) => return (out, Some(false)),
            }
        }
    }
    (out, None)
}

/// Client WebSocket bytes: decoded alike whatever the read boundaries, and never a panic.
pub fn ws_frames(data: &[u8]) {
    use crate::hub::wire::Decoder;
    let Some((&step, bytes)) = data.split_first() else {
        return;
    };
    let decode = |chunk: usize| {
        let (mut decoder, mut got) = (Decoder::default(), Vec::new());
        let result = bytes
            .chunks(chunk.max(1))
            .try_for_each(|piece| decoder.feed(piece, 1024, &mut |m| got.push(m)));
        (got, result)
    };
    assert_eq!(decode(bytes.len()), decode(usize::from(step)));
}

#[cfg(test)]
mod tests {
    type Target = (&'static str, fn(&[u8]));

    /// Every target and the function behind it.
    const TARGETS: [Target; 7] = [
        ("request_head", super::request_head),
        ("canonical_path", super::canonical_path),
        ("signatures", super::signatures),
        ("pusher_frame", super::pusher_frame),
        ("config", super::config),
        ("proxy_protocol", super::proxy_protocol),
        ("upstream_response", super::upstream_response),
    ];

    /// The written corpus (the fuzzer's seeds) passes every property, as does nothing at all.
    #[test]
    fn the_written_corpus_holds_every_property() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
        for (target, run) in TARGETS {
            run(&[]);
            let files = std::fs::read_dir(root.join(target)).unwrap();
            let mut seen = 0;
            for file in files {
                run(&std::fs::read(file.unwrap().path()).unwrap());
                seen += 1;
            }
            assert!(seen >= 4, "{target}: a corpus of {seen} files");
        }
    }

    #[test]
    fn a_signed_delivery_of_each_scheme_is_checked_both_ways() {
        for scheme in 0..3u8 {
            let mut input = vec![scheme];
            input.extend_from_slice(b"whsec_c2VjcmV0\xffmsg_1\xff{\"a\":1}");
            super::signatures(&input);
        }
    }
}
