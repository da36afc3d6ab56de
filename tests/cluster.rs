//! Several real fleetgate processes sharing the hub and the learned session table through the
//! real Redis (127.0.0.1:6379, each test under its own key prefix), and through a Redis of the
//! test's own when it has to restart it.

mod common;
use common::pusher::*;
use common::receiver::{names, Receiver};
use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const REDIS: &str = "redis://127.0.0.1:6379";

/// A key prefix no other test (or earlier run) uses; its keys are deleted from the shared Redis
/// when the test ends.
struct Prefix(String);

impl Prefix {
    fn new() -> Self {
        Self(format!("fgtest-{}-{}", std::process::id(), free_port()))
    }
}

impl std::ops::Deref for Prefix {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let Ok(mut conn) = redis::Client::open(REDIS).and_then(|c| c.get_connection()) else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.0))
            .query(&mut conn)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
        }
    }
}

fn prefix() -> Prefix {
    Prefix::new()
}

/// A node with a hub listener in the cluster at `redis` under `prefix`.
async fn hub_node(redis: &str, prefix: &str) -> (Gateway, SocketAddr) {
    hub_node_with(redis, prefix, "").await
}

/// [`hub_node`] whose app has `app_extra` (more keys of the app, each line indented six spaces).
async fn hub_node_with(redis: &str, prefix: &str, app_extra: &str) -> (Gateway, SocketAddr) {
    hub_node_in(redis, prefix, app_extra, &[]).await
}

/// [`hub_node_with`], the process given `env`.
async fn hub_node_in(
    redis: &str,
    prefix: &str,
    app_extra: &str,
    env: &[(&str, &str)],
) -> (Gateway, SocketAddr) {
    let (addr, admin) = (loopback(), loopback());
    let apps = format!("    - id: {APP_ID}\n      key: {KEY}\n      secret: {SECRET}\n{app_extra}");
    let yaml = hub_yaml(addr, admin, &apps)
        + &format!("cluster: {{ redis: \"{redis}\", prefix: {prefix} }}\n");
    let gw = Gateway::start_env(&yaml, admin, &[addr], env).await;
    // A node whose link is not up yet answers from its own view (as when alone): the tests are
    // about the cluster, so they start once it is.
    wait_for("the node's cluster link", DEADLINE, || async {
        (gw.sample("fleetgate_cluster_link_up").await == 1.0).then_some(())
    })
    .await;
    (gw, addr)
}

/// Reads frames until `count` events named `name`; returns their `data`, failing on an
/// unexpected extra one before `end`.
async fn collect(ws: &mut Ws, name: &str, count: usize) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let frame = next(ws).await;
        match frame["event"].as_str() {
            Some(n) if n == name => seen.push(frame["data"].as_str().unwrap().to_string()),
            Some("end") => return seen,
            _ => {}
        }
        assert!(seen.len() <= count, "more than {count} events: {seen:?}");
    }
}

fn socket_node(socket: &str) -> String {
    socket.split_once('.').unwrap().0.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_on_any_node_reach_every_subscriber_once_in_order() {
    let prefix = prefix();
    let (a, a_addr) = hub_node(REDIS, &prefix).await;
    let (b, b_addr) = hub_node(REDIS, &prefix).await;
    let (c, _c_addr) = hub_node(REDIS, &prefix).await;
    let (mut on_a, socket_a) = established(a_addr).await;
    let (mut on_b, socket_b) = established(b_addr).await;
    assert_ne!(
        socket_node(&socket_a),
        socket_node(&socket_b),
        "node ids are unique"
    );
    for ws in [&mut on_a, &mut on_b] {
        let ok = subscribe(ws, "feed", None, None).await;
        assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    }

    const EVENTS: usize = 40;
    for i in 0..EVENTS {
        let via = if i % 2 == 0 { a_addr } else { b_addr };
        let r = publish(
            via,
            json!({"name": "e", "channel": "feed", "data": i.to_string()}),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        publish(
            a_addr,
            json!({"name": "end", "channel": "feed", "data": ""})
        )
        .await
        .status,
        200
    );
    let expected: Vec<String> = (0..EVENTS).map(|i| i.to_string()).collect();
    assert_eq!(
        collect(&mut on_a, "e", EVENTS).await,
        expected,
        "node A, in publish order"
    );
    assert_eq!(
        collect(&mut on_b, "e", EVENTS).await,
        expected,
        "node B, in publish order"
    );

    // `socket_id` exclusion works across nodes: A's socket is left out, B's is not.
    let body = json!({"name": "x", "channel": "feed", "data": "1", "socket_id": socket_a});
    assert_eq!(publish(b_addr, body).await.status, 200);
    assert_eq!(
        publish(
            b_addr,
            json!({"name": "end", "channel": "feed", "data": ""})
        )
        .await
        .status,
        200
    );
    assert_eq!(collect(&mut on_a, "x", 0).await, Vec::<String>::new());
    assert_eq!(collect(&mut on_b, "x", 1).await, vec!["1".to_string()]);

    // Node C has no subscriber: it received none of that traffic.
    let received = r#"fleetgate_cluster_messages_total{kind="received"}"#;
    assert!(a.sample(received).await >= (EVENTS + 1) as f64);
    assert_eq!(
        c.sample(received).await,
        0.0,
        "a node gets only its channels' traffic"
    );
    assert_eq!(a.sample("fleetgate_cluster_link_up").await, 1.0);
    drop((a, b, c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_learned_on_one_node_routes_through_another() {
    let prefix = prefix();
    let stubs = [
        Upstream::node("u1").await,
        Upstream::node("u2").await,
        Upstream::node("u3").await,
        Upstream::node("u4").await,
    ];
    let refs: Vec<&Upstream> = stubs.iter().collect();
    let cluster = format!("cluster: {{ redis: \"{REDIS}\", prefix: {} }}\n", &*prefix);
    // Node A pins workspace 1 to u3; node B routes it by modulo (u2): only a shared table can
    // send B's requests for A's session to u3.
    let (fleet_a, admin_a) = (loopback(), loopback());
    let yaml_a = fleet_yaml(
        fleet_a,
        admin_a,
        &refs,
        "assign: modulo\npins: { 1: u3 }",
        "",
    ) + &cluster;
    let a = Gateway::start(&yaml_a, admin_a, &[fleet_a]).await;
    let (fleet_b, admin_b) = (loopback(), loopback());
    let yaml_b = fleet_yaml(fleet_b, admin_b, &refs, "", "") + &cluster;
    let b = Gateway::start(&yaml_b, admin_b, &[fleet_b]).await;

    let session = "webjs_1_1700000000_shared01";
    let created = send(
        fleet_a,
        "POST",
        "/api/sessions",
        &[
            ("x-workspace-id", "1"),
            ("content-type", "application/json"),
        ],
        json!({ "session_id": session, "workspace_id": 1 })
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(created.instance(), "u3");
    let path = format!("/api/sessions/{session}/status");
    let via_b = wait_for("node B to route the session to u3", DEADLINE, || async {
        let r = send(fleet_b, "GET", &path, &[], vec![]).await;
        (r.instance() == "u3").then_some(r)
    })
    .await;
    assert_eq!(via_b.status, 200);
    // A session B never heard of still goes by B's own rule.
    let other = send(
        fleet_b,
        "GET",
        "/api/sessions/webjs_1_1700000000_unknown1/status",
        &[],
        vec![],
    )
    .await;
    assert_eq!(other.instance(), "u2");
    drop((a, b));
}

/// A Redis server of the test's own (so it can be restarted), on a free port.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server)");
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_rediss_shares_its_events() {
    let pki = tempfile::tempdir().unwrap();
    make_ca(pki.path(), "fleetgate redis test CA");
    issue(
        pki.path(),
        pki.path(),
        "redis",
        "DNS:localhost,IP:127.0.0.1",
        7,
    );
    let (port, file) = (free_port(), |name: &str| {
        pki.path().join(name).display().to_string()
    });
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            &file("redis.crt"),
            "--tls-key-file",
            &file("redis.key"),
        ])
        .args([
            "--tls-ca-cert-file",
            &file("ca.crt"),
            "--tls-auth-clients",
            "no",
        ])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (Debian package redis-server)");
    wait_for("the TLS Redis", DEADLINE, || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
    })
    .await;
    // The nodes trust the test CA as they would a system one (rustls-native-certs reads it).
    let (url, ca) = (format!("rediss://localhost:{port}"), file("ca.crt"));
    let env = [("SSL_CERT_FILE", ca.as_str())];
    let prefix = prefix();
    let (a, a_addr) = hub_node_in(&url, &prefix, "", &env).await;
    let (b, b_addr) = hub_node_in(&url, &prefix, "", &env).await;
    let (mut on_b, _) = established(b_addr).await;
    subscribe(&mut on_b, "feed", None, None).await;
    let event = json!({"name": "tick", "channel": "feed", "data": "over tls"});
    assert_eq!(publish(a_addr, event).await.status, 200);
    let got = until_event(&mut on_b, "tick").await;
    assert_eq!(got["data"], "over tls");
    drop((a, b));
    let _ = redis.kill();
    let _ = redis.wait();
}

async fn readyz(gw: &Gateway) -> Value {
    send(gw.admin, "GET", "/readyz", &[], vec![]).await.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_delivery_stays_local_and_after_a_restart_the_cluster_resumes() {
    let port = free_port();
    let redis = OwnRedis::start(port);
    wait_for("the test's Redis", DEADLINE, || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
    })
    .await;
    let prefix = prefix();
    let (a, a_addr) = hub_node(&redis.url(), &prefix).await;
    let (b, b_addr) = hub_node(&redis.url(), &prefix).await;
    for gw in [&a, &b] {
        wait_for(
            "the node to be ready with its cluster link",
            DEADLINE,
            || async {
                let r = readyz(gw).await;
                (r["status"] == "ready" && r["cluster"] == "up").then_some(())
            },
        )
        .await;
    }
    let (mut on_a, _) = established(a_addr).await;
    subscribe(&mut on_a, "feed", None, None).await;

    // Redis goes away: /readyz and the gauge say so, and a publish on A still reaches A's subscriber.
    drop(redis);
    wait_for("the link to be reported down", DEADLINE, || async {
        (readyz(&a).await["cluster"] == "down").then_some(())
    })
    .await;
    assert_eq!(readyz(&a).await["status"], "ready");
    assert_eq!(a.sample("fleetgate_cluster_link_up").await, 0.0);
    assert_eq!(
        publish(
            a_addr,
            json!({"name": "e", "channel": "feed", "data": "local"})
        )
        .await
        .status,
        200
    );
    assert_eq!(until_event(&mut on_a, "e").await["data"], "local");

    // Redis is back: both nodes reconnect and resubscribe by themselves; B's publishes reach A.
    let _redis = OwnRedis::start(port);
    for gw in [&a, &b] {
        wait_for("the link to come back", DEADLINE, || async {
            (readyz(gw).await["cluster"] == "up").then_some(())
        })
        .await;
    }
    assert_eq!(
        publish(
            b_addr,
            json!({"name": "e", "channel": "feed", "data": "via-b"})
        )
        .await
        .status,
        200
    );
    assert_eq!(until_event(&mut on_a, "e").await["data"], "via-b");
    assert!(!a.log().contains("panicked"), "{}", a.log());
}

const ROOM: &str = "presence-room";

/// Joins the presence room as `user`; returns the member ids `here` (sorted).
async fn join_room(ws: &mut Ws, socket: &str, user: &str) -> Vec<String> {
    let data = json!({"user_id": user, "user_info": {"name": user}}).to_string();
    let auth = auth_for(socket, ROOM, Some(&data));
    let ok = subscribe(ws, ROOM, Some(auth), Some(&data)).await;
    assert_eq!(
        ok["event"], "pusher_internal:subscription_succeeded",
        "{ok}"
    );
    let presence: Value = serde_json::from_str(ok["data"].as_str().unwrap()).unwrap();
    let mut ids: Vec<String> = presence["presence"]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// The first `event` frame within `limit` (other frames are skipped), or `None`.
async fn first_event(ws: &mut Ws, event: &str, limit: Duration) -> Option<Value> {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()??
            .ok()?;
        if let tokio_tungstenite::tungstenite::Message::Text(text) = msg {
            let frame: Value = serde_json::from_str(text.as_str()).unwrap();
            if frame["event"] == event {
                return Some(frame);
            }
        }
    }
}

fn member(frame: &Value) -> String {
    let data: Value = serde_json::from_str(frame["data"].as_str().unwrap()).unwrap();
    data["user_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_cluster_wide_and_a_dead_nodes_members_are_removed() {
    let prefix = prefix();
    let (a, a_addr) = hub_node(REDIS, &prefix).await;
    let (b, b_addr) = hub_node(REDIS, &prefix).await;

    let (mut a1, socket_a1) = established(a_addr).await;
    assert_eq!(join_room(&mut a1, &socket_a1, "u1").await, ["u1"]);
    // A user joining on B sees the member on A, and A hears about it once.
    let (mut b2, socket_b2) = established(b_addr).await;
    assert_eq!(join_room(&mut b2, &socket_b2, "u2").await, ["u1", "u2"]);
    let added = until_event(&mut a1, "pusher_internal:member_added").await;
    assert_eq!(member(&added), "u2");
    // u1's second socket (on B) is no new member: nobody hears member_added for it (checked on
    // A below: nothing but u2's departure arrives).
    let (mut b1, socket_b1) = established(b_addr).await;
    assert_eq!(join_room(&mut b1, &socket_b1, "u1").await, ["u1", "u2"]);

    // Node B dies (SIGKILL): u2 leaves the cluster with it, u1 stays (still on A).
    drop((b2, b1));
    drop(b);
    // Within the documented bound (liveness TTL 5 s + a reap every 2 s; 15 s with slack).
    let removed = first_event(
        &mut a1,
        "pusher_internal:member_removed",
        Duration::from_secs(15),
    )
    .await
    .unwrap_or_else(|| panic!("no member_removed; node A's log:\n{}", a.log()));
    assert_eq!(member(&removed), "u2");
    let end = json!({"name": "end", "channel": ROOM, "data": ""});
    assert_eq!(publish(a_addr, end).await.status, 200);
    let mut after = Vec::new();
    loop {
        let frame = next(&mut a1).await;
        if frame["event"] == "end" {
            break;
        }
        after.push(frame);
    }
    assert!(after.is_empty(), "no other presence event: {after:?}");
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_webhooks_fire_once_for_the_cluster_and_a_dead_nodes_channels_are_vacated() {
    let prefix = prefix();
    let mut receiver = Receiver::start().await;
    let events = "[channel_occupied, channel_vacated, member_added, member_removed]";
    let hooks = format!(
        "      webhooks: [{{ url: \"{}\", events: {events} }}]\n",
        receiver.url("/hook")
    );
    let (a, a_addr) = hub_node_with(REDIS, &prefix, &hooks).await;
    let (b, b_addr) = hub_node_with(REDIS, &prefix, &hooks).await;

    // u1 on both nodes, u2 on B: one occupied, one member_added per user, whichever node fires.
    let (mut a1, socket_a1) = established(a_addr).await;
    join_room(&mut a1, &socket_a1, "u1").await;
    let (mut b1, socket_b1) = established(b_addr).await;
    join_room(&mut b1, &socket_b1, "u1").await;
    let (mut b2, socket_b2) = established(b_addr).await;
    join_room(&mut b2, &socket_b2, "u2").await;
    let mut fired = hook_events(&receiver.events("/hook", 3).await);
    fired.sort();
    assert_eq!(
        fired,
        ["channel_occupied", "member_added u1", "member_added u2"]
    );

    // u1 leaves A (still on B): nothing. Then B dies: A reaps it, so u1 and u2 leave and the
    // channel empties, each once. A sentinel channel on A comes after anything A still had.
    let leave = json!({"event": "pusher:unsubscribe", "data": {"channel": ROOM}});
    send_frame(&mut a1, leave).await;
    // Killed before its clients leave: B never applies their departures itself.
    drop(b);
    drop((b1, b2));
    let (mut sentinel, _) = established(a_addr).await;
    let removed = hook_events(&receiver.events("/hook", 3).await);
    subscribe(&mut sentinel, "sentinel", None, None).await;
    let mut fired = removed;
    fired.extend(hook_events(&receiver.events("/hook", 1).await));
    let (mut left, last) = (fired[..3].to_vec(), fired[3].clone());
    left.sort();
    assert_eq!(
        left,
        ["channel_vacated", "member_removed u1", "member_removed u2"],
        "A's log:\n{}",
        a.log()
    );
    assert_eq!(last, "channel_occupied sentinel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_restarts_empty_a_channel_is_still_vacated_once() {
    let port = free_port();
    let redis = OwnRedis::start(port);
    let mut receiver = Receiver::start().await;
    let hooks = format!(
        "      webhooks: [{{ url: \"{}\", events: [channel_occupied, channel_vacated] }}]\n",
        receiver.url("/hook")
    );
    let prefix = prefix();
    let (a, a_addr) = hub_node_with(&redis.url(), &prefix, &hooks).await;
    let (mut ws, _) = established(a_addr).await;
    subscribe(&mut ws, "orders", None, None).await;
    assert_eq!(
        names(&receiver.events("/hook", 1).await),
        ["channel_occupied orders"]
    );

    // Redis restarts with nothing (it keeps nothing on disk): the node tells it its channels again.
    drop(redis);
    let link = "fleetgate_cluster_link_up";
    wait_for("the link down", DEADLINE, || async {
        (a.sample(link).await == 0.0).then_some(())
    })
    .await;
    let _redis = OwnRedis::start(port);
    wait_for("the link up", DEADLINE, || async {
        (a.sample(link).await == 1.0).then_some(())
    })
    .await;
    let leave = json!({"event": "pusher:unsubscribe", "data": {"channel": "orders"}});
    send_frame(&mut ws, leave).await;
    subscribe(&mut ws, "sentinel", None, None).await;
    assert_eq!(
        names(&receiver.events("/hook", 2).await),
        ["channel_vacated orders", "channel_occupied sentinel"]
    );
}

/// Events as `name` (`presence-room`), `name user` (members) or `name channel` (others).
fn hook_events(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| match (e["channel"].as_str(), e["user_id"].as_str()) {
            (_, Some(user)) => format!("{} {user}", e["name"].as_str().unwrap()),
            (Some(ROOM), None) => e["name"].as_str().unwrap().to_string(),
            (channel, None) => format!("{} {}", e["name"].as_str().unwrap(), channel.unwrap()),
        })
        .collect()
}

/// Waits until `GET /apps/{id}/connections` through `addr` counts `n`.
async fn until_connections(addr: SocketAddr, n: u64) {
    wait_for(&format!("{n} connections"), DEADLINE, || async {
        (api(addr, "GET", "connections", &[]).await["connections"] == n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_answers_for_the_whole_cluster_and_cache_channels_share_their_last_event() {
    let prefix = prefix();
    let (a, a_addr) = hub_node(REDIS, &prefix).await;
    let (b, b_addr) = hub_node(REDIS, &prefix).await;
    // feed: one subscriber on A, two on B; presence-room: u1 on A, u2 on B; user 42 signed in on B.
    let mut sockets = Vec::new();
    for addr in [a_addr, b_addr, b_addr] {
        let (mut ws, _) = established(addr).await;
        subscribe(&mut ws, "feed", None, None).await;
        sockets.push(ws);
    }
    let (mut on_a, socket_a) = established(a_addr).await;
    join_room(&mut on_a, &socket_a, "u1").await;
    let (mut on_b, socket_b) = established(b_addr).await;
    join_room(&mut on_b, &socket_b, "u2").await;
    signin(&mut on_b, &socket_b, "42").await;

    // Asked through A, the answers count B's sockets too (counts reach Redis asynchronously).
    let info = [("info", "subscription_count")];
    wait_for("feed's subscriptions on both nodes", DEADLINE, || async {
        let feed = api(a_addr, "GET", "channels/feed", &info).await;
        (feed["subscription_count"] == 3).then_some(())
    })
    .await;
    // Reverb's connection count: every node's sockets (A holds 2, B 3).
    until_connections(a_addr, 5).await;
    let room = api(
        a_addr,
        "GET",
        "channels/presence-room",
        &[("info", "user_count")],
    )
    .await;
    assert_eq!(room["user_count"], 2, "{room}");
    let users = api(a_addr, "GET", "channels/presence-room/users", &[]).await;
    let mut ids: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["u1", "u2"]);
    let list = api(a_addr, "GET", "channels", &[]).await;
    let names: std::collections::BTreeSet<&String> =
        list["channels"].as_object().unwrap().keys().collect();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["feed", "presence-room"]
    );

    // terminate_connections through A closes user 42's socket on B.
    api(a_addr, "POST", "users/42/terminate_connections", &[]).await;
    assert_eq!(close_code(&mut on_b).await, Some(4009));
    until_connections(b_addr, 4).await;

    // A cache channel's last event, published on A while nobody listened, reaches a new subscriber
    // on B.
    let news = json!({"name": "headline", "channel": "cache-news", "data": "fleetgate 1.0"});
    assert_eq!(publish(a_addr, news).await.status, 200);
    let (mut late, _) = established(b_addr).await;
    subscribe(&mut late, "cache-news", None, None).await;
    assert_eq!(
        until_event(&mut late, "headline").await["data"],
        "fleetgate 1.0"
    );
    drop((a, b, sockets));
}
