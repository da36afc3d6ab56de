//! App webhooks (Pusher's format) from the real binary to a receiver that checks them with the
//! `pusher` server library's `webhook()` helper, as a Laravel app does: the events, their batches
//! and signatures, and delivery through the durable spool when the app is away. The cluster's
//! once-per-cluster events are in tests/cluster.rs.

mod common;
use common::pusher::*;
use common::receiver::{names, Receiver};
use common::*;
use serde_json::{json, Value};

const ALL_EVENTS: &str =
    "[channel_occupied, channel_vacated, member_added, member_removed, client_event, cache_miss]";

/// The app's webhooks: every event to `/all`; presence members only, with a header, to
/// `/presence`.
fn webhooks_yaml(receiver: &Receiver) -> String {
    format!(
        "      webhooks:\n        - url: {}\n          events: {ALL_EVENTS}\n        - url: {}\n          events: [member_added, member_removed]\n          filter: {{ channel_name_starts_with: presence- }}\n          headers: {{ Authorization: Bearer hook-token }}\n",
        receiver.url("/all"),
        receiver.url("/presence"),
    )
}

/// `events` on `channel`, as `name channel` lines.
fn on(events: &[Value], channel: &str) -> Vec<String> {
    let on_channel: Vec<Value> = events
        .iter()
        .filter(|e| e["channel"] == channel)
        .cloned()
        .collect();
    names(&on_channel)
}

#[tokio::test]
async fn the_hubs_events_reach_the_app_as_signed_pusher_webhooks() {
    let mut receiver = Receiver::start().await;
    let h = hub(&webhooks_yaml(&receiver)).await;
    let (mut ann, ann_socket) = established(h.addr).await;
    let member = r#"{"user_id":"1","user_info":{"name":"Ann"}}"#;
    let auth = auth_for(&ann_socket, "presence-room", Some(member));
    let ok = subscribe(&mut ann, "presence-room", Some(auth), Some(member)).await;
    assert_eq!(
        ok["event"], "pusher_internal:subscription_succeeded",
        "{ok}"
    );
    let whisper =
        json!({"event": "client-typing", "channel": "presence-room", "data": {"typing": true}});
    send_frame(&mut ann, whisper).await;
    let (mut bob, _) = established(h.addr).await;
    let ok = subscribe(&mut bob, "cache-news", None, None).await;
    assert_eq!(
        ok["event"], "pusher_internal:subscription_succeeded",
        "{ok}"
    );
    assert_eq!(next(&mut bob).await["event"], "pusher:cache_miss");
    let leave = json!({"event": "pusher:unsubscribe", "data": {"channel": "presence-room"}});
    send_frame(&mut ann, leave).await;

    let all = receiver.events("/all", 7).await;
    assert_eq!(
        on(&all, "presence-room"),
        [
            "channel_occupied presence-room",
            "member_added presence-room",
            "client_event presence-room",
            "member_removed presence-room",
            "channel_vacated presence-room",
        ]
    );
    assert_eq!(
        on(&all, "cache-news"),
        ["channel_occupied cache-news", "cache_miss cache-news"]
    );
    let whispered = all.iter().find(|e| e["name"] == "client_event").unwrap();
    assert_eq!(
        *whispered,
        json!({"name": "client_event", "channel": "presence-room", "event": "client-typing",
               "data": "{\"typing\":true}", "socket_id": ann_socket, "user_id": "1"})
    );
    let added = all.iter().find(|e| e["name"] == "member_added").unwrap();
    assert_eq!(added["user_id"], "1");

    // Filtered to presence members; the webhook's own header on every request.
    let presence = receiver.events("/presence", 2).await;
    assert_eq!(
        names(&presence),
        ["member_added presence-room", "member_removed presence-room"]
    );
    let now_ms = fleetgate::spool::now_ms() as i64;
    for request in &receiver.requests {
        let time_ms = request["body"]["time_ms"].as_i64().unwrap();
        assert!((now_ms - time_ms).abs() < 60_000, "{request}");
        assert!(request["delivery"].is_string(), "{request}");
        if request["path"] == "/presence" {
            assert_eq!(request["authorization"], "Bearer hook-token", "{request}");
        }
    }

    // Counted: events batched, batches delivered through the app webhook's spool queue.
    let scrape = h.gw.metrics().await;
    let batched = "fleetgate_hub_webhook_events_total{app=\"app-1\",event=\"client_event\",result=\"batched\"}";
    assert_eq!(sample(&scrape, batched), Some(1.0), "{scrape}");
    let requests = receiver
        .requests
        .iter()
        .filter(|r| r["path"] == "/all")
        .count();
    let delivered = format!(
        "fleetgate_spool_delivered_total{{route=\"hub-webhook:app-1 {}\"}}",
        receiver.url("/all")
    );
    // The receiver reports a request before it answers; the spool counts it once answered.
    wait_for("every request counted delivered", DEADLINE, || async {
        (h.gw.sample(&delivered).await == requests as f64).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_receiver_refuses_a_webhook_signed_with_another_secret() {
    // The control for the test above: the receiver's check can fail.
    let mut receiver = Receiver::start().await;
    let body = r#"{"time_ms":1,"events":[]}"#;
    let signature = fleetgate::hub::auth::webhook_signature("not-the-secret", body);
    let headers = [
        ("content-type", "application/json"),
        ("x-pusher-key", KEY),
        ("x-pusher-signature", signature.as_str()),
    ];
    let resp = send(receiver.addr, "POST", "/all", &headers, body.into()).await;
    assert_eq!(resp.status, 401);
    assert_eq!(receiver.next().await["valid"], false);
}

#[tokio::test]
async fn a_batch_the_app_cannot_take_waits_in_the_spool_across_a_restart() {
    let (port, spool) = (free_port(), tempfile::tempdir().unwrap());
    let url = format!("http://127.0.0.1:{port}/hook");
    let (addr, admin) = (loopback(), loopback());
    let apps = format!(
        "    - id: {APP_ID}\n      key: {KEY}\n      secret: {SECRET}\n      webhooks:\n        - {{ url: \"{url}\", events: [channel_occupied, channel_vacated] }}\n"
    );
    let yaml = hub_yaml(addr, admin, &apps)
        + &format!(
            "spool: {{ dir: {}, max_attempts: 1000 }}\n",
            spool.path().display()
        )
        + "shutdown: { drain_delay: 0s, grace_period: 2s }\n";
    let mut first = Gateway::start(&yaml, admin, &[addr]).await;
    let (mut ws, _) = established(addr).await;
    let ok = subscribe(&mut ws, "orders", None, None).await;
    assert_eq!(
        ok["event"], "pusher_internal:subscription_succeeded",
        "{ok}"
    );
    // Nobody listens at the URL: the batch is kept and tried again.
    let depth = format!("fleetgate_spool_depth{{route=\"hub-webhook:{APP_ID} {url}\"}}");
    wait_for("the batch in the spool", DEADLINE, || async {
        (first.sample(&depth).await == 1.0).then_some(())
    })
    .await;
    // Stopping closes the client (4200): the channel is vacated, and that is kept too.
    first.terminate();
    assert_eq!(close_code(&mut ws).await, Some(4200));
    first.exit_code(DEADLINE).await.expect("the gateway stops");

    // The app comes back (its first answer a 503), then the gateway: the batches are delivered.
    let mut receiver = Receiver::start_on(port, 1).await;
    let _second = Gateway::start(&yaml, admin, &[addr]).await;
    let refused = receiver.next().await;
    assert_eq!(
        (refused["valid"].clone(), refused["status"].clone()),
        (json!(true), json!(503))
    );
    let events = receiver.events("/hook", 2).await;
    assert_eq!(
        names(&events),
        ["channel_occupied orders", "channel_vacated orders"]
    );
    let taken = &receiver.requests[1];
    assert_eq!(
        taken["delivery"], refused["delivery"],
        "the same delivery, again"
    );
    assert_eq!(taken["body"], refused["body"], "the same bytes, again");
    assert_eq!(
        taken["attempt"].as_u64(),
        Some(refused["attempt"].as_u64().unwrap() + 1)
    );
}
