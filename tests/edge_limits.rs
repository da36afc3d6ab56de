//! Deadlines and connection limits of the fleet and edge listeners, against the real binary:
//! a slowloris head, an idle keep-alive connection, a silent connection, a paused body, a client
//! that stops reading, and thousands of connections from one address.

mod common;
use common::*;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Four Node stand-ins behind the fleet listener, with `listener` keys (one per line) on the
/// listener and `route` keys on the route.
async fn fleet_with(listener: &str, route: &str) -> (Vec<Upstream>, Gateway, SocketAddr) {
    let stubs = nodes(4).await;
    let (fleet, admin) = (loopback(), loopback());
    let listener: String = listener.lines().map(|l| format!("    {l}\n")).collect();
    let yaml = fleet_yaml(fleet, admin, &stubs.iter().collect::<Vec<_>>(), "", route).replace(
        &format!("    listen: {fleet}\n"),
        &format!("    listen: {fleet}\n{listener}"),
    );
    let gw = Gateway::start(&yaml, admin, &[fleet]).await;
    (stubs, gw, fleet)
}

/// Waits until the connections the readiness probes opened (the gateway's own and the test
/// harness's) have been taken in and closed, so they count against no limit below: `/readyz`
/// answers 200 once the gateway's probe connected, a request answered after that was accepted
/// after every earlier connection, and then none is open.
async fn settled(gw: &Gateway, fleet: SocketAddr) {
    wait_for("/readyz to answer 200", DEADLINE, || async {
        let r = send(gw.admin, "GET", "/readyz", &[], Vec::new()).await;
        (r.status == 200).then_some(())
    })
    .await;
    assert_eq!(sessions(fleet, "1").await.status, 200);
    until_open(gw, 0.0).await;
}

/// Waits until the gateway closes `stream` (end of stream or reset), returning what it sent.
async fn closed_by_gateway(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the gateway kept the connection open");
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits until the listener has `n` connections open.
async fn until_open(gw: &Gateway, n: f64) {
    wait_for(&format!("{n} connections to be open"), DEADLINE, || async {
        let open = gw
            .sample(r#"fleetgate_open_connections{listener="fleet"}"#)
            .await;
        (open == n).then_some(())
    })
    .await;
}

fn closed_series(reason: &str) -> String {
    format!(r#"fleetgate_connections_closed_total{{listener="fleet",reason="{reason}"}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_head_is_closed_at_the_header_deadline_while_others_are_served() {
    let (_stubs, gw, fleet) = fleet_with("header_timeout: 1s", "").await;
    let gw_yaml = std::fs::read_to_string(&gw.config_path).unwrap() + "access_log: {}\n";
    assert_eq!(gw.reload(&gw_yaml).await.status, 200);
    // One header byte at a time, each well within the deadline: only the whole head's deadline
    // can end it.
    let dripping = drip_head(fleet, b"GET /api/sessions HTTP/1.1\r\nHost: a\r\n").await;
    for _ in 0..20 {
        let r = sessions(fleet, "1").await;
        assert_eq!(r.status, 200);
    }
    let sent = dripping.await.unwrap();
    assert!(sent < DRIP_LIMIT, "the slow head was never cut off");
    wait_for("the close to be counted", DEADLINE, || async {
        (gw.sample(&closed_series("header_timeout")).await == 1.0).then_some(())
    })
    .await;
    // Logged as nginx logs it: 408, with the gateway's code and no request.
    let line = logged_error(&gw, "request.header_timeout").await;
    assert_eq!(
        (line["status"].as_u64(), line["path"].as_str()),
        (Some(408), Some(""))
    );
}

/// The first access log line with the gateway's error `code`, once it is written.
async fn logged_error(gw: &Gateway, code: &str) -> serde_json::Value {
    logged_where(gw, &format!("an access log line for {code}"), |v| {
        v["error"] == code
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_and_an_idle_kept_alive_one_are_closed() {
    let (_stubs, _gw, fleet) = fleet_with("header_timeout: 1s\nidle_timeout: 1s", "").await;
    // Nothing sent at all: closed at the header deadline.
    let mut silent = TcpStream::connect(fleet).await.unwrap();
    assert_eq!(closed_by_gateway(&mut silent).await, "");
    // One exchange, then idle: closed at the idle deadline.
    let mut idle = TcpStream::connect(fleet).await.unwrap();
    idle.write_all(b"GET /api/sessions HTTP/1.1\r\nHost: a\r\nX-Workspace-Id: 1\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_by_gateway(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:.200}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_pauses_past_the_body_timeout_gets_408() {
    let (stubs, _gw, fleet) = fleet_with("", "body_timeout: 1s").await;
    let partial = b"POST /api/messages/send HTTP/1.1\r\nHost: a\r\nX-Workspace-Id: 1\r\nContent-Length: 100\r\n\r\n0123456789";
    let (answer, closed) = raw(fleet, partial).await;
    assert!(closed, "the connection is closed after the 408");
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:.300}");
    assert!(
        answer.contains(r#""code":"request.body_timeout""#),
        "{answer:.300}"
    );
    assert_eq!(
        total_hits(&stubs),
        0,
        "a partial body is not an answered request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_at_the_write_deadline() {
    let (_stubs, gw, fleet) = fleet_with("", "write_timeout: 1s").await;
    let mut stream = TcpStream::connect(fleet).await.unwrap();
    // 32 MiB of answer, and this client reads none of it.
    stream
        .write_all(
            b"GET /api/sessions?padding=33554432 HTTP/1.1\r\nHost: a\r\nX-Workspace-Id: 1\r\n\r\n",
        )
        .await
        .unwrap();
    wait_for("the stuck write to be cut off", DEADLINE, || async {
        (gw.sample(&closed_series("write_timeout")).await == 1.0).then_some(())
    })
    .await;
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_from_one_address_leave_room_for_a_signed_webhook_from_another(
) {
    // Loopback counts as a client here (by default it is a trusted proxy, limited by the total).
    let (_stubs, gw, fleet) = fleet_with("header_timeout: 60s\ntrusted_proxies: []", "").await;
    // A signed webhook route in front of the workspace route.
    let webhook_route = "routes:\n  - name: hook\n    listener: fleet\n    path_prefix: /cleanup\n    upstream: node\n    treatment: webhook\n    webhook:\n      scheme: hex-timestamp-body\n      secrets: [edge-secret]\n";
    let yaml = std::fs::read_to_string(&gw.config_path).unwrap();
    assert_eq!(
        gw.reload(&yaml.replace("routes:\n", webhook_route))
            .await
            .status,
        200
    );
    // Defaults: 512 connections per client address, 10,000 per listener.
    settled(&gw, fleet).await;
    let mut idle = Vec::new();
    // In runs of 250, each taken in (admitted or refused) before the next: a burst of thousands
    // would overflow the accept queue, and its connections would wait on SYN-ACK retries.
    for run in 1..=20 {
        for _ in 0..250 {
            idle.push(TcpStream::connect(fleet).await.unwrap());
        }
        wait_for("a run of connections to be taken in", DEADLINE, || async {
            let open = gw
                .sample(r#"fleetgate_open_connections{listener="fleet"}"#)
                .await;
            let refused = gw.sample(&closed_series("max_connections_per_ip")).await;
            (open + refused == f64::from(run * 250)).then_some(())
        })
        .await;
    }
    assert_eq!(
        gw.sample(&closed_series("max_connections_per_ip")).await,
        4_488.0
    );
    // The last one was refused: it reads a 503 with its reason, then the end.
    let answer = closed_by_gateway(idle.last_mut().unwrap()).await;
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer:.300}");
    assert!(
        answer.contains(r#""code":"listener.too_many_connections""#),
        "{answer}"
    );
    // A signed webhook from another address is verified and served.
    use hmac::{Hmac, Mac};
    let body = br#"{"event":"session_ready","data":{}}"#;
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"edge-secret").unwrap();
    mac.update(ts.as_bytes());
    mac.update(body);
    let signature = hex(&mac.finalize().into_bytes());
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = socket.connect(fleet).await.unwrap();
    let head = format!(
        "POST /cleanup/7 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nX-Timestamp: {ts}\r\nX-HMAC-Signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    other.write_all(head.as_bytes()).await.unwrap();
    other.write_all(body).await.unwrap();
    let answer = closed_by_gateway(&mut other).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:.300}");
    // Places come back when connections close.
    idle.clear();
    until_open(&gw, 0.0).await;
    let r = sessions(fleet, "1").await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_is_held_to_the_listener_total_only() {
    let listener = "max_connections_per_ip: 2\nmax_connections: 6\ntrusted_proxies: [127.0.0.1]";
    let (_stubs, gw, fleet) = fleet_with(listener, "").await;
    settled(&gw, fleet).await;
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(TcpStream::connect(fleet).await.unwrap());
    }
    until_open(&gw, 6.0).await;
    // The seventh is over the listener's total.
    let before = gw.sample(&closed_series("max_connections")).await;
    let mut seventh = TcpStream::connect(fleet).await.unwrap();
    let answer = closed_by_gateway(&mut seventh).await;
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer:.300}");
    assert_eq!(
        gw.sample(&closed_series("max_connections")).await,
        before + 1.0
    );
    assert_eq!(
        gw.sample(&closed_series("max_connections_per_ip")).await,
        0.0
    );
}

/// The access log line (JSON, on stdout, kept in the gateway's log file) of the request whose
/// path is `path`, once it is written.
async fn logged(gw: &Gateway, path: &str) -> serde_json::Value {
    logged_where(gw, &format!("the access log line of {path}"), |v| {
        v["path"] == path
    })
    .await
}

/// The first access log line that `matches`, once it is written.
async fn logged_where(
    gw: &Gateway,
    what: &str,
    matches: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_for(what, DEADLINE, || async {
        gw.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| matches(v))
    })
    .await
}

/// The `X-Forwarded-For` values the instance got, from the stand-in's echo.
fn forwarded_for(answer: &str) -> serde_json::Value {
    let body = &answer[answer.find("\r\n\r\n").expect("a head") + 4..];
    let echo: serde_json::Value = serde_json::from_str(body).expect("JSON echo");
    echo["headers"]["x-forwarded-for"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_protocol_balancer_the_client_is_the_one_its_header_names() {
    let listener = "proxy_protocol: true\nmax_connections_per_ip: 1";
    let (_stubs, gw, fleet) = fleet_with(listener, "").await;
    let gw_yaml = std::fs::read_to_string(&gw.config_path).unwrap() + "access_log: {}\n";
    assert_eq!(gw.reload(&gw_yaml).await.status, 200);
    let request = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: a\r\nX-Workspace-Id: 1\r\nX-Forwarded-For: 10.9.9.9\r\nConnection: close\r\n\r\n")
    };
    // v1: the client's own X-Forwarded-For is not believed (it is no trusted proxy).
    let v1 = format!(
        "PROXY TCP4 203.0.113.7 127.0.0.1 51000 3000\r\n{}",
        request("/api/sessions/a/status")
    );
    let (answer, _) = raw(fleet, v1.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:.300}");
    assert_eq!(forwarded_for(&answer), serde_json::json!(["203.0.113.7"]));
    assert_eq!(
        logged(&gw, "/api/sessions/a/status").await["client"],
        "203.0.113.7"
    );
    // v2, binary: 198.51.100.9:8080.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend_from_slice(&[
        0x21, 0x11, 0, 12, 198, 51, 100, 9, 127, 0, 0, 1, 0x1f, 0x90, 0x0b, 0xb8,
    ]);
    v2.extend_from_slice(request("/api/sessions/b/status").as_bytes());
    let (answer, _) = raw(fleet, &v2).await;
    assert_eq!(forwarded_for(&answer), serde_json::json!(["198.51.100.9"]));
    assert_eq!(
        logged(&gw, "/api/sessions/b/status").await["client"],
        "198.51.100.9"
    );
    // The per-address limit counts the named client: a second connection for 203.0.113.7 is over.
    let mut first = TcpStream::connect(fleet).await.unwrap();
    first
        .write_all(b"PROXY TCP4 203.0.113.7 127.0.0.1 51001 3000\r\n")
        .await
        .unwrap();
    until_open(&gw, 1.0).await;
    let (answer, _) = raw(fleet, v1.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer:.300}");
    let line = logged_error(&gw, "listener.too_many_connections").await;
    assert_eq!(
        (line["status"].as_u64(), line["client"].as_str()),
        (Some(503), Some("203.0.113.7"))
    );
    // No header, or a broken one: closed without an answer (and counted; the start-up probes
    // that connected without a word are already).
    let before = gw.sample(&closed_series("proxy_protocol")).await;
    for bad in [
        request("/x").into_bytes(),
        b"PROXY TCP4 nonsense\r\n\r\n".to_vec(),
    ] {
        let (answer, closed) = raw(fleet, &bad).await;
        assert_eq!((answer.as_str(), closed), ("", true));
    }
    assert_eq!(
        gw.sample(&closed_series("proxy_protocol")).await,
        before + 2.0
    );
    assert_eq!(
        logged_error(&gw, "request.bad_proxy_protocol").await["status"],
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxys_forwarded_for_is_believed_and_anyone_elses_replaced() {
    // Loopback is trusted by default: 127.0.0.1 speaks for the client it names.
    let (_stubs, gw, fleet) = fleet_with("", "").await;
    let gw_yaml = std::fs::read_to_string(&gw.config_path).unwrap() + "access_log: {}\n";
    assert_eq!(gw.reload(&gw_yaml).await.status, 200);
    let request = "GET /api/sessions/c/status HTTP/1.1\r\nHost: a\r\nX-Workspace-Id: 1\r\nX-Forwarded-For: 203.0.113.50, 127.0.0.5\r\nConnection: close\r\n\r\n";
    let (answer, _) = raw(fleet, request.as_bytes()).await;
    assert_eq!(
        forwarded_for(&answer),
        serde_json::json!(["203.0.113.50, 127.0.0.5, 127.0.0.1"])
    );
    // The nearest address that is not a trusted proxy.
    assert_eq!(
        logged(&gw, "/api/sessions/c/status").await["client"],
        "203.0.113.50"
    );

    // Trusting nobody, the same header is replaced by the peer.
    let (_stubs, gw, fleet) = fleet_with("trusted_proxies: []", "").await;
    let gw_yaml = std::fs::read_to_string(&gw.config_path).unwrap() + "access_log: {}\n";
    assert_eq!(gw.reload(&gw_yaml).await.status, 200);
    let (answer, _) = raw(fleet, request.as_bytes()).await;
    assert_eq!(forwarded_for(&answer), serde_json::json!(["127.0.0.1"]));
    assert_eq!(
        logged(&gw, "/api/sessions/c/status").await["client"],
        "127.0.0.1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noisy_workspace_is_held_to_its_budget_and_the_others_are_untouched() {
    let stubs = nodes(4).await;
    let (fleet, admin) = (loopback(), loopback());
    let routing = "assign: modulo\nworkspace_limits: { rate: 20, burst: 20, concurrency: 4 }";
    let yaml = fleet_yaml(fleet, admin, &stubs.iter().collect::<Vec<_>>(), routing, "");
    let _gw = Gateway::start(&yaml, admin, &[fleet]).await;
    // Workspace 1 asks 400 times at once (8 at a time): 20 times its rate, twice its concurrency.
    let mut noisy = Vec::new();
    for _ in 0..8 {
        noisy.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..50 {
                answers.push(sessions(fleet, "1").await);
            }
            answers
        }));
    }
    // Meanwhile three other workspaces, at their own pace.
    let mut quiet = Vec::new();
    for ws in ["2", "3", "4"] {
        quiet.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..10 {
                statuses.push(sessions(fleet, ws).await.status);
            }
            statuses
        }));
    }
    for task in quiet {
        assert!(
            task.await.unwrap().iter().all(|s| *s == 200),
            "others untouched"
        );
    }
    let mut answers = Vec::new();
    for task in noisy {
        answers.extend(task.await.unwrap());
    }
    let limited: Vec<&Resp> = answers.iter().filter(|r| r.status == 429).collect();
    assert!(
        !limited.is_empty() && limited.len() < answers.len(),
        "some over budget, some served"
    );
    assert_eq!(limited[0].error_code(), "routing.workspace_rate_limited");
    assert!(limited[0].headers.contains_key("retry-after"));
    assert!(answers.iter().all(|r| r.status == 200 || r.status == 429));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_and_target_limits_are_listener_settings() {
    let (_stubs, _gw, fleet) = fleet_with("max_head_size: 32KiB\nmax_uri_length: 1KiB", "").await;
    let get = |target: &str, extra: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: a\r\nX-Workspace-Id: 1\r\nConnection: close\r\n{extra}\r\n")
    };
    // 20 KiB of header: over the default, within this listener's 32 KiB.
    let big = format!("X-Big: {}\r\n", "a".repeat(20 * 1024));
    let (answer, _) = raw(fleet, get("/api/sessions", &big).as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:.200}");
    // A 2 KiB target: under the default, over this listener's 1 KiB.
    let target = format!("/api/sessions?q={}", "a".repeat(2048));
    let (answer, _) = raw(fleet, get(&target, "").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 414 "), "{answer:.200}");
}
