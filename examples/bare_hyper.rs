//! Benchmark baseline (not part of fleetgate): a hyper 1.x proxy with no logic but
//! `X-Workspace-Id % 4` → 127.0.0.1:3001..3004, `X-Forwarded-For`, and a per-thread pool of
//! HTTP/1.1 client connections, on one current-thread runtime. `bench/proxy-bench.sh` runs it as
//! the `hyper` target: the floor of what a hyper data path costs on this machine, next to
//! fleetgate (same building blocks plus routing, hygiene, metrics and logging).
//! Usage: `bare_hyper [PORT]` (default 18093).

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::{handshake, SendRequest};
use hyper::header::{HeaderValue, CONNECTION};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};

type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, hyper::Error>;

thread_local! {
    static IDLE: RefCell<[Vec<SendRequest<Incoming>>; 4]> = RefCell::new(Default::default());
}

async fn checkout(
    i: usize,
) -> Result<SendRequest<Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    while let Some(mut sender) = IDLE.with(|idle| idle.borrow_mut()[i].pop()) {
        if sender.ready().await.is_ok() {
            return Ok(sender);
        }
    }
    let stream = TcpStream::connect(("127.0.0.1", 3001 + i as u16)).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = handshake(TokioIo::new(stream)).await?;
    tokio::task::spawn_local(conn);
    Ok(sender)
}

async fn handle(
    mut req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Body>, Box<dyn std::error::Error + Send + Sync>> {
    let ws: usize = req
        .headers()
        .get("x-workspace-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let i = ws % 4;
    let headers = req.headers_mut();
    headers.remove(CONNECTION);
    headers.insert(
        "x-forwarded-for",
        HeaderValue::from_str(&peer.ip().to_string())?,
    );
    let mut sender = checkout(i).await?;
    let resp = sender.send_request(req).await?;
    IDLE.with(|idle| idle.borrow_mut()[i].push(sender));
    Ok(resp.map(|b| b.boxed_unsync()))
}

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(18093);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::task::spawn_local(async move {
                let service = hyper::service::service_fn(move |req| handle(req, peer));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
