//! The scanner that follows request heads and bodies as the bytes pass by: where each head
//! starts and ends, and whether its framing is ambiguous.

use super::MAX_HEAD;

/// Where the scanner is in the byte stream.
#[derive(Default)]
pub(super) enum Scanner {
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
pub(super) enum Chunk {
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

/// What a step came across.
enum Seen {
    Nothing,
    /// The end of a request head.
    Head,
    /// The end of a request head with ambiguous framing.
    Ambiguous,
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
    /// Whether the stream is inside a request head (some of it read, not its end).
    pub(super) fn in_head(&self) -> bool {
        matches!(self, Scanner::Partial(_))
    }

    /// Feeds bytes as read; true when a head with ambiguous framing was seen. `heads` counts
    /// the heads completed.
    pub(super) fn feed(&mut self, mut data: &[u8], heads: &mut u64) -> bool {
        while !data.is_empty() {
            let state = std::mem::replace(self, Scanner::Stopped);
            let (next, rest, seen) = step(state, data);
            *self = next;
            match seen {
                Seen::Nothing => {}
                Seen::Head => *heads += 1,
                Seen::Ambiguous => {
                    *self = Scanner::Stopped;
                    return true;
                }
            }
            data = rest;
        }
        false
    }
}

/// One step: the next state and the bytes it did not consume.
fn step(state: Scanner, data: &[u8]) -> (Scanner, &[u8], Seen) {
    match state {
        Scanner::Stopped => (Scanner::Stopped, &[], Seen::Nothing),
        Scanner::Head => match find_end(data, 0) {
            // The same bound whether the head came in one read or several.
            Some(end) if end > MAX_HEAD => (Scanner::Stopped, &[], Seen::Nothing),
            Some(end) => after_head(&data[..end], &data[end..]),
            None => (partial(data.to_vec()), &[], Seen::Nothing),
        },
        Scanner::Partial(mut head) => {
            let from = head.len().saturating_sub(3);
            head.extend_from_slice(data);
            match find_end(&head, from) {
                Some(end) if end > MAX_HEAD => (Scanner::Stopped, &[], Seen::Nothing),
                Some(end) => {
                    let used = end - (head.len() - data.len());
                    let (next, _, seen) = after_head(&head[..end], &[]);
                    (next, &data[used..], seen)
                }
                None => (partial(head), &[], Seen::Nothing),
            }
        }
        Scanner::Body(left) => {
            let n = left.min(data.len() as u64);
            let next = match left - n {
                0 => Scanner::Head,
                more => Scanner::Body(more),
            };
            (next, &data[n as usize..], Seen::Nothing)
        }
        Scanner::Chunked(chunk) => {
            let (next, rest) = chunk_step(chunk, data);
            (next, rest, Seen::Nothing)
        }
    }
}

fn partial(head: Vec<u8>) -> Scanner {
    match head.len() > MAX_HEAD {
        true => Scanner::Stopped,
        false => Scanner::Partial(head),
    }
}

/// The index just past the empty line ending a head (`\r\n\r\n`, or bare line feeds as
/// httparse also accepts), searching from `from`.
pub(super) fn find_end(bytes: &[u8], from: usize) -> Option<usize> {
    let tail = bytes.get(from..)?;
    memchr::memchr_iter(b'\n', tail).find_map(|i| match &tail[i + 1..] {
        [b'\n', ..] => Some(from + i + 2),
        [b'\r', b'\n', ..] => Some(from + i + 3),
        _ => None,
    })
}

fn after_head<'a>(head: &[u8], rest: &'a [u8]) -> (Scanner, &'a [u8], Seen) {
    match framing(head) {
        Framing::Ambiguous => (Scanner::Stopped, &[], Seen::Ambiguous),
        Framing::None | Framing::Length(0) => (Scanner::Head, rest, Seen::Head),
        Framing::Length(n) => (Scanner::Body(n), rest, Seen::Head),
        Framing::Chunked => (
            Scanner::Chunked(Chunk::Size {
                size: 0,
                digits: 0,
                ext: false,
            }),
            rest,
            Seen::Head,
        ),
        Framing::Stop => (Scanner::Stopped, &[], Seen::Head),
    }
}

fn framing(head: &[u8]) -> Framing {
    let (mut lengths, mut length, mut codings) = (0, None, None);
    // The header lines (after the request line); only three names matter, so a line is looked
    // at closer only when its first letter could start one of them.
    let mut start = 0;
    let lines = memchr::memchr_iter(b'\n', head).map(|end| {
        let line = &head[start..end];
        start = end + 1;
        line
    });
    for line in lines.skip(1) {
        if !matches!(line.first(), Some(b'c' | b'C' | b't' | b'T' | b'u' | b'U')) {
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            lengths += 1;
            length = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            codings = Some(value);
        } else if name.eq_ignore_ascii_case(b"upgrade") {
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

/// Whether a connection whose bytes arrive in these reads shows a head with ambiguous framing
/// (what [`Guarded`] would flag; for tests and the fuzz targets).
pub fn ambiguous_in(chunks: &[&[u8]]) -> bool {
    let mut scanner = Scanner::default();
    chunks.iter().any(|c| scanner.feed(c, &mut 0))
}
