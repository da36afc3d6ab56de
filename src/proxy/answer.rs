//! The answer's body on its way to the client: a gateway-made body or the instance's, streamed.
//! When it ends the [`Observation`] of the request is recorded (dropped bodies record too, so a
//! client that goes away is still counted and logged).

use super::observe::Observation;
use super::upstream::UpstreamBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

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
