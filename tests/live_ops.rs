//! Live operations: what triggers a reload (the file changing on disk however it is replaced,
//! SIGHUP, POST /admin/reload), that a bad file changes nothing, and that hub apps reload too.

mod common;
use common::pusher::*;
use common::*;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;

/// The fleet's config with workspace 1 pinned to `instance`.
fn pinned(stubs: &[Upstream], fleet: SocketAddr, admin: SocketAddr, instance: &str) -> String {
    let refs: Vec<&Upstream> = stubs.iter().collect();
    let routing = format!("assign: modulo\npins: {{ 1: {instance} }}");
    fleet_yaml(fleet, admin, &refs, &routing, "")
}

/// Waits until workspace 1 is served by `instance`.
async fn until_served_by(fleet: SocketAddr, instance: &str) {
    wait_for(
        &format!("workspace 1 to move to {instance}"),
        DEADLINE,
        || async {
            let r = send(
                fleet,
                "GET",
                "/api/sessions",
                &[("x-workspace-id", "1")],
                vec![],
            )
            .await;
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
    let mut stubs = Vec::new();
    for i in 1..=4 {
        stubs.push(Upstream::node(&format!("u{i}")).await);
    }
    let (fleet, admin) = (loopback(), loopback());
    let refs: Vec<&Upstream> = stubs.iter().collect();
    let yaml = fleet_yaml(fleet, admin, &refs, "", "");
    let gw = Gateway::start_with(&yaml, admin, &[fleet], &[WATCH]).await;
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
    // The counter moves just after the new routing is visible: wait for it, and the exact total
    // at the end shows no change was applied twice.
    until_sample(&gw, RELOADED, 4.0).await;

    // A broken file: the old configuration keeps serving, the refusal is counted and logged with
    // the problem's YAML path, and it is not retried while the file stays the same.
    let broken =
        pinned(&stubs, fleet, gw.admin, "u3").replace("listener: fleet", "listener: nowhere");
    rename_over(&path, &broken);
    until_sample(&gw, REFUSED, 1.0).await;
    until_served_by(fleet, "u2").await;
    let log = gw.log();
    assert!(
        log.contains("routes[0].listener") && log.contains("configuration not reloaded"),
        "{log}"
    );
    // Fixing the file applies it.
    rename_over(&path, &pinned(&stubs, fleet, gw.admin, "u4"));
    until_served_by(fleet, "u4").await;
    until_sample(&gw, RELOADED, 5.0).await;
    assert_eq!(gw.sample(REFUSED).await, 1.0, "a bad file is tried once");
    assert_eq!(gw.sample(RELOADED).await, 5.0, "one reload per change");
}

/// Waits until the metric `sample` reads `value`.
async fn until_sample(gw: &Gateway, sample: &str, value: f64) {
    wait_for(&format!("{sample} to read {value}"), DEADLINE, || async {
        (gw.sample(sample).await == value).then_some(())
    })
    .await;
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
    let refused = gw
        .sample(r#"fleetgate_config_reloads_total{result="needs_restart"}"#)
        .await;
    assert_eq!(refused, 1.0);
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

/// What became of one short request on a fresh connection.
#[derive(Debug, PartialEq)]
enum Fate {
    /// A complete response with this status.
    Served(u16),
    /// Nothing came back (not accepted, or closed before any response byte).
    Refused,
    /// A response started and was cut short.
    Cut(String),
}

/// A Node route the slow requests take (workspace 1, as [`short_request`]'s header says).
const SLOW: &str = "/api/sessions/webjs_1_1700000000_slowslow/status";
const SLOW_DELAYED: &str = "/api/sessions/webjs_1_1700000000_slowslow/status?delay_ms=3000";

async fn short_request(addr: SocketAddr, path: &str) -> Fate {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return Fate::Refused;
    };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-Workspace-Id: 1\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return Fate::Refused;
    }
    let mut out = Vec::new();
    let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut out)).await;
    if out.is_empty() {
        return Fate::Refused;
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Fate::Cut(text);
    };
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    let status = head.get(9..12).and_then(|s| s.parse().ok());
    match (read, status, length) {
        (Ok(Ok(_)), Some(status), Some(length)) if body.len() == length => Fate::Served(status),
        _ => Fate::Cut(text),
    }
}

/// A fleet of two stubs with `extra` top-level keys.
async fn fleet_with(extra: &str, args: &[&str]) -> (Vec<Upstream>, Gateway, SocketAddr, String) {
    let stubs = vec![Upstream::node("u1").await, Upstream::node("u2").await];
    let (fleet, admin) = (loopback(), loopback());
    let refs: Vec<&Upstream> = stubs.iter().collect();
    let yaml = fleet_yaml(fleet, admin, &refs, "", "") + extra;
    let gw = Gateway::start_with(&yaml, admin, &[fleet], args).await;
    (stubs, gw, fleet, yaml)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_lets_in_flight_requests_finish_and_cuts_none_mid_response() {
    let extra = "shutdown: { drain_delay: 1s, grace_period: 5s }\n";
    let (stubs, mut gw, fleet, _) = fleet_with(extra, &[]).await;
    // Four slow requests (3 s at the instance) in flight when SIGTERM arrives…
    let slow: Vec<_> = (0..4)
        .map(|_| tokio::spawn(async move { short_request(fleet, SLOW_DELAYED).await }))
        .collect();
    wait_for(
        "the slow requests to reach the instance",
        DEADLINE,
        || async {
            let seen = stubs.iter().flat_map(|s| s.paths.lock().unwrap().clone());
            (seen.filter(|p| p == SLOW).count() == 4).then_some(())
        },
    )
    .await;
    gw.terminate();
    // …and short ones started until the listener is gone.
    let mut fates = Vec::new();
    while fates
        .iter()
        .rev()
        .take(3)
        .filter(|f| **f == Fate::Refused)
        .count()
        < 3
    {
        fates.push(short_request(fleet, "/api/sessions").await);
        assert!(fates.len() < 100_000, "the listener never closed");
    }
    for task in slow {
        assert_eq!(
            task.await.unwrap(),
            Fate::Served(200),
            "a slow request in flight"
        );
    }
    let cut: Vec<_> = fates.iter().filter(|f| matches!(f, Fate::Cut(_))).collect();
    assert!(cut.is_empty(), "cut mid-response: {cut:?}");
    assert!(
        fates.contains(&Fate::Served(200)),
        "served during the drain delay"
    );
    assert_eq!(gw.exit_code(DEADLINE).await, Some(0), "{}", gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_upgrade_hands_the_sockets_over_and_short_requests_see_no_error() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("upgrade.sock");
    let socket = socket.to_str().unwrap();
    // A grace period with room for a request the old process accepted just before it stopped
    // accepting, on a loaded machine.
    let extra = "shutdown: { grace_period: 3s }\n";
    let (_stubs, mut old, fleet, yaml) = fleet_with(extra, &["--upgrade-socket", socket]).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut fates = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                fates.push(short_request(fleet, "/api/sessions").await);
            }
            fates
        })
    };
    // The new binary waits on the upgrade socket; SIGQUIT makes the old one hand its sockets over.
    let new = Gateway::launch(&yaml, old.admin, &["-u", "--upgrade-socket", socket]);
    let path = std::path::PathBuf::from(socket);
    wait_for("the new process to wait for the sockets", DEADLINE, || {
        let ready = path.exists();
        async move { ready.then_some(()) }
    })
    .await;
    old.signal("QUIT");
    assert_eq!(old.exit_code(DEADLINE).await, Some(0), "{}", old.log());
    // The old process is gone: the new one serves on the same sockets.
    for _ in 0..20 {
        assert_eq!(
            short_request(fleet, "/api/sessions").await,
            Fate::Served(200),
            "{}",
            new.log()
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let fates = load.await.unwrap();
    let failed: Vec<_> = fates.iter().filter(|f| **f != Fate::Served(200)).collect();
    assert!(!fates.is_empty());
    assert!(
        failed.is_empty(),
        "{} of {}: {failed:?}",
        failed.len(),
        fates.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_on_port_zero_each_get_a_port_and_the_admin_tells_them() {
    let stub = Upstream::node("u1").await;
    let yaml = format!(
        "admin: {{ listen: 127.0.0.1:0 }}\nlisteners:\n  fleet: {{ listen: 127.0.0.1:0 }}\n  edge: {{ listen: 127.0.0.1:0 }}\nupstreams:\n  node:\n    instances:\n{}routes:\n  - {{ name: a, listener: fleet, upstream: node }}\n  - {{ name: b, listener: edge, upstream: node }}\n",
        instances_yaml([&stub])
    );
    let (gw, listeners) = Gateway::start_bound(&yaml).await;
    let (fleet, edge) = (listeners["fleet"], listeners["edge"]);
    let ports = [fleet.port(), edge.port(), gw.admin.port()];
    assert!(ports.iter().all(|p| *p != 0), "{ports:?}");
    assert!(
        ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2],
        "{ports:?}"
    );
    for addr in [fleet, edge] {
        let r = send(addr, "GET", "/api/sessions", &[], vec![]).await;
        assert_eq!(
            (r.status, r.instance()),
            (200, "u1".to_string()),
            "via {addr}"
        );
    }
    let told = send(gw.admin, "GET", "/admin/listeners", &[], vec![])
        .await
        .json();
    assert_eq!(told["admin"], gw.admin.to_string());
}
