//! Request framing as received, before hyper normalises it.
//!
//! hyper reads `Content-Length` beside `Transfer-Encoding` as chunked and drops the length, and
//! keeps one of several equal `Content-Length`s (RFC 9112 §6.3 allows both). Another parser in
//! the path (an old proxy in front, a Node instance behind) may read such a request differently,
//! which is how requests are smuggled, so the gateway refuses them as nginx does: 400 and the
//! connection closed. hyper no longer shows them, so [`Guarded`] reads the request heads as the
//! bytes pass by (skipping bodies by their framing) and raises a per-connection flag
//! ([`Ambiguous`]) that the request handler checks. Scanning stops (and hyper alone decides) at
//! an upgrade, a head over [`MAX_HEAD`], or anything it cannot follow.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Heads longer than this are not scanned (hyper applies its own limit).
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;

/// Set once a request head on the connection had ambiguous framing.
#[derive(Clone, Default)]
pub struct Ambiguous(Arc<AtomicBool>);

impl Ambiguous {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A client stream whose request heads are checked for ambiguous framing as they are read.
pub struct Guarded<S> {
    inner: S,
    scanner: Scanner,
    flag: Ambiguous,
}

impl<S> Guarded<S> {
    pub fn new(inner: S) -> (Self, Ambiguous) {
        let flag = Ambiguous::default();
        let guarded = Self {
            inner,
            scanner: Scanner::default(),
            flag: flag.clone(),
        };
        (guarded, flag)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            if this.scanner.feed(&buf.filled()[before..]) {
                this.flag.0.store(true, Ordering::Relaxed);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Where the scanner is in the byte stream.
#[derive(Default)]
enum Scanner {
    /// Reading a head; the bytes of a head split across reads are kept here.
    #[default]
    Head,
    Partial(Vec<u8>),
    /// Skipping this many body bytes.
    Body(u64),
    Chunked(Chunk),
    /// Not following the stream any more.
    Stopped,
}

/// Where a chunked body is.
enum Chunk {
    /// In a size line: the size so far, and whether an extension (`;…`) started.
    Size {
        size: u64,
        digits: u8,
        ext: bool,
    },
    Data(u64),
    /// After a chunk's data: up to and including its line end.
    DataEnd,
    /// In the trailer section: whether the current line is still empty.
    Trailer {
        empty: bool,
    },
}

/// What a head says about the body after it.
enum Framing {
    Ambiguous,
    None,
    Length(u64),
    Chunked,
    /// Stop following (upgrade, unknown coding, unparsable head: hyper decides).
    Stop,
}

impl Scanner {
    /// Feeds bytes as read; true when a head with ambiguous framing was seen.
    fn feed(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            let state = std::mem::replace(self, Scanner::Stopped);
            let (next, rest, ambiguous) = step(state, data);
            *self = next;
            if ambiguous {
                *self = Scanner::Stopped;
                return true;
            }
            data = rest;
        }
        false
    }
}

/// One step: the next state and the bytes it did not consume.
fn step(state: Scanner, data: &[u8]) -> (Scanner, &[u8], bool) {
    match state {
        Scanner::Stopped => (Scanner::Stopped, &[], false),
        Scanner::Head => match find_end(data, 0) {
            Some(end) => after_head(&data[..end], &data[end..]),
            None => (partial(data.to_vec()), &[], false),
        },
        Scanner::Partial(mut head) => {
            let from = head.len().saturating_sub(3);
            head.extend_from_slice(data);
            match find_end(&head, from) {
                Some(end) => {
                    let used = end - (head.len() - data.len());
                    let (next, _, ambiguous) = after_head(&head[..end], &[]);
                    (next, &data[used..], ambiguous)
                }
                None => (partial(head), &[], false),
            }
        }
        Scanner::Body(left) => {
            let n = left.min(data.len() as u64);
            let next = match left - n {
                0 => Scanner::Head,
                more => Scanner::Body(more),
            };
            (next, &data[n as usize..], false)
        }
        Scanner::Chunked(chunk) => {
            let (next, rest) = chunk_step(chunk, data);
            (next, rest, false)
        }
    }
}

fn partial(head: Vec<u8>) -> Scanner {
    match head.len() > MAX_HEAD {
        true => Scanner::Stopped,
        false => Scanner::Partial(head),
    }
}

/// The index just past the `\r\n\r\n` ending a head, searching from `from`.
fn find_end(bytes: &[u8], from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| from + i + 4)
}

fn after_head<'a>(head: &[u8], rest: &'a [u8]) -> (Scanner, &'a [u8], bool) {
    match framing(head) {
        Framing::Ambiguous => (Scanner::Stopped, &[], true),
        Framing::None | Framing::Length(0) => (Scanner::Head, rest, false),
        Framing::Length(n) => (Scanner::Body(n), rest, false),
        Framing::Chunked => (
            Scanner::Chunked(Chunk::Size {
                size: 0,
                digits: 0,
                ext: false,
            }),
            rest,
            false,
        ),
        Framing::Stop => (Scanner::Stopped, &[], false),
    }
}

fn framing(head: &[u8]) -> Framing {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        return Framing::Stop;
    }
    let (mut lengths, mut length, mut codings) = (0, None, None);
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            codings = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            return Framing::Stop;
        }
    }
    if lengths > 1 || (lengths == 1 && codings.is_some()) {
        return Framing::Ambiguous;
    }
    match (codings, length) {
        (Some(codings), _) => {
            let last = codings.rsplit(|b| *b == b',').next().unwrap_or_default();
            match last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                true => Framing::Chunked,
                false => Framing::Stop,
            }
        }
        (None, Some(n)) => Framing::Length(n),
        (None, None) if lengths == 1 => Framing::Stop,
        (None, None) => Framing::None,
    }
}

fn chunk_step(chunk: Chunk, data: &[u8]) -> (Scanner, &[u8]) {
    let chunked = |c| Scanner::Chunked(c);
    match chunk {
        Chunk::Data(left) => {
            let n = left.min(data.len() as u64);
            let next = match left - n {
                0 => Chunk::DataEnd,
                more => Chunk::Data(more),
            };
            (chunked(next), &data[n as usize..])
        }
        Chunk::DataEnd => match data.iter().position(|b| *b == b'\n') {
            Some(i) => (
                chunked(Chunk::Size {
                    size: 0,
                    digits: 0,
                    ext: false,
                }),
                &data[i + 1..],
            ),
            None => (chunked(Chunk::DataEnd), &[]),
        },
        Chunk::Size { size, digits, ext } => size_line(size, digits, ext, data),
        Chunk::Trailer { empty } => {
            for (i, b) in data.iter().enumerate() {
                match (b, empty) {
                    (b'\n', true) => return (Scanner::Head, &data[i + 1..]),
                    (b'\n', false) => {
                        return chunk_step(Chunk::Trailer { empty: true }, &data[i + 1..])
                    }
                    (b'\r', _) => {}
                    _ if empty => {
                        return chunk_step(Chunk::Trailer { empty: false }, &data[i + 1..])
                    }
                    _ => {}
                }
            }
            (chunked(Chunk::Trailer { empty }), &[])
        }
    }
}

fn size_line(mut size: u64, mut digits: u8, mut ext: bool, data: &[u8]) -> (Scanner, &[u8]) {
    for (i, &b) in data.iter().enumerate() {
        match b {
            b'\n' if digits == 0 => return (Scanner::Stopped, &[]),
            b'\n' if size == 0 => {
                return (
                    Scanner::Chunked(Chunk::Trailer { empty: true }),
                    &data[i + 1..],
                )
            }
            b'\n' => return (Scanner::Chunked(Chunk::Data(size)), &data[i + 1..]),
            b'\r' => {}
            _ if ext => {}
            b';' | b' ' | b'\t' => ext = true,
            _ => match (b as char).to_digit(16) {
                Some(d) if digits < 16 => {
                    size = size * 16 + u64::from(d);
                    digits += 1;
                }
                _ => return (Scanner::Stopped, &[]),
            },
        }
    }
    (Scanner::Chunked(Chunk::Size { size, digits, ext }), &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ambiguous_in(chunks: &[&[u8]]) -> bool {
        let mut scanner = Scanner::default();
        chunks.iter().any(|c| scanner.feed(c))
    }

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
}
