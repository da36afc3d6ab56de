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
    fleet: SocketAddr,
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

/// The variables the shipped file refers to (the Node service's API tokens included).
const ENV: [(&str, &str); 6] = [
    ("WHATSAPP_HMAC_SECRET", HMAC_SECRET),
    ("REVERB_APP_ID", APP_ID),
    ("REVERB_APP_KEY", KEY),
    ("REVERB_APP_SECRET", SECRET),
    ("LARAVEL_API_TOKEN", API_KEY),
    ("API_TOKEN", BEARER),
];
const API_KEY: &str = "node-api-key";
const BEARER: &str = "node-bearer-token";

async fn shipped_in_front_of(laravel: Upstream) -> Stack {
    let (yaml, nodes, [fleet, edge, hub, admin]) = shipped_for(&laravel).await;
    let gw = Gateway::start_env(&yaml, admin, &[fleet, edge, hub], &ENV).await;
    Stack {
        gw,
        laravel,
        nodes,
        fleet,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_to_laravel_call_is_checked_at_the_edge_with_and_without_credentials() {
    use hmac::{Hmac, Mac};
    let s = shipped_in_front_of(Upstream::laravel("laravel").await).await;
    let call = |method: &'static str, path: &'static str, headers: Vec<(String, String)>| {
        let edge = s.edge;
        async move {
            let refs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            send(edge, method, path, &refs, b"{}".to_vec()).await
        }
    };
    let header = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    let api_key = header("x-api-key", API_KEY);
    let bearer = header("authorization", &format!("Bearer {BEARER}"));
    type Credentials = Vec<(String, String)>;
    let calls: [(&str, &str, &Credentials); 8] = [
        ("GET", "/api/whatsapp/accounts/active", &api_key),
        (
            "POST",
            "/api/whatsapp/accounts/7/mark-disconnected",
            &api_key,
        ),
        ("GET", "/api/whatsapp/accounts-for-cleanup", &bearer),
        ("GET", "/api/whatsapp/accounts/7/status", &bearer),
        ("PATCH", "/api/whatsapp/accounts/7/status", &bearer),
        ("POST", "/api/whatsapp/cleanup-logs", &bearer),
        (
            "GET",
            "/api/whatsapp/accounts/by-session/webjs_7_1_x",
            &bearer,
        ),
        ("GET", "/api/whatsapp/cleanup-stats", &bearer),
    ];
    for (method, path, good) in calls {
        let none = call(method, path, vec![]).await;
        assert_eq!(
            (none.status, none.error_code()),
            (401, "auth.missing_token".into()),
            "{path}"
        );
        let wrong = call(method, path, header(&good[0].0, "Bearer wrong")).await;
        assert_eq!(
            (wrong.status, wrong.error_code()),
            (401, "auth.invalid_token".into()),
            "{path}"
        );
        assert_eq!(
            s.laravel.hits.load(Ordering::SeqCst),
            0,
            "{path}: nothing reached Laravel"
        );
        let ok = call(method, path, good.clone()).await;
        assert_eq!(
            ok.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&ok.body)
        );
        s.laravel.hits.store(0, Ordering::SeqCst);
    }

    // Chat sync batches: signed as webhooks are, verified here.
    let body = br#"{"whatsapp_account_id":7,"workspace_id":7,"chats":[]}"#;
    let path = "/api/whatsapp/chats/sync";
    let unsigned = send(
        s.edge,
        "POST",
        path,
        &[("content-type", "application/json")],
        body.to_vec(),
    )
    .await;
    assert_eq!(
        (unsigned.status, unsigned.error_code()),
        (401, "webhook.missing_signature".into())
    );
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(HMAC_SECRET.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(body);
    let signature = hex(&mac.finalize().into_bytes());
    let signed = [
        ("content-type", "application/json"),
        ("x-timestamp", ts.as_str()),
        ("x-hmac-signature", signature.as_str()),
    ];
    let ok = send(s.edge, "POST", path, &signed, body.to_vec()).await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(s.laravel.hits.load(Ordering::SeqCst), 1);

    // The unauthenticated broadcast endpoint: local callers only. A client a trusted proxy
    // speaks for (X-Forwarded-For from loopback) is not local.
    let remote = [("x-forwarded-for", "203.0.113.9")];
    let refused = send(
        s.edge,
        "POST",
        "/api/whatsapp/broadcast",
        &remote,
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (403, "route.client_not_allowed".into())
    );
    let local = send(
        s.edge,
        "POST",
        "/api/whatsapp/broadcast",
        &[],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(local.status, 200);
}

/// Where a request of the corpus may arrive.
#[derive(Debug)]
enum Reach {
    /// Answered by the gateway: no instance sees it.
    Nothing,
    /// Laravel receives these paths, in order.
    Laravel(&'static [&'static str]),
    /// This Node instance (index) receives this path.
    Node(usize, &'static str),
}

/// The first answer on a new connection to `addr` after writing `bytes`: status, the JSON error
/// `code` (empty when the answer has none), the body, and the connection (kept open for what
/// follows in a pipeline).
async fn first_answer(
    addr: SocketAddr,
    bytes: &[u8],
) -> (u16, String, String, tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut buf = Vec::new();
    let read = async {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) = response.parse(&buf).unwrap() {
                let length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap());
                if length.is_some_and(|l: usize| buf.len() >= len + l) {
                    let body = &buf[len..len + length.unwrap()];
                    return (response.code.unwrap(), body.to_vec());
                }
            }
            let mut chunk = [0; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed before a whole answer: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    let (status, body) = tokio::time::timeout(DEADLINE, read).await.unwrap();
    let body = String::from_utf8_lossy(&body).into_owned();
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(String::from))
        .unwrap_or_default();
    (status, code, body, stream)
}

/// The written corpus of framing and abuse cases (`tests/corpus/request_head/`, also the seeds of
/// the `request_head` fuzz target), sent byte for byte to the shipped file's listeners: each gets
/// the answer nginx or Node would agree with, and reaches an instance only as intended.
/// What hyper's own parser refuses gets the gateway's JSON answer too. A body that breaks
/// its chunked framing after the head went on is cut off (the instance sees an aborted request,
/// as when a client disconnects); a connection that shows an ambiguous head is refused from then
/// on, the requests pipelined before it in the same read included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_abuse_corpus_gets_its_answers_and_reaches_nothing_it_should_not() {
    use Reach::*;
    let s = shipped_in_front_of(Upstream::laravel("laravel").await).await;
    type Case = (&'static str, bool, u16, &'static str, Reach);
    #[rustfmt::skip]
    let cases: &[Case] = &[
        // (file, on the edge (else the fleet listener), status, code, what reaches an instance)
        ("cl-then-te.http", true, 400, "request.malformed", Nothing),
        ("te-then-cl.http", true, 400, "request.malformed", Nothing),
        ("two-equal-content-lengths.http", true, 400, "request.malformed", Nothing),
        ("listed-content-length.http", true, 400, "request.malformed", Nothing),
        ("signed-content-length.http", true, 400, "request.malformed", Nothing),
        ("obs-fold.http", true, 400, "request.malformed", Nothing),
        ("te-on-http10.http", true, 400, "request.malformed", Nothing),
        ("te-not-chunked-last.http", true, 400, "request.malformed", Nothing),
        ("bad-chunk-size.http", true, 400, "request.malformed", Laravel(&["/"])),
        ("chunk-size-overflow.http", true, 400, "request.malformed", Laravel(&["/"])),
        ("two-hosts.http", true, 400, "request.malformed", Nothing),
        ("space-before-colon.http", true, 400, "request.malformed", Nothing),
        ("absolute-form.http", true, 200, "", Laravel(&["/"])),
        ("pipelined.http", true, 404, "", Laravel(&["/one", "/two"])),
        ("chunked-then-smuggled.http", true, 400, "request.malformed", Nothing),
        ("header-32k.http", true, 431, "request.header_too_large", Nothing),
        ("head-over-64k.http", true, 431, "request.header_too_large", Nothing),
        ("too-many-headers.http", true, 431, "request.header_too_large", Nothing),
        ("uri-9k.http", true, 414, "request.uri_too_long", Nothing),
        ("webhook-encoded-slash.http", true, 400, "request.bad_path", Nothing),
        ("webhook-encoded-letter.http", true, 401, "webhook.missing_signature", Nothing),
        ("webhook-double-slash.http", true, 401, "webhook.missing_signature", Nothing),
        ("webhook-dot-segment.http", true, 401, "webhook.missing_signature", Nothing),
        ("chat-sync-unsigned.http", true, 401, "webhook.missing_signature", Nothing),
        ("accounts-without-token.http", true, 401, "auth.missing_token", Nothing),
        ("broadcast-from-outside.http", true, 403, "route.client_not_allowed", Nothing),
        ("dotdot-above-root.http", true, 400, "request.bad_path", Nothing),
        ("bad-percent.http", true, 400, "request.bad_path", Nothing),
        ("encoded-backslash.http", true, 400, "request.bad_path", Nothing),
        ("cleanup-encoded-letter.http", false, 403, "route.denied", Nothing),
        ("cleanup-dot-segments.http", false, 403, "route.denied", Nothing),
        ("remoteauth-double-slash.http", false, 403, "route.denied", Nothing),
        ("internal-encoded-dots.http", false, 403, "route.denied", Nothing),
        ("internal-above-root.http", false, 400, "request.bad_path", Nothing),
        ("workspace-in-body.http", false, 200, "", Node(3, "/api/messages/send")),
        ("workspace-not-a-number.http", false, 400, "routing.no_workspace", Nothing),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/request_head");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut listed: Vec<String> = cases.iter().map(|c| c.0.to_string()).collect();
    listed.sort();
    assert_eq!(
        files, listed,
        "every corpus file has its expected answer here"
    );

    let upstreams: Vec<&Upstream> = s.nodes.iter().chain([&s.laravel]).collect();
    let mut wrong = Vec::new();
    for (file, edge, status, code, reach) in cases {
        for stub in &upstreams {
            stub.paths.lock().unwrap().clear();
        }
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let addr = if *edge { s.edge } else { s.fleet };
        let (got, got_code, body, _open) = first_answer(addr, &bytes).await;
        if (got, got_code.as_str()) != (*status, *code) {
            wrong.push(format!(
                "{file}: {got} {got_code:?}, not {status} {code:?}: {body}"
            ));
        }
        let seen = |stub: &Upstream| stub.paths.lock().unwrap().clone();
        let expected: Vec<Vec<String>> = upstreams
            .iter()
            .enumerate()
            .map(|(i, _)| match reach {
                Laravel(paths) if i == 4 => paths.iter().map(|p| p.to_string()).collect(),
                Node(n, path) if *n == i => vec![path.to_string()],
                _ => vec![],
            })
            .collect();
        // Pipelined requests after the first are answered after it: wait for what is expected
        // (bounded: what never comes shows as a difference below).
        let want: usize = expected.iter().map(Vec::len).sum();
        let arrived = || upstreams.iter().map(|u| seen(u).len()).sum::<usize>() >= want;
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        while !arrived() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let now: Vec<Vec<String>> = upstreams.iter().map(|u| seen(u)).collect();
        if now != expected {
            wrong.push(format!(
                "{file}: {now:?} reached the instances, not {expected:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Those refused by hyper's parser (never handed to the handler) are counted as closed.
    let scrape = s.gw.metrics().await;
    let closed = |reason: &str| {
        let series =
            format!("fleetgate_connections_closed_total{{listener=\"edge\",reason=\"{reason}\"}}");
        sample(&scrape, &series)
    };
    // Six 400s of hyper's parser above; its 431 for over 100 header fields (the 72 KiB head
    // fits hyper's buffer, so the handler refuses it).
    assert_eq!(closed("malformed_head"), Some(6.0));
    assert_eq!(closed("header_too_large"), Some(1.0));
    // Each refusal is in the access log with its code, those hyper refused included.
    let mut expected = std::collections::BTreeMap::new();
    for (_, _, _, code, _) in cases.iter().filter(|c| !c.3.is_empty()) {
        *expected.entry(code.to_string()).or_insert(0) += 1;
    }
    let logged = || {
        let mut counts = std::collections::BTreeMap::new();
        for line in s.gw.log().lines().filter(|l| l.starts_with('{')) {
            let entry: Value = serde_json::from_str(line).unwrap();
            if let Some(code) = entry["error"].as_str() {
                *counts.entry(code.to_string()).or_insert(0) += 1;
            }
        }
        counts
    };
    wait_for("every refusal in the access log", DEADLINE, || async {
        (logged() == expected).then_some(())
    })
    .await;
    assert!(!s.gw.log().contains("panicked"), "{}", s.gw.log());
}
