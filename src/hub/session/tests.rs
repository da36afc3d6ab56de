//! The session's rules without sockets: each client is an in-memory duplex stream served by
//! [`serve`], against a hub of one app.

use super::*;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

mod client;
use client::*;

#[tokio::test]
async fn connection_is_established_with_the_nodes_socket_id_and_pings_are_answered() {
    let (hub, app) = hub(|_| {});
    let mut client = Client::connect(&hub, &app).await;
    assert!(
        client.socket_id.starts_with("7."),
        "socket id {} is on node 7",
        client.socket_id
    );
    client.nothing_pending().await;
}

#[tokio::test]
async fn a_public_subscription_is_confirmed_and_receives_what_is_published() {
    let (hub, app) = hub(|_| {});
    let mut client = Client::connect(&hub, &app).await;
    client.subscribe("news", None, None);
    let confirmed = client
        .expect("pusher_internal:subscription_succeeded")
        .await;
    assert_eq!(confirmed["channel"], "news");
    let frame = Frame::from(protocol::event("news", "headline", "{\"n\":1}", None));
    hub.publish(&app, "news", &frame, None);
    let event = client.expect("headline").await;
    assert_eq!(data(&event), json!({"n": 1}));
}

#[tokio::test]
async fn a_private_channel_needs_a_signature_for_this_socket() {
    let (hub, app) = hub(|_| {});
    let mut client = Client::connect(&hub, &app).await;
    let other_socket = auth::sign_channel_auth(KEY, SECRET, "1.2", "private-a", None);
    client.subscribe("private-a", Some(other_socket), None);
    let refused = client.expect("pusher:subscription_error").await;
    assert_eq!(data(&refused)["type"], "AuthError");
    assert_eq!(data(&refused)["status"], 401);
    let signed = auth::sign_channel_auth(KEY, SECRET, &client.socket_id, "private-a", None);
    client.subscribe("private-a", Some(signed), None);
    client
        .expect("pusher_internal:subscription_succeeded")
        .await;
}

#[tokio::test]
async fn presence_members_are_announced_to_the_others_and_removed_when_they_leave() {
    let (hub, app) = hub(|_| {});
    let mut alice = Client::connect(&hub, &app).await;
    let mut bob = Client::connect(&hub, &app).await;
    let first = alice.join("presence-room", "1").await;
    assert_eq!(data(&first)["presence"]["count"], 1);
    let second = bob.join("presence-room", "2").await;
    assert_eq!(data(&second)["presence"]["count"], 2);
    assert_eq!(data(&second)["presence"]["hash"]["1"], json!({"name": "1"}));
    let added = alice.expect("pusher_internal:member_added").await;
    assert_eq!(data(&added)["user_id"], "2");
    bob.nothing_pending().await;
    bob.hang_up();
    let removed = alice.expect("pusher_internal:member_removed").await;
    assert_eq!(data(&removed)["user_id"], "2");
}

#[tokio::test]
async fn a_presence_channel_refuses_a_member_over_its_limit() {
    let (hub, app) = hub(|a| a.max_presence_members = 1);
    let mut alice = Client::connect(&hub, &app).await;
    let mut bob = Client::connect(&hub, &app).await;
    alice.join("presence-room", "1").await;
    let channel_data = json!({"user_id": "2", "user_info": {}}).to_string();
    let auth = auth::sign_channel_auth(
        KEY,
        SECRET,
        &bob.socket_id,
        "presence-room",
        Some(&channel_data),
    );
    bob.subscribe("presence-room", Some(auth), Some(&channel_data));
    let refused = bob.expect("pusher:subscription_error").await;
    assert_eq!(data(&refused)["type"], "LimitReached");
    alice.nothing_pending().await;
}

#[tokio::test]
async fn client_events_reach_the_others_with_the_senders_user_id_and_are_not_echoed() {
    let (hub, app) = hub(|_| {});
    let mut alice = Client::connect(&hub, &app).await;
    let mut bob = Client::connect(&hub, &app).await;
    alice.join("presence-room", "1").await;
    bob.join("presence-room", "2").await;
    alice.expect("pusher_internal:member_added").await;
    alice.send(json!({"event": "client-typing", "channel": "presence-room", "data": {"on": true}}));
    let typing = bob.expect("client-typing").await;
    assert_eq!(typing["user_id"], "1");
    assert_eq!(data(&typing), json!({"on": true}));
    alice.nothing_pending().await;
}

#[tokio::test]
async fn client_events_are_refused_on_public_channels_and_when_the_app_disables_them() {
    let (hub, app) = hub(|_| {});
    let mut client = Client::connect(&hub, &app).await;
    client.subscribe("news", None, None);
    client
        .expect("pusher_internal:subscription_succeeded")
        .await;
    client.send(json!({"event": "client-x", "channel": "news", "data": {}}));
    let error = client.expect("pusher:error").await;
    assert!(data(&error)["message"]
        .as_str()
        .is_some_and(|m| m.contains("private and presence")));

    let (hub, app) = self::hub(|a| a.client_events = false);
    let mut client = Client::connect(&hub, &app).await;
    client.join("presence-room", "1").await;
    client.send(json!({"event": "client-x", "channel": "presence-room", "data": {}}));
    let error = client.expect("pusher:error").await;
    assert!(data(&error)["message"]
        .as_str()
        .is_some_and(|m| m.contains("not enabled")));
}

#[tokio::test]
async fn a_burst_of_client_events_over_the_limit_closes_4301() {
    let (hub, app) = hub(|_| {});
    let mut alice = Client::connect(&hub, &app).await;
    alice.join("presence-room", "1").await;
    // Twice the limit at once: a token bucket has no window edge for a burst to straddle.
    for _ in 0..2 * app.conf().client_events_per_second {
        alice.send(json!({"event": "client-x", "channel": "presence-room", "data": {}}));
    }
    assert_eq!(alice.closed().await, close::CLIENT_EVENT_RATE_LIMIT);
}

#[tokio::test]
async fn subscribe_churn_over_the_apps_rate_closes_4301() {
    let (hub, app) = hub(|a| a.max_subscriptions_per_second = 5);
    let mut client = Client::connect(&hub, &app).await;
    for i in 0..10 {
        client.subscribe(&format!("c{i}"), None, None);
    }
    assert_eq!(client.closed().await, close::CLIENT_EVENT_RATE_LIMIT);
}

#[tokio::test]
async fn a_connection_over_its_channel_limit_is_refused_that_channel() {
    let (hub, app) = hub(|a| a.max_channels = 2);
    let mut client = Client::connect(&hub, &app).await;
    for name in ["a", "b"] {
        client.subscribe(name, None, None);
        client
            .expect("pusher_internal:subscription_succeeded")
            .await;
    }
    client.subscribe("c", None, None);
    let refused = client.expect("pusher:subscription_error").await;
    assert_eq!(data(&refused)["type"], "LimitReached");
    assert_eq!(data(&refused)["status"], 429);
    // Leaving one makes room.
    client.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "a"}}));
    client.subscribe("c", None, None);
    client
        .expect("pusher_internal:subscription_succeeded")
        .await;
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_an_error_and_the_connection_stays() {
    let (hub, app) = hub(|a| a.max_message_size = 100);
    let mut client = Client::connect(&hub, &app).await;
    client.send(json!({"event": "pusher:ping", "data": {"pad": "x".repeat(200)}}));
    let error = client.expect("pusher:error").await;
    assert_eq!(data(&error)["code"], 4200);
    client.nothing_pending().await;
}

#[tokio::test]
async fn shutdown_closes_4200_so_clients_reconnect_elsewhere() {
    let (hub, app) = hub(|_| {});
    let (tx, rx) = watch::channel(false);
    let shutdown = tx.clone();
    let mut client = Client::connect_with(&hub, &app, (tx, rx)).await;
    shutdown.send(true).expect("the session watches");
    assert_eq!(client.closed().await, 4200);
}

#[tokio::test(start_paused = true)]
async fn silence_gets_a_ping_and_no_pong_closes_4201() {
    let (hub, app) = hub(|a| a.ping_interval = Duration::from_secs(60));
    let mut client = Client::connect(&hub, &app).await;
    // Virtual time: the waits below pass as soon as the runtime is idle.
    let hour = Duration::from_secs(3600);
    let ping = client.next_within(hour).await;
    assert!(
        matches!(&ping, Message::Text(t) if t.contains("pusher:ping")),
        "{ping:?}"
    );
    assert_eq!(client.closed_within(hour).await, 4201);
}

#[tokio::test]
async fn pings_from_a_client_that_does_not_read_are_bounded_and_end_in_4100() {
    let (hub, app) = hub(|_| {});
    let (server, mut client) = tokio::io::duplex(64 * 1024);
    let (_running, shutdown) = watch::channel(false);
    tokio::spawn(serve(server, None, hub, app, shutdown));
    // 1,200 pongs of 127 bytes: more than the stream (516) and the queue (512) hold, and the
    // pings left after the close still fit the stream toward the session.
    let ping = crate::hub::wire::tests::client(0x89, &[b'p'; 125]);
    for _ in 0..1_200 {
        client.write_all(&ping).await.unwrap();
    }
    let closed = tokio::time::timeout(FRAME_WAIT, async {
        loop {
            match server_frame(&mut client).await.expect("the close frame") {
                Message::Close(code) => return code,
                _ => continue,
            }
        }
    });
    assert_eq!(closed.await.expect("a close in time"), close::OVER_CAPACITY);
}
