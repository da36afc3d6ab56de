//! The durable webhook spool end to end: the real binary, senders that behave like the Node
//! service (CONTRACTS.md §2: retry a 429 after 1, 2, 4 s, a connection error after 2, 4, 8 s,
//! drop on any 5xx), and a Laravel receiver that checks the signature as Laravel does (hex
//! HMAC-SHA256 over timestamp ++ body, ±300 s) and deduplicates on `X-Fleetgate-Delivery-Id`.

mod common;
use common::*;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::Value;
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECRET: &str = "spool-test-secret";
const PATH: &str = "/api/whatsapp/webhooks/webjs";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn signature(timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

/// What the Laravel receiver saw, and how it answers.
#[derive(Default)]
struct Received {
    /// 0: every request 500 (a failing Laravel: the sender would drop it); 1: bodies with `"poison"` 422, others as
    /// below; 2: a valid signature 200 (the default).
    mode: u8,
    /// Accepted deliveries' bodies, in the order accepted (duplicates left out).
    accepted: Vec<Value>,
    ids: HashSet<String>,
    duplicates: usize,
    bad_signatures: usize,
}

/// A Laravel stand-in on `addr`: 200 for a valid signature (a delivery id seen before is
/// answered 200 and not accepted again), 401 otherwise.
async fn laravel(addr: SocketAddr, received: Arc<Mutex<Received>>) -> tokio::task::JoinHandle<()> {
    let listener = wait_for("Laravel's port", DEADLINE, || async {
        tokio::net::TcpListener::bind(addr).await.ok()
    })
    .await;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let received = received.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let received = received.clone();
                    async move {
                        let status = accept(req, &received).await;
                        let body = Full::new(Bytes::from_static(b"{}"));
                        let mut resp = Response::new(body);
                        *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, hyper::Error>(resp)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    })
}

async fn accept(req: Request<Incoming>, received: &Mutex<Received>) -> u16 {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (ts, sig, id) = (
        header("x-timestamp"),
        header("x-hmac-signature"),
        header("x-fleetgate-delivery-id"),
    );
    if req.uri().path() != PATH {
        return 404;
    }
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let fresh = ts.parse::<i64>().is_ok_and(|t| (now() - t).abs() <= 300);
    let mut r = received.lock().unwrap();
    match r.mode {
        0 => return 500,
        1 if body.windows(8).any(|w| w == b"\"poison\"") => return 422,
        _ => {}
    }
    if !fresh || sig != signature(&ts, &body) {
        r.bad_signatures += 1;
        return 401;
    }
    if !id.is_empty() && !r.ids.insert(id) {
        r.duplicates += 1;
        return 200;
    }
    r.accepted.push(serde_json::from_slice(&body).unwrap());
    200
}

/// A sender as the Node service is: signs, posts, retries a 429 after 1, 2, 4 s and a connection
/// error after 2, 4, 8 s (signing again each time), gives up on a 5xx. Returns the final status
/// (0: gave up without an answer).
async fn node_send(edge: SocketAddr, body: &[u8]) -> u16 {
    let mut waits_429 = [1, 2, 4].into_iter();
    let mut waits_error = [2, 4, 8].into_iter();
    loop {
        let ts = now().to_string();
        let sig = signature(&ts, body);
        let headers = [
            ("content-type", "application/json"),
            ("x-timestamp", ts.as_str()),
            ("x-hmac-signature", sig.as_str()),
        ];
        let wait = match try_send(edge, "POST", PATH, &headers, body.to_vec()).await {
            Ok(resp) if resp.status == 429 => waits_429.next(),
            Ok(resp) => return resp.status,
            Err(_) => waits_error.next(),
        };
        match wait {
            // The Node service's own back-off (a sender's timing, not a synchronisation).
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => return 0,
        }
    }
}

/// The gateway's YAML: an edge listener with the Node service's webhook route to `laravel`,
/// spooling to `spool_dir`.
fn yaml(edge: SocketAddr, admin: SocketAddr, laravel: SocketAddr, spool: &str) -> String {
    format!(
        r#"threads: 2
admin: {{ listen: {admin} }}
listeners:
  edge: {{ listen: {edge} }}
upstreams:
  laravel:
    instances: [{{ name: laravel, addr: {laravel} }}]
    health: {{ path: /up, expect: any, interval: 300ms, timeout: 250ms }}
routes:
  - name: webjs-webhooks
    listener: edge
    path_prefix: {PATH}
    upstream: laravel
    treatment: webhook
    webhook: {{ scheme: hex-timestamp-body, secrets: ["{SECRET}"] }}
spool: {{ {spool} }}
access_log: {{}}
"#
    )
}

/// `senders` senders, each sending `per_sender` deliveries of its own session in order.
async fn send_all(edge: SocketAddr, senders: usize, per_sender: usize) -> Vec<u16> {
    let mut tasks = Vec::new();
    for s in 0..senders {
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for seq in 0..per_sender {
                let body = serde_json::json!({
                    "event": "message_received",
                    "session": format!("webjs_{s}"),
                    "seq": seq,
                    "data": {"text": "x".repeat(200)},
                });
                statuses.push(node_send(edge, body.to_string().as_bytes()).await);
            }
            statuses
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// Every session's deliveries were accepted once each, in the order they were sent.
fn assert_each_once_in_order(received: &Received, senders: usize, per_sender: usize) {
    assert_eq!(
        received.bad_signatures, 0,
        "every redelivery is signed for now"
    );
    assert_eq!(received.accepted.len(), senders * per_sender);
    let mut next: HashMap<String, u64> = HashMap::new();
    for body in &received.accepted {
        let session = body["session"].as_str().unwrap().to_string();
        let seq = body["seq"].as_u64().unwrap();
        let expected = next.entry(session.clone()).or_insert(0);
        assert_eq!(seq, *expected, "{session}: out of order");
        *expected += 1;
    }
}

/// A gateway's setup in front of a stopped Laravel, its spool in a directory of its own.
struct Setup {
    edge: SocketAddr,
    admin: SocketAddr,
    laravel: SocketAddr,
    spool: tempfile::TempDir,
    yaml: String,
}

fn setup() -> Setup {
    setup_with("")
}

/// [`setup`] with more `spool` keys (`, key: value` each).
fn setup_with(spool_keys: &str) -> Setup {
    let (edge, admin, laravel) = (loopback(), loopback(), loopback());
    let spool = tempfile::tempdir().unwrap();
    let keys = format!(r#"dir: "{}"{spool_keys}"#, spool.path().display());
    let yaml = yaml(edge, admin, laravel, &keys);
    Setup {
        edge,
        admin,
        laravel,
        spool,
        yaml,
    }
}

/// Sends `senders` × `per_sender` webhooks with Laravel away: each must be spooled (202).
async fn spooled(s: &Setup, senders: usize, per_sender: usize) {
    let statuses = send_all(s.edge, senders, per_sender).await;
    assert!(statuses.iter().all(|&s| s == 202), "{statuses:?}");
}

/// Starts Laravel and waits until it accepted `n` deliveries.
async fn laravel_back(s: &Setup, n: usize) -> Arc<Mutex<Received>> {
    let received = Arc::new(Mutex::new(Received {
        mode: 2,
        ..Received::default()
    }));
    // The receiver runs as long as the test's runtime.
    drop(laravel(s.laravel, received.clone()).await);
    let arrived = || async { (received.lock().unwrap().accepted.len() == n).then_some(()) };
    wait_for(
        "the spooled webhooks to reach Laravel",
        Duration::from_secs(60),
        arrived,
    )
    .await;
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn laravel_away_while_1000_webhooks_arrive_gets_each_once_in_order_when_back() {
    let s = setup();
    let gw = Gateway::start(&s.yaml, s.admin, &[s.edge]).await;
    // Laravel is stopped: every verified webhook is spooled and answered 202 (a 2xx).
    spooled(&s, 4, 250).await;
    // Laravel comes back: everything arrives, once, in order, signed for now.
    let received = laravel_back(&s, 1000).await;
    assert_each_once_in_order(&received.lock().unwrap(), 4, 250);
    // With Laravel up, a new webhook is passed through (Laravel's own answer).
    let after = send_all(s.edge, 1, 1).await;
    assert_eq!(after, [200]);
    assert!(!gw.log().contains("panicked"), "{}", gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_gateway_delivers_its_spool_after_a_restart_and_skips_a_torn_record() {
    let s = setup();
    let gw = Gateway::start(&s.yaml, s.admin, &[s.edge]).await;
    spooled(&s, 4, 125).await;
    gw.signal("KILL");
    drop(gw);
    // A crash mid-write leaves half a frame at the end of the last segment.
    let queue = s.spool.path().join("webjs-webhooks");
    let mut segments: Vec<_> = std::fs::read_dir(&queue)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    let last = segments.last().expect("a segment");
    let mut torn = std::fs::OpenOptions::new().append(true).open(last).unwrap();
    std::io::Write::write_all(&mut torn, b"FGSP\x10\x00\x00\x00\xde\xad").unwrap();
    drop(torn);

    let gw = Gateway::start(&s.yaml, s.admin, &[s.edge]).await;
    let received = laravel_back(&s, 500).await;
    assert_each_once_in_order(&received.lock().unwrap(), 4, 125);
    assert!(gw.log().contains("torn record"), "{}", gw.log());
}

/// Runs `fleetgate spool ACTION -c <the gateway's config>`: exit success and printed JSON.
async fn spool_cli(gw: &Gateway, action: &str) -> (bool, Value) {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetgate"))
        .args(["spool", action, "-c"])
        .arg(&gw.config_path)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, run).await.unwrap().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), json)
}

/// Laravel answering 500 gets nothing passed back (the sender drops any 5xx): the webhooks are
/// spooled. A webhook Laravel then refuses with 422 goes to the dead letters with its reason
/// while the rest flow; the operator sees it (`/admin/spool`, `fleetgate spool ls`, metrics) and
/// replays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_webhook_goes_to_the_dead_letters_and_the_operator_replays_it() {
    let s = setup();
    let received = Arc::new(Mutex::new(Received::default()));
    drop(laravel(s.laravel, received.clone()).await);
    let gw = Gateway::start(&s.yaml, s.admin, &[s.edge]).await;
    let mut answers = Vec::new();
    for (seq, kind) in ["ok", "poison", "ok"].iter().enumerate() {
        let body = serde_json::json!({"event": "message_received", "session": "webjs_0", "seq": seq, "kind": kind});
        answers.push(node_send(s.edge, body.to_string().as_bytes()).await);
    }
    assert_eq!(
        answers,
        [202, 202, 202],
        "Laravel's 500 is never passed to the sender"
    );
    // The access log marks them.
    wait_for(
        "the queued deliveries in the access log",
        DEADLINE,
        || async {
            let queued = gw
                .log()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["webhook"] == "queued" && v["status"] == 202)
                .count();
            (queued == 3).then_some(())
        },
    )
    .await;

    received.lock().unwrap().mode = 1;
    wait_for(
        "the good ones to be delivered and the poison buried",
        DEADLINE,
        || async {
            let spool: Value =
                serde_json::from_slice(&admin_get(&gw, "/admin/spool").await).unwrap();
            let route = &spool["routes"][0];
            (route["dead"] == 1 && route["depth"] == 0).then_some(())
        },
    )
    .await;
    let (ok, listed) = spool_cli(&gw, "ls").await;
    assert!(ok);
    let route = &listed["routes"][0];
    assert_eq!(route["route"], "webjs-webhooks");
    assert_eq!(route["dead_letters"][0]["reason"], "Laravel answered 422");
    let seqs: Vec<u64> = received
        .lock()
        .unwrap()
        .accepted
        .iter()
        .map(|b| b["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [0, 2]);
    for (series, value) in [
        ("fleetgate_spool_enqueued_total", 3.0),
        ("fleetgate_spool_delivered_total", 2.0),
        ("fleetgate_spool_dead_total", 1.0),
        ("fleetgate_spool_dead", 1.0),
        ("fleetgate_spool_depth", 0.0),
    ] {
        let series = format!(r#"{series}{{route="webjs-webhooks"}}"#);
        assert_eq!(gw.sample(&series).await, value, "{series}");
    }

    // Fixed on Laravel's side: the operator replays the dead letter.
    received.lock().unwrap().mode = 2;
    let (ok, replayed) = spool_cli(&gw, "replay").await;
    assert!(ok);
    assert_eq!(replayed["replayed"], 1);
    wait_for("the replayed webhook to be delivered", DEADLINE, || async {
        (received.lock().unwrap().accepted.len() == 3).then_some(())
    })
    .await;
    assert_eq!(received.lock().unwrap().accepted[2]["seq"], 1);
    let (_, listed) = spool_cli(&gw, "ls").await;
    assert_eq!(listed["routes"][0]["dead"], 0);
}

/// `GET path` on the gateway's admin listener: the body.
async fn admin_get(gw: &Gateway, path: &str) -> Vec<u8> {
    send(gw.admin, "GET", path, &[], vec![]).await.body.to_vec()
}

/// A full spool answers 429 with `Retry-After` (the sender retries), never a 2xx for a webhook
/// it did not keep; what it kept is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_spool_answers_429_and_never_a_2xx_for_what_it_did_not_keep() {
    let s = setup_with(", max_bytes: 1MiB");
    let _gw = Gateway::start(&s.yaml, s.admin, &[s.edge]).await;
    let mut answers = Vec::new();
    for seq in 0..3 {
        let body =
            serde_json::json!({"session": "webjs_0", "seq": seq, "media": "m".repeat(400_000)});
        let body = body.to_string().into_bytes();
        let ts = now().to_string();
        let sig = signature(&ts, &body);
        let headers = [
            ("content-type", "application/json"),
            ("x-timestamp", ts.as_str()),
            ("x-hmac-signature", sig.as_str()),
        ];
        answers.push(send(s.edge, "POST", PATH, &headers, body).await);
    }
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [202, 202, 429]);
    assert_eq!(answers[2].error_code(), "webhook.spool_full");
    assert_eq!(answers[2].headers["retry-after"], "5");
    let received = laravel_back(&s, 2).await;
    assert_each_once_in_order(&received.lock().unwrap(), 1, 2);
}

/// The dead letters of a gateway whose Laravel answers every delivery 500, with `spool_keys`:
/// waits until one webhook is buried and returns its reason.
async fn buried_reason(spool_keys: &str) -> String {
    let s = setup_with(spool_keys);
    let received = Arc::new(Mutex::new(Received::default()));
    drop(laravel(s.laravel, received.clone()).await);
    let gw = Gateway::start(&s.yaml, s.admin, &[s.edge]).await;
    let body = serde_json::json!({"event": "message_received", "session": "webjs_0", "seq": 0});
    assert_eq!(node_send(s.edge, body.to_string().as_bytes()).await, 202);
    wait_for("the webhook to be buried", DEADLINE, || async {
        let spool: Value = serde_json::from_slice(&admin_get(&gw, "/admin/spool").await).unwrap();
        let route = &spool["routes"][0];
        (route["dead"] == 1 && route["depth"] == 0).then(|| {
            route["dead_letters"][0]["reason"]
                .as_str()
                .unwrap()
                .to_string()
        })
    })
    .await
}

/// A webhook Laravel never takes goes to the dead letters after `spool.max_attempts`
/// redeliveries, with the last failure as its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_out_of_attempts_goes_to_the_dead_letters() {
    let reason = buried_reason(", max_attempts: 3").await;
    assert_eq!(reason, "3 attempts, the last: Laravel answered 500");
}

/// A webhook still undelivered after `spool.max_age` goes to the dead letters.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_older_than_max_age_goes_to_the_dead_letters() {
    let reason = buried_reason(", max_age: 1s").await;
    assert_eq!(reason, "undelivered after spool.max_age (1 s)");
}
