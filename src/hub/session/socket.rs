//! A session's socket: client frames read without a buffer of their own while idle, the outbox
//! written out as the socket drains, and the close.

use super::super::fanout::{AppState, Hub, Outbox};
use super::super::wire::{Decoder, Frame, Incoming, WireError};
use crate::metrics::AppMetrics;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};

/// How long a refused connection is given to take its `pusher:error` and close frame.
const REJECT_WRITE: Duration = Duration::from_secs(5);

/// Bytes one read takes from the socket (on the stack of the read, not kept by the connection).
const READ_CHUNK: usize = 4096;

/// Why reading ended the connection.
#[derive(Debug)]
pub(super) enum Ended {
    /// The client went away (end of stream, or a failing socket).
    Gone,
    /// The client broke the protocol: the connection closes with the error's code.
    Broken(WireError),
}

/// The two halves of a session's socket and what it must not forget: the outbox that writes
/// to it directly is detached before the socket closes (also when the task unwinds).
pub(super) struct Socket<S> {
    pub reader: Reader<S>,
    pub writer: Writer<S>,
}

impl<S> Drop for Socket<S> {
    fn drop(&mut self) {
        self.writer.outbox.detach();
    }
}

impl<S: AsyncRead + AsyncWrite> Socket<S> {
    pub fn new(stream: S, outbox: Arc<Outbox>) -> Self {
        let (reader, writer) = tokio::io::split(stream);
        Self {
            reader: Reader {
                half: reader,
                decoder: Decoder::default(),
            },
            writer: Writer {
                half: writer,
                outbox,
            },
        }
    }
}

pub(super) struct Reader<S> {
    half: ReadHalf<S>,
    decoder: Decoder,
}

impl<S: AsyncRead> Reader<S> {
    /// The client's next messages (at least one), each at most `max` bytes.
    pub async fn read(&mut self, max: usize) -> Result<Vec<Incoming>, Ended> {
        loop {
            let mut messages = Vec::new();
            let got = std::future::poll_fn(|cx| {
                let mut chunk = [0u8; READ_CHUNK];
                let mut buf = ReadBuf::new(&mut chunk);
                match std::pin::Pin::new(&mut self.half).poll_read(cx, &mut buf) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(_)) => Poll::Ready(Err(Ended::Gone)),
                    Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(Err(Ended::Gone)),
                    Poll::Ready(Ok(())) => Poll::Ready(
                        self.decoder
                            .feed(buf.filled(), max, &mut |m| messages.push(m))
                            .map_err(Ended::Broken),
                    ),
                }
            })
            .await;
            got?;
            if !messages.is_empty() {
                return Ok(messages);
            }
        }
    }
}

impl<S: AsyncRead> Reader<S> {
    /// After the close frame went out: reads (and drops) what the client still sends until it
    /// closes too or `linger` passes, so the socket is not closed on unread bytes (which would
    /// reset the connection and lose the close frame on the client's side).
    pub async fn linger(&mut self, linger: Duration) {
        let _ = tokio::time::timeout(linger, async {
            while let Ok(messages) = self.read(64 * 1024).await {
                if messages.iter().any(|m| matches!(m, Incoming::Close(_))) {
                    return;
                }
            }
        })
        .await;
    }
}

pub(super) struct Writer<S> {
    half: WriteHalf<S>,
    outbox: Arc<Outbox>,
}

impl<S: AsyncWrite> Writer<S> {
    /// Writes the outbox out; every write must finish within `deadline` (a client that stopped
    /// reading). Counts the events delivered.
    pub async fn flush(&mut self, deadline: Duration, metrics: &AppMetrics) -> std::io::Result<()> {
        let mut delivered = 0;
        let mut count = |published: Instant| {
            delivered += 1;
            metrics
                .delivery_latency
                .observe(published.elapsed().as_secs_f64());
        };
        let written = self
            .outbox
            .flush(&mut self.half, deadline, &mut count)
            .await;
        metrics.delivered.inc_by(delivered);
        written
    }

    /// Ends the conversation: the close frame after whatever is queued, written within
    /// `deadline`, then the socket's write side shut.
    pub async fn close(
        &mut self,
        code: u16,
        reason: &str,
        deadline: Duration,
        metrics: &AppMetrics,
    ) {
        self.outbox.finish(&Frame::close(code, reason));
        if self.flush(deadline, metrics).await.is_ok() {
            let _ = tokio::time::timeout(deadline, self.half.shutdown()).await;
        }
    }
}

/// Accepts the WebSocket only to say why it is refused: `pusher:error` with `code`, then a close
/// frame with the same code (pusher-js decides whether to reconnect from the close code).
/// Counted as a disconnect of `app` (`unknown` for none).
pub async fn reject<S>(mut stream: S, hub: &Hub, app: Option<&AppState>, code: u16, message: &str)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    super::count_disconnect(hub, app, code);
    let mut bytes = Frame::text(&super::protocol::error(Some(code), message))
        .wire()
        .to_vec();
    bytes.extend_from_slice(Frame::close(code, message).wire());
    let written = async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(REJECT_WRITE, written).await;
}
