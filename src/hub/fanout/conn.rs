//! One subscriber as the fan-out sees it: its outbox and how it is closed.
//!
//! **Direct writes.** A frame offered to a plain TCP connection with nothing queued is written
//! to its socket at once, from the publisher's thread, with one non-blocking `send` of the
//! frame's shared bytes: no copy, no queue, no wake-up of the connection's task. Only what the
//! kernel did not take is queued (bounded, [`SEND_QUEUE`] frames); the connection's task then
//! writes the queue out in vectored writes as the socket drains, and until the queue is empty
//! every later frame joins it, so frames leave in the order they were offered. TLS connections
//! (whose bytes must be encrypted per connection) always queue.
//!
//! The socket's descriptor is used only while the connection's task still owns the socket: the
//! task detaches it ([`Outbox::detach`]) before the socket closes, under the same lock every
//! direct write holds.

use super::super::wire::Frame;
use super::SEND_QUEUE;
use bytes::Bytes;
use nix::sys::socket::{send, MsgFlags};
use prometheus::IntCounter;
use std::collections::VecDeque;
use std::io::IoSlice;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

/// Asks a connection to close with a Pusher close code; the first request wins. Its task waits
/// on it ([`Closer::requested`]).
#[derive(Default)]
pub struct Closer {
    code: AtomicU16,
    asked: Notify,
}

impl Closer {
    /// The close code requested so far (0: none yet).
    pub fn code(&self) -> u16 {
        self.code.load(Ordering::Acquire)
    }

    /// Requests a close with `code`; later requests do not change it.
    pub fn close(&self, code: u16) {
        let first = self
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.asked.notify_waiters();
        }
    }

    /// Waits for a close request and returns its code.
    pub async fn requested(&self) -> u16 {
        loop {
            let asked = self.asked.notified();
            let mut asked = std::pin::pin!(asked);
            // Registered before the check: a close between the two is not missed.
            asked.as_mut().enable();
            match self.code() {
                0 => asked.await,
                code => return code,
            }
        }
    }
}

/// What became of an offered frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// The kernel took all of it.
    Written,
    /// It waits in the queue for the connection's task.
    Queued,
    /// Not taken: the queue was full (a slow consumer, closed 4100).
    Full,
    /// Not taken: the connection is ending.
    Gone,
}

/// A queued frame and, for published events, when it was published (for the delivery latency).
struct Queued {
    wire: Bytes,
    published: Option<Instant>,
}

#[derive(Default)]
struct State {
    /// The socket for direct writes; `None` for TLS and once detached.
    socket: Option<RawFd>,
    queue: VecDeque<Queued>,
    /// Bytes of the front frame already written.
    sent: usize,
    /// No more frames: the connection is ending.
    closed: bool,
}

/// The frames on their way to one connection's socket.
#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    /// Wakes the connection's task when the queue gets its first frame.
    queued: Notify,
}

/// At most this many queued frames leave in one vectored write.
const WRITE_BATCH: usize = 64;

impl Outbox {
    /// An outbox writing directly to `socket` (a plain TCP socket the connection's task owns).
    pub fn new(socket: Option<RawFd>) -> Self {
        Self {
            state: Mutex::new(State {
                socket,
                ..State::default()
            }),
            queued: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `frame` now if the socket takes it, else queues it (see the module's notes).
    pub fn offer(&self, frame: &Frame, published: Option<Instant>) -> Offered {
        let mut state = self.state();
        if state.closed {
            return Offered::Gone;
        }
        let wire = frame.wire();
        let mut written = 0;
        if let (Some(fd), true) = (state.socket, state.queue.is_empty()) {
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            match send(fd, wire, flags) {
                Ok(n) if n == wire.len() => return Offered::Written,
                Ok(n) => written = n,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                // The connection is failing: its task finds out as it reads.
                Err(_) => {
                    state.closed = true;
                    return Offered::Gone;
                }
            }
        }
        if state.queue.len() >= SEND_QUEUE {
            return Offered::Full;
        }
        if state.queue.is_empty() {
            state.sent = written;
            self.queued.notify_one();
        }
        state.queue.push_back(Queued {
            wire: wire.clone(),
            published,
        });
        Offered::Queued
    }

    /// Queues `frame` whatever the queue holds (the connection's own replies and its close).
    pub fn push(&self, frame: &Frame) {
        let mut state = self.state();
        if state.closed {
            return;
        }
        if state.queue.is_empty() {
            state.sent = 0;
            self.queued.notify_one();
        }
        state.queue.push_back(Queued {
            wire: frame.wire().clone(),
            published: None,
        });
    }

    /// Queues the connection's last frame (its close): nothing is offered after it.
    pub fn finish(&self, frame: &Frame) {
        self.push(frame);
        self.state().closed = true;
    }

    /// Whether frames wait for the socket.
    pub fn has_queue(&self) -> bool {
        !self.state().queue.is_empty()
    }

    /// Waits until the queue gets a frame (returns at once if one came since the last wait).
    pub async fn queued(&self) {
        self.queued.notified().await;
    }

    /// No more direct writes to the socket, and no more frames (the socket is about to close).
    pub fn detach(&self) {
        let mut state = self.state();
        state.socket = None;
        state.closed = true;
    }

    /// Writes the queue out to `io` until it is empty, each write within `deadline`, calling
    /// `delivered` with the publish time of every event written. Cancel-safe: what one write
    /// took is accounted before the next.
    pub async fn flush<W>(
        &self,
        io: &mut W,
        deadline: std::time::Duration,
        delivered: &mut impl FnMut(Instant),
    ) -> std::io::Result<()>
    where
        W: tokio::io::AsyncWrite + Unpin,
    {
        use tokio::io::AsyncWriteExt;
        loop {
            let batch: Vec<Bytes> = {
                let state = self.state();
                let mut frames = state.queue.iter().take(WRITE_BATCH).map(|q| q.wire.clone());
                match frames.next() {
                    // A TLS stream holds records until flushed.
                    None => break,
                    Some(first) => std::iter::once(first.slice(state.sent..))
                        .chain(frames)
                        .collect(),
                }
            };
            let slices: Vec<IoSlice<'_>> = batch.iter().map(|b| IoSlice::new(b)).collect();
            let n = tokio::time::timeout(deadline, io.write_vectored(&slices))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.advance(n, delivered);
        }
        tokio::time::timeout(deadline, io.flush())
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    }

    /// Takes `n` written bytes off the front of the queue.
    fn advance(&self, mut n: usize, delivered: &mut impl FnMut(Instant)) {
        let mut state = self.state();
        while n > 0 {
            let Some(front) = state.queue.front() else {
                break;
            };
            let left = front.wire.len() - state.sent;
            if n < left {
                state.sent += n;
                break;
            }
            n -= left;
            state.sent = 0;
            if let Some(done) = state.queue.pop_front().and_then(|q| q.published) {
                delivered(done);
            }
        }
    }
}

/// A subscriber as the engine sees it.
#[derive(Clone)]
pub struct Conn {
    pub id: u64,
    pub socket_id: Arc<str>,
    pub outbox: Arc<Outbox>,
    pub closer: Arc<Closer>,
}

impl Conn {
    /// Offers a frame without waiting; a full queue closes the connection with 4100 and counts a
    /// dropped delivery in `dropped`.
    pub fn offer(
        &self,
        frame: &Frame,
        published: Option<Instant>,
        dropped: &IntCounter,
    ) -> Offered {
        let offered = self.outbox.offer(frame, published);
        if offered == Offered::Full {
            dropped.inc();
            self.closer.close(4100);
        }
        offered
    }
}

#[cfg(test)]
mod tests;
