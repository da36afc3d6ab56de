//! The hub with real clients: Laravel Echo 2 over pusher-js 8 (Node build) and the `pusher` 5
//! server library, from the npm project in tests/clients. Each test starts the real gateway with a
//! hub-only config, runs one Node scenario against it (which prints one JSON line per observed
//! event and exits by itself within its deadline; killed if it does not), and asserts on the lines.

mod common;
use common::clients::*;
use common::*;
use serde_json::{json, Value};

/// Runs `node tests/clients/{script}` against `hub` (see [`scenario_with`]).
async fn scenario(hub: &Hub, script: &str) -> Run {
    scenario_with(&hub.gw, hub.addr, script, &[]).await
}

fn is_socket_id(s: &Value) -> bool {
    s.as_str()
        .is_some_and(fleetgate::hub::protocol::is_valid_socket_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_channel_listen_receives_an_event_the_pusher_library_triggers() {
    let h = hub("").await;
    let run = scenario(&h, "public-listen.js").await;
    assert!(is_socket_id(&run.one("connected")["socket_id"]), "{run}");
    assert_eq!(run.one("triggered")["status"], 200, "{run}");
    assert_eq!(
        run.one("received")["data"],
        json!({"workspace_id": 7, "account_id": "webjs_7_1700000000_ab12", "status": "ready"}),
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_private_listen_is_authorised_by_authorize_channel_and_keeps_workspace_id_a_number() {
    let h = hub("").await;
    let run = scenario(&h, "private-listen.js").await;
    let socket = &run.one("connected")["socket_id"];
    let auth = run.one("auth_request");
    assert_eq!(auth["socket_id"], *socket, "{run}");
    assert_eq!(auth["channel"], "private-workspace.7", "{run}");
    assert!(run.all("subscription_error").is_empty(), "{run}");
    assert_eq!(run.one("triggered")["status"], 200, "{run}");
    let received = run.one("received");
    let session = "webjs_7_1700000000_ab12";
    assert_eq!(
        received["data"],
        json!({
            "qr_code_base64": "data:image/png;base64,iVBORw0KGgo=", "expires_in_seconds": 300,
            "workspace_id": 7, "account_id": session, "session_id": session,
            "timestamp": "2024-01-01T00:00:00.000Z",
        }),
        "{run}"
    );
    // The page compares it strictly: a number, as Laravel sent it.
    assert_eq!(received["workspace_id_type"], "number", "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_presence_here_joining_and_leaving_count_users_not_sockets() {
    let h = hub("").await;
    let run = scenario(&h, "presence.js").await;
    let alice = json!({"id": 1, "name": "user 1"});
    let bob = json!({"id": 2, "name": "user 2"});
    assert_eq!(
        run.where_("here", "client", "alice")[0]["users"],
        json!([alice]),
        "{run}"
    );
    for client in ["bob", "bob-second-socket"] {
        let here = run.where_("here", "client", client);
        let mut users = here[0]["users"].as_array().unwrap().clone();
        users.sort_by_key(|u| u["id"].as_u64());
        assert_eq!(users, vec![alice.clone(), bob.clone()], "{client}\n{run}");
    }
    // One `joining` in all: alice sees bob once (his second socket is not a second join), and
    // no client is told about its own user.
    let joining = run.all("joining");
    assert_eq!(joining.len(), 1, "{run}");
    assert_eq!(joining[0]["client"], "alice", "{run}");
    assert_eq!(joining[0]["user"], bob, "{run}");
    assert!(
        run.position("joining", "client", "alice") < run.position("marker", "marker", "after-bob"),
        "{run}"
    );
    let after = &run.one("after_second_socket_left")["body"];
    assert_eq!(after["subscription_count"], 2, "{run}");
    assert_eq!(after["user_count"], 2, "{run}");
    // `leaving` once, and only after bob's last socket left (not when his second one did).
    let leaving = run.all("leaving");
    assert_eq!(leaving.len(), 1, "{run}");
    assert_eq!(leaving[0]["client"], "alice", "{run}");
    assert_eq!(leaving[0]["user"], bob, "{run}");
    assert!(
        run.position("leaving", "client", "alice")
            > run.position("marker", "marker", "after-bob-second-socket-left"),
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_whisper_reaches_the_other_subscriber_never_the_sender() {
    let h = hub("").await;
    let run = scenario(&h, "whisper.js").await;
    let whispers = run.all("whisper");
    for w in &whispers {
        assert_ne!(
            w["client"], w["data"]["from"],
            "echoed to the sender\n{run}"
        );
    }
    let private: Vec<_> = whispers
        .iter()
        .filter(|w| w["channel"] == "private-chat.5")
        .collect();
    assert_eq!(private.len(), 2, "{run}");
    // The first whisper alice sees is bob's answer (her own would have come first).
    assert_eq!(private[0]["client"], "bob", "{run}");
    assert_eq!(
        private[0]["data"],
        json!({"from": "alice", "typing": true}),
        "{run}"
    );
    assert_eq!(private[1]["client"], "alice", "{run}");
    assert_eq!(private[1]["data"]["from"], "bob", "{run}");
    assert!(private[0]["metadata"]["user_id"].is_null(), "{run}");
    // On presence channels the hub adds the sender's user id (pusher-js: the callback's metadata).
    let presence: Vec<_> = whispers
        .iter()
        .filter(|w| w["channel"] == "presence-chat-room.5")
        .collect();
    assert_eq!(presence.len(), 1, "{run}");
    assert_eq!(presence[0]["client"], "alice", "{run}");
    assert_eq!(presence[0]["metadata"]["user_id"], "2", "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_error_fires_on_a_bad_signature_and_the_socket_stays_connected() {
    let h = hub("").await;
    let run = scenario(&h, "auth-error.js").await;
    let error = &run.one("subscription_error")["error"];
    assert_eq!(error["type"], "AuthError", "{run}");
    assert_eq!(error["status"], 401, "{run}");
    assert!(error["error"].is_string(), "{run}");
    let received = run.one("received");
    assert_eq!(received["channel"], "workspace.7", "{run}");
    assert_eq!(received["data"], json!({"status": "ready"}), "{run}");
    let after = run.one("still_connected");
    assert_eq!(
        after["socket_id"],
        run.one("connected")["socket_id"],
        "{run}"
    );
    assert_eq!(after["state"], "connected", "{run}");
    assert_eq!(after["state_changes"], json!([]), "no reconnect\n{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_library_batch_to_others_and_channel_queries_see_the_echo_clients() {
    let h = hub("").await;
    let run = scenario(&h, "server-api.js").await;
    let got = |client: &str, name: &str| -> Vec<Value> {
        run.where_("received", "client", client)
            .into_iter()
            .filter(|l| l["name"] == name)
            .map(|l| l["data"].clone())
            .collect()
    };
    assert_eq!(run.one("trigger_batch")["status"], 200, "{run}");
    for client in ["carol", "dave"] {
        assert_eq!(
            got(client, "batch-one"),
            vec![json!({"n": 1, "workspace_id": 7})],
            "{run}"
        );
        assert_eq!(got(client, "after"), vec![json!({"n": 4})], "{run}");
    }
    assert_eq!(got("alice", "batch-two"), vec![json!({"n": 2})], "{run}");
    // `socket_id` (Laravel's toOthers()) skips that socket only.
    assert_eq!(run.one("trigger_to_others")["status"], 200, "{run}");
    assert_eq!(got("dave", "to-others"), vec![json!({"n": 3})], "{run}");
    assert!(got("carol", "to-others").is_empty(), "{run}");

    let presence = run.one("get_presence_channels");
    assert_eq!(presence["status"], 200, "{run}");
    assert_eq!(
        presence["body"],
        json!({"channels": {"presence-workspace.7": {"user_count": 2}}}),
        "{run}"
    );
    let channels = run.one("get_channels");
    assert_eq!(channels["status"], 200, "{run}");
    let mut names: Vec<_> = channels["body"]["channels"]
        .as_object()
        .unwrap_or_else(|| panic!("{run}"))
        .keys()
        .cloned()
        .collect();
    names.sort();
    assert_eq!(names, ["presence-workspace.7", "workspace.7"], "{run}");
    let channel = run.one("get_channel");
    assert_eq!(channel["status"], 200, "{run}");
    assert_eq!(
        channel["body"],
        json!({"occupied": true, "subscription_count": 3, "user_count": 2}),
        "{run}"
    );
    let users = run.one("get_users");
    assert_eq!(users["status"], 200, "{run}");
    let mut ids: Vec<_> = users["body"]["users"]
        .as_array()
        .unwrap_or_else(|| panic!("{run}"))
        .iter()
        .map(|u| u["id"].clone())
        .collect();
    ids.sort_by_key(|id| id.to_string());
    assert_eq!(ids, [json!("1"), json!("2")], "ids are strings\n{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_js_accepts_a_sub_second_activity_timeout_and_idle_pings_keep_the_connection() {
    let h = hub("      activity_timeout: 500ms\n").await;
    let run = scenario(&h, "keepalive.js").await;
    let connected = run.one("connected");
    // pusher-js refuses a handshake with activity_timeout 0; the hub rounds up to 1 s.
    assert_eq!(connected["activity_timeout_ms"], 1000, "{run}");
    assert!(run.all("keepalive").len() >= 3, "{run}");
    let after = run.one("still_connected");
    assert_eq!(after["socket_id"], connected["socket_id"], "{run}");
    assert_eq!(after["state"], "connected", "{run}");
    assert_eq!(after["state_changes"], json!([]), "no reconnect\n{run}");
}
