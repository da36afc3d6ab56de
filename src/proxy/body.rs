//! The bodies the data path moves: what goes to an instance ([`Outgoing`]) and what goes back to
//! the client ([`Answer`]), plus reading a request body whole within a limit.
//!
//! [`Outgoing`] is either bytes already read (for routing or verification, sent byte for byte) or
//! the client's body streamed through, counted against the route's `max_body`. [`Answer`] is a
//! gateway-made body or the instance's, streamed; when it ends the [`Observation`] of the request
//! is recorded (dropped bodies record too, so a client that goes away is still counted and logged).

use super::observe::Observation;
use super::upstream::UpstreamBody;
use crate::errors::GatewayError;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// Why an outgoing body stopped.
#[derive(Debug, thiserror::Error)]
pub enum OutgoingError {
    #[error("the request body is larger than the route's max_body")]
    TooLarge,
    #[error("reading the request body: {0}")]
    Read(#[from] hyper::Error),
}

/// A request body on its way to an instance.
pub enum Outgoing {
    /// Bytes read before forwarding (or none).
    Full(Option<Bytes>),
    /// The client's body, streamed, failing once more than `limit` bytes came.
    Stream {
        inner: Incoming,
        seen: u64,
        limit: u64,
    },
}

impl Outgoing {
    pub fn streamed(inner: Incoming, limit: u64) -> Self {
        Outgoing::Stream {
            inner,
            seen: 0,
            limit,
        }
    }
}

impl Body for Outgoing {
    type Data = Bytes;
    type Error = OutgoingError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, OutgoingError>>> {
        match self.get_mut() {
            Outgoing::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Outgoing::Stream { inner, seen, limit } => {
                let frame = ready!(Pin::new(inner).poll_frame(cx));
                if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                    *seen += data.map_or(0, |d| d.len() as u64);
                    if *seen > *limit {
                        return Poll::Ready(Some(Err(OutgoingError::TooLarge)));
                    }
                }
                Poll::Ready(frame.map(|f| f.map_err(OutgoingError::from)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Outgoing::Full(bytes) => bytes.is_none(),
            Outgoing::Stream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Outgoing::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len()) as u64)
            }
            Outgoing::Stream { inner, .. } => inner.size_hint(),
        }
    }
}

/// A response body on its way to the client, recording the request when it ends or is dropped.
pub struct Answer {
    source: Source,
    observation: Option<Observation>,
}

enum Source {
    Full(Option<Bytes>),
    /// The instance's body (its connection returns to the pool when it ends).
    Upstream(UpstreamBody),
}

impl Answer {
    pub fn full(bytes: Bytes) -> Self {
        Self {
            source: Source::Full((!bytes.is_empty()).then_some(bytes)),
            observation: None,
        }
    }

    /// The instance's body.
    pub fn upstream(inner: UpstreamBody) -> Self {
        Self {
            source: Source::Upstream(inner),
            observation: None,
        }
    }

    /// Records `observation` when this body ends (or is dropped).
    pub fn observed(mut self, observation: Observation) -> Self {
        self.observation = Some(observation);
        self
    }

    fn finish(&mut self) {
        if let Some(observation) = self.observation.take() {
            observation.record();
        }
    }
}

impl Body for Answer {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let frame = match &mut this.source {
            Source::Full(bytes) => bytes.take().map(|b| Ok(Frame::data(b))),
            Source::Upstream(inner) => ready!(Pin::new(inner).poll_frame(cx)),
        };
        match &frame {
            Some(Ok(f)) => {
                if let (Some(data), Some(o)) = (f.data_ref(), this.observation.as_mut()) {
                    o.bytes_sent += data.len() as u64;
                }
                if this.is_end_stream() {
                    this.finish();
                }
            }
            Some(Err(_)) => {
                // The instance broke off mid-answer (its connection is not reused).
                if let Some(o) = this.observation.as_mut() {
                    o.upstream_broke();
                }
            }
            None => this.finish(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::Full(bytes) => bytes.is_none(),
            Source::Upstream(inner) => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len()) as u64)
            }
            Source::Upstream(inner) => inner.size_hint(),
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        // A body dropped before its end (client gone) is still recorded; the instance's
        // connection, its answer not read to the end, is not reused (see `UpstreamBody`).
        if let Some(observation) = self.observation.take() {
            observation.record();
        }
    }
}

/// Reads a whole request body, failing with 413 past `limit` bytes. `declared` (an already
/// checked `Content-Length`) sizes the buffer once: growing by doubling would briefly hold up to
/// 3× the body while copying.
pub async fn read_whole(
    body: &mut Incoming,
    limit: u64,
    declared: Option<u64>,
) -> Result<Bytes, GatewayError> {
    let capacity = declared.filter(|&len| len <= limit).unwrap_or(0);
    let mut buf = BytesMut::with_capacity(capacity as usize);
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|_| GatewayError::BadRequest("the request body could not be read"))?;
        if let Some(data) = frame.data_ref() {
            if (buf.len() + data.len()) as u64 > limit {
                return Err(GatewayError::BodyTooLarge);
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(buf.freeze())
}
