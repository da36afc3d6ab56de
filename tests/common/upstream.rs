//! Loopback stand-ins for the two kinds of upstream fleetgate sits in front of, each answering
//! only its own routes, as the real one does (`shared/CONTRACTS.md`):
//!
//! - [`Upstream::node`]: a whatsapp-web.js instance. `GET /health` answers the Node service's
//!   JSON (500 `unhealthy` while [`Upstream::healthy`] is false); the session, message, internal,
//!   cleanup and remoteauth routes answer; anything else gets the service's 404
//!   `{"error": "Endpoint not found", …}`. Its `GET /ws` accepts a WebSocket upgrade and echoes
//!   bytes (the one route the Node service lacks: the tunnel tests need an upgrading upstream).
//! - [`Upstream::laravel`]: a Laravel 10-style app (routes loaded RouteServiceProvider-style, no
//!   health route); [`Upstream::laravel11`] adds Laravel 11's `GET /up`. Anything else gets
//!   Laravel's 404 `{"message": "Not Found"}`.
//!
//! Idle keep-alive connections are closed as the apps close them (Node after 5 s).
//!
//! A route that exists answers 200 with what it received (method, path, query, headers, body
//! length and SHA-256) plus its instance name, so tests can see where a request went and what
//! arrived. Test-only knobs on those routes: the `x-stub-status` header picks the status, the
//! `delay_ms` query parameter delays the answer, `padding=N` adds N bytes to it. Health checks (user agent `fleetgate-health`)
//! are counted apart and never appear in [`Upstream::hits`] or [`Upstream::paths`].

use super::{hex, wait_for, DEADLINE};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Node's `server.keepAliveTimeout` default: idle connections are closed after 5 s.
const NODE_KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Laravel behind nginx (`keepalive_timeout 75s`) or php-fpm's built-in server.
const LARAVEL_KEEP_ALIVE: Duration = Duration::from_secs(75);

/// Which app a stand-in behaves like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Node,
    /// Laravel; `up`: Laravel 11+'s `GET /up` health route exists.
    Laravel {
        up: bool,
    },
}

pub struct Upstream {
    pub name: String,
    pub kind: Kind,
    pub addr: SocketAddr,
    /// Node only: while false, `GET /health` answers 500 `unhealthy`.
    pub healthy: Arc<AtomicBool>,
    /// Requests answered, health checks excluded.
    pub hits: Arc<AtomicUsize>,
    /// Paths of the requests answered (health checks excluded), in order.
    pub paths: Arc<Mutex<Vec<String>>>,
    /// The gateway's health checks received (whatever they were answered).
    pub health_checks: Arc<AtomicUsize>,
    task: Option<JoinHandle<()>>,
}

impl Upstream {
    pub async fn node(name: &str) -> Self {
        Self::start(name, Kind::Node).await
    }

    /// A Laravel app with no health route (Laravel 10 style).
    pub async fn laravel(name: &str) -> Self {
        Self::start(name, Kind::Laravel { up: false }).await
    }

    /// A Laravel 11+ app: `GET /up` answers 200.
    pub async fn laravel11(name: &str) -> Self {
        Self::start(name, Kind::Laravel { up: true }).await
    }

    async fn start(name: &str, kind: Kind) -> Self {
        Self::start_on(name, kind, "127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(name: &str, kind: Kind, addr: SocketAddr) -> Self {
        let listener = bind_retrying(addr).await;
        let addr = listener.local_addr().unwrap();
        let state = Stub {
            name: name.to_string(),
            kind,
            port: addr.port(),
            healthy: Arc::new(AtomicBool::new(true)),
            hits: Arc::default(),
            paths: Arc::default(),
            health_checks: Arc::default(),
        };
        let task = tokio::spawn(serve(listener, state.clone()));
        Self {
            name: name.to_string(),
            kind,
            addr,
            healthy: state.healthy,
            hits: state.hits,
            paths: state.paths,
            health_checks: state.health_checks,
            task: Some(task),
        }
    }

    /// Kills the instance: the listener and every open connection go away.
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Starts it again on the same address.
    pub async fn restart(&mut self) {
        self.stop();
        *self = Self::start_on(&self.name, self.kind, self.addr).await;
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn bind_retrying(addr: SocketAddr) -> TcpListener {
    wait_for("the stub's port to be free", DEADLINE, || async move {
        TcpListener::bind(addr).await.ok()
    })
    .await
}

#[derive(Clone)]
struct Stub {
    name: String,
    kind: Kind,
    port: u16,
    healthy: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
    health_checks: Arc<AtomicUsize>,
}

async fn serve(listener: TcpListener, stub: Stub) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let stub = stub.clone();
        connections.spawn(async move {
            let keep_alive = match stub.kind {
                Kind::Node => NODE_KEEP_ALIVE,
                Kind::Laravel { .. } => LARAVEL_KEEP_ALIVE,
            };
            let service = hyper::service::service_fn(move |req| handle(stub.clone(), req));
            // hyper's head-read timer also runs while a kept-alive connection waits for its next
            // request: the app's idle keep-alive limit.
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(keep_alive)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

async fn handle(stub: Stub, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let is_check = req
        .headers()
        .get(hyper::header::USER_AGENT)
        .is_some_and(|ua| ua == "fleetgate-health");
    if is_check {
        stub.health_checks.fetch_add(1, Ordering::SeqCst);
    }
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    if let Some(answer) = health(&stub, &method, &path) {
        return Ok(answer);
    }
    if !is_check {
        stub.hits.fetch_add(1, Ordering::SeqCst);
        stub.paths.lock().unwrap().push(path.clone());
    }
    let known = match stub.kind {
        Kind::Node => node_route(&method, &path),
        Kind::Laravel { .. } => laravel_route(&method, &path),
    };
    if !known {
        return Ok(not_found(stub.kind, &method, &path));
    }
    if stub.kind == Kind::Node
        && path == "/ws"
        && req.headers().contains_key(hyper::header::UPGRADE)
    {
        return Ok(upgrade_echo(req));
    }
    echo(&stub, req).await
}

/// The health routes each kind has: Node's `/health`, Laravel 11's `/up`.
fn health(stub: &Stub, method: &Method, path: &str) -> Option<Response<Full<Bytes>>> {
    match (stub.kind, path) {
        (_, _) if method != Method::GET => None,
        (Kind::Node, "/health") if stub.healthy.load(Ordering::SeqCst) => Some(reply(
            200,
            json!({
                "status": "healthy", "uptime": 12.5,
                "sessions": {"total": 0, "connected": 0, "disconnected": 0},
                "memory": {"used": 48, "total": 64, "unit": "MB"},
                "timestamp": "2026-12-02T09:00:00.000Z",
            }),
        )),
        (Kind::Node, "/health") => Some(reply(
            500,
            json!({"status": "unhealthy", "error": "stand-in marked down", "timestamp": "2026-12-02T09:00:00.000Z"}),
        )),
        (Kind::Laravel { up: true }, "/up") => Some(
            Response::builder()
                .status(200)
                .header("content-type", "text/html; charset=UTF-8")
                .body(Full::new(Bytes::from_static(
                    b"<!DOCTYPE html><title>Up</title>Application up",
                )))
                .unwrap(),
        ),
        _ => None,
    }
}

/// The Node service's Express routes (method and path shape), plus the stand-in's `GET /ws`.
fn node_route(method: &Method, path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let m = method.as_str();
    match segments.as_slice() {
        [""] | ["info"] | ["ws"] => m == "GET",
        ["health", "detailed" | "ready" | "live" | "metrics"] => m == "GET",
        ["api", "sessions"] => m == "GET" || m == "POST",
        ["api", "sessions", _] => m == "DELETE",
        ["api", "sessions", _, "status"] => m == "GET",
        ["api", "sessions", _, "metadata"] => m == "GET" || m == "PUT",
        ["api", "sessions", _, "restore" | "reconnect" | "regenerate-qr"] => m == "POST",
        ["api", "messages", "send" | "send-media" | "bulk-send"] => m == "POST",
        ["api", "messages", _, "status" | "validate"] => m == "GET",
        ["api", "internal", "sessions", _, "last-activity"] => m == "GET",
        ["cleanup", "stats"] => m == "GET",
        ["cleanup", _] => m == "POST",
        ["remoteauth", "health" | "redis" | "sessions" | "migration"] => m == "GET",
        ["remoteauth", "migration", _] => m == "GET",
        _ => false,
    }
}

/// The Laravel app's routes the Node service and browsers use (`routes/api.php`, `routes/web.php`).
fn laravel_route(method: &Method, path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let m = method.as_str();
    match segments.as_slice() {
        [""] => m == "GET" || m == "POST",
        ["broadcasting", "auth"] => m == "POST",
        ["api", "whatsapp", rest @ ..] => match rest {
            ["webhooks", "webjs"] | ["chats", "sync"] | ["broadcast"] | ["cleanup-logs"] => {
                m == "POST"
            }
            ["accounts", "active"] | ["accounts-for-cleanup"] | ["cleanup-stats"] => m == "GET",
            ["accounts", "by-session", _] | ["accounts", _, "sync-status"] => m == "GET",
            ["accounts", _, "status"] => m == "GET" || m == "PATCH",
            ["accounts", _, "mark-disconnected"] => m == "POST",
            _ => false,
        },
        _ => false,
    }
}

fn not_found(kind: Kind, method: &Method, path: &str) -> Response<Full<Bytes>> {
    match kind {
        Kind::Node => reply(
            404,
            json!({"error": "Endpoint not found", "path": path, "method": method.as_str()}),
        ),
        Kind::Laravel { .. } => reply(404, json!({"message": "Not Found"})),
    }
}

/// A route that exists: 200 (or `x-stub-status`) with what arrived, after `delay_ms` if asked.
async fn echo(stub: &Stub, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let query = req.uri().query().map(String::from);
    let delay = query.as_deref().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("delay_ms="))
            .and_then(|ms| ms.parse().ok())
    });
    if let Some(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let (method, path) = (req.method().to_string(), req.uri().path().to_string());
    let mut headers = serde_json::Map::new();
    for (name, value) in req.headers() {
        let value = value.to_str().unwrap_or("<binary>").to_string();
        match headers.get_mut(name.as_str()) {
            Some(Value::Array(list)) => list.push(Value::String(value)),
            _ => drop(headers.insert(name.to_string(), Value::Array(vec![Value::String(value)]))),
        }
    }
    let status = req
        .headers()
        .get("x-stub-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let body = req.into_body().collect().await?.to_bytes();
    let digest = hex(&Sha256::digest(&body));
    // Test knob: `?padding=N` adds N bytes to the answer (a large response).
    let padding = query.as_deref().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("padding="))
            .and_then(|n| n.parse::<usize>().ok())
    });
    Ok(reply(
        status,
        json!({
            "instance": stub.name, "port": stub.port, "method": method, "path": path, "query": query,
            "headers": headers, "body_len": body.len(), "body_sha256": digest, "success": true,
            "status": "received", "padding": "x".repeat(padding.unwrap_or(0)),
        }),
    ))
}

/// Answers 101 and echoes every byte on the upgraded connection.
fn upgrade_echo(req: Request<Incoming>) -> Response<Full<Bytes>> {
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(req).await {
            let mut io = TokioIo::new(upgraded);
            let mut buf = [0u8; 4096];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    });
    Response::builder()
        .status(101)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}
