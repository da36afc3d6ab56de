//! One spooled delivery and its frame on disk.
//!
//! A frame is `FGSP`, the payload's length (u32, little endian), the payload's CRC-32 (u32, little
//! endian) and the payload. The payload is the record's fields, each length-prefixed (little
//! endian), in the order of [`Record`]'s fields. A frame that is cut short or whose checksum does
//! not match is how a crash mid-write shows, and [`read_frame`] tells it apart from a clean end.

use bytes::Bytes;

/// The first bytes of every frame.
pub const MAGIC: &[u8; 4] = b"FGSP";
/// Magic, length and checksum.
pub const FRAME_HEAD: usize = 12;

/// A verified webhook as it was to be forwarded to Laravel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The delivery id (`X-Fleetgate-Delivery-Id`), stable across redeliveries.
    pub id: String,
    /// When it was spooled (Unix milliseconds).
    pub enqueued_ms: u64,
    pub method: String,
    /// Path and query.
    pub target: String,
    /// The request's headers as forwarded (signature headers are replaced when redelivered).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The client's address, for `X-Forwarded-For`.
    pub client: Option<String>,
    /// The body bytes, exactly as verified.
    pub body: Bytes,
}

impl Record {
    /// The record as one frame, ready to append.
    pub fn frame(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(self.body.len() + 256);
        put(&mut payload, self.id.as_bytes());
        payload.extend_from_slice(&self.enqueued_ms.to_le_bytes());
        put(&mut payload, self.method.as_bytes());
        put(&mut payload, self.target.as_bytes());
        payload.extend_from_slice(&(self.headers.len() as u32).to_le_bytes());
        for (name, value) in &self.headers {
            put(&mut payload, name.as_bytes());
            put(&mut payload, value);
        }
        match &self.client {
            Some(client) => {
                payload.push(1);
                put(&mut payload, client.as_bytes());
            }
            None => payload.push(0),
        }
        put(&mut payload, &self.body);
        let mut frame = Vec::with_capacity(FRAME_HEAD + payload.len());
        frame.extend_from_slice(MAGIC);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        frame
    }

    /// The record in a frame's payload (`None`: not a record's encoding).
    pub fn decode(payload: &[u8]) -> Option<Record> {
        let mut r = Reader(payload);
        let id = r.string()?;
        let enqueued_ms = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
        let method = r.string()?;
        let target = r.string()?;
        let count = r.u32()? as usize;
        // Each header takes at least 8 bytes: a count beyond that is not a record.
        if count > payload.len() / 8 {
            return None;
        }
        let mut headers = Vec::with_capacity(count);
        for _ in 0..count {
            let name = r.string()?;
            headers.push((name, r.bytes()?.to_vec()));
        }
        let client = match r.take(1)?[0] {
            0 => None,
            1 => Some(r.string()?),
            _ => return None,
        };
        let body = Bytes::copy_from_slice(r.bytes()?);
        r.0.is_empty().then_some(Record {
            id,
            enqueued_ms,
            method,
            target,
            headers,
            client,
            body,
        })
    }
}

fn put(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_le_bytes());
    out.extend_from_slice(field);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

/// What is at an offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole, intact record and the frame's length.
    Record(Box<Record>, u64),
    /// Nothing: the end of the data.
    End,
    /// Half a frame, a checksum that does not match, or bytes that are not a frame: what a crash
    /// mid-write (or a damaged disk) leaves.
    Torn,
}

/// Reads the frame at `offset` of `file`.
pub fn read_frame(file: &std::fs::File, offset: u64) -> std::io::Result<Frame> {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; FRAME_HEAD];
    let got = read_full_at(file, &mut head, offset)?;
    if got == 0 {
        return Ok(Frame::End);
    }
    if got < FRAME_HEAD || &head[..4] != MAGIC {
        return Ok(Frame::Torn);
    }
    let len = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as u64;
    let crc = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
    let end = offset + FRAME_HEAD as u64 + len;
    if end > file.metadata()?.len() {
        return Ok(Frame::Torn);
    }
    let mut payload = vec![0u8; len as usize];
    file.read_exact_at(&mut payload, offset + FRAME_HEAD as u64)?;
    if crc32fast::hash(&payload) != crc {
        return Ok(Frame::Torn);
    }
    Ok(match Record::decode(&payload) {
        Some(record) => Frame::Record(Box::new(record), FRAME_HEAD as u64 + len),
        None => Frame::Torn,
    })
}

/// Reads into `buf` from `offset` until it is full or the file ends: the bytes read.
fn read_full_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(id: &str, body: &str) -> Record {
        Record {
            id: id.into(),
            enqueued_ms: 1_700_000_000_000,
            method: "POST".into(),
            target: "/api/whatsapp/webhooks/webjs?x=1".into(),
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("x-odd".into(), vec![0xff, 0x00, b'a']),
            ],
            client: Some("127.0.0.1".into()),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn a_record_survives_its_frame_byte_for_byte() {
        let record = sample("r1", "{\"event\":\"x\"}");
        let frame = record.frame();
        assert_eq!(&frame[..4], MAGIC);
        assert_eq!(Record::decode(&frame[FRAME_HEAD..]), Some(record.clone()));
        let none = Record {
            client: None,
            body: Bytes::new(),
            ..record
        };
        assert_eq!(Record::decode(&none.frame()[FRAME_HEAD..]), Some(none));
    }

    #[test]
    fn every_cut_of_a_frame_reads_as_torn_or_end() {
        let frame = sample("r1", "body").frame();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        for cut in 0..frame.len() {
            std::fs::write(&path, &frame[..cut]).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            let expected = if cut == 0 { Frame::End } else { Frame::Torn };
            assert_eq!(read_frame(&file, 0).unwrap(), expected, "cut at {cut}");
        }
        let mut flipped = frame.clone();
        *flipped.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        assert_eq!(read_frame(&file, 0).unwrap(), Frame::Torn);
    }
}
