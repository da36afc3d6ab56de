//! Chunked transfer coding: decoding an instance's chunked body, and the size line of a chunk
//! the gateway writes.

use super::{ParseError, MAX_HEAD};
use bytes::{Buf, Bytes, BytesMut};

/// Decodes a chunked body incrementally from a read buffer.
#[derive(Debug, Default)]
pub struct Chunked {
    /// Data bytes left in the current chunk; `None` between chunks.
    left: Option<u64>,
    done: bool,
}

/// What the decoder found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    /// Needs more bytes.
    More,
    /// The last chunk and the trailers were read.
    End,
}

impl Chunked {
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ParseError> {
        loop {
            if self.done {
                return Ok(Decoded::End);
            }
            match self.left {
                Some(0) => {
                    // The CRLF after a chunk's data.
                    if buf.len() < 2 {
                        return Ok(Decoded::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ParseError::Chunk);
                    }
                    buf.advance(2);
                    self.left = None;
                }
                Some(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::More);
                    }
                    let n = left.min(buf.len() as u64) as usize;
                    self.left = Some(left - n as u64);
                    return Ok(Decoded::Data(buf.split_to(n).freeze()));
                }
                None => {
                    // A size line is at most MAX_SIZE_LINE bytes with its CRLF, however the bytes
                    // arrived (found by fuzzing: a longer one was taken when it came whole).
                    let window = &buf[..buf.len().min(MAX_SIZE_LINE)];
                    let Some(line) = window.windows(2).position(|w| w == b"\r\n") else {
                        return match buf.len() >= MAX_SIZE_LINE {
                            true => Err(ParseError::Chunk),
                            false => Ok(Decoded::More),
                        };
                    };
                    let size = chunk_size(&buf[..line])?;
                    if size == 0 {
                        return self.trailers(buf);
                    }
                    buf.advance(line + 2);
                    self.left = Some(size);
                }
            }
        }
    }

    /// After the last chunk's size line: skips trailers through the empty line.
    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Decoded, ParseError> {
        // `0\r\n` then trailer lines, then `\r\n`: find the blank line after the size line.
        let Some(size_end) = buf.windows(2).position(|w| w == b"\r\n") else {
            return Ok(Decoded::More);
        };
        let rest = &buf[size_end + 2..];
        let end = match rest.starts_with(b"\r\n") {
            true => Some(size_end + 4),
            false => rest
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|i| size_end + 2 + i + 4),
        };
        match end {
            Some(end) if end <= MAX_HEAD => {
                buf.advance(end);
                self.done = true;
                Ok(Decoded::End)
            }
            Some(_) => Err(ParseError::Chunk),
            None if buf.len() >= MAX_HEAD => Err(ParseError::Chunk),
            None => Ok(Decoded::More),
        }
    }
}

/// The longest chunk-size line (extensions included) with its CRLF.
const MAX_SIZE_LINE: usize = 1026;

/// A chunk-size line: hex digits, then optional extensions after `;`.
fn chunk_size(line: &[u8]) -> Result<u64, ParseError> {
    let digits = line
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(ParseError::Chunk);
    }
    let text = std::str::from_utf8(digits).map_err(|_| ParseError::Chunk)?;
    u64::from_str_radix(text, 16).map_err(|_| ParseError::Chunk)
}

/// The size line of a chunk of `len` bytes (`{hex}\r\n`), in a buffer and its used length.
pub fn chunk_prefix(len: usize) -> ([u8; 18], usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 18];
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, byte) in out[..digits].iter_mut().enumerate() {
        *byte = DIGITS[(len >> (4 * (digits - 1 - i))) & 0xf];
    }
    out[digits..digits + 2].copy_from_slice(b"\r\n");
    (out, digits + 2)
}
