//! The hub end to end over raw WebSocket frames (tokio-tungstenite) and the signed HTTP API.

mod common;
use common::pusher::*;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gets_a_socket_id_and_public_events_published_through_the_api() {
    let h = hub("").await;
    let (mut ws, socket) = established(h.addr).await;
    let (a, b) = socket.split_once('.').unwrap();
    assert!(
        a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit()),
        "{socket}"
    );
    let ok = subscribe(&mut ws, "workspace.7", None, None).await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    let resp = publish(h.addr, json!({"name": "account-status-changed", "channels": ["workspace.7"], "data": "{\"status\":\"ready\"}"})).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let event = next(&mut ws).await;
    assert_eq!(event["event"], "account-status-changed");
    assert_eq!(event["channel"], "workspace.7");
    assert_eq!(event["data"], "{\"status\":\"ready\"}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_app_key_is_closed_with_4001() {
    let h = hub("").await;
    let mut ws = connect(h.addr, "nope").await;
    assert_eq!(close_code(&mut ws).await, Some(4001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_channels_need_a_valid_auth_and_a_bad_one_leaves_the_socket_open() {
    let h = hub("").await;
    let (mut ws, socket) = established(h.addr).await;
    let bad = subscribe(
        &mut ws,
        "private-workspace.7",
        Some(format!("{KEY}:{}", "0".repeat(64))),
        None,
    )
    .await;
    assert_eq!(bad["event"], "pusher:subscription_error");
    send_frame(&mut ws, json!({"event": "pusher:ping", "data": {}})).await;
    assert_eq!(next(&mut ws).await["event"], "pusher:pong");
    subscribe_private(&mut ws, &socket, "private-workspace.7").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_counts_distinct_users_and_announces_joins_and_leaves_once() {
    let h = hub("").await;
    let channel = "presence-workspace.7";
    let alice = r#"{"user_id":"1","user_info":{"name":"Alice"}}"#;
    let bob = r#"{"user_id":"2","user_info":{"name":"Bob"}}"#;
    let (mut a, sa) = established(h.addr).await;
    subscribe(
        &mut a,
        channel,
        Some(auth_for(&sa, channel, Some(alice))),
        Some(alice),
    )
    .await;
    let (mut b, sb) = established(h.addr).await;
    let here = subscribe(
        &mut b,
        channel,
        Some(auth_for(&sb, channel, Some(bob))),
        Some(bob),
    )
    .await;
    let presence: Value = serde_json::from_str(here["data"].as_str().unwrap()).unwrap();
    assert_eq!(presence["presence"]["count"], 2);
    let added = next(&mut a).await;
    assert_eq!(added["event"], "pusher_internal:member_added");
    // Bob's second socket: no second member_added.
    let (mut b2, sb2) = established(h.addr).await;
    subscribe(
        &mut b2,
        channel,
        Some(auth_for(&sb2, channel, Some(bob))),
        Some(bob),
    )
    .await;
    drop(b2);
    drop(b);
    let removed = next(&mut a).await;
    assert_eq!(
        removed["event"], "pusher_internal:member_removed",
        "{removed}"
    );
    let data: Value = serde_json::from_str(removed["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["user_id"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_events_reach_other_subscribers_but_never_the_sender() {
    let h = hub("").await;
    let channel = "private-chat.5";
    let (mut a, sa) = established(h.addr).await;
    let (mut b, sb) = established(h.addr).await;
    subscribe(&mut a, channel, Some(auth_for(&sa, channel, None)), None).await;
    subscribe(&mut b, channel, Some(auth_for(&sb, channel, None)), None).await;
    send_frame(
        &mut a,
        json!({"event": "client-typing", "channel": channel, "data": {"typing": true}}),
    )
    .await;
    let got = next(&mut b).await;
    assert_eq!(got["event"], "client-typing");
    send_frame(&mut a, json!({"event": "pusher:ping", "data": {}})).await;
    assert_eq!(
        next(&mut a).await["event"],
        "pusher:pong",
        "the sender must not get its own event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_closed_with_4100_and_does_not_slow_the_others() {
    let h = hub("      max_message_size: 64KiB\n").await;
    let (mut slow, _) = established(h.addr).await;
    let (mut fast, _) = established(h.addr).await;
    subscribe(&mut slow, "feed", None, None).await;
    subscribe(&mut fast, "feed", None, None).await;
    let data = "x".repeat(60_000);
    let total = 800; // 48 MB: more than the slow socket's queue plus kernel buffers
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < total {
            let v = next(&mut fast).await;
            if v["event"] == "big" {
                got += 1;
            }
        }
        got
    });
    for _ in 0..total {
        let r = publish(
            h.addr,
            json!({"name": "big", "channel": "feed", "data": data}),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(60), reader)
            .await
            .unwrap()
            .unwrap(),
        total
    );
    // Now drain the slow one: it must end with a 4100 close.
    assert_eq!(close_code(&mut slow).await, Some(4100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_gets_each_event_once_in_publish_order_whichever_lane_writes_it() {
    // `threads: 2`: two fan-out lanes, the publisher's and a thread of its own; consecutive
    // connections alternate between them.
    let h = hub("").await;
    assert!(
        h.gw.thread_names().iter().any(|n| n == "hub-lane-1"),
        "{:?}",
        h.gw.thread_names()
    );
    let mut subscribers = Vec::new();
    for _ in 0..8 {
        let (mut ws, socket) = established(h.addr).await;
        subscribe(&mut ws, "feed", None, None).await;
        subscribers.push((ws, socket));
    }
    const EVENTS: usize = 100;
    let left_out = subscribers[5].1.clone();
    for i in 0..EVENTS {
        // Every tenth event leaves one subscriber out (`socket_id`).
        let except = (i % 10 == 0).then(|| left_out.clone());
        let body =
            json!({"name": "e", "channel": "feed", "data": i.to_string(), "socket_id": except});
        assert_eq!(publish(h.addr, body).await.status, 200);
    }
    let end = json!({"name": "end", "channel": "feed", "data": ""});
    assert_eq!(publish(h.addr, end).await.status, 200);
    for (ws, socket) in &mut subscribers {
        let expected: Vec<String> = (0..EVENTS)
            .filter(|i| *socket != left_out || i % 10 != 0)
            .map(|i| i.to_string())
            .collect();
        let mut seen = Vec::new();
        loop {
            let frame = next(ws).await;
            match frame["event"].as_str() {
                Some("e") => seen.push(frame["data"].as_str().unwrap().to_string()),
                Some("end") => break,
                _ => {}
            }
        }
        assert_eq!(seen, expected, "socket {socket}");
    }

    // A channel held in one lane only (the other is not handed its events), then in both: the
    // newcomer gets what was published after it joined, the first subscriber everything, in order.
    let (mut first, _) = established(h.addr).await;
    subscribe(&mut first, "solo", None, None).await;
    let solo = |i: usize| json!({"name": "e", "channel": "solo", "data": i.to_string()});
    for i in 0..10 {
        assert_eq!(publish(h.addr, solo(i)).await.status, 200);
    }
    let (mut second, _) = established(h.addr).await;
    subscribe(&mut second, "solo", None, None).await;
    for i in 10..20 {
        assert_eq!(publish(h.addr, solo(i)).await.status, 200);
    }
    let data = |from: usize| (from..20).map(|i| json!(i.to_string())).collect::<Vec<_>>();
    for (ws, from) in [(&mut first, 0), (&mut second, 10)] {
        let mut seen = Vec::new();
        while seen.len() < 20 - from {
            seen.push(next(ws).await["data"].clone());
        }
        assert_eq!(seen, data(from));
    }
}

/// A gateway with a hub and an edge webhook route mapping `qr_code_generated` to the hub.
struct QrEdge {
    _laravel: Upstream,
    gw: Gateway,
    addr: SocketAddr,
    edge: SocketAddr,
}

const HMAC_SECRET: &str = "shared-hmac";

async fn qr_edge(app_extra: &str) -> QrEdge {
    let laravel = Upstream::laravel("laravel").await;
    let (addr, edge, admin) = (loopback(), loopback(), loopback());
    let yaml = format!(
        r#"threads: 2
admin: {{ listen: {admin} }}
listeners:
  hub: {{ listen: {addr} }}
  edge: {{ listen: {edge} }}
upstreams:
  laravel: {{ instances: [{{ name: laravel, addr: {laravel_addr} }}] }}
routes:
  - name: hooks
    listener: edge
    upstream: laravel
    treatment: webhook
    webhook:
      scheme: hex-timestamp-body
      secrets: ["{HMAC_SECRET}"]
      publish:
        - event: qr_code_generated
          channel: "private-workspace.{{data.workspace_id}}"
          name: qr-code-generated
          payload: {{ qr_code_base64: "{{data.qr_code}}", expires_in_seconds: 300, workspace_id: "{{data.workspace_id}}", account_id: "{{data.session_id}}", session_id: "{{data.session_id}}", timestamp: "{{now_iso}}" }}
hub:
  listener: hub
  apps: [{{ id: {APP_ID}, key: {KEY}, secret: {SECRET}{app_extra} }}]
"#,
        laravel_addr = laravel.addr
    );
    let gw = Gateway::start(&yaml, admin, &[addr, edge]).await;
    QrEdge {
        _laravel: laravel,
        gw,
        addr,
        edge,
    }
}

/// Sends a signed `qr_code_generated` webhook for workspace 7 to the edge listener.
async fn post_qr(edge: SocketAddr, session: &str, qr_code: &str) -> Resp {
    use fleetgate::signing::{sign, Scheme, Secret};
    let body = format!(
        r#"{{"event":"qr_code_generated","data":{{"workspace_id":7,"session_id":"{session}","qr_code":"{qr_code}","expires_in":60,"qr_count":1}}}}"#
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let key = Secret::from_config(Scheme::HexTimestampBody, HMAC_SECRET).unwrap();
    let headers = sign(Scheme::HexTimestampBody, &key, body.as_bytes(), now, None);
    let mut refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    refs.push(("content-type", "application/json"));
    common::send(
        edge,
        "POST",
        "/api/whatsapp/webhooks/webjs",
        &refs,
        body.into_bytes(),
    )
    .await
}

/// The end-to-end story: a Node instance's signed `qr_code_generated` webhook enters the edge
/// listener and a browser subscribed to `private-workspace.7` gets `qr-code-generated`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_qr_webhook_reaches_the_private_workspace_channel_as_qr_code_generated() {
    let e = qr_edge("").await;
    let (addr, edge) = (e.addr, e.edge);
    let (mut ws, socket) = established(addr).await;
    subscribe_private(&mut ws, &socket, "private-workspace.7").await;

    let session = "webjs_7_1700000000_abcd1234";
    let resp = post_qr(edge, session, "data:image/png;base64,iVBORw0KGgo=").await;
    assert_eq!(resp.status, 200, "the webhook still reaches Laravel");

    let event = next(&mut ws).await;
    assert_eq!(event["event"], "qr-code-generated");
    assert_eq!(event["channel"], "private-workspace.7");
    let data: Value = serde_json::from_str(event["data"].as_str().unwrap()).unwrap();
    assert_eq!(
        data["workspace_id"],
        json!(7),
        "workspace_id must stay a JSON number"
    );
    assert_eq!(data["account_id"], session);
    assert_eq!(data["session_id"], session);
    assert_eq!(data["expires_in_seconds"], 300);
    assert_eq!(data["qr_code_base64"], "data:image/png;base64,iVBORw0KGgo=");
    assert!(data["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_gets_a_ping_and_without_a_pong_is_closed_with_4201() {
    let h = hub("      ping_interval: 1s\n").await;
    let (mut ws, _) = established(h.addr).await;
    until_event(&mut ws, "pusher:ping").await;
    assert_eq!(close_code(&mut ws).await, Some(4201));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_apps_quota_are_closed_with_4004() {
    let h = hub("      max_connections: 1\n").await;
    let (_first, _) = established(h.addr).await;
    let mut second = connect(h.addr, KEY).await;
    assert_eq!(close_code(&mut second).await, Some(4004));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_not_allowed_is_closed_with_4009() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let h = hub("      allowed_origins: [\"https://app.example\"]\n").await;
    let mut req = format!("ws://{}/app/{KEY}?protocol=7", h.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(4009));
    let mut ok = format!("ws://{}/app/{KEY}?protocol=7", h.addr)
        .into_client_request()
        .unwrap();
    ok.headers_mut()
        .insert("origin", "https://app.example".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(ok).await.unwrap();
    assert_eq!(
        next(&mut ws).await["event"],
        "pusher:connection_established"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_binary_and_malformed_frames_get_a_json_error_and_the_socket_stays_open() {
    let h = hub("      max_message_size: 1KiB\n").await;
    let (mut ws, _) = established(h.addr).await;
    ws.send(Message::Text("x".repeat(2048).into()))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await["event"], "pusher:error");
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await["event"], "pusher:error");
    ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(next(&mut ws).await["event"], "pusher:error");
    send_frame(
        &mut ws,
        json!({"event": "pusher:subscribe", "data": {"channel": "bad channel!"}}),
    )
    .await;
    assert_eq!(next(&mut ws).await["event"], "pusher:subscription_error");
    send_frame(&mut ws, json!({"event": "pusher:ping", "data": {}})).await;
    assert_eq!(next(&mut ws).await["event"], "pusher:pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_ten_client_events_a_second_close_the_sender_with_4301() {
    let h = hub("").await;
    let (mut ws, socket) = established(h.addr).await;
    subscribe_private(&mut ws, &socket, "private-chat.1").await;
    for _ in 0..11 {
        send_frame(
            &mut ws,
            json!({"event": "client-x", "channel": "private-chat.1", "data": {}}),
        )
        .await;
    }
    assert_eq!(close_code(&mut ws).await, Some(4301));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_limits_are_settings() {
    let h = hub(concat!(
        "      client_events_per_second: 2\n",
        "      max_batch_size: 2\n",
        "      max_channels_per_event: 2\n",
        "      max_channel_name_length: 10\n",
    ))
    .await;
    let code = |r: &Resp| r.json()["error"]["code"].as_str().unwrap_or("").to_string();
    let three = json!({"name": "e", "channels": ["a", "b", "c"], "data": "x"});
    let r = publish(h.addr, three).await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (400, "hub.too_many_channels")
    );
    let event = json!({"name": "e", "channel": "a", "data": "x"});
    let batch = json!({"batch": [event, event, event]});
    let r = publish_batch(h.addr, batch).await;
    assert_eq!((r.status, code(&r).as_str()), (400, "hub.batch_too_large"));
    // Reverb's message limit: 10,000 bytes.
    let at_limit = json!({"name": "e", "channel": "a", "data": "x".repeat(10_000)});
    assert_eq!(publish(h.addr, at_limit).await.status, 200);
    let over = json!({"name": "e", "channel": "a", "data": "x".repeat(10_001)});
    assert_eq!(publish(h.addr, over).await.status, 413);
    // One API request a second: the second of two back to back is refused.
    let slow = hub("      api_requests_per_second: 1\n").await;
    assert_eq!(publish(slow.addr, event.clone()).await.status, 200);
    let r = publish(slow.addr, event).await;
    assert_eq!((r.status, code(&r).as_str()), (429, "hub.rate_limited"));

    // Channel names of at most 10 characters, to subscribe and to publish.
    let long = json!({"name": "e", "channel": "abcdefghijk", "data": "x"});
    let r = publish(h.addr, long).await;
    assert_eq!((r.status, code(&r).as_str()), (400, "hub.invalid_channel"));
    let (mut ws, _) = established(h.addr).await;
    let refused = subscribe(&mut ws, "abcdefghijk", None, None).await;
    assert_eq!(refused["event"], "pusher:subscription_error", "{refused}");
    let ok = subscribe(&mut ws, "abcdefghij", None, None).await;
    assert_eq!(
        ok["event"], "pusher_internal:subscription_succeeded",
        "{ok}"
    );

    // Reverb's activity_timeout, 30 s, is what clients are told.
    let mut hello = connect(h.addr, KEY).await;
    let hello = next(&mut hello).await;
    let data: Value = serde_json::from_str(hello["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["activity_timeout"], 30, "{hello}");

    // Two client events a second: the third in a burst closes the sender.
    let (mut ws, socket) = established(h.addr).await;
    subscribe_private(&mut ws, &socket, "private-a").await;
    for _ in 0..3 {
        let whisper = json!({"event": "client-x", "channel": "private-a", "data": {}});
        send_frame(&mut ws, whisper).await;
    }
    assert_eq!(close_code(&mut ws).await, Some(4301));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_events_are_refused_when_the_app_disables_them_or_the_channel_is_public() {
    let h = hub("").await;
    let (mut ws, _) = established(h.addr).await;
    subscribe(&mut ws, "public-room", None, None).await;
    send_frame(
        &mut ws,
        json!({"event": "client-x", "channel": "public-room", "data": {}}),
    )
    .await;
    assert_eq!(next(&mut ws).await["event"], "pusher:error");
    let off = hub_with_client_events_off().await;
    let (mut ws, socket) = established(off.addr).await;
    subscribe_private(&mut ws, &socket, "private-chat.1").await;
    send_frame(
        &mut ws,
        json!({"event": "client-x", "channel": "private-chat.1", "data": {}}),
    )
    .await;
    assert_eq!(next(&mut ws).await["event"], "pusher:error");
}

async fn hub_with_client_events_off() -> Hub {
    let (addr, admin) = (loopback(), loopback());
    let yaml = format!("admin: {{ listen: {admin} }}\nlisteners: {{ hub: {{ listen: {addr} }} }}\nhub: {{ listener: hub, apps: [{{ id: {APP_ID}, key: {KEY}, secret: {SECRET} }}] }}\n");
    Hub {
        gw: Gateway::start(&yaml, admin, &[addr]).await,
        addr,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_user_gets_server_to_user_events_and_can_be_terminated() {
    let h = hub("").await;
    let (mut ws, socket) = established(h.addr).await;
    signin(&mut ws, &socket, "42").await;
    let r = publish(
        h.addr,
        json!({"name": "notice", "channel": "#server-to-user-42", "data": "{}"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        until_event(&mut ws, "notice").await["channel"],
        "#server-to-user-42"
    );
    api(h.addr, "POST", "users/42/terminate_connections", &[]).await;
    assert_eq!(close_code(&mut ws).await, Some(4009));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_rejects_bad_signatures_oversized_events_and_big_batches() {
    let h = hub("").await;
    let path = format!("/apps/{APP_ID}/events");
    let body = json!({"name": "e", "channel": "c", "data": "{}"})
        .to_string()
        .into_bytes();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let query =
        fleetgate::hub::auth::sign_api_request(KEY, "wrong-secret", "POST", &path, &[], &body, now);
    let r = common::send(h.addr, "POST", &format!("{path}?{query}"), &[], body).await;
    assert_eq!(r.status, 401);
    assert!(r.json()["error"]["code"].as_str().is_some());
    let big = publish(
        h.addr,
        json!({"name": "e", "channel": "c", "data": "x".repeat(11 * 1024)}),
    )
    .await;
    assert_eq!(big.status, 413);
    let batch: Vec<Value> = (0..11)
        .map(|i| json!({"name": "e", "channel": format!("c{i}"), "data": "{}"}))
        .collect();
    let body = json!({"batch": batch}).to_string().into_bytes();
    let path = format!("/apps/{APP_ID}/batch_events");
    let query = fleetgate::hub::auth::sign_api_request(KEY, SECRET, "POST", &path, &[], &body, now);
    let r = common::send(h.addr, "POST", &format!("{path}?{query}"), &[], body).await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_counts_open_connections_as_reverb_does() {
    let h = hub("").await;
    let count = || async { api(h.addr, "GET", "connections", &[]).await };
    assert_eq!(count().await, json!({"connections": 0}));
    let (first, _) = established(h.addr).await;
    let (_second, _) = established(h.addr).await;
    assert_eq!(count().await, json!({"connections": 2}));
    drop(first);
    wait_for(
        "the closed connection to leave the count",
        DEADLINE,
        || async { (count().await["connections"] == 1).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_one_refused_event_publishes_none_of_it() {
    let h = hub("").await;
    let (mut ws, _) = established(h.addr).await;
    subscribe(&mut ws, "feed", None, None).await;
    // Valid events before and after the refused one: none of them may arrive (a client that
    // retries the batch would otherwise deliver them twice).
    for (bad, status, code) in [
        (
            json!({"name": "e", "channel": "bad name", "data": "2"}),
            400,
            "hub.invalid_channel",
        ),
        (
            json!({"name": "e", "channel": "feed", "data": "x".repeat(11 * 1024)}),
            413,
            "hub.message_too_large",
        ),
        (json!({"name": "e", "data": "2"}), 400, "hub.invalid_event"),
    ] {
        let batch = json!({"batch": [
            {"name": "e", "channel": "feed", "data": "1"},
            bad,
            {"name": "e", "channel": "feed", "data": "3"},
        ]});
        let r = publish_batch(h.addr, batch).await;
        assert_eq!(r.status, status);
        assert_eq!(r.json()["error"]["code"], code);
    }
    let whole = json!({"batch": [
        {"name": "e", "channel": "feed", "data": "a"},
        {"name": "e", "channel": "feed", "data": "b"},
    ]});
    assert_eq!(publish_batch(h.addr, whole).await.status, 200);
    assert_eq!(
        next(&mut ws).await["data"],
        "a",
        "nothing of the refused batches arrived"
    );
    assert_eq!(next(&mut ws).await["data"], "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_channel_replays_its_last_event_to_a_new_subscriber() {
    let h = hub("").await;
    let (mut first, _) = established(h.addr).await;
    assert_eq!(
        subscribe(&mut first, "cache-status", None, None).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let r = publish(
        h.addr,
        json!({"name": "status", "channel": "cache-status", "data": "{\"v\":1}"}),
    )
    .await;
    assert_eq!(r.status, 200);
    until_event(&mut first, "status").await;
    let (mut late, _) = established(h.addr).await;
    subscribe(&mut late, "cache-status", None, None).await;
    assert_eq!(until_event(&mut late, "status").await["data"], "{\"v\":1}");
    let (mut empty, _) = established(h.addr).await;
    subscribe(&mut empty, "cache-nothing", None, None).await;
    until_event(&mut empty, "pusher:cache_miss").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presence_channel_refuses_members_beyond_its_limit_and_oversized_user_info() {
    let h = hub("      presence: { max_members: 1, max_user_info: 64B }\n").await;
    let channel = "presence-room";
    let one = r#"{"user_id":"1","user_info":{}}"#;
    let two = r#"{"user_id":"2","user_info":{}}"#;
    let fat = format!(
        r#"{{"user_id":"3","user_info":{{"bio":"{}"}}}}"#,
        "x".repeat(100)
    );
    let (mut a, sa) = established(h.addr).await;
    let ok = subscribe(
        &mut a,
        channel,
        Some(auth_for(&sa, channel, Some(one))),
        Some(one),
    )
    .await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    let (mut b, sb) = established(h.addr).await;
    let full = subscribe(
        &mut b,
        channel,
        Some(auth_for(&sb, channel, Some(two))),
        Some(two),
    )
    .await;
    assert_eq!(full["event"], "pusher:subscription_error");
    let too_big = subscribe(
        &mut b,
        "presence-other",
        Some(auth_for(&sb, "presence-other", Some(&fat))),
        Some(&fat),
    )
    .await;
    assert_eq!(too_big["event"], "pusher:subscription_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_event_over_the_message_limit_is_not_published_but_the_webhook_reaches_laravel() {
    let e = qr_edge(", max_message_size: 1KiB").await;
    let (mut ws, socket) = established(e.addr).await;
    subscribe_private(&mut ws, &socket, "private-workspace.7").await;
    let big_qr = format!("data:image/png;base64,{}", "A".repeat(2048));
    let resp = post_qr(e.edge, "webjs_7_1700000000_abcd1234", &big_qr).await;
    assert_eq!(resp.status, 200, "the webhook still reaches Laravel");
    let metrics = e.gw.metrics().await;
    assert!(
        metrics
            .contains(r#"fleetgate_webhook_publishes_total{result="too_large",route="hooks"} 1"#),
        "{metrics}"
    );
    // Nothing was published: the next frame is the pong to our ping.
    send_frame(&mut ws, json!({"event": "pusher:ping", "data": {}})).await;
    assert_eq!(next(&mut ws).await["event"], "pusher:pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_hub_clients_are_closed_with_4200_so_they_reconnect_at_once() {
    let h = hub("").await;
    let (mut ws, _) = established(h.addr).await;
    h.gw.terminate();
    assert_eq!(close_code(&mut ws).await, Some(4200));
}

/// A WebSocket to the hub from the loopback address `from` (another client address).
async fn connect_from(addr: SocketAddr, from: &str) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}/app/{KEY}?protocol=7&client=js&version=8.4.0");
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    tokio_tungstenite::client_async(url, stream)
        .await
        .unwrap()
        .0
}

/// The hub with `app_extra` keys, trusting no proxy (loopback clients count per address).
async fn hub_trusting_nobody(app_extra: &str) -> Hub {
    hub_with_listener("trusted_proxies: []", app_extra).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_only_its_share_of_the_apps_connections() {
    let h = hub_trusting_nobody("      max_connections_per_ip: 3\n").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(established(h.addr).await.0);
    }
    let mut fourth = connect(h.addr, KEY).await;
    assert_eq!(close_code(&mut fourth).await, Some(4004));
    let mut other = connect_from(h.addr, "127.0.0.2").await;
    assert_eq!(
        next(&mut other).await["event"],
        "pusher:connection_established"
    );
    // A place comes back when a connection ends.
    held.pop();
    wait_for("a place from 127.0.0.1 to come back", DEADLINE, || async {
        let mut ws = connect(h.addr, KEY).await;
        let first = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
        matches!(first, Ok(Some(Ok(Message::Text(_))))).then_some(())
    })
    .await;
    // A trusted proxy (loopback, by default) carries many clients: no per-address limit.
    let trusting = hub("      max_connections_per_ip: 3\n").await;
    let mut many = Vec::new();
    for _ in 0..6 {
        many.push(established(trusting.addr).await.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_subscribes_to_at_most_max_channels() {
    let h = hub("      max_channels: 2\n").await;
    let (mut ws, _) = established(h.addr).await;
    for channel in ["room-1", "room-2"] {
        let ok = subscribe(&mut ws, channel, None, None).await;
        assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    }
    let refused = subscribe(&mut ws, "room-3", None, None).await;
    assert_eq!(refused["event"], "pusher:subscription_error", "{refused}");
    let data: Value = serde_json::from_str(refused["data"].as_str().unwrap_or("{}"))
        .unwrap_or_else(|_| refused["data"].clone());
    assert_eq!(data["type"], "LimitReached", "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_churn_beyond_the_rate_closes_with_4301() {
    // The default: 50 subscribes and unsubscribes per second.
    let h = hub("").await;
    let (mut watcher, _) = established(h.addr).await;
    subscribe(&mut watcher, "room", None, None).await;
    let (mut churner, _) = established(h.addr).await;
    for i in 0..200 {
        let event = if i % 2 == 0 {
            "pusher:subscribe"
        } else {
            "pusher:unsubscribe"
        };
        let frame = json!({"event": event, "data": {"channel": "room"}});
        if churner
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(close_code(&mut churner).await, Some(4301));
    // The watcher is unaffected.
    send_frame(&mut watcher, json!({"event": "pusher:ping", "data": {}})).await;
    assert_eq!(next(&mut watcher).await["event"], "pusher:pong");
}

/// Whether the hub still holds an established connection to the client at `peer`.
fn hub_holds(hub: SocketAddr, peer: SocketAddr) -> bool {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => unreachable!("IPv4 loopback only"),
    };
    let (local, remote) = (hex(hub), hex(peer));
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f[1] == local && f[2] == remote && f[3] == "01"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_loses_its_socket_at_the_write_deadline() {
    let h = hub("      write_timeout: 1s\n").await;
    let (mut stalled, _) = established(h.addr).await;
    subscribe(&mut stalled, "feed", None, None).await;
    let peer = match stalled.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(s) => s.local_addr().unwrap(),
        _ => unreachable!("plain"),
    };
    // From now on the client reads nothing: events pile up in both socket buffers.
    let data = "x".repeat(9 * 1024);
    let mut published = 0;
    while hub_holds(h.addr, peer) && published < 5_000 {
        let r = publish(
            h.addr,
            json!({"name": "e", "channel": "feed", "data": data}),
        )
        .await;
        assert_eq!(r.status, 200);
        published += 1;
    }
    assert!(
        !hub_holds(h.addr, peer),
        "still held after {published} events"
    );
}

/// A hub whose listener has `keys` (YAML flow-mapping entries, e.g. `header_timeout: 1s`) and
/// whose app has `app_extra` keys.
async fn hub_with_listener(keys: &str, app_extra: &str) -> Hub {
    let (addr, admin) = (loopback(), loopback());
    let apps = format!("    - id: {APP_ID}\n      key: {KEY}\n      secret: {SECRET}\n{app_extra}");
    let yaml = hub_yaml(addr, admin, &apps).replace(
        &format!("hub: {{ listen: {addr} }}"),
        &format!("hub: {{ listen: {addr}, {keys} }}"),
    );
    let gw = Gateway::start(&yaml, admin, &[addr]).await;
    Hub { gw, addr }
}

fn hub_closed(reason: &str) -> String {
    format!(r#"fleetgate_connections_closed_total{{listener="hub",reason="{reason}"}}"#)
}

/// The hub listener faces the internet too: a head sent a byte at a time is cut off at
/// `header_timeout`, a kept-alive API connection is closed after `idle_timeout`, and an
/// oversized head gets 431 with the gateway's code, while upgrades go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_listener_keeps_head_deadlines_idle_time_and_head_limits() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let keys = "header_timeout: 1s, idle_timeout: 1s, max_head_size: 4KiB";
    let h = hub_with_listener(keys, "").await;
    let dripping = drip_head(h.addr, b"GET /apps/app-1/channels HTTP/1.1\r\nHost: a\r\n").await;
    // Meanwhile a client connects and is established.
    let (_ws, _socket) = established(h.addr).await;
    assert!(
        dripping.await.unwrap() < 100,
        "the slow head was never cut off"
    );
    wait_for("the slow head to be counted", DEADLINE, || async {
        (h.gw.sample(&hub_closed("header_timeout")).await == 1.0).then_some(())
    })
    .await;

    // API requests on a kept-alive connection: a second one is answered on it, then it idles
    // past 1 s and is closed.
    let mut kept = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let request = b"GET /apps/app-1/channels HTTP/1.1\r\nHost: a\r\n\r\n";
    for n in 1..=2 {
        kept.write_all(request).await.unwrap();
        let mut buf = Vec::new();
        let status = loop {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut head = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) = head.parse(&buf).unwrap() {
                let length: usize = head
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                    .unwrap();
                if buf.len() == len + length {
                    break head.code.unwrap();
                }
            }
            let mut chunk = [0; 4096];
            let read = tokio::time::timeout(DEADLINE, kept.read(&mut chunk)).await;
            let got = read.expect("an answer").unwrap();
            assert!(got > 0, "closed before answer {n}");
            buf.extend_from_slice(&chunk[..got]);
        };
        assert_eq!(status, 401, "answer {n}");
    }
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, kept.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the idle connection was kept open");

    // A head over max_head_size.
    let big = format!(
        "GET /apps/app-1/channels HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(8192)
    );
    let (answer, closed) = raw(h.addr, big.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:.300}");
    assert!(
        answer.contains(r#""code":"request.header_too_large""#),
        "{answer}"
    );
    assert!(closed);
    assert_eq!(h.gw.sample(&hub_closed("header_too_large")).await, 1.0);
}
