use super::*;

#[test]
fn content_length_beside_transfer_encoding_is_ambiguous_in_either_order() {
    assert!(ambiguous_in(&[
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ]));
    assert!(ambiguous_in(&[
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\ncontent-length: 5\r\n\r\n"
    ]));
}

#[test]
fn two_content_lengths_are_ambiguous_even_when_equal() {
    assert!(ambiguous_in(&[
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
    ]));
}

#[test]
fn plain_requests_with_bodies_of_either_framing_pass_across_reads_and_pipelines() {
    let stream = b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world\
GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n\
GET /c HTTP/1.1\r\n\r\n";
    // Every split point: the scanner must follow the same stream the same way.
    for split in 0..stream.len() {
        let (a, b) = stream.split_at(split);
        assert!(!ambiguous_in(&[a, b]), "split at {split}");
    }
    // A smuggled head inside a body is body, not a head.
    assert!(!ambiguous_in(&[b"POST / HTTP/1.1\r\nContent-Length: 58\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx"]));
}

#[test]
fn an_ambiguous_head_after_chunked_and_sized_bodies_is_still_seen() {
    let stream = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok\
POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";
    for split in 0..stream.len() {
        let (a, b) = stream.split_at(split);
        assert!(ambiguous_in(&[a, b]), "split at {split}");
    }
}

#[test]
fn heads_with_bare_line_feeds_are_followed_too() {
    let stream = b"GET /a HTTP/1.1\nHost: x\n\n\
POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";
    for split in 0..stream.len() {
        let (a, b) = stream.split_at(split);
        assert!(ambiguous_in(&[a, b]), "split at {split}");
    }
}
