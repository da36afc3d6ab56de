//! WebSocket framing (RFC 6455) as the hub speaks it: server frames built once, header and
//! payload in one buffer that every subscriber's socket is given as is, and a decoder of client
//! frames that keeps nothing between reads but an unfinished frame.
//!
//! No extension is negotiated, so a client frame with a reserved bit set is a protocol error,
//! as is an unmasked one; control frames are at most 125 bytes and never fragmented.

use bytes::{Bytes, BytesMut};

/// One server frame on the wire: header and payload, shared by every socket it goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    wire: Bytes,
    /// Length of the header in front of the payload.
    head: u8,
}

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

impl Frame {
    fn new(opcode: u8, payload: &[u8]) -> Self {
        let len = payload.len();
        let mut wire = BytesMut::with_capacity(len + 10);
        wire.extend_from_slice(&[0x80 | opcode]);
        match len {
            0..=125 => wire.extend_from_slice(&[len as u8]),
            126..=0xffff => {
                wire.extend_from_slice(&[126]);
                wire.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                wire.extend_from_slice(&[127]);
                wire.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        let head = wire.len() as u8;
        wire.extend_from_slice(payload);
        Self {
            wire: wire.freeze(),
            head,
        }
    }

    /// A text frame (every Pusher message).
    pub fn text(text: &str) -> Self {
        Self::new(TEXT, text.as_bytes())
    }

    /// A close frame with `code` and `reason` (cut to fit a control frame).
    pub fn close(code: u16, reason: &str) -> Self {
        let mut payload = code.to_be_bytes().to_vec();
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        payload.extend_from_slice(&reason.as_bytes()[..end]);
        Self::new(CLOSE, &payload)
    }

    /// The answer to a client's ping.
    pub fn pong(payload: &[u8]) -> Self {
        Self::new(PONG, payload)
    }

    /// Header and payload, as written to a socket.
    pub fn wire(&self) -> &Bytes {
        &self.wire
    }

    /// The payload (a text frame's UTF-8 text).
    pub fn payload(&self) -> &[u8] {
        &self.wire[usize::from(self.head)..]
    }

    /// A text frame's text.
    pub fn as_text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.payload())
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        Self::text(&text)
    }
}

/// A client message, whole.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Text(String),
    Binary,
    Ping(Bytes),
    Pong,
    /// The client's close code, if it sent one.
    Close(Option<u16>),
}

/// Why the client's bytes are not a WebSocket conversation (the connection is closed 1002,
/// or 1009 for [`WireError::TooLarge`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("message over the size limit")]
    TooLarge,
    #[error("text is not UTF-8")]
    NotUtf8,
}

impl WireError {
    /// The close code the connection ends with.
    pub fn close_code(&self) -> u16 {
        match self {
            Self::Protocol(_) => 1002,
            Self::TooLarge => 1009,
            Self::NotUtf8 => 1007,
        }
    }
}

/// Decodes client frames from the bytes a socket gives, whatever the read boundaries.
#[derive(Debug, Default)]
pub struct Decoder {
    /// An unfinished frame's bytes (empty between frames: an idle connection holds nothing).
    partial: Vec<u8>,
    /// A fragmented message being assembled, and its opcode.
    message: Option<(u8, Vec<u8>)>,
}

impl Decoder {
    /// Decodes `input`, handing each whole message to `out`; `max` bounds a frame and a
    /// message. After an error the connection must end (the decoder's state is undefined).
    pub fn feed(
        &mut self,
        input: &[u8],
        max: usize,
        out: &mut impl FnMut(Incoming),
    ) -> Result<(), WireError> {
        if self.partial.is_empty() {
            let used = self.frames(input, max, out)?;
            self.partial.extend_from_slice(&input[used..]);
            return Ok(());
        }
        self.partial.extend_from_slice(input);
        let partial = std::mem::take(&mut self.partial);
        let used = self.frames(&partial, max, out)?;
        self.partial = partial;
        self.partial.drain(..used);
        if self.partial.is_empty() {
            self.partial = Vec::new(); // give the memory back while idle
        }
        Ok(())
    }

    /// Decodes the whole frames at the front of `buf`; returns how many bytes they took.
    fn frames(
        &mut self,
        buf: &[u8],
        max: usize,
        out: &mut impl FnMut(Incoming),
    ) -> Result<usize, WireError> {
        let mut at = 0;
        while let Some((header, len)) = parse_header(&buf[at..], max)? {
            let start = at + header.size;
            let mut payload = buf[start..start + len].to_vec();
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= header.mask[i % 4];
            }
            at = start + len;
            self.frame(header.fin, header.opcode, payload, max, out)?;
        }
        Ok(at)
    }

    fn frame(
        &mut self,
        fin: bool,
        opcode: u8,
        payload: Vec<u8>,
        max: usize,
        out: &mut impl FnMut(Incoming),
    ) -> Result<(), WireError> {
        match opcode {
            PING => out(Incoming::Ping(Bytes::from(payload))),
            PONG => out(Incoming::Pong),
            CLOSE => out(Incoming::Close(close_code(&payload)?)),
            TEXT | BINARY if self.message.is_some() => {
                return Err(WireError::Protocol("a new message inside a fragmented one"))
            }
            TEXT | BINARY if fin => out(message(opcode, payload)?),
            TEXT | BINARY => self.message = Some((opcode, payload)),
            0 => {
                let Some((first, mut body)) = self.message.take() else {
                    return Err(WireError::Protocol("a continuation without a message"));
                };
                if body.len() + payload.len() > max {
                    return Err(WireError::TooLarge);
                }
                body.extend_from_slice(&payload);
                match fin {
                    true => out(message(first, body)?),
                    false => self.message = Some((first, body)),
                }
            }
            _ => return Err(WireError::Protocol("unknown opcode")),
        }
        Ok(())
    }
}

struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Header bytes, mask included.
    size: usize,
}

/// A whole frame's header and payload length at the front of `buf`, or `None` while it is not
/// all there.
fn parse_header(buf: &[u8], max: usize) -> Result<Option<(Header, usize)>, WireError> {
    let [first, second, ..] = *buf else {
        return Ok(None);
    };
    if first & 0x70 != 0 {
        return Err(WireError::Protocol("reserved bits set"));
    }
    if second & 0x80 == 0 {
        return Err(WireError::Protocol("client frames must be masked"));
    }
    let (fin, opcode) = (first & 0x80 != 0, first & 0x0f);
    let (len, mut size) = match second & 0x7f {
        126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => {
            let bytes: [u8; 8] = buf[2..10].try_into().unwrap_or_default();
            (u64::from_be_bytes(bytes), 10)
        }
        126 | 127 => return Ok(None),
        n => (u64::from(n), 2),
    };
    if opcode & 0x8 != 0 && (!fin || len > 125) {
        return Err(WireError::Protocol("control frames are short and whole"));
    }
    if len > max as u64 {
        return Err(WireError::TooLarge);
    }
    let len = len as usize;
    if buf.len() < size + 4 + len {
        return Ok(None);
    }
    let mask = [buf[size], buf[size + 1], buf[size + 2], buf[size + 3]];
    size += 4;
    let header = Header {
        fin,
        opcode,
        mask,
        size,
    };
    Ok(Some((header, len)))
}

fn message(opcode: u8, payload: Vec<u8>) -> Result<Incoming, WireError> {
    match opcode {
        TEXT => String::from_utf8(payload)
            .map(Incoming::Text)
            .map_err(|_| WireError::NotUtf8),
        _ => Ok(Incoming::Binary),
    }
}

fn close_code(payload: &[u8]) -> Result<Option<u16>, WireError> {
    match payload {
        [] => Ok(None),
        [_] => Err(WireError::Protocol("a close frame with one byte")),
        [a, b, reason @ ..] => {
            std::str::from_utf8(reason).map_err(|_| WireError::NotUtf8)?;
            Ok(Some(u16::from_be_bytes([*a, *b])))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
