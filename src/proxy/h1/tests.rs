use super::*;

fn head_of(text: &str) -> Head {
    let mut buf = BytesMut::from(text.as_bytes());
    parse_response(&mut buf).unwrap().unwrap()
}

#[test]
fn a_request_head_keeps_headers_and_frames_a_whole_body_by_its_length() {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("a"));
    headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
    headers.insert("x-workspace-id", HeaderValue::from_static("7"));
    let mut out = Vec::new();
    let uri: Uri = "/api/sessions?workspace_id=7".parse().unwrap();
    encode_request(&mut out, &Method::POST, &uri, &headers, Some(12));
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("POST /api/sessions?workspace_id=7 HTTP/1.1\r\n"),
        "{text}"
    );
    assert!(text.contains("host: a\r\n") && text.contains("x-workspace-id: 7\r\n"));
    assert!(!text.contains("transfer-encoding"), "{text}");
    assert!(text.ends_with("content-length: 12\r\n\r\n"), "{text}");

    let mut get = Vec::new();
    encode_request(
        &mut get,
        &Method::GET,
        &"/".parse().unwrap(),
        &HeaderMap::new(),
        Some(0),
    );
    assert_eq!(get, b"GET / HTTP/1.1\r\n\r\n");
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
    assert!(keeps_alive(&head_of("HTTP/1.1 200 OK\r\n\r\n")));
    assert!(!keeps_alive(&head_of(
        "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\n\r\n"
    )));
    assert!(!keeps_alive(&head_of("HTTP/1.0 200 OK\r\n\r\n")));
    assert!(keeps_alive(&head_of(
        "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n"
    )));
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
