//! The upstream client: HTTP/1.1 to instances, driven inside the request's own task, over
//! connections pooled per thread.
//!
//! There is no connection task and no channel: the request task writes the request head (and a
//! body read before forwarding, in the same write), reads the response head ([`super::h1`]), and
//! the answer's body ([`UpstreamBody`]) reads the rest from the socket as the client's connection
//! asks for it. When that body ends, the connection goes back to this thread's idle list (a
//! `thread_local`, no lock); one that broke, whose answer was not read to the end, that said
//! `Connection: close`, or that switched protocols is never reused.
//!
//! Idle connections older than the group's `idle_timeout` are dropped at checkout. An instance
//! may close an idle connection just as it is reused: a request that got no byte of answer on a
//! reused connection is sent again on a fresh one when its body can be sent again (none, or read
//! before forwarding); a streamed body is only sent on a connection checked to be open. A fresh
//! connection closed without an answer is the instance failing ([`SendError::Dropped`]); the
//! request comes back for another instance when it is idempotent and can be sent again.

use super::h1::{self, Chunked, Framing};
use super::hygiene::Forwarding;
use super::request_body::{Outgoing, OutgoingError};
use bytes::{Buf, Bytes, BytesMut};
use http::{Response, Version};
use http_body_util::BodyExt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Sleep;

mod body;
mod encode;
mod pool;

pub use body::UpstreamBody;
use encode::{encode, Encoded};
use pool::{checkout, connect, Conn, READ_RESERVE};

/// Why an instance gave no answer.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made (refused, unreachable, or not within `connect_timeout`).
    Connect(String),
    /// No answer's head within `read_timeout`.
    Timeout,
    /// The request body went over the route's `max_body` while streaming.
    TooLarge,
    /// The client's body could not be read (what to answer: 400, or 408 after a pause).
    ClientBody(crate::errors::GatewayError),
    /// A fresh connection was closed or reset before any byte of an answer.
    Dropped(String),
    /// The connection failed while sending or answering, or the answer was not HTTP.
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

/// Sends `req` to `addr` and reads the answer's head; its body streams from the connection.
pub async fn send(
    addr: SocketAddr,
    req: http::Request<Outgoing>,
    add: &Forwarding<'_>,
    timeouts: Timeouts,
) -> Result<Response<UpstreamBody>, Failure> {
    let (parts, body) = req.into_parts();
    let Encoded {
        head,
        mut body,
        inline,
        chunked,
        streamed,
    } = encode(&parts, body, add).await.map_err(failed)?;
    let mut fresh_only = false;
    loop {
        let reused = if fresh_only {
            None
        } else {
            checkout(addr, timeouts.idle, streamed)
        };
        let was_reused = reused.is_some();
        let mut conn = match reused {
            Some(conn) => conn,
            None => match connect(addr, timeouts.connect).await {
                Ok(conn) => conn,
                Err(error) => {
                    let request = http::Request::from_parts(parts, body);
                    return Err(Failure {
                        error,
                        request: Some(request),
                    });
                }
            },
        };
        let deadline = tokio::time::Instant::now() + timeouts.read;
        let mut timer = conn.timer.take();
        let exchange = exchange(&mut conn, &head, &mut body, inline, chunked, &parts.method);
        let exchanged = within(exchange, &mut timer, deadline).await;
        conn.timer = timer;
        match exchanged {
            Err(Elapsed) => return Err(failed(SendError::Timeout)),
            Ok(Ok(answer)) => return Ok(answer.into_response(conn)),
            Ok(Err(Exchange::Unanswered(_))) if was_reused && !streamed => fresh_only = true,
            Ok(Err(Exchange::Unanswered(reason))) => {
                // A fresh connection closed without a word: the instance is failing. A request
                // that is idempotent and can be sent again may go to another instance, as with
                // nginx's `proxy_next_upstream error`; any other may have been acted on.
                let again = !streamed && idempotent(&parts.method);
                return Err(Failure {
                    error: SendError::Dropped(reason),
                    request: again.then(|| http::Request::from_parts(parts, body)),
                });
            }
            Ok(Err(Exchange::Failed(e))) => return Err(failed(e)),
        }
    }
}

/// The deadline passed.
struct Elapsed;

/// `fut`, unless `deadline` passes first. The timer lives with the connection and stays armed
/// between requests: a request only moves the deadline it is checked against, and the timer is
/// re-armed when it fires before that deadline (once per timeout period at most), so a request
/// costs no timer registration.
async fn within<F: Future>(
    fut: F,
    timer: &mut Option<Pin<Box<Sleep>>>,
    deadline: tokio::time::Instant,
) -> Result<F::Output, Elapsed> {
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    if timer.deadline() > deadline {
        // A shorter timeout than the timer was armed for (a reload).
        timer.as_mut().reset(deadline);
    }
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        while timer.as_mut().poll(cx).is_ready() {
            if tokio::time::Instant::now() >= deadline {
                return Poll::Ready(Err(Elapsed));
            }
            timer.as_mut().reset(deadline);
        }
        Poll::Pending
    })
    .await
}

fn failed(error: SendError) -> Failure {
    Failure {
        error,
        request: None,
    }
}

enum Exchange {
    /// The connection ended (or refused the request's head or buffered body) before any byte
    /// of an answer: a request that can be sent again may go on a fresh connection.
    Unanswered(String),
    Failed(SendError),
}

/// A response head and how its body is framed.
struct Answer {
    head: h1::Head,
    framing: Framing,
    /// The request was not sent to its end: the connection cannot carry another.
    unfinished: bool,
}

impl Answer {
    fn into_response(self, conn: Conn) -> Response<UpstreamBody> {
        let switching = self.head.status == http::StatusCode::SWITCHING_PROTOCOLS;
        let reusable = !switching && !self.unfinished && self.head.keep_alive;
        let body = UpstreamBody {
            conn: Some(conn),
            framing: self.framing,
            chunked: Chunked::default(),
            reusable,
            switching,
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = self.head.status;
        *resp.version_mut() = Version::HTTP_11;
        *resp.headers_mut() = self.head.headers;
        resp
    }
}

async fn exchange(
    conn: &mut Conn,
    head: &[u8],
    body: &mut Outgoing,
    inline: bool,
    chunked: bool,
    method: &http::Method,
) -> Result<Answer, Exchange> {
    // Nothing of an answer has been read while the head and a buffered body are written.
    let unanswered = |e: io::Error| Exchange::Unanswered(format!("sending: {e}"));
    match body {
        Outgoing::Full(Some(bytes)) if !inline => {
            conn.stream.write_all(head).await.map_err(unanswered)?;
            conn.stream.write_all(bytes).await.map_err(unanswered)?;
        }
        Outgoing::Full(_) => conn.stream.write_all(head).await.map_err(unanswered)?,
        Outgoing::Stream { .. } => {
            conn.stream.write_all(head).await.map_err(unanswered)?;
            let sent = stream_body(conn, body, chunked).await;
            if let Err(Exchange::Failed(SendError::Broken(reason))) = sent {
                // An instance may answer before taking the whole body (a 413, a 401) and close:
                // its answer is relayed; the connection, its request unfinished, is not reused.
                let mut answer = read_head(conn, method)
                    .await
                    .map_err(|_| Exchange::Failed(SendError::Broken(reason)))?;
                answer.unfinished = true;
                return Ok(answer);
            }
            sent?;
        }
    }
    read_head(conn, method).await
}

/// Copies the client's body to the instance as it comes (re-chunked when it came chunked).
async fn stream_body(conn: &mut Conn, body: &mut Outgoing, chunked: bool) -> Result<(), Exchange> {
    let broken = |e: io::Error| Exchange::Failed(SendError::Broken(e.to_string()));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Exchange::Failed(match e {
                OutgoingError::TooLarge => SendError::TooLarge,
                OutgoingError::Read(e) => SendError::ClientBody(e.into()),
            })
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        let written = match chunked {
            // Size line, data and line end in one vectored write.
            true => {
                let (prefix, len) = h1::chunk_prefix(data.len());
                let mut chunk = Buf::chain(Buf::chain(&prefix[..len], &data[..]), &b"\r\n"[..]);
                conn.stream.write_all_buf(&mut chunk).await
            }
            false => conn.stream.write_all(&data).await,
        };
        written.map_err(broken)?;
    }
    if chunked {
        conn.stream.write_all(b"0\r\n\r\n").await.map_err(broken)?;
    }
    Ok(())
}

/// Reads until a final response head (informational ones, but `101`, are skipped).
async fn read_head(conn: &mut Conn, method: &http::Method) -> Result<Answer, Exchange> {
    let mut answered = !conn.buf.is_empty();
    loop {
        match h1::parse_response(&mut conn.buf) {
            Ok(Some(head)) if head.status.is_informational() && head.status.as_u16() != 101 => {
                continue
            }
            Ok(Some(head)) => {
                let framing = h1::response_framing(method, &head)
                    .map_err(|e| Exchange::Failed(SendError::Broken(e.to_string())))?;
                return Ok(Answer {
                    head,
                    framing,
                    unfinished: false,
                });
            }
            Ok(None) => {}
            Err(e) => return Err(Exchange::Failed(SendError::Broken(e.to_string()))),
        }
        conn.buf.reserve(READ_RESERVE);
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) if !answered => {
                return Err(Exchange::Unanswered("closed before answering".into()))
            }
            Err(e) if !answered && closed(&e) => {
                return Err(Exchange::Unanswered(format!("before answering: {e}")))
            }
            Ok(0) => {
                return Err(Exchange::Failed(SendError::Broken(
                    "closed mid-answer".into(),
                )))
            }
            Err(e) => return Err(Exchange::Failed(SendError::Broken(e.to_string()))),
            Ok(_) => answered = true,
        }
    }
}

/// Whether a request means the same sent twice as once (RFC 9110, 9.2.2).
fn idempotent(method: &http::Method) -> bool {
    use http::Method as M;
    [M::GET, M::HEAD, M::OPTIONS, M::TRACE, M::PUT, M::DELETE].contains(method)
}

/// The peer closed the connection (rather than the answer being bad or the machine failing).
fn closed(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}
