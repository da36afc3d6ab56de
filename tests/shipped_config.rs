//! The shipped `gateway.yaml`, unchanged but for its addresses (moved to ephemeral loopback
//! ports), in front of stand-ins that behave like the real apps: four Node instances (`/health`,
//! 404 off their routes) and a Laravel app with no health route (Laravel 10 style) or with
//! Laravel 11's `/up`. After three health intervals nothing is marked down, and the three flows a
//! new user tries first work: a signed webhook reaches Laravel, its QR event reaches an Echo
//! client, and `GET /` through the edge is answered by Laravel.

mod common;
use common::clients::*;
use common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

const HMAC_SECRET: &str = "shipped-config-hmac";

/// The shipped file's interval is 5 s: four checks of each instance span three intervals.
const CHECKS: usize = 4;
const CHECKS_DEADLINE: Duration = Duration::from_secs(40);

struct Stack {
    gw: Gateway,
    laravel: Upstream,
    nodes: Vec<Upstream>,
    edge: SocketAddr,
    hub: SocketAddr,
}

/// The shipped file with each address it names replaced; fails if one is missing, so a change
/// of the file's shape is noticed here.
fn shipped_yaml(moves: &[(&str, SocketAddr)]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.yaml");
    let mut yaml = std::fs::read_to_string(path).unwrap();
    // Through placeholders, so no replacement can touch an address another one wrote.
    for (i, (from, _)) in moves.iter().enumerate() {
        assert!(yaml.contains(from), "gateway.yaml no longer names {from}");
        yaml = yaml.replace(from, &format!("@@{i}@@"));
    }
    for (i, (_, to)) in moves.iter().enumerate() {
        yaml = yaml.replace(&format!("@@{i}@@"), &to.to_string());
    }
    yaml
}

/// Node stand-ins, and the shipped file with its addresses moved to them, `laravel` and free
/// loopback ports: `(yaml, nodes, [fleet, edge, hub, admin])`.
async fn shipped_for(laravel: &Upstream) -> (String, Vec<Upstream>, [SocketAddr; 4]) {
    let mut nodes = Vec::new();
    for i in 1..=4 {
        nodes.push(Upstream::node(&format!("node-{i}")).await);
    }
    let (fleet, edge, hub, admin) = (loopback(), loopback(), loopback(), loopback());
    let yaml = shipped_yaml(&[
        ("127.0.0.1:9901", admin),
        ("127.0.0.1:3000", fleet),
        ("0.0.0.0:8088", edge),
        ("0.0.0.0:8080", hub),
        ("127.0.0.1:3001", nodes[0].addr),
        ("127.0.0.1:3002", nodes[1].addr),
        ("127.0.0.1:3003", nodes[2].addr),
        ("127.0.0.1:3004", nodes[3].addr),
        ("127.0.0.1:8000", laravel.addr),
    ]);
    (yaml, nodes, [fleet, edge, hub, admin])
}

/// The variables the shipped file refers to.
const ENV: [(&str, &str); 4] = [
    ("WHATSAPP_HMAC_SECRET", HMAC_SECRET),
    ("REVERB_APP_ID", APP_ID),
    ("REVERB_APP_KEY", KEY),
    ("REVERB_APP_SECRET", SECRET),
];

async fn shipped_in_front_of(laravel: Upstream) -> Stack {
    let (yaml, nodes, [fleet, edge, hub, admin]) = shipped_for(&laravel).await;
    let gw = Gateway::start_env(&yaml, admin, &[fleet, edge, hub], &ENV).await;
    Stack {
        gw,
        laravel,
        nodes,
        edge,
        hub,
    }
}

/// `fleetgate validate` on the shipped file in front of `laravel`: exit code and stderr.
async fn validate_in_front_of(laravel: &Upstream) -> (Option<i32>, String) {
    let (yaml, _nodes, _) = shipped_for(laravel).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, yaml).unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetgate"))
        .arg("validate")
        .arg("-c")
        .arg(&path)
        .envs(ENV)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, run).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_warns_when_a_groups_health_path_answers_404_and_still_accepts_the_file() {
    let (code, stderr) = validate_in_front_of(&Upstream::laravel("laravel").await).await;
    assert_eq!(code, Some(0), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("upstreams.laravel.health.path: /up answers 404 on `laravel`"),
        "{stderr}"
    );
    let (code, stderr) = validate_in_front_of(&Upstream::laravel11("laravel").await).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("warning:"), "{stderr}");
}

/// Waits until every upstream has been health-checked [`CHECKS`] times.
async fn three_intervals(s: &Stack) {
    let upstreams: Vec<&Upstream> = s.nodes.iter().chain([&s.laravel]).collect();
    wait_for("three health intervals", CHECKS_DEADLINE, || {
        let done = upstreams
            .iter()
            .all(|u| u.health_checks.load(Ordering::SeqCst) >= CHECKS);
        async move { done.then_some(()) }
    })
    .await;
}

/// Every instance of every group, as `/admin/upstreams` reports it: `(name, healthy, status of
/// the last check)`.
async fn health(gw: &Gateway) -> Vec<(String, bool, Value)> {
    let upstreams = gw.upstreams().await;
    let groups = upstreams["groups"].as_array().cloned().unwrap_or_default();
    groups
        .iter()
        .flat_map(|g| g["instances"].as_array().cloned().unwrap_or_default())
        .map(|i| {
            let name = i["name"].as_str().unwrap_or("?").to_string();
            (name, i["healthy"] == true, i["last_check_status"].clone())
        })
        .collect()
}

/// `laravel_check`: what Laravel answers the shipped check (`GET /up`).
async fn the_three_first_flows_work(s: Stack, laravel_check: u16) {
    three_intervals(&s).await;
    let states = health(&s.gw).await;
    let expected: Vec<(String, bool, Value)> =
        [("laravel".to_string(), true, json!(laravel_check))]
            .into_iter()
            .chain((1..=4).map(|i| (format!("node-{i}"), true, json!(200))))
            .collect();
    assert_eq!(states, expected, "{}", s.gw.log());

    let env = [
        ("EDGE_PORT", s.edge.port().to_string()),
        ("HMAC_SECRET", HMAC_SECRET.to_string()),
    ];
    let run = scenario_with(&s.gw, s.hub, "signed-qr-webhook.js", &env).await;
    let webhook = run.one("webhook");
    assert_eq!(webhook["status"], 200, "{run}");
    assert_eq!(webhook["body"]["instance"], "laravel", "{run}");
    assert_eq!(
        webhook["body"]["path"], "/api/whatsapp/webhooks/webjs",
        "{run}"
    );
    assert_eq!(webhook["body"]["body_sha256"], webhook["sha256"], "{run}");
    let received = run.one("received");
    assert_eq!(received["data"]["workspace_id"], json!(7), "{run}");
    assert_eq!(received["workspace_id_type"], "number", "{run}");
    assert_eq!(
        received["data"]["qr_code_base64"],
        "data:image/png;base64,iVBORw0KGgo="
    );

    let home = send(s.edge, "GET", "/", &[("accept", "text/html")], vec![]).await;
    assert_eq!(home.status, 200, "{}", String::from_utf8_lossy(&home.body));
    let answer: Value = home.json();
    assert_eq!(
        (answer["instance"].as_str(), answer["path"].as_str()),
        (Some("laravel"), Some("/"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_config_serves_a_laravel_app_without_a_health_route() {
    let s = shipped_in_front_of(Upstream::laravel("laravel").await).await;
    the_three_first_flows_work(s, 404).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_config_serves_a_laravel_11_app_with_up() {
    let s = shipped_in_front_of(Upstream::laravel11("laravel").await).await;
    the_three_first_flows_work(s, 200).await;
}
