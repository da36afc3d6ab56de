//! The upstream client: HTTP/1.1 connections to instances, pooled per thread.
//!
//! Each runtime thread keeps its own idle connections per instance address (a `thread_local`
//! list, no lock, no watcher task): a request checks one out (newest first; one idle longer than
//! the group's `idle_timeout` or already closed is dropped), sends on it, and the answer's body
//! returns it when it ends ([`Pooled::release`]). A connection whose answer was not read to the
//! end, that broke, or that switched protocols is never reused. Each connection has one driver
//! task for its whole life, not one per request.
//!
//! A request that a pooled connection could not even start to send (it closed while idle) is
//! sent again on a fresh connection: nothing reached the instance.

use super::body::Outgoing;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Idle connections kept per instance address, per thread.
const MAX_IDLE: usize = 256;

thread_local! {
    static IDLE: RefCell<HashMap<SocketAddr, Vec<Idle>>> = RefCell::new(HashMap::new());
}

struct Idle {
    sender: SendRequest<Outgoing>,
    since: Instant,
}

/// A connection checked out for one request.
pub struct Pooled {
    sender: SendRequest<Outgoing>,
    addr: SocketAddr,
}

impl Pooled {
    /// Returns the connection to this thread's idle list (its answer was read to the end).
    pub fn release(self) {
        if self.sender.is_closed() {
            return;
        }
        IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let list = idle.entry(self.addr).or_default();
            if list.len() < MAX_IDLE {
                list.push(Idle {
                    sender: self.sender,
                    since: Instant::now(),
                });
            }
        });
    }
}

/// Why an instance gave no answer.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made (refused, unreachable, or not within `connect_timeout`).
    Connect(String),
    /// No answer's head within `read_timeout`.
    Timeout,
    /// The request body went over the route's `max_body` while streaming.
    TooLarge,
    /// The client stopped sending the request body.
    ClientBody,
    /// The connection failed while sending or answering.
    Broken(String),
}

/// Timeouts for one request.
#[derive(Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub idle: Duration,
}

/// A request that got no answer: why, and the request itself when nothing of it was sent (so it
/// can go to another instance unchanged).
pub struct Failure {
    pub error: SendError,
    pub request: Option<http::Request<Outgoing>>,
}

/// Sends `req` to `addr`: the answer's head, and the connection to reuse once its body ended.
pub async fn send(
    addr: SocketAddr,
    mut req: http::Request<Outgoing>,
    timeouts: Timeouts,
) -> Result<(http::Response<Incoming>, Pooled), Failure> {
    let failed = |error| Failure {
        error,
        request: None,
    };
    while let Some(mut sender) = checkout(addr, timeouts.idle) {
        if sender.ready().await.is_err() {
            continue;
        }
        match exchange(&mut sender, req, timeouts.read).await {
            Ok(resp) => return Ok((resp, Pooled { sender, addr })),
            Err(Exchange::NotSent(back)) => req = *back,
            Err(Exchange::Failed(e)) => return Err(failed(e)),
        }
    }
    let mut sender = match connect(addr, timeouts.connect).await {
        Ok(sender) => sender,
        Err(error) => {
            return Err(Failure {
                error,
                request: Some(req),
            })
        }
    };
    match exchange(&mut sender, req, timeouts.read).await {
        Ok(resp) => Ok((resp, Pooled { sender, addr })),
        Err(Exchange::NotSent(req)) => Err(Failure {
            error: SendError::Broken("connection closed".into()),
            request: Some(*req),
        }),
        Err(Exchange::Failed(e)) => Err(failed(e)),
    }
}

enum Exchange {
    /// The connection closed before the request started: it can go elsewhere unchanged.
    NotSent(Box<http::Request<Outgoing>>),
    Failed(SendError),
}

async fn exchange(
    sender: &mut SendRequest<Outgoing>,
    req: http::Request<Outgoing>,
    read: Duration,
) -> Result<http::Response<Incoming>, Exchange> {
    match tokio::time::timeout(read, sender.try_send_request(req)).await {
        Err(_) => Err(Exchange::Failed(SendError::Timeout)),
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(mut e)) => match e.take_message() {
            Some(req) => Err(Exchange::NotSent(Box::new(req))),
            None => Err(Exchange::Failed(classify(e.into_error()))),
        },
    }
}

fn classify(e: hyper::Error) -> SendError {
    use super::body::OutgoingError;
    use std::error::Error as _;
    match e.source().and_then(|s| s.downcast_ref::<OutgoingError>()) {
        Some(OutgoingError::TooLarge) => SendError::TooLarge,
        Some(OutgoingError::Read(_)) => SendError::ClientBody,
        None => SendError::Broken(e.to_string()),
    }
}

/// The newest idle connection to `addr` on this thread that is still fresh.
fn checkout(addr: SocketAddr, idle_timeout: Duration) -> Option<SendRequest<Outgoing>> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.get_mut(&addr)?;
        while let Some(conn) = list.pop() {
            if conn.since.elapsed() < idle_timeout && !conn.sender.is_closed() {
                return Some(conn.sender);
            }
        }
        None
    })
}

async fn connect(addr: SocketAddr, timeout: Duration) -> Result<SendRequest<Outgoing>, SendError> {
    let stream = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Err(_) => {
            return Err(SendError::Connect(format!(
                "connect timed out after {timeout:?}"
            )))
        }
        Ok(Err(e)) => return Err(SendError::Connect(format!("connect: {e}"))),
        Ok(Ok(stream)) => stream,
    };
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| SendError::Connect(format!("handshake: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}
