//! Live operations: what triggers a reload (the file changing on disk however it is replaced,
//! SIGHUP, POST /admin/reload), that a bad file changes nothing, and that hub apps reload too.

mod common;
use common::pusher::*;
use common::*;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;

/// The fleet's config with workspace 1 pinned to `instance`.
fn pinned(stubs: &[NodeStub], fleet: SocketAddr, admin: SocketAddr, instance: &str) -> String {
    let refs: Vec<&NodeStub> = stubs.iter().collect();
    let routing = format!("assign: modulo\npins: {{ 1: {instance} }}");
    fleet_yaml(fleet, admin, &refs, &routing, "")
}

/// Waits until workspace 1 is served by `instance`.
async fn until_served_by(fleet: SocketAddr, instance: &str) {
    wait_for(
        &format!("workspace 1 to move to {instance}"),
        DEADLINE,
        || async {
            let r = send(fleet, "GET", "/api/x", &[("x-workspace-id", "1")], vec![]).await;
            (r.status == 200 && r.instance() == instance).then_some(())
        },
    )
    .await;
}

/// Replaces `path` the way editors do: write a new file beside it, then rename it over.
fn rename_over(path: &Path, text: &str) {
    let fresh = path.with_extension("yaml.new");
    std::fs::write(&fresh, text).unwrap();
    std::fs::rename(&fresh, path).unwrap();
}

/// Replaces `path` the way Kubernetes updates a mounted ConfigMap: the file is a symlink into a
/// data directory, and a new directory is swapped in by renaming a new symlink over the old.
fn symlink_swap(path: &Path, text: &str, generation: u32) {
    let dir = path.parent().unwrap();
    let data = dir.join(format!("..data_{generation}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("gateway.yaml"), text).unwrap();
    let link = dir.join("gateway.yaml.link");
    std::os::unix::fs::symlink(data.join("gateway.yaml"), &link).unwrap();
    std::fs::rename(&link, path).unwrap();
}

const RELOADED: &str = r#"fleetgate_config_reloads_total{result="ok"}"#;
const REFUSED: &str = r#"fleetgate_config_reloads_total{result="invalid"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_is_applied_however_it_is_replaced_and_a_bad_one_changes_nothing() {
    let (stubs, gw, fleet) = fleet("", "").await;
    let path = gw.config_path.clone();
    until_served_by(fleet, "u2").await; // 1 % 4 = 1

    std::fs::write(&path, pinned(&stubs, fleet, gw.admin, "u4")).unwrap();
    until_served_by(fleet, "u4").await;
    rename_over(&path, &pinned(&stubs, fleet, gw.admin, "u3"));
    until_served_by(fleet, "u3").await;
    symlink_swap(&path, &pinned(&stubs, fleet, gw.admin, "u1"), 1);
    until_served_by(fleet, "u1").await;
    symlink_swap(&path, &pinned(&stubs, fleet, gw.admin, "u2"), 2);
    until_served_by(fleet, "u2").await;
    assert_eq!(gw.sample(RELOADED).await, 4.0, "one reload per change");

    // A broken file: the old configuration keeps serving, the refusal is counted and logged with
    // the problem's YAML path, and it is not retried while the file stays the same.
    let broken =
        pinned(&stubs, fleet, gw.admin, "u3").replace("listener: fleet", "listener: nowhere");
    rename_over(&path, &broken);
    wait_for("the refusal to be counted", DEADLINE, || async {
        (gw.sample(REFUSED).await == 1.0).then_some(())
    })
    .await;
    until_served_by(fleet, "u2").await;
    let log = gw.log();
    assert!(
        log.contains("routes[0].listener") && log.contains("configuration not reloaded"),
        "{log}"
    );
    // Fixing the file applies it.
    rename_over(&path, &pinned(&stubs, fleet, gw.admin, "u4"));
    until_served_by(fleet, "u4").await;
    assert_eq!(gw.sample(REFUSED).await, 1.0, "a bad file is tried once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_post_admin_reload_reload_the_file() {
    let (_stubs, gw, _fleet) = fleet("", "").await;
    gw.signal("HUP");
    wait_for("SIGHUP to reload", DEADLINE, || async {
        (gw.sample(RELOADED).await == 1.0).then_some(())
    })
    .await;
    assert!(gw.log().contains("SIGHUP"), "{}", gw.log());
    let r = send(gw.admin, "POST", "/admin/reload", &[], vec![]).await;
    assert_eq!(r.status, 200);
    assert_eq!(gw.sample(RELOADED).await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_only_a_restart_can_apply_are_refused_as_needs_restart() {
    let (stubs, gw, fleet) = fleet("", "").await;
    let moved = pinned(&stubs, loopback(), gw.admin, "u1").replace("threads: 2", "threads: 1");
    let r = gw.reload(&moved).await;
    assert_eq!(r.status, 422);
    let problems = r.json()["error"]["problems"].to_string();
    assert!(
        problems.contains("needs restart") && problems.contains("listeners"),
        "{problems}"
    );
    assert!(problems.contains("threads"), "{problems}");
    assert_eq!(
        gw.sample(r#"fleetgate_config_reloads_total{result="needs_restart"}"#)
            .await,
        1.0
    );
    until_served_by(fleet, "u2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_rotates_a_hub_secret_and_a_removed_app_closes_its_sockets_with_4200() {
    let h = hub("").await;
    let (mut ws, _) = established(h.addr).await;
    subscribe(&mut ws, "feed", None, None).await;
    let app = |id: &str, key: &str, secret: &str| {
        format!("    - {{ id: {id}, key: {key}, secret: {secret} }}\n")
    };
    let admin = h.gw.admin;

    // Rotate the secret: the old one stops signing, the socket stays and hears the new events.
    let rotated = hub_yaml(h.addr, admin, &app(APP_ID, KEY, "rotated-secret"));
    assert_eq!(h.gw.reload(&rotated).await.status, 200);
    let event = json!({"name": "after", "channel": "feed", "data": "1"});
    assert_eq!(publish(h.addr, event.clone()).await.status, 401);
    let creds = (APP_ID, KEY, "rotated-secret");
    let r = post_api_as(h.addr, creds, "events", event).await;
    assert_eq!(r.status, 200);
    assert_eq!(until_event(&mut ws, "after").await["data"], "1");

    // Replace the app with another: its sockets are told to reconnect (4200) and are then refused.
    let replaced = hub_yaml(h.addr, admin, &app("app-2", "key-2", "secret-2"));
    assert_eq!(h.gw.reload(&replaced).await.status, 200);
    assert_eq!(close_code(&mut ws).await, Some(4200));
    let mut refused = connect(h.addr, KEY).await;
    assert_eq!(close_code(&mut refused).await, Some(4001));
    let mut other = connect(h.addr, "key-2").await;
    assert_eq!(
        next(&mut other).await["event"],
        "pusher:connection_established"
    );
}
