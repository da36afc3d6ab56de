//! The data path's HTTP/1.1 edges, end to end with raw clients: `Expect: 100-continue` on every
//! route kind, informational answers from an instance, limits that hold until a `101`, and
//! WebSocket tunnels under load.

mod common;
use common::*;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &str = "data-path-secret";
const HOOK: &str = "/api/whatsapp/webhooks/webjs";

struct Stack {
    _nodes: Vec<Upstream>,
    laravel: Upstream,
    gw: Gateway,
    fleet: SocketAddr,
    edge: SocketAddr,
}

/// Four Node stand-ins behind a workspace route (`max_body: 1KiB`), a Laravel stand-in behind a
/// webhook route and a balance route (`max_body: 1KiB`, `read_timeout: 500ms`).
async fn stack() -> Stack {
    let nodes = nodes(4).await;
    let laravel = Upstream::laravel("laravel").await;
    let (fleet, edge, admin) = (loopback(), loopback(), loopback());
    let instances = instances_yaml(&nodes);
    let yaml = format!(
        r#"threads: 2
admin: {{ listen: {admin} }}
listeners:
  fleet: {{ listen: {fleet} }}
  edge: {{ listen: {edge} }}
upstreams:
  node:
    instances:
{instances}    health: {{ interval: 300ms, timeout: 250ms }}
    routing: {{ assign: modulo }}
  laravel:
    instances: [{{ name: laravel, addr: {laravel} }}]
    health: {{ path: /up, interval: 300ms, timeout: 250ms }}
routes:
  - {{ name: node-api, listener: fleet, upstream: node, treatment: workspace, max_body: 1KiB, read_timeout: 500ms }}
  - name: hooks
    listener: edge
    path_prefix: {HOOK}
    upstream: laravel
    treatment: webhook
    webhook: {{ scheme: hex-timestamp-body, secrets: ["{SECRET}"] }}
  - {{ name: app, listener: edge, upstream: laravel, max_body: 1KiB, read_timeout: 500ms }}
"#,
        laravel = laravel.addr,
    );
    let gw = Gateway::start(&yaml, admin, &[fleet, edge]).await;
    Stack {
        _nodes: nodes,
        laravel,
        gw,
        fleet,
        edge,
    }
}

/// Reads one response head (through `\r\n\r\n`) byte by byte: its status and text.
async fn head(stream: &mut TcpStream) -> (u16, String) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut byte))
            .await
            .expect("a response head in time")
            .unwrap();
        assert_eq!(n, 1, "closed mid-head: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// What a client that sends `Expect: 100-continue` (and `Connection: close`) sees: the interim
/// statuses, then the final status and everything after that head until the server closed.
struct Seen {
    interim: Vec<u16>,
    status: u16,
    rest: String,
}

/// Sends `request_head` (without its blank line) with `Expect: 100-continue`; sends `body` only
/// after a `100 Continue`.
async fn with_expect(addr: SocketAddr, request_head: &str, body: &[u8]) -> Seen {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head_text = format!(
        "{request_head}\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head_text.as_bytes()).await.unwrap();
    let mut interim = Vec::new();
    loop {
        let (status, _) = head(&mut stream).await;
        if status == 100 {
            interim.push(status);
            stream.write_all(body).await.unwrap();
            continue;
        }
        let mut rest = Vec::new();
        tokio::time::timeout(DEADLINE, stream.read_to_end(&mut rest))
            .await
            .expect("the connection closed after the answer")
            .unwrap();
        return Seen {
            interim,
            status,
            rest: String::from_utf8_lossy(&rest).into_owned(),
        };
    }
}

fn signed_headers(body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(body);
    let sig = hex(&mac.finalize().into_bytes());
    format!("X-Timestamp: {ts}\r\nX-HMAC-Signature: {sig}\r\nContent-Type: application/json")
}

/// Every instance's in-flight count, from `/admin/upstreams`.
async fn in_flight(gw: &Gateway) -> Vec<i64> {
    let upstreams = gw.upstreams().await;
    upstreams["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["instances"].as_array().unwrap().clone())
        .map(|i| i["in_flight"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_gets_one_continue_and_one_final_answer_on_every_route_kind() {
    let s = stack().await;
    let json = br#"{"workspace_id": 6, "session_id": "x"}"#;
    let cases: [(SocketAddr, String, &[u8], &str); 4] = [
        (
            s.fleet,
            "POST /api/messages/send HTTP/1.1\r\nHost: a\r\nX-Workspace-Id: 5\r\nContent-Type: application/json".into(),
            json,
            "\"instance\":\"u2\"",
        ),
        (
            s.fleet,
            "POST /api/messages/send HTTP/1.1\r\nHost: a\r\nContent-Type: application/json".into(),
            json,
            "\"instance\":\"u3\"",
        ),
        (
            s.edge,
            format!("POST {HOOK} HTTP/1.1\r\nHost: a\r\n{}", signed_headers(b"{\"event\":\"x\"}")),
            b"{\"event\":\"x\"}",
            "\"instance\":\"laravel\"",
        ),
        (
            s.edge,
            "POST /api/whatsapp/chats/sync HTTP/1.1\r\nHost: a\r\nContent-Type: application/json".into(),
            b"{\"chats\":[]}",
            "\"instance\":\"laravel\"",
        ),
    ];
    for (addr, request, body, answered_by) in cases {
        let seen = with_expect(addr, &request, body).await;
        assert_eq!(
            (seen.interim.as_slice(), seen.status),
            (&[100][..], 200),
            "{request}\n{}",
            seen.rest
        );
        assert!(seen.rest.contains(answered_by), "{request}\n{}", seen.rest);
        assert!(
            !seen.rest.contains("HTTP/1.1"),
            "a second answer: {}",
            seen.rest
        );
    }
    let flights = in_flight(&s.gw).await;
    assert!(flights.iter().all(|n| *n == 0), "in flight: {flights:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_the_edge_refuses_is_answered_without_100_continue_or_reading_its_body() {
    let s = stack().await;
    let seen = with_expect(
        s.edge,
        &format!("POST {HOOK} HTTP/1.1\r\nHost: a\r\nContent-Type: application/json"),
        &[b'x'; 512],
    )
    .await;
    assert!(
        seen.interim.is_empty(),
        "no 100 Continue for a refused delivery"
    );
    assert_eq!(seen.status, 401);
    assert_eq!(s.laravel.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// A raw instance that, as soon as it has a request head, writes `answer` and closes (without
/// reading a body: closing with unread bytes resets the connection, as a real app that refuses
/// early does).
async fn raw_instance(answer: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

/// A gateway with one balance route on `edge` to `upstream`.
async fn edge_to(upstream: SocketAddr) -> (Gateway, SocketAddr) {
    let (edge, admin) = (loopback(), loopback());
    let yaml = format!(
        "admin: {{ listen: {admin} }}\nlisteners:\n  edge: {{ listen: {edge} }}\nupstreams:\n  app:\n    instances: [{{ name: app, addr: {upstream} }}]\n    health: {{ path: /, interval: 1s }}\nroutes:\n  - {{ name: app, listener: edge, upstream: app }}\n"
    );
    (Gateway::start(&yaml, admin, &[edge]).await, edge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_informational_answer_from_an_instance_is_never_taken_as_the_final_one() {
    let upstream = raw_instance(
        "HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfinal",
    )
    .await;
    let (gw, edge) = edge_to(upstream).await;
    for _ in 0..3 {
        let resp = send(edge, "GET", "/", &[], vec![]).await;
        assert_eq!((resp.status, &resp.body[..]), (200, &b"final"[..]));
    }
    let seen = with_expect(edge, "POST / HTTP/1.1\r\nHost: a", b"body").await;
    assert_eq!(seen.status, 200, "{}", seen.rest);
    assert!(seen.rest.ends_with("final"), "{}", seen.rest);
    assert!(in_flight(&gw).await.iter().all(|n| *n == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_request_keeps_max_body_and_the_read_timeout_until_a_101() {
    let s = stack().await;
    // 4 KiB chunked past the route's 1 KiB, with an Upgrade the instance will not accept.
    let mut stream = TcpStream::connect(s.edge).await.unwrap();
    let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
    let request = format!(
        "POST /api/whatsapp/chats/sync HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\nTransfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n",
        chunk.repeat(4)
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (status, text) = head(&mut stream).await;
    // Streamed, so the instance saw the start of it; the client gets the 413, not its answer.
    assert_eq!(status, 413, "{text}");

    // A slow answer with an Upgrade header still times out at the route's read timeout.
    let slow = send(
        s.fleet,
        "GET",
        "/api/sessions?delay_ms=3000",
        &[
            ("x-workspace-id", "1"),
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
        ],
        vec![],
    )
    .await;
    assert_eq!(
        (slow.status, slow.error_code()),
        (504, "upstream.timeout".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_websocket_tunnels_under_http_load_all_survive_a_second_of_idling() {
    let s = stack().await;
    let fleet = s.fleet;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|i| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let ws = (i + 1).to_string();
                let mut served = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = send(
                        fleet,
                        "GET",
                        "/api/sessions",
                        &[("x-workspace-id", &ws)],
                        vec![],
                    )
                    .await;
                    assert_eq!(r.status, 200);
                    served += 1;
                }
                served
            })
        })
        .collect();
    let tunnels: Vec<_> = (0..1000u64)
        .map(|i| {
            tokio::spawn(async move {
                let mut stream = open_tunnel(fleet, i).await;
                // Idle for a second (the subject of the test), then echo.
                tokio::time::sleep(Duration::from_secs(1)).await;
                let probe = format!("after-idle-{i}");
                stream.write_all(probe.as_bytes()).await.unwrap();
                let mut echo = vec![0u8; probe.len()];
                tokio::time::timeout(DEADLINE, stream.read_exact(&mut echo))
                    .await
                    .expect("echo in time")
                    .expect("the tunnel is still open");
                assert_eq!(echo, probe.as_bytes());
            })
        })
        .collect();
    let mut torn = 0;
    for tunnel in tunnels {
        if tunnel.await.is_err() {
            torn += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut served = 0;
    for task in load {
        served += task.await.unwrap();
    }
    assert_eq!(torn, 0, "tunnels torn down\n{}", s.gw.log());
    assert!(served > 0, "the HTTP load ran alongside");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_answers_before_taking_a_streamed_body_has_its_answer_relayed() {
    let upstream = raw_instance(
        "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large",
    )
    .await;
    let (gw, edge) = edge_to(upstream).await;
    let body = vec![b'x'; 8 << 20];
    let mut stream = TcpStream::connect(edge).await.unwrap();
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // The client keeps sending; the gateway may stop reading and close once answered.
    let upload = tokio::spawn(async move {
        let _ = writer.write_all(&body).await;
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, reader.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}\n{}", gw.log());
    assert!(text.ends_with("too large"), "{text}");
    upload.abort();
    assert!(in_flight(&gw).await.iter().all(|n| *n == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_request_body_reaches_the_instance_byte_for_byte() {
    let s = stack().await;
    let mut stream = TcpStream::connect(s.fleet).await.unwrap();
    let head = "POST /api/messages/send-media HTTP/1.1\r\nHost: a\r\nX-Workspace-Id: 5\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let (mut sent, mut wire) = (Vec::new(), head.as_bytes().to_vec());
    for (i, size) in [1usize, 300, 17, 512].into_iter().enumerate() {
        let chunk = vec![b'a' + i as u8; size];
        wire.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        wire.extend_from_slice(&chunk);
        wire.extend_from_slice(b"\r\n");
        sent.extend_from_slice(&chunk);
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&wire).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(json["instance"], "u2");
    assert_eq!(json["body_len"], sent.len());
    assert_eq!(json["body_sha256"], sha256_hex(&sent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_answer_with_trailers_reaches_the_client_whole() {
    let upstream = raw_instance(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
    )
    .await;
    let (gw, edge) = edge_to(upstream).await;
    let resp = send(edge, "GET", "/", &[], vec![]).await;
    assert_eq!((resp.status, &resp.body[..]), (200, &b"hello world"[..]));
    assert!(in_flight(&gw).await.iter().all(|n| *n == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_on_a_pooled_connection_the_instance_closed_goes_out_again_on_a_fresh_one() {
    // idle_timeout above Node's 5 s keep-alive (a misconfiguration): the pool hands out
    // connections Node has already closed. One thread, one pool: the idle one is reused.
    let node = Upstream::node("u1").await;
    let (fleet, admin) = (loopback(), loopback());
    let yaml = format!(
        "threads: 1\nadmin: {{ listen: {admin} }}\nlisteners:\n  fleet: {{ listen: {fleet} }}\nupstreams:\n  node:\n    instances: [{{ name: u1, addr: {} }}]\n    idle_timeout: 30s\n    health: {{ interval: 60s }}\n    routing: {{ assign: modulo }}\nroutes:\n  - {{ name: api, listener: fleet, upstream: node, treatment: workspace }}\n",
        node.addr
    );
    let gw = Gateway::start(&yaml, admin, &[fleet]).await;
    let ws = [("x-workspace-id", "1")];
    assert_eq!(
        send(fleet, "GET", "/api/sessions", &ws, vec![])
            .await
            .status,
        200
    );
    // Idle past Node's keep-alive (the subject of the test, not a synchronisation).
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let json = br#"{"workspace_id": 1}"#.to_vec();
    let headers = [
        ("x-workspace-id", "1"),
        ("content-type", "application/json"),
    ];
    let again = send(fleet, "POST", "/api/messages/send", &headers, json).await;
    assert_eq!(
        again.status,
        200,
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    assert_eq!(again.json()["body_len"], 19);
    let get = send(fleet, "GET", "/api/sessions", &ws, vec![]).await;
    assert_eq!(get.status, 200, "{}", gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_sending_a_refused_body_reads_the_answer_not_a_reset() {
    let s = stack().await;
    let mut stream = TcpStream::connect(s.fleet).await.unwrap();
    let head_text = "POST /api/messages/send-media HTTP/1.1\r\nHost: a\r\nX-Workspace-Id: 1\r\n\
                     Content-Type: application/octet-stream\r\nContent-Length: 8388608\r\n\r\n";
    stream.write_all(head_text.as_bytes()).await.unwrap();
    // The gateway refuses by Content-Length (route max_body 1KiB) and closes while the client is
    // still sending, as curl or an HTTP client library would. Without a lingering close the
    // unread bytes make the close a reset: the client's writes fail and the reset destroys the
    // answer waiting in its receive queue.
    let chunk = vec![b'x'; 64 * 1024];
    for sent in 0..128 {
        let written = stream.write_all(&chunk).await;
        assert!(written.is_ok(), "write {sent}: {written:?}");
    }
    stream.shutdown().await.unwrap();
    let (status, text) = head(&mut stream).await;
    assert_eq!(status, 413, "{text}");
    let mut rest = Vec::new();
    let end = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(end, Ok(Ok(_))),
        "the connection ends cleanly: {end:?}"
    );
}
