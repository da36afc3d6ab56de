//! Observability end to end: the admin endpoints, request ids and the access log, `promtool check
//! metrics` on a live scrape, and every query of the Grafana dashboard evaluated by a real
//! Prometheus (Debian's `prometheus` package) scraping the real gateway on loopback.

mod common;
use common::pusher::*;
use common::*;
use fleetgate::signing::{sign, Scheme, Secret};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const HMAC_SECRET: &str = "obs-webhook-secret-value";
const WEBHOOK_PATH: &str = "/api/whatsapp/webhooks/webjs";

/// The gateway with every kind of traffic: a workspace fleet (n1, n2), an edge webhook route to
/// Laravel that publishes `qr_code_generated` to the hub, and a hub app.
struct Stack {
    _stubs: Vec<Upstream>,
    _laravel: Upstream,
    gw: Gateway,
    fleet: SocketAddr,
    edge: SocketAddr,
    hub: SocketAddr,
    /// The configuration without `extra` (for reload tests).
    yaml: String,
}

fn stack_yaml(
    addrs: [SocketAddr; 4],
    stubs: &[Upstream],
    laravel: &Upstream,
    extra: &str,
) -> String {
    let [admin, fleet, edge, hub] = addrs;
    let (n1, n2, laravel) = (stubs[0].addr, stubs[1].addr, laravel.addr);
    format!(
        r#"threads: 2
admin: {{ listen: {admin} }}
listeners:
  fleet: {{ listen: {fleet}, health: true }}
  edge: {{ listen: {edge} }}
  hub: {{ listen: {hub} }}
upstreams:
  node:
    instances: [{{ name: n1, addr: {n1} }}, {{ name: n2, addr: {n2} }}]
    health: {{ interval: 300ms, timeout: 250ms }}
    routing: {{ assign: modulo }}
  laravel: {{ instances: [{{ name: laravel, addr: {laravel} }}] }}
routes:
  - name: node-api
    listener: fleet
    upstream: node
    treatment: workspace
  - name: hooks
    listener: edge
    path_prefix: {WEBHOOK_PATH}
    upstream: laravel
    treatment: webhook
    webhook:
      scheme: hex-timestamp-body
      secrets: ["{HMAC_SECRET}"]
      publish:
        - event: qr_code_generated
          channel: "private-workspace.{{data.workspace_id}}"
          name: qr-code-generated
          payload: {{ session_id: "{{data.session_id}}" }}
hub:
  listener: hub
  apps: [{{ id: {APP_ID}, key: {KEY}, secret: {SECRET}, max_message_size: 64KiB }}]
shutdown: {{ drain_delay: 3s, grace_period: 1s }}
{extra}"#
    )
}

async fn stack(extra: &str) -> Stack {
    let stubs = vec![Upstream::node("n1").await, Upstream::node("n2").await];
    let laravel = Upstream::laravel("laravel").await;
    let addrs = [loopback(), loopback(), loopback(), loopback()];
    let [admin, fleet, edge, hub] = addrs;
    let gw = Gateway::start(
        &stack_yaml(addrs, &stubs, &laravel, extra),
        admin,
        &[fleet, edge, hub],
    )
    .await;
    let yaml = stack_yaml(addrs, &stubs, &laravel, "");
    Stack {
        _stubs: stubs,
        _laravel: laravel,
        gw,
        fleet,
        edge,
        hub,
        yaml,
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A `qr_code_generated` webhook for `workspace`, signed with `secret`.
async fn webhook(edge: SocketAddr, secret: &str, workspace: u64, extra: &[(&str, &str)]) -> Resp {
    let body = format!(
        r#"{{"event":"qr_code_generated","data":{{"workspace_id":{workspace},"session_id":"webjs_{workspace}_{}","qr_code":"x"}}}}"#,
        unix_now()
    );
    let key = Secret::from_config(Scheme::HexTimestampBody, secret).unwrap();
    let signed = sign(
        Scheme::HexTimestampBody,
        &key,
        body.as_bytes(),
        unix_now(),
        None,
    );
    let mut headers: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    headers.push(("content-type", "application/json"));
    headers.extend_from_slice(extra);
    send(edge, "POST", WEBHOOK_PATH, &headers, body.into_bytes()).await
}

async fn admin_get(gw: &Gateway, path: &str) -> Resp {
    send(gw.admin, "GET", path, &[], Vec::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_ready_then_draining_and_the_config_is_shown_redacted_with_its_hash() {
    // `access_log: {}`: on, to stdout (which the harness keeps in the gateway's log file).
    let mut s = stack("access_log: {}\n").await;
    let ready = wait_for("/readyz to answer 200", DEADLINE, || async {
        let r = admin_get(&s.gw, "/readyz").await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(ready.json()["status"], "ready");
    // The probes: `/up` on the hub's listener; all three on a listener with `health: true`,
    // answered there and never forwarded; a listener without it routes them as any path.
    let probe = |addr: SocketAddr, path: &'static str| async move {
        let r = send(addr, "GET", path, &[], Vec::new()).await;
        (r.status, r.json())
    };
    let ready = json!({"status": "ready"});
    assert_eq!(probe(s.hub, "/up").await, (200, ready.clone()));
    assert_eq!(probe(s.gw.admin, "/up").await, (200, ready.clone()));
    assert_eq!(probe(s.hub, "/healthz").await.0, 404);
    assert_eq!(probe(s.fleet, "/up").await, (200, ready.clone()));
    assert_eq!(probe(s.fleet, "/readyz").await, (200, ready));
    assert_eq!(
        probe(s.fleet, "/healthz").await,
        (200, json!({"status": "ok"}))
    );
    assert_eq!(probe(s.edge, "/healthz").await.0, 404);

    // The effective config: defaults filled in, every secret redacted, and its hash.
    let shown = admin_get(&s.gw, "/admin/config").await;
    assert_eq!(shown.status, 200);
    let text = String::from_utf8_lossy(&shown.body).into_owned();
    assert!(
        !text.contains(HMAC_SECRET) && !text.contains(SECRET),
        "{text}"
    );
    let body = shown.json();
    let config = &body["config"];
    assert_eq!(
        config["routes"][1]["webhook"]["secrets"],
        json!(["<redacted>"])
    );
    assert_eq!(config["hub"]["apps"][0]["secret"], "<redacted>");
    assert_eq!(config["routes"][1]["upstream"], "laravel");
    assert_eq!(
        config["routes"][0]["read_timeout"], "65s",
        "defaults filled in"
    );
    let hash = body["hash"].as_str().unwrap().to_string();
    assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
    let scrape = s.gw.metrics().await;
    let info = format!(r#"fleetgate_config_info{{hash="{hash}"}}"#);
    assert_eq!(sample(&scrape, &info), Some(1.0), "{scrape}");

    // A failed reload changes nothing and is counted; a good one changes the hash.
    let bad = s.gw.reload("routes: [{ name: x }]\n").await;
    assert_eq!(bad.status, 422);
    let after_bad = admin_get(&s.gw, "/admin/config").await.json();
    assert_eq!(after_bad["hash"], hash.as_str());
    let changed = s.yaml.replace("interval: 300ms", "interval: 400ms") + "access_log: {}\n";
    assert_eq!(s.gw.reload(&changed).await.status, 200);
    let new_hash = admin_get(&s.gw, "/admin/config").await.json()["hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_hash, hash);
    let scrape = s.gw.metrics().await;
    assert_eq!(sample(&scrape, &info), None, "the old hash is gone");
    let info = format!(r#"fleetgate_config_info{{hash="{new_hash}"}}"#);
    assert_eq!(sample(&scrape, &info), Some(1.0));
    // One POST each (the test gateway does not watch the file).
    for (result, count) in [("invalid", 1.0), ("ok", 1.0), ("needs_restart", 0.0)] {
        let series = format!(r#"fleetgate_config_reloads_total{{result="{result}"}}"#);
        assert_eq!(sample(&scrape, &series), Some(count), "{series}");
    }

    // SIGTERM: /readyz turns 503 while listeners still accept, then the process exits 0.
    s.gw.terminate();
    let draining = wait_for("/readyz to answer 503", DEADLINE, || async {
        let r = try_send(s.gw.admin, "GET", "/readyz", &[], Vec::new()).await;
        r.ok().filter(|r| r.status == 503)
    })
    .await;
    assert_eq!(draining.json()["status"], "draining");
    assert_eq!(admin_get(&s.gw, "/healthz").await.status, 200);
    let draining = json!({"status": "draining"});
    assert_eq!(probe(s.hub, "/up").await, (503, draining.clone()));
    assert_eq!(probe(s.gw.admin, "/up").await, (503, draining.clone()));
    assert_eq!(probe(s.fleet, "/readyz").await, (503, draining));
    assert_eq!(probe(s.fleet, "/healthz").await.0, 200);
    let during = send(
        s.fleet,
        "GET",
        "/api/sessions",
        &[("x-workspace-id", "1")],
        vec![],
    )
    .await;
    assert_eq!(
        during.status, 200,
        "listeners accept during the drain delay"
    );
    assert_eq!(s.gw.exit_code(DEADLINE).await, Some(0), "{}", s.gw.log());
    let logged = s.gw.log();
    let line = logged
        .lines()
        .find(|l| l.starts_with('{') && l.contains(r#""path":"/api/sessions""#))
        .unwrap_or_else(|| panic!("no access log line on stdout:\n{logged}"));
    let line: Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["route"], "node-api");
}

#[test]
fn grafana_folder_mounts_as_a_provisioning_folder() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana");
    let yaml = |path: &str| -> Value {
        serde_yaml_ng::from_slice(&std::fs::read(root.join(path)).unwrap()).unwrap()
    };
    // Mounted over /etc/grafana/provisioning, the provider must point at the dashboards beside it.
    let provider = yaml("dashboards/fleetgate.yaml");
    assert_eq!(
        provider["providers"][0]["options"]["path"],
        "/etc/grafana/provisioning/dashboards"
    );
    let datasource = &yaml("datasources/prometheus.yaml")["datasources"][0];
    assert_eq!(datasource["type"], "prometheus");
    let dashboard: Value =
        serde_json::from_slice(&std::fs::read(root.join("dashboards/fleetgate.json")).unwrap())
            .unwrap();
    assert_eq!(
        dashboard["templating"]["list"][0]["current"]["value"], datasource["uid"],
        "the datasource variable starts on the provisioned datasource"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_has_an_id_sent_upstream_and_back_and_one_access_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("access.log");
    let s = stack(&format!("access_log: {{ path: {} }}\n", log_path.display())).await;

    let kept = send(
        s.fleet,
        "GET",
        "/api/sessions?token=do-not-log",
        &[("x-workspace-id", "7"), ("x-request-id", "laravel-req.1")],
        vec![],
    )
    .await;
    assert_eq!(kept.status, 200);
    assert_eq!(kept.headers["x-request-id"], "laravel-req.1");
    assert_eq!(
        kept.json()["headers"]["x-request-id"],
        json!(["laravel-req.1"])
    );

    let made = send(
        s.fleet,
        "GET",
        "/api/sessions",
        &[("x-workspace-id", "8"), ("x-request-id", "bad id")],
        vec![],
    )
    .await;
    let id = made.headers["x-request-id"].to_str().unwrap().to_string();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(made.json()["headers"]["x-request-id"], json!([id]));

    let missing = send(s.edge, "GET", "/nowhere", &[], vec![]).await;
    assert_eq!(missing.status, 404);
    assert!(missing.headers.contains_key("x-request-id"));
    let forged = webhook(s.edge, "not-the-secret", 7, &[("x-request-id", "hook-1")]).await;
    assert_eq!(forged.status, 401);
    assert_eq!(forged.headers["x-request-id"], "hook-1");
    let delivered = webhook(s.edge, HMAC_SECRET, 7, &[("x-request-id", "hook-2")]).await;
    assert_eq!(delivered.status, 200);
    assert_eq!(
        delivered.json()["headers"]["x-request-id"],
        json!(["hook-2"])
    );

    let lines: Vec<Value> = wait_for("five access log lines", DEADLINE, || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        async move { (lines.len() >= 5).then_some(lines) }
    })
    .await;
    let by_id = |id: &str| {
        lines
            .iter()
            .find(|l| l["request_id"] == id)
            .unwrap_or_else(|| panic!("no line for {id}: {lines:?}"))
            .clone()
    };
    let first = by_id("laravel-req.1");
    for (field, value) in [
        ("listener", json!("fleet")),
        ("route", json!("node-api")),
        ("method", json!("GET")),
        ("path", json!("/api/sessions")),
        ("status", json!(200)),
        ("workspace", json!(7)),
        ("instance", json!("n2")),
        ("upstream_status", json!(200)),
        ("webhook", Value::Null),
    ] {
        assert_eq!(first[field], value, "{field} in {first}");
    }
    assert!(first["bytes_sent"].as_u64().unwrap() > 0);
    assert!(first["duration_ms"].as_f64().unwrap() >= 0.0);
    let ts = first["ts"].as_str().unwrap();
    assert!(ts.len() == 24 && ts.ends_with('Z'), "{ts}");
    assert!(!lines.iter().any(|l| l.to_string().contains("do-not-log")));
    assert_eq!(by_id(&id)["workspace"], 8);
    let not_found = lines.iter().find(|l| l["status"] == 404).unwrap();
    assert_eq!(not_found["route"], Value::Null);
    assert_eq!(not_found["instance"], Value::Null);
    assert_eq!(by_id("hook-1")["webhook"], "mismatch");
    assert_eq!(by_id("hook-1")["upstream_status"], Value::Null);
    assert_eq!(by_id("hook-2")["webhook"], "ok");
    assert_eq!(by_id("hook-2")["instance"], "laravel");
}

/// A real Prometheus on loopback scraping the gateway every second; stopped by PID on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(target: SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nscrape_configs:\n  - job_name: fleetgate\n    static_configs: [{{ targets: ['{target}'] }}]\n"
            ),
        )
        .unwrap();
        let addr = loopback();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("prometheus (Debian package `prometheus`; scripts/test.sh installs it)");
        let prometheus = Self { child, addr, dir };
        wait_for("Prometheus to be ready", DEADLINE, || async move {
            let r = try_send(addr, "GET", "/-/ready", &[], vec![]).await;
            r.ok().filter(|r| r.status == 200)
        })
        .await;
        prometheus
    }

    /// An instant query's result vector (or scalar, as one element).
    async fn query(&self, expr: &str) -> Vec<Value> {
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        let path = format!(
            "/api/v1/query?query={}",
            utf8_percent_encode(expr, NON_ALPHANUMERIC)
        );
        let answer = send(self.addr, "GET", &path, &[], vec![]).await.json();
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
        match &answer["data"]["result"] {
            Value::Array(series) => series.clone(),
            scalar => vec![json!({ "value": scalar })],
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every panel query of the dashboard, with `$__rate_interval` as 1m, `$job` as the test's scrape
/// job and `$instance` as the variable's "All" (`.*`).
fn dashboard_queries() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/dashboards/fleetgate.json");
    let dashboard: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let variables: Vec<_> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        variables,
        ["datasource", "job", "instance"],
        "the datasource, the job and the gateways are variables"
    );
    let mut queries = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{target}");
            let expr = target["expr"].as_str().unwrap();
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$job", "fleetgate")
                .replace("$instance", ".*");
            assert!(!expr.contains('$'), "unsupported variable in {expr}");
            queries.push((panel["title"].as_str().unwrap().to_string(), expr));
        }
    }
    assert!(queries.len() >= 20, "{queries:?}");
    queries
}

/// Whether a query result has data and no NaN.
fn has_data(result: &[Value]) -> bool {
    !result.is_empty()
        && result.iter().all(|s| {
            let value = s["value"][1].as_str().unwrap_or("NaN");
            value.parse::<f64>().is_ok_and(|v| !v.is_nan())
        })
}

/// One round of every kind of traffic (HTTP, webhooks, hub API and deliveries).
async fn traffic(s: &Stack, subscriber: &mut Ws, round: u64) {
    for ws in 1..=6u64 {
        let ws = ws.to_string();
        let r = send(
            s.fleet,
            "GET",
            "/api/sessions",
            &[("x-workspace-id", &ws)],
            vec![],
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let query_routed = send(s.fleet, "GET", "/api/sessions?workspace_id=3", &[], vec![]).await;
    assert_eq!(query_routed.status, 200);
    assert_eq!(webhook(s.edge, HMAC_SECRET, 7, &[]).await.status, 200);
    assert_eq!(webhook(s.edge, "forged", 7, &[]).await.status, 401);
    let r = publish(
        s.hub,
        json!({"name": "tick", "channel": "private-workspace.7", "data": round.to_string()}),
    )
    .await;
    assert_eq!(r.status, 200);
    let unsigned = send(
        s.hub,
        "POST",
        &format!("/apps/{APP_ID}/events"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(unsigned.status, 401);
    until_event(subscriber, "tick").await;
}

/// A subscriber that stops reading is dropped (4100): the drops and disconnect panels see it.
async fn slow_consumer(hub: SocketAddr) {
    let (mut slow, _) = established(hub).await;
    subscribe(&mut slow, "feed", None, None).await;
    let data = "x".repeat(60_000);
    // 700 × 60 KB: more than the 512-frame queue plus the kernel's socket buffers.
    for _ in 0..70 {
        let batch: Vec<_> = (0..10)
            .map(|_| json!({"name": "big", "channel": "feed", "data": data}))
            .collect();
        assert_eq!(
            publish_batch(hub, json!({ "batch": batch })).await.status,
            200
        );
    }
    assert_eq!(close_code(&mut slow).await, Some(4100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_proven_on_live_data_by_a_real_prometheus() {
    let s = stack("").await;
    let prometheus = Prometheus::start(s.gw.admin).await;
    let (mut subscriber, socket) = established(s.hub).await;
    subscribe_private(&mut subscriber, &socket, "private-workspace.7").await;

    // Traffic of every kind, including a rejected webhook, a failed reload and a dropped
    // subscriber; then rounds of traffic until every panel's query has data (rates and quantiles
    // need samples from two scrapes with traffic in between).
    slow_consumer(s.hub).await;
    assert_eq!(s.gw.reload("threads: [\n").await.status, 422);
    assert_eq!(s.gw.reload(&s.yaml).await.status, 200);
    let queries = dashboard_queries();
    let start = Instant::now();
    let mut round = 0;
    let missing = loop {
        round += 1;
        traffic(&s, &mut subscriber, round).await;
        let mut missing = Vec::new();
        for (title, expr) in &queries {
            if !has_data(&prometheus.query(expr).await) {
                missing.push(format!("{title}: {expr}"));
            }
        }
        if missing.is_empty() || start.elapsed() > Duration::from_secs(60) {
            break missing;
        }
    };
    assert!(
        missing.is_empty(),
        "panels without data after {round} rounds:\n{}\nprometheus log:\n{}",
        missing.join("\n"),
        prometheus.log()
    );

    // The events behind the panels really happened (not just zero series).
    for (expr, what) in [
        (
            r#"fleetgate_webhook_verifications_total{result="mismatch"}"#,
            "a rejected webhook",
        ),
        (
            r#"fleetgate_config_reloads_total{result="invalid"}"#,
            "a failed reload",
        ),
        (
            "fleetgate_hub_deliveries_dropped_total",
            "a dropped delivery",
        ),
        (
            r#"fleetgate_hub_disconnects_total{code="4100"}"#,
            "a 4100 close",
        ),
        (
            "fleetgate_hub_delivery_latency_seconds_count",
            "delivery latencies",
        ),
        (
            r#"fleetgate_hub_api_requests_total{result!="ok"}"#,
            "a refused API call",
        ),
    ] {
        let result = prometheus.query(&format!("sum({expr}) > 0")).await;
        assert!(has_data(&result), "{what}: {expr}");
    }

    // `promtool check metrics` accepts a live scrape, and no label carries a workspace, session
    // or socket id (workspace 7's session ids start with `webjs_7_`).
    let scrape = s.gw.metrics().await;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package `prometheus`)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    for private in ["webjs_7_", &socket, "private-workspace", "/api/sessions"] {
        assert!(!scrape.contains(private), "{private} in a label:\n{scrape}");
    }
    // Every metric the dashboard names is exported.
    for (_, expr) in &queries {
        for name in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("fleetgate_") || w.starts_with("process_"))
        {
            assert!(scrape.contains(name), "{name} is not exported");
        }
    }
    drop(prometheus);
}

/// The log lines that mention `text`.
fn log_lines(gw: &Gateway, text: &str) -> Vec<String> {
    gw.log()
        .lines()
        .filter(|l| l.contains(text))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn the_log_format_and_level_come_from_the_file_and_change_on_reload() {
    let (addr, admin) = (loopback(), loopback());
    let apps = format!("    - {{ id: {APP_ID}, key: {KEY}, secret: {SECRET} }}\n");
    let base = hub_yaml(addr, admin, &apps);
    let gw = Gateway::start(&(base.clone() + "log: { format: json }\n"), admin, &[addr]).await;
    let started = wait_for("a log line", DEADLINE, || async {
        let lines = log_lines(&gw, "listening");
        (!lines.is_empty()).then_some(lines)
    })
    .await;
    for line in &started {
        let line: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(line["level"], "INFO", "{line}");
    }

    // Text, at the default level: the reload's own line is text.
    assert_eq!(
        gw.reload(&(base.clone() + "log: { format: text }\n"))
            .await
            .status,
        200
    );
    let reloaded = log_lines(&gw, "configuration reloaded");
    assert_eq!(reloaded.len(), 1, "{}", gw.log());
    assert!(
        serde_json::from_str::<Value>(&reloaded[0]).is_err(),
        "{}",
        reloaded[0]
    );
    assert!(reloaded[0].contains("INFO"), "{}", reloaded[0]);

    // At warn, a reload's info line is gone; a refused reload's error still shows.
    let warn = base.clone() + "log: { format: text, level: warn }\n";
    assert_eq!(gw.reload(&warn).await.status, 200);
    assert_eq!(gw.reload("listeners: [").await.status, 422);
    assert_eq!(
        log_lines(&gw, "configuration not reloaded").len(),
        1,
        "{}",
        gw.log()
    );
    assert_eq!(
        log_lines(&gw, "configuration reloaded").len(),
        1,
        "{}",
        gw.log()
    );
}
