//! The PROXY protocol (HAProxy's, v1 text and v2 binary), read once at the start of a connection
//! when the listener has `proxy_protocol: true`: a load balancer in front states the client's
//! address, which then counts for everything (per-address limits, `X-Forwarded-For`, the access
//! log). A connection whose header is missing or malformed is closed without an answer, as
//! HAProxy and nginx do.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest header read (v1 is at most 107 bytes; v2 with TLVs is bounded here).
const MAX_HEADER: usize = 536;
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// What a complete header said: the client's address (`None`: `LOCAL`/`UNKNOWN`, a health check
/// of the balancer itself), and how many bytes it took.
#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    pub client: Option<SocketAddr>,
    pub len: usize,
}

/// Parses a header at the start of `buf`: `Ok(None)` while more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<Header>, &'static str> {
    if buf.len() >= 12 && buf[..12] == V2_SIGNATURE[..] || V2_SIGNATURE.starts_with(buf) {
        return parse_v2(buf);
    }
    if !(buf.starts_with(b"PROXY ") || b"PROXY ".starts_with(buf)) {
        return Err("no PROXY protocol header");
    }
    parse_v1(buf)
}

/// The longest v1 header, its CRLF included (the specification's bound).
const V1_MAX: usize = 107;

fn parse_v1(buf: &[u8]) -> Result<Option<Header>, &'static str> {
    // The same answer however many bytes came: the line end counts only within the bound.
    let head = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = head.windows(2).position(|w| w == b"\r\n") else {
        return match buf.len() >= V1_MAX {
            true => Err("PROXY v1 header too long"),
            false => Ok(None),
        };
    };
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| "PROXY v1 header not text")?;
    let fields: Vec<&str> = line.split(' ').collect();
    let client = match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => None,
        ["PROXY", family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let ip: IpAddr = src.parse().map_err(|_| "PROXY v1 source address")?;
            let port: u16 = sport.parse().map_err(|_| "PROXY v1 source port")?;
            let to: IpAddr = dst.parse().map_err(|_| "PROXY v1 destination address")?;
            dport
                .parse::<u16>()
                .map_err(|_| "PROXY v1 destination port")?;
            if (*family == "TCP4") != ip.is_ipv4() || ip.is_ipv4() != to.is_ipv4() {
                return Err("PROXY v1 address family");
            }
            Some(SocketAddr::new(ip, port))
        }
        _ => return Err("PROXY v1 header malformed"),
    };
    Ok(Some(Header {
        client,
        len: end + 2,
    }))
}

fn parse_v2(buf: &[u8]) -> Result<Option<Header>, &'static str> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let (version_command, family) = (buf[12], buf[13]);
    if version_command >> 4 != 2 {
        return Err("PROXY v2 version");
    }
    let len = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > MAX_HEADER {
        return Err("PROXY v2 header too long");
    }
    let Some(body) = buf.get(16..len) else {
        return Ok(None);
    };
    let client = match (version_command & 0x0f, family >> 4) {
        (0, _) => None, // LOCAL: the balancer's own connection
        (1, 1) if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([body[8], body[9]]),
            ))
        }
        (1, 2) if body.len() >= 36 => {
            let octets: [u8; 16] = body[..16].try_into().map_err(|_| "PROXY v2 address")?;
            let port = u16::from_be_bytes([body[32], body[33]]);
            Some(SocketAddr::new(Ipv6Addr::from(octets).into(), port))
        }
        (1, 0) => None, // UNSPEC
        (1, _) => return Err("PROXY v2 address family"),
        _ => return Err("PROXY v2 command"),
    };
    Ok(Some(Header { client, len }))
}

/// Reads the header from `stream`; returns it and the bytes read past it.
pub async fn read<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(Header, Vec<u8>), String> {
    let mut buf = Vec::with_capacity(MAX_HEADER);
    loop {
        match parse(&buf) {
            Ok(Some(header)) => {
                let rest = buf.split_off(header.len);
                return Ok((header, rest));
            }
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        let mut chunk = [0u8; MAX_HEADER];
        let room = MAX_HEADER - buf.len();
        let n = stream
            .read(&mut chunk[..room.max(1)])
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the connection ended before its PROXY header".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_headers_give_the_source_address_and_their_length() {
        let text = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 8088\r\nGET / HTTP/1.1\r\n";
        let header = parse(text).unwrap().unwrap();
        assert_eq!(header.client, Some("203.0.113.7:51000".parse().unwrap()));
        assert_eq!(&text[header.len..header.len + 3], b"GET");
        let v6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\n";
        assert_eq!(
            parse(v6).unwrap().unwrap().client,
            Some("[2001:db8::1]:4000".parse().unwrap())
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().client, None);
        assert_eq!(parse(b"PROXY TCP4 203.0.1"), Ok(None));
        assert_eq!(parse(b"PRO"), Ok(None));
    }

    #[test]
    fn v2_headers_give_the_source_address_and_local_gives_none() {
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[
            0x21, 0x11, 0, 12, 198, 51, 100, 9, 10, 0, 0, 1, 0x1f, 0x90, 0, 80,
        ]);
        v2.extend_from_slice(b"GET");
        let header = parse(&v2).unwrap().unwrap();
        assert_eq!(header.client, Some("198.51.100.9:8080".parse().unwrap()));
        assert_eq!(&v2[header.len..], b"GET");
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local).unwrap().unwrap().client, None);
        assert_eq!(parse(&v2[..14]), Ok(None));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 nonsense 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 10.0.0.1 99999 2\r\n",
            b"PROXY HTTP\r\n",
            b"PROXY TCP4 1.2.3.4 10.0.0.x 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 10.0.0.1 1 65536\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut v1_long = b"PROXY TCP4 ".to_vec();
        v1_long.extend_from_slice(&[b'1'; 120]);
        assert!(parse(&v1_long).is_err());
        // Over 107 bytes with its line end (found by fuzzing: it was taken when the end came in
        // the same read, refused when it came later).
        let mut v1_long = b"PROXY TCP4 203.0.113.9 10.0.0.1 5555 8088".to_vec();
        v1_long.splice(11..11, [b'0'; 70]);
        v1_long.extend_from_slice(b"\r\n");
        assert_eq!(parse(&v1_long), Err("PROXY v1 header too long"));
        assert_eq!(parse(&v1_long[..100]), Ok(None));
    }
}
