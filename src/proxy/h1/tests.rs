use super::*;
use bytes::Bytes;

fn head_of(text: &str) -> Head {
    let mut buf = BytesMut::from(text.as_bytes());
    parse_response(&mut buf).unwrap().unwrap()
}

use crate::proxy::hygiene::header_map as headers;

/// The head `encode_request` writes for `headers`, from client 127.0.0.9 over http.
fn encoded(
    method: Method,
    target: &str,
    headers: &HeaderMap,
    body: Option<usize>,
    upgrade: bool,
) -> String {
    let client = HeaderValue::from_static("127.0.0.9");
    encoded_from(
        (Some(&client), true),
        method,
        target,
        headers,
        body,
        upgrade,
    )
}

/// The head `encode_request` writes for `headers`, from `client` over http (a trusted proxy
/// when `believe`: the `X-Forwarded-*` that came in are kept).
fn encoded_from(
    (client, believe): (Option<&HeaderValue>, bool),
    method: Method,
    target: &str,
    headers: &HeaderMap,
    body: Option<usize>,
    upgrade: bool,
) -> String {
    let add = Forwarding {
        client,
        believe,
        proto: "http",
        request_id: &HeaderValue::from_static("rid-1"),
        upgrade,
    };
    let mut out = Vec::new();
    let target = target.parse().unwrap();
    encode_request(&mut out, &method, &target, headers, body, &add);
    String::from_utf8(out).unwrap()
}

/// A header map's names, sorted.
fn sorted_names(headers: &HeaderMap) -> Vec<&str> {
    let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
    names.sort();
    names
}

#[test]
fn a_request_head_keeps_headers_and_frames_a_whole_body_by_its_length() {
    let h = headers(&[
        ("host", "a"),
        ("transfer-encoding", "chunked"),
        ("x-workspace-id", "7"),
    ]);
    let text = encoded(
        Method::POST,
        "/api/sessions?workspace_id=7",
        &h,
        Some(12),
        false,
    );
    assert_eq!(
        text,
        "POST /api/sessions?workspace_id=7 HTTP/1.1\r\nhost: a\r\nx-workspace-id: 7\r\n\
         x-forwarded-for: 127.0.0.9\r\nx-forwarded-proto: http\r\nx-forwarded-host: a\r\n\
         x-request-id: rid-1\r\ncontent-length: 12\r\n\r\n"
    );
    let get = encoded(Method::GET, "/", &HeaderMap::new(), Some(0), false);
    assert_eq!(
        get,
        "GET / HTTP/1.1\r\nx-forwarded-for: 127.0.0.9\r\nx-forwarded-proto: http\r\n\
         x-request-id: rid-1\r\n\r\n"
    );
}

#[test]
fn hop_by_hop_headers_go_but_the_upgrade_handshake_stays() {
    let h = headers(&[
        ("connection", "keep-alive, x-secret-hop"),
        ("keep-alive", "timeout=5"),
        ("x-secret-hop", "1"),
        ("upgrade", "websocket"),
        ("te", "trailers"),
        ("proxy-connection", "keep-alive"),
        ("trailer", "x"),
        ("expect", "100-continue"),
        ("x-request-id", "from-client"),
        ("transfer-encoding", "chunked"),
        ("x-kept", "1"),
    ]);
    let names = |text: &str| -> Vec<String> {
        let mut names: Vec<String> = text
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_string()))
            .collect();
        names.sort();
        names
    };
    let added = ["x-forwarded-for", "x-forwarded-proto", "x-request-id"];
    let mut plain = vec!["transfer-encoding", "x-kept"];
    plain.extend(added);
    plain.sort();
    assert_eq!(names(&encoded(Method::POST, "/", &h, None, false)), plain);
    let mut upgrade = vec!["connection", "transfer-encoding", "upgrade", "x-kept"];
    upgrade.extend(added);
    upgrade.sort();
    let text = encoded(Method::GET, "/ws", &h, None, true);
    assert_eq!(names(&text), upgrade);
    assert!(text.contains("connection: upgrade\r\n") && text.contains("upgrade: websocket\r\n"));
    assert!(text.contains("x-request-id: rid-1\r\n"), "{text}");
}

#[test]
fn forwarded_headers_are_appended_to_what_came_in() {
    let h = headers(&[
        ("x-forwarded-for", "10.0.0.1"),
        ("x-forwarded-for", "10.0.0.2"),
        ("x-forwarded-proto", "https"),
        ("host", "gw:3000"),
    ]);
    let text = encoded(Method::GET, "/", &h, Some(0), false);
    assert!(
        text.contains("\r\nx-forwarded-for: 10.0.0.1, 10.0.0.2, 127.0.0.9\r\n"),
        "{text}"
    );
    assert_eq!(text.matches("x-forwarded-for").count(), 1);
    assert!(
        text.contains("\r\nx-forwarded-proto: https, http\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nx-forwarded-host: gw:3000\r\n"), "{text}");
    // Without a client address, what came in goes on as it was.
    let text = encoded_from((None, true), Method::GET, "/", &h, Some(0), false);
    assert!(
        text.contains("\r\nx-forwarded-for: 10.0.0.1, 10.0.0.2\r\n"),
        "{text}"
    );
    // From a peer that is not a trusted proxy, what came in is replaced, not believed.
    let peer = HeaderValue::from_static("203.0.113.7");
    let text = encoded_from((Some(&peer), false), Method::GET, "/", &h, Some(0), false);
    assert!(
        text.contains("\r\nx-forwarded-for: 203.0.113.7\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nx-forwarded-proto: http\r\n"), "{text}");
    assert!(text.contains("\r\nx-forwarded-host: gw:3000\r\n"), "{text}");
    assert_eq!(text.matches("x-forwarded-").count(), 3, "{text}");
}

#[test]
fn an_http2_authority_becomes_the_host() {
    let text = encoded(
        Method::GET,
        "https://gw.example:8443/a?b=1",
        &HeaderMap::new(),
        Some(0),
        false,
    );
    assert!(
        text.starts_with("GET /a?b=1 HTTP/1.1\r\nhost: gw.example:8443\r\n"),
        "{text}"
    );
    assert!(
        text.contains("\r\nx-forwarded-host: gw.example:8443\r\n"),
        "{text}"
    );
}

#[test]
fn a_response_loses_its_hop_by_hop_headers_but_a_101_keeps_its_handshake() {
    let head = head_of(
        "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\n\
         X-Hop: 1\r\nUpgrade: h2c\r\nX-Kept: 1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(sorted_names(&head.headers), ["content-length", "x-kept"]);
    assert!(head.keep_alive);
    let switching = head_of(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Keep-Alive: timeout=5\r\n\r\n",
    );
    assert_eq!(sorted_names(&switching.headers), ["connection", "upgrade"]);
}

#[test]
fn a_response_head_is_parsed_only_when_complete_and_shares_its_bytes() {
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b"[..]);
    assert!(parse_response(&mut buf).unwrap().is_none());
    buf.extend_from_slice(b"\r\n\r\nokNEXT");
    let head = parse_response(&mut buf).unwrap().unwrap();
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.headers["x-a"], "b");
    assert_eq!(&buf[..], b"okNEXT", "the body stays in the buffer");
    assert_eq!(
        response_framing(&Method::GET, &head),
        Ok(Framing::Length(2))
    );
}

#[test]
fn framing_follows_rfc_9112() {
    let chunked = head_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(
        response_framing(&Method::GET, &chunked),
        Ok(Framing::Chunked)
    );
    assert_eq!(
        response_framing(&Method::HEAD, &chunked),
        Ok(Framing::Empty)
    );
    let none = head_of("HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(response_framing(&Method::GET, &none), Ok(Framing::Close));
    let no_content = head_of("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(
        response_framing(&Method::GET, &no_content),
        Ok(Framing::Empty)
    );
    let two = head_of("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    assert_eq!(response_framing(&Method::GET, &two), Err(ParseError::Head));
    let bad = head_of("HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n");
    assert_eq!(response_framing(&Method::GET, &bad), Err(ParseError::Head));
}

#[test]
fn keep_alive_follows_the_version_and_connection() {
    let keeps_alive = |text: &str| head_of(text).keep_alive;
    assert!(keeps_alive("HTTP/1.1 200 OK\r\n\r\n"));
    assert!(!keeps_alive(
        "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\n\r\n"
    ));
    assert!(!keeps_alive("HTTP/1.0 200 OK\r\n\r\n"));
    assert!(keeps_alive(
        "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n"
    ));
}

#[test]
fn garbage_and_oversized_heads_are_errors() {
    let mut buf = BytesMut::from(&b"HTTX/1.1 200 OK\r\n\r\n"[..]);
    assert_eq!(parse_response(&mut buf).unwrap_err(), ParseError::Head);
    let mut big = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
    big.extend_from_slice(&vec![b'a'; MAX_HEAD + 1]);
    assert_eq!(parse_response(&mut big).unwrap_err(), ParseError::TooLarge);
}

/// Decodes `wire` fed in pieces of `step` bytes: the data and whether the end was seen.
fn decode_in_steps(wire: &[u8], step: usize) -> (Vec<u8>, bool, BytesMut) {
    let (mut decoder, mut buf, mut data) = (Chunked::default(), BytesMut::new(), Vec::new());
    for piece in wire.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf).unwrap() {
                Decoded::Data(d) => data.extend_from_slice(&d),
                Decoded::More => break,
                Decoded::End => return (data, true, buf),
            }
        }
    }
    (data, false, buf)
}

#[test]
fn chunked_bodies_decode_the_same_however_they_arrive() {
    let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
    for step in 1..wire.len() {
        let (data, ended, rest) = decode_in_steps(wire, step);
        assert_eq!(
            (data.as_slice(), ended),
            (&b"hello world"[..], true),
            "step {step}"
        );
        assert!(b"NEXT".starts_with(&rest), "step {step}: {rest:?}");
    }
    let (data, ended, _) = decode_in_steps(b"3\r\nabc\r\n0\r\n\r\n", 64);
    assert_eq!((data.as_slice(), ended), (&b"abc"[..], true));
    let mut bad = BytesMut::from(&b"zz\r\n"[..]);
    assert_eq!(Chunked::default().decode(&mut bad), Err(ParseError::Chunk));
    let mut no_crlf = BytesMut::from(&b"1\r\naXY"[..]);
    let mut decoder = Chunked::default();
    assert_eq!(
        decoder.decode(&mut no_crlf),
        Ok(Decoded::Data(Bytes::from_static(b"a")))
    );
    assert_eq!(decoder.decode(&mut no_crlf), Err(ParseError::Chunk));
}

#[test]
fn chunk_size_lines_are_lower_case_hex() {
    for (len, line) in [
        (0, "0\r\n"),
        (5, "5\r\n"),
        (255, "ff\r\n"),
        (4096, "1000\r\n"),
    ] {
        let (buf, used) = chunk_prefix(len);
        assert_eq!(&buf[..used], line.as_bytes(), "{len}");
    }
    let (buf, used) = chunk_prefix(usize::MAX);
    assert_eq!(&buf[..used], b"ffffffffffffffff\r\n");
}
