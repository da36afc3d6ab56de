//! Request framing as received, before hyper normalises it.
//!
//! hyper reads `Content-Length` beside `Transfer-Encoding` as chunked and drops the length, and
//! keeps one of several equal `Content-Length`s (RFC 9112 §6.3 allows both). Another parser in
//! the path (an old proxy in front, a Node instance behind) may read such a request differently,
//! which is how requests are smuggled, so the gateway refuses them as nginx does: 400 and the
//! connection closed. hyper no longer shows them, so [`Guarded`] reads the request heads as the
//! bytes pass by (skipping bodies by their framing) and raises a per-connection flag
//! ([`Heads::is_ambiguous`]) that the request handler checks. Scanning stops (and hyper alone decides) at
//! an upgrade, a head over [`MAX_HEAD`], or anything it cannot follow.
//!
//! Knowing where heads start and end, [`Guarded`] also keeps the connection's deadlines
//! ([`Pace`]): a request head must be whole within the listener's `header_timeout` of its first
//! byte (of the accept, for the first request), and a write the client does not take within the
//! route's `write_timeout` ends the connection. Either fails the read or write hyper is waiting
//! on, so hyper closes the connection. (The idle wait between requests is hyper's own timer.)
//!
//! A head hyper's own parser refuses never reaches the request handler: hyper answers a bare
//! 400, 414 or 431 and closes. [`Guarded`] recognises that answer as it is written (every answer
//! of the handler carries `x-request-id`; hyper's own does not) and writes the gateway's JSON
//! error in its place, so every refusal has a stable `code`.

use super::coarse_timer::Deadline;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

mod scan;

pub use scan::ambiguous_in;
use scan::{find_end, Scanner};

/// How long a closing connection reads and discards what the client still sends.
const LINGER: Duration = Duration::from_secs(2);

/// Heads longer than this are not scanned: the largest `max_head_size` a listener may have, so
/// every head the gateway would serve is scanned (longer ones get 431).
const MAX_HEAD: usize = 1 << 20;

/// What the stream below hyper and the request handler share about a connection's heads.
#[derive(Clone, Default)]
pub struct Heads(Arc<HeadsInner>);

#[derive(Default)]
struct HeadsInner {
    /// Set once a request head on the connection had ambiguous framing.
    ambiguous: AtomicBool,
    /// Requests the handler was given.
    handled: AtomicU64,
}

impl Heads {
    pub fn is_ambiguous(&self) -> bool {
        self.0.ambiguous.load(Ordering::Relaxed)
    }

    /// The handler got a request (hyper parsed its head).
    pub fn handled(&self) {
        self.0.handled.fetch_add(1, Ordering::Relaxed);
    }

    /// A request has arrived on this connection.
    pub fn any_handled(&self) -> bool {
        self.0.handled.load(Ordering::Relaxed) > 0
    }
}

/// A connection's deadlines: the request head's (from the first byte of a head, and for the
/// first request from the accept), and the answer's write (between two writes that make
/// progress; the current route's `write_timeout`, in milliseconds, set by the request handler).
pub struct Pace {
    pub header_timeout: Duration,
    pub write_timeout: Arc<AtomicU64>,
    /// Told which deadline closed the connection (`header_timeout`, `write_timeout`).
    pub expired: Box<dyn Fn(&'static str) + Send + Sync>,
}

/// A client stream whose request heads are checked for ambiguous framing as they are read, and
/// whose head and write deadlines are kept here, below hyper.
pub struct Guarded<S> {
    inner: S,
    scanner: Scanner,
    /// Request heads the scanner saw end.
    heads_seen: u64,
    shared: Heads,
    pace: Pace,
    head: Deadline,
    write: Deadline,
    /// Bytes read from the connection before it came here (after a PROXY protocol header),
    /// given out first.
    early: Vec<u8>,
    /// Set once the connection closes: until when what the client still sends is discarded.
    linger: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The gateway's answer written in place of hyper's own to a head it refused, and how much
    /// of it is written.
    replacing: Option<(Vec<u8>, usize)>,
}

impl<S> Guarded<S> {
    /// `h2`: the connection speaks HTTP/2 (no HTTP/1 heads to follow: only the write deadline).
    /// `early`: bytes already read from `inner`, to be read first.
    pub fn new(inner: S, early: Vec<u8>, pace: Pace, h2: bool) -> (Self, Heads) {
        let shared = Heads::default();
        let mut head = Deadline::default();
        if !h2 {
            head.arm(pace.header_timeout);
        }
        let guarded = Self {
            inner,
            scanner: match h2 {
                true => Scanner::Stopped,
                false => Scanner::Head,
            },
            heads_seen: 0,
            shared: shared.clone(),
            pace,
            head,
            write: Deadline::default(),
            early,
            linger: None,
            replacing: None,
        };
        (guarded, shared)
    }

    fn timed_out(&self, which: &'static str) -> Poll<io::Result<()>> {
        (self.pace.expired)(which);
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, which)))
    }

    /// The write deadline around one write: armed while the client takes nothing.
    fn paced_write(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let timeout = Duration::from_millis(self.pace.write_timeout.load(Ordering::Relaxed));
        match self.write.stalled(cx, &written, timeout) {
            true => self.timed_out("write_timeout").map_ok(|()| 0),
            false => written,
        }
    }

    /// Starts writing the gateway's answer instead of `first` (the start of what hyper writes)
    /// when that is hyper's own answer to a head its parser refused: only while a head is
    /// pending that the handler never got (one still arriving, too large for hyper, or one that
    /// ended but was not handed over), so no answer of the handler, nor its body, is taken for it.
    fn replace_parser_answer(&mut self, first: &[u8]) {
        let handled = self.shared.0.handled.load(Ordering::Relaxed);
        let pending = self.scanner.in_head() || self.heads_seen > handled;
        if self.replacing.is_some() || !pending {
            return;
        }
        if let Some((error, reason)) = parser_refusal(first) {
            (self.pace.expired)(reason);
            self.replacing = Some((error.wire_answer(), 0));
        }
    }
}

impl<S: AsyncWrite + Unpin> Guarded<S> {
    /// Writes the rest of the replacing answer; ready once all of it is out, and then reports
    /// hyper's `len` bytes as written (hyper's answer is dropped).
    fn write_replacement(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<usize>> {
        while let Some((answer, done)) = self.replacing.as_mut().filter(|(a, d)| *d < a.len()) {
            let written = Pin::new(&mut self.inner).poll_write(cx, &answer[*done..]);
            let n = std::task::ready!(self.paced_write(cx, written))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if let Some((_, done)) = self.replacing.as_mut() {
                *done += n;
            }
        }
        Poll::Ready(Ok(len))
    }
}

/// hyper's own answer to a head its parser refused (a status line hyper writes for
/// `Parse::{Header, Method, Uri, Version}`, `TooLarge` and `UriTooLong`, in a head without the
/// `x-request-id` every answer of the handler has): the gateway's error for it, and the reason
/// counted in `fleetgate_connections_closed_total`.
fn parser_refusal(written: &[u8]) -> Option<(crate::errors::GatewayError, &'static str)> {
    use crate::errors::GatewayError;
    let refusal = match written.get(..13)? {
        b"HTTP/1.1 400 " => (
            GatewayError::BadRequest("the request head is malformed"),
            "malformed_head",
        ),
        b"HTTP/1.1 431 " => (GatewayError::HeadTooLarge, "header_too_large"),
        b"HTTP/1.1 414 " => (GatewayError::UriTooLong, "uri_too_long"),
        _ => return None,
    };
    let end = find_end(written, 0).unwrap_or(written.len());
    let head = &written[..end];
    let tagged = head
        .windows(b"\nx-request-id:".len())
        .any(|w| w.eq_ignore_ascii_case(b"\nx-request-id:"));
    (!tagged).then_some(refusal)
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = match this.early.is_empty() {
            true => Pin::new(&mut this.inner).poll_read(cx, buf),
            false => {
                let n = this.early.len().min(buf.remaining());
                buf.put_slice(&this.early[..n]);
                this.early.drain(..n);
                Poll::Ready(Ok(()))
            }
        };
        match polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                if this
                    .scanner
                    .feed(&buf.filled()[before..], &mut this.heads_seen)
                {
                    this.shared.0.ambiguous.store(true, Ordering::Relaxed);
                }
                // A head is complete, or one has started: its deadline runs from here.
                match this.scanner.in_head() {
                    true => this.head.arm(this.pace.header_timeout),
                    false => this.head.disarm(),
                }
            }
            Poll::Pending if this.head.poll_expired(cx) => return this.timed_out("header_timeout"),
            _ => {}
        }
        polled
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.replace_parser_answer(buf);
        if this.replacing.is_some() {
            return this.write_replacement(cx, buf.len());
        }
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.paced_write(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            this.replace_parser_answer(first);
        }
        if this.replacing.is_some() {
            let len = bufs.iter().map(|b| b.len()).sum();
            return this.write_replacement(cx, len);
        }
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.paced_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    /// Closes as nginx's lingering close does: the write side first (the client gets the end of
    /// the answer), then what the client still sends (the rest of a body refused before it was
    /// read) is read and discarded until it stops or [`LINGER`] passes. Closing with unread
    /// bytes would send a reset, and a reset can destroy the answer before the client reads it.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.linger.is_none() {
            std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.linger = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        if let Some(Poll::Ready(())) = this.linger.as_mut().map(|t| t.as_mut().poll(cx)) {
            return Poll::Ready(Ok(()));
        }
        let mut scratch = [0u8; 8192];
        // A client sending fast is read a slice at a time, letting other connections run.
        for _ in 0..16 {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {}
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests;
