use super::*;

/// A masked client frame (`first`: FIN, opcode).
pub(crate) fn client(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn decode(input: &[u8], max: usize) -> Result<Vec<Incoming>, WireError> {
    let mut got = Vec::new();
    Decoder::default().feed(input, max, &mut |m| got.push(m))?;
    Ok(got)
}

#[test]
fn server_frames_carry_their_length_in_the_shortest_form() {
    for (len, head) in [(0, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
        let text = "x".repeat(len);
        let frame = Frame::text(&text);
        assert_eq!(frame.wire().len(), head + len);
        assert_eq!(frame.wire()[0], 0x81);
        assert_eq!(frame.payload(), text.as_bytes());
    }
    let close = Frame::close(4100, "Over capacity");
    assert_eq!(&close.wire()[..4], &[0x88, 15, 0x10, 0x04]);
    assert_eq!(
        Frame::close(1000, &"é".repeat(100)).wire().len(),
        2 + 2 + 122
    );
}

#[test]
fn messages_decode_whatever_the_read_boundaries() {
    let mut wire = client(0x81, br#"{"event":"pusher:ping"}"#);
    wire.extend(client(0x89, b"hi"));
    wire.extend(client(0x01, b"hel"));
    wire.extend(client(0x8A, b""));
    wire.extend(client(0x80, b"lo"));
    wire.extend(client(0x81, &vec![b'a'; 300]));
    wire.extend(client(0x88, &[0x03, 0xE8]));
    let whole = decode(&wire, 1024).unwrap();
    let want = vec![
        Incoming::Text(r#"{"event":"pusher:ping"}"#.into()),
        Incoming::Ping(Bytes::from_static(b"hi")),
        Incoming::Pong,
        Incoming::Text("hello".into()),
        Incoming::Text("a".repeat(300)),
        Incoming::Close(Some(1000)),
    ];
    assert_eq!(whole, want);
    for chunk in [1, 2, 3, 7, 64] {
        let mut decoder = Decoder::default();
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            decoder.feed(piece, 1024, &mut |m| got.push(m)).unwrap();
        }
        assert_eq!(got, want, "read {chunk} bytes at a time");
        assert!(decoder.partial.is_empty() && decoder.partial.capacity() == 0);
    }
}

#[test]
fn what_the_protocol_forbids_is_an_error() {
    let unmasked = [0x81, 0x01, b'a'];
    let cases: Vec<(Vec<u8>, WireError)> = vec![
        (
            unmasked.to_vec(),
            WireError::Protocol("client frames must be masked"),
        ),
        (client(0xC1, b"a"), WireError::Protocol("reserved bits set")),
        (
            client(0x09, b"a"),
            WireError::Protocol("control frames are short and whole"),
        ),
        (
            client(0x89, &[0; 126]),
            WireError::Protocol("control frames are short and whole"),
        ),
        (
            client(0x80, b"a"),
            WireError::Protocol("a continuation without a message"),
        ),
        (client(0x83, b"a"), WireError::Protocol("unknown opcode")),
        (client(0x81, &[0xff, 0xfe]), WireError::NotUtf8),
        (
            client(0x88, &[0x03]),
            WireError::Protocol("a close frame with one byte"),
        ),
        (client(0x81, &[b'a'; 101]), WireError::TooLarge),
        (
            [client(0x01, &[b'a'; 60]), client(0x80, &[b'a'; 60])].concat(),
            WireError::TooLarge,
        ),
        (
            [client(0x01, b"a"), client(0x81, b"b")].concat(),
            WireError::Protocol("a new message inside a fragmented one"),
        ),
    ];
    for (wire, error) in cases {
        assert_eq!(decode(&wire, 100), Err(error.clone()), "{wire:02x?}");
    }
    assert_eq!(WireError::TooLarge.close_code(), 1009);
}

#[test]
fn a_declared_length_over_the_limit_is_refused_before_its_bytes_arrive() {
    // Only the header of a 1 GiB frame: refused at once, nothing buffered.
    let mut head = vec![0x81, 0x80 | 127];
    head.extend_from_slice(&(1u64 << 30).to_be_bytes());
    assert_eq!(decode(&head, 10 * 1024), Err(WireError::TooLarge));
}
