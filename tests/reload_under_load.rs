//! 100 reloads under continuous load break nothing in flight: HTTP through the fleet listener,
//! signed webhooks, 1,000 hub subscribers on a steady event stream and open proxied WebSockets
//! see 0 failures, 0 drops and 0 missed events, while the reloads alternately add/remove an
//! instance, move a pin and rotate the webhook secret. New rules apply on the reload's answer;
//! learned sessions and health state survive.

mod common;
use common::pusher::*;
use common::*;
use fleetgate::signing::{sign, Scheme, Secret};
use futures_util::StreamExt;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const SUBSCRIBERS: usize = 1000;
const RELOADS: usize = 100;
const TUNNELS: u64 = 5;
const HOOK_PATH: &str = "/api/whatsapp/webhooks/webjs";
/// The secret senders sign with; the reloads rotate between `[S1]` and `[S2, S1]`.
const S1: &str = "sender-secret-1";
const S2: &str = "sender-secret-2";
/// A pinned workspace whose pin moves between n1 and n2.
const PINNED: &str = "100";
/// A session learned before the reloads (on n2: workspace 1, modulo 2 or 3).
const SESSION: &str = "webjs_1_1700000000_keep1234";

struct Addrs {
    admin: SocketAddr,
    fleet: SocketAddr,
    edge: SocketAddr,
    hub: SocketAddr,
}

/// One configuration of the reload cycle.
#[derive(Clone, Copy)]
struct Variant {
    with_n3: bool,
    pin: &'static str,
    rotated: bool,
}

fn yaml(a: &Addrs, nodes: &[Upstream], laravel: SocketAddr, v: Variant) -> String {
    let mut instances: Vec<String> = nodes
        .iter()
        .map(|n| format!("{{ name: {}, addr: {} }}", n.name, n.addr))
        .collect();
    if !v.with_n3 {
        instances.pop();
    }
    let secrets = if v.rotated {
        format!("[\"{S2}\", \"{S1}\"]")
    } else {
        format!("[\"{S1}\"]")
    };
    format!(
        r#"threads: 2
admin: {{ listen: {admin} }}
listeners:
  fleet: {{ listen: {fleet} }}
  edge: {{ listen: {edge} }}
  hub: {{ listen: {hub} }}
upstreams:
  node:
    instances: [{instances}]
    health: {{ interval: 300ms, timeout: 250ms }}
    routing: {{ assign: modulo, pins: {{ {PINNED}: {pin} }} }}
  laravel: {{ instances: [{{ name: laravel, addr: {laravel} }}] }}
routes:
  - {{ name: node-api, listener: fleet, upstream: node, treatment: workspace }}
  - name: hooks
    listener: edge
    path_prefix: {HOOK_PATH}
    upstream: laravel
    treatment: webhook
    webhook: {{ scheme: hex-timestamp-body, secrets: {secrets} }}
hub:
  listener: hub
  apps: [{{ id: {APP_ID}, key: {KEY}, secret: {SECRET}, max_connections: 5000 }}]
"#,
        admin = a.admin,
        fleet = a.fleet,
        edge = a.edge,
        hub = a.hub,
        instances = instances.join(", "),
        pin = v.pin,
    )
}

/// Counts failures of a load loop and keeps the first one's description.
#[derive(Default)]
struct Tally {
    done: AtomicUsize,
    failed: AtomicUsize,
    first: std::sync::Mutex<Option<String>>,
}

impl Tally {
    fn record(&self, ok: bool, what: impl FnOnce() -> String) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
            self.first.lock().unwrap().get_or_insert_with(what);
        }
    }

    fn assert_clean(&self, name: &str) {
        let done = self.done.load(Ordering::Relaxed);
        assert!(done > 0, "{name}: nothing was sent");
        eprintln!("{name}: {done} during the reloads");
        assert_eq!(
            self.failed.load(Ordering::Relaxed),
            0,
            "{name}: failures out of {done}; first: {:?}",
            self.first.lock().unwrap()
        );
    }
}

async fn signed_webhook(edge: SocketAddr, n: usize) -> Resp {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let body = format!(r#"{{"event":"message_received","data":{{"n":{n}}}}}"#);
    let key = Secret::from_config(Scheme::HexTimestampBody, S1).unwrap();
    let signed = sign(Scheme::HexTimestampBody, &key, body.as_bytes(), now, None);
    let mut headers: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    headers.push(("content-type", "application/json"));
    send(edge, "POST", HOOK_PATH, &headers, body.into_bytes()).await
}

/// A subscriber on `stream` that counts `tick` events until `end`.
async fn subscriber(hub: SocketAddr) -> tokio::task::JoinHandle<usize> {
    let (mut ws, _) = established(hub).await;
    subscribe(&mut ws, "stream", None, None).await;
    tokio::spawn(async move {
        let mut ticks = 0;
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(text) = msg else { continue };
            let event: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            match event["event"].as_str() {
                Some("tick") => ticks += 1,
                Some("end") => return ticks,
                _ => {}
            }
        }
        usize::MAX // the socket ended before `end`: a dropped subscriber
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_reloads_under_load_break_nothing_in_flight() {
    let nodes = vec![
        Upstream::node("n1").await,
        Upstream::node("n2").await,
        Upstream::node("n3").await,
    ];
    let laravel = Upstream::laravel("laravel").await;
    let a = Addrs {
        admin: loopback(),
        fleet: loopback(),
        edge: loopback(),
        hub: loopback(),
    };
    let mut variant = Variant {
        with_n3: true,
        pin: "n1",
        rotated: false,
    };
    let gw = Gateway::start(
        &yaml(&a, &nodes, laravel.addr, variant),
        a.admin,
        &[a.fleet, a.edge, a.hub],
    )
    .await;

    // State that must survive: a learned session, health, open tunnels, subscribers.
    let created = send(
        a.fleet,
        "POST",
        "/api/sessions",
        &[
            ("x-workspace-id", "1"),
            ("content-type", "application/json"),
        ],
        json!({ "session_id": SESSION, "workspace_id": 1 })
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(created.instance(), "n2");
    let healthy_since =
        |upstreams: serde_json::Value| upstreams["groups"][0]["instances"][0].clone();
    let n1_before = wait_for("n1 to be checked healthy", DEADLINE, || async {
        let n1 = healthy_since(gw.upstreams().await);
        (n1["healthy"] == true).then_some(n1)
    })
    .await;
    let mut tunnels = Vec::new();
    for ws in 0..TUNNELS {
        tunnels.push(open_tunnel(a.fleet, ws).await);
    }
    let mut subscribers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        subscribers.push(subscriber(a.hub).await);
    }

    // Continuous load until the reloads are done.
    let stop = Arc::new(AtomicBool::new(false));
    let (http, hooks, events) = (
        Arc::new(Tally::default()),
        Arc::new(Tally::default()),
        Arc::new(Tally::default()),
    );
    let mut load = Vec::new();
    for lane in 0..2u64 {
        let (stop, http) = (stop.clone(), http.clone());
        load.push(tokio::spawn(async move {
            let mut ws = lane;
            while !stop.load(Ordering::Relaxed) {
                ws = (ws + 7) % 50;
                let header = ws.to_string();
                let r = try_send(
                    a.fleet,
                    "GET",
                    "/api/sessions",
                    &[("x-workspace-id", &header)],
                    vec![],
                )
                .await;
                http.record(r.as_ref().is_ok_and(|r| r.status == 200), || {
                    format!("{r:?}")
                });
            }
        }));
    }
    {
        let (stop, hooks) = (stop.clone(), hooks.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let r = signed_webhook(a.edge, n).await;
                hooks.record(r.status == 200, || format!("{} {:?}", r.status, r.body));
            }
        }));
    }
    {
        let (stop, events) = (stop.clone(), events.clone());
        load.push(tokio::spawn(async move {
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let r = publish(
                    a.hub,
                    json!({"name": "tick", "channel": "stream", "data": seq.to_string()}),
                )
                .await;
                events.record(r.status == 200, || format!("{} {:?}", r.status, r.body));
            }
        }));
    }

    // The reloads: add/remove n3, move the pin, rotate the secret. Each applies on its answer.
    for round in 0..RELOADS {
        match round % 3 {
            0 => variant.with_n3 = !variant.with_n3,
            1 => variant.pin = if variant.pin == "n1" { "n2" } else { "n1" },
            _ => variant.rotated = !variant.rotated,
        }
        let r = gw.reload(&yaml(&a, &nodes, laravel.addr, variant)).await;
        assert_eq!(r.status, 200, "reload {round}: {:?}", r.body);
        let pinned = send(
            a.fleet,
            "GET",
            "/api/sessions",
            &[("x-workspace-id", PINNED)],
            vec![],
        )
        .await;
        assert_eq!(
            pinned.instance(),
            variant.pin,
            "reload {round}: the new pin applies at once"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    http.assert_clean("HTTP through the fleet listener");
    hooks.assert_clean("signed webhooks");
    events.assert_clean("hub publishes");

    // Every subscriber got every event, none was dropped.
    let published = events.done.load(Ordering::Relaxed);
    assert_eq!(
        publish(
            a.hub,
            json!({"name": "end", "channel": "stream", "data": "{}"})
        )
        .await
        .status,
        200
    );
    for (i, sub) in subscribers.into_iter().enumerate() {
        let got = tokio::time::timeout(DEADLINE, sub)
            .await
            .expect("subscriber timed out")
            .unwrap();
        assert_eq!(
            got, published,
            "subscriber {i} (usize::MAX: its socket ended)"
        );
    }
    // Every tunnel is still open and echoing.
    for (i, tunnel) in tunnels.iter_mut().enumerate() {
        tunnel.write_all(b"still-here").await.unwrap();
        let mut echo = [0u8; 10];
        let read = tokio::time::timeout(Duration::from_secs(5), tunnel.read_exact(&mut echo)).await;
        assert!(
            matches!(read, Ok(Ok(_))) && &echo == b"still-here",
            "tunnel {i} dropped: {read:?}"
        );
    }
    // Learned sessions and health state survived 100 snapshots.
    let path = format!("/api/sessions/{SESSION}/status");
    assert_eq!(
        send(a.fleet, "GET", &path, &[], vec![]).await.instance(),
        "n2"
    );
    let n1_after = healthy_since(gw.upstreams().await);
    assert_eq!(n1_after["healthy"], true);
    assert_eq!(
        n1_after["since_unix"], n1_before["since_unix"],
        "health state kept"
    );
}
