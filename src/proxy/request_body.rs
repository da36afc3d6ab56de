//! The request's body: the client's, read within the route's `body_timeout` ([`ClientBody`]),
//! read whole within a limit ([`read_whole`]), and what goes to an instance ([`Outgoing`]): bytes
//! already read (for routing or verification, sent byte for byte) or the client's body streamed
//! through, counted against the route's `max_body`.

use super::coarse_timer::Deadline;
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
    Read(#[from] ClientBodyError),
}

/// Why the client's body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    #[error("{0}")]
    Read(#[from] hyper::Error),
    #[error("the client paused longer than the route's body_timeout")]
    Timeout,
}

impl From<ClientBodyError> for GatewayError {
    fn from(error: ClientBodyError) -> Self {
        match error {
            ClientBodyError::Timeout => GatewayError::BodyTimeout,
            ClientBodyError::Read(_) => {
                GatewayError::BadRequest("the request body could not be read")
            }
        }
    }
}

/// The client's request body, failing once it pauses longer than the route's `body_timeout`
/// between two reads (nginx's `client_body_timeout`).
pub struct ClientBody {
    inner: Incoming,
    timeout: std::time::Duration,
    pause: Deadline,
}

impl ClientBody {
    pub fn new(inner: Incoming, timeout: std::time::Duration) -> Self {
        Self {
            inner,
            timeout,
            pause: Deadline::default(),
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if this.pause.stalled(cx, &polled, this.timeout) {
            return Poll::Ready(Some(Err(ClientBodyError::Timeout)));
        }
        polled.map(|frame| frame.map(|f| f.map_err(ClientBodyError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body on its way to an instance.
pub enum Outgoing {
    /// Bytes read before forwarding (or none).
    Full(Option<Bytes>),
    /// The client's body, streamed, failing once more than `limit` bytes came.
    Stream {
        inner: ClientBody,
        seen: u64,
        limit: u64,
    },
}

impl Outgoing {
    pub fn streamed(inner: ClientBody, limit: u64) -> Self {
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

/// Reads a whole request body, failing with 413 past `limit` bytes. Memory follows the bytes
/// received, never a declared length: frames are kept as they came (the one frame of a small body
/// is returned without a copy) and joined once at the end.
pub async fn read_whole(body: &mut ClientBody, limit: u64) -> Result<Bytes, GatewayError> {
    let mut frames: Vec<Bytes> = Vec::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        len += data.len() as u64;
        if len > limit {
            return Err(GatewayError::BodyTooLarge);
        }
        if !data.is_empty() {
            frames.push(data);
        }
    }
    Ok(match frames.len() {
        0 => Bytes::new(),
        1 => frames.pop().unwrap_or_default(),
        _ => {
            let mut joined = BytesMut::with_capacity(len as usize);
            for frame in frames {
                joined.extend_from_slice(&frame);
            }
            joined.freeze()
        }
    })
}
