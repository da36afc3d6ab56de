//! Connections to instances, pooled per thread (a `thread_local` idle list, no lock).

use super::SendError;
use bytes::BytesMut;
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Idle connections kept per instance address, per thread.
const MAX_IDLE: usize = 256;
/// What a read asks of the buffer at least.
pub(super) const READ_RESERVE: usize = 8 * 1024;

thread_local! {
    /// Idle connections by instance address (a handful of instances: a list is faster than
    /// hashing the address twice per request).
    static IDLE: RefCell<Vec<(SocketAddr, Vec<Idle>)>> = const { RefCell::new(Vec::new()) };
}

/// This thread's idle list for `addr`.
fn idle_list(idle: &mut Vec<(SocketAddr, Vec<Idle>)>, addr: SocketAddr) -> &mut Vec<Idle> {
    let at = match idle.iter().position(|(a, _)| *a == addr) {
        Some(at) => at,
        None => {
            idle.push((addr, Vec::new()));
            idle.len() - 1
        }
    };
    &mut idle[at].1
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// One connection to an instance and what was read from it but not consumed.
pub struct Conn {
    pub(super) stream: TcpStream,
    pub(super) buf: BytesMut,
    addr: SocketAddr,
    /// The read timeout's timer, kept armed across requests (`within`).
    pub(super) timer: Option<Pin<Box<Sleep>>>,
}

impl Conn {
    pub(super) fn release(self) {
        IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let list = idle_list(&mut idle, self.addr);
            if list.len() < MAX_IDLE && self.buf.is_empty() {
                list.push(Idle {
                    conn: self,
                    since: Instant::now(),
                });
            }
        });
    }

    /// Reads more bytes into the buffer; `Ok(0)` at the end of the stream.
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.buf.reserve(READ_RESERVE);
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read_buf(&mut self.buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }

    /// Whether an idle connection is still open and quiet (one `recv` when the socket is
    /// marked readable: end of stream or bytes nobody asked for both mean drop it).
    fn is_open(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if self.stream.poll_read_ready(&mut cx).is_pending() {
            return true;
        }
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// The newest idle connection to `addr` on this thread that is still fresh (and, for a body
/// that cannot be sent twice, checked to be open).
pub(super) fn checkout(addr: SocketAddr, idle_timeout: Duration, check: bool) -> Option<Conn> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle_list(&mut idle, addr);
        while let Some(mut idle) = list.pop() {
            if idle.since.elapsed() < idle_timeout && (!check || idle.conn.is_open()) {
                return Some(idle.conn);
            }
        }
        None
    })
}

pub(super) async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Conn, SendError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => {
            return Err(SendError::Connect(format!(
                "connect timed out after {timeout:?}"
            )))
        }
        Ok(Err(e)) => return Err(SendError::Connect(format!("connect: {e}"))),
        Ok(Ok(stream)) => stream,
    };
    let _ = stream.set_nodelay(true);
    Ok(Conn {
        stream,
        buf: BytesMut::with_capacity(READ_RESERVE),
        addr,
        timer: None,
    })
}
