//! The instance's answer body, read from its connection as the client's side asks for it; the
//! connection goes back to the pool when it ends as framed.

use super::super::h1::{Chunked, Decoded, Framing};
use super::Conn;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::net::TcpStream;

/// An instance's answer body, read from its connection as the client's side asks for it.
pub struct UpstreamBody {
    pub(super) conn: Option<Conn>,
    pub(super) framing: Framing,
    pub(super) chunked: Chunked,
    pub(super) reusable: bool,
    pub(super) switching: bool,
}

impl UpstreamBody {
    /// After a `101`: the connection and the bytes already read past the head, for the tunnel.
    pub fn into_tunnel(mut self) -> Option<(TcpStream, BytesMut)> {
        let conn = self.conn.take().filter(|_| self.switching)?;
        Some((conn.stream, conn.buf))
    }

    /// The body ended as framed: the connection may serve another request.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.reusable {
                conn.release();
            }
        }
    }

    fn next_data(&mut self) -> Result<Option<Option<Bytes>>, io::Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Some(None));
        };
        match self.framing {
            Framing::Empty | Framing::Length(0) => Ok(Some(None)),
            Framing::Length(left) if !conn.buf.is_empty() => {
                let n = left.min(conn.buf.len() as u64);
                self.framing = Framing::Length(left - n);
                Ok(Some(Some(conn.buf.split_to(n as usize).freeze())))
            }
            Framing::Chunked => match self.chunked.decode(&mut conn.buf) {
                Ok(Decoded::Data(data)) => Ok(Some(Some(data))),
                Ok(Decoded::End) => Ok(Some(None)),
                Ok(Decoded::More) => Ok(None),
                Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            },
            Framing::Close if !conn.buf.is_empty() => Ok(Some(Some(conn.buf.split().freeze()))),
            Framing::Length(_) | Framing::Close => Ok(None),
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A body with nothing (left) to read is complete even if never polled (hyper does not
        // poll a body that says it has ended).
        if matches!(self.framing, Framing::Empty | Framing::Length(0)) {
            self.finish();
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            match this.next_data() {
                Ok(Some(Some(data))) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(Some(None)) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Ok(None) => {}
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if this.framing == Framing::Close => {
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.conn = None;
                    let cut = io::Error::new(io::ErrorKind::UnexpectedEof, "answer cut short");
                    return Poll::Ready(Some(Err(cut)));
                }
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, Framing::Empty | Framing::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Empty => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Chunked | Framing::Close => SizeHint::default(),
        }
    }
}
