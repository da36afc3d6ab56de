//! Edge webhook verification end to end: the real binary, a Laravel stand-in behind the edge
//! listener, Node stand-ins behind the fleet listener. Signatures are computed here with `hmac`
//! exactly as the Node service does (CONTRACTS.md §2), independent of fleetgate's own signer.

mod common;
use common::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

const SECRET: &str = "node-and-laravel-share-this";
const OLD_SECRET: &str = "the-previous-secret";
const PATH: &str = "/api/whatsapp/webhooks/webjs";

struct Edge {
    node: Vec<Upstream>,
    laravel: Upstream,
    gw: Gateway,
    edge: SocketAddr,
    fleet: SocketAddr,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The Node service's signature: lowercase hex HMAC-SHA256 over `timestamp ++ body`.
fn node_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

fn signed(secret: &str, ts: i64, body: &[u8]) -> Vec<(String, String)> {
    let ts = ts.to_string();
    vec![
        ("x-timestamp".into(), ts.clone()),
        ("x-hmac-signature".into(), node_signature(secret, &ts, body)),
        ("content-type".into(), "application/json".into()),
    ]
}

/// The Node service's scheme with the current and the previous secret; `route_extra` is spliced
/// into the webhook route (4-space indented `key: value` lines).
async fn edge(route_extra: &str) -> Edge {
    let secrets = format!(r#"["{SECRET}", "{OLD_SECRET}"]"#);
    edge_with("hex-timestamp-body", &secrets, route_extra).await
}

async fn edge_with(scheme: &str, secrets: &str, route_extra: &str) -> Edge {
    edge_top(scheme, secrets, route_extra, "").await
}

/// [`edge_with`] with top-level keys appended to the file.
async fn edge_top(scheme: &str, secrets: &str, route_extra: &str, top: &str) -> Edge {
    let node = nodes(4).await;
    let laravel = Upstream::laravel("laravel").await;
    let (edge, fleet, admin) = (loopback(), loopback(), loopback());
    let instances = instances_yaml(&node);
    let yaml = format!(
        r#"threads: 2
admin: {{ listen: {admin} }}
listeners:
  fleet: {{ listen: {fleet} }}
  edge: {{ listen: {edge} }}
upstreams:
  node:
    instances:
{instances}    health: {{ interval: 300ms, timeout: 250ms }}
    routing: {{ assign: modulo }}
  laravel:
    instances: [{{ name: laravel, addr: {laravel} }}]
    health: {{ interval: 300ms, timeout: 250ms }}
routes:
  - {{ name: node-api, listener: fleet, upstream: node, treatment: workspace }}
  - name: webjs-webhooks
    listener: edge
    path_prefix: {PATH}
    upstream: laravel
    treatment: webhook
    webhook:
      scheme: {scheme}
      secrets: {secrets}
      instances: {{ group: node, public_url: "http://{fleet}" }}
{route_extra}
  - {{ name: laravel, listener: edge, upstream: laravel }}
{top}"#,
        laravel = laravel.addr,
    );
    let gw = Gateway::start(&yaml, admin, &[edge, fleet]).await;
    Edge {
        node,
        laravel,
        gw,
        edge,
        fleet,
    }
}

async fn post(addr: SocketAddr, headers: &[(String, String)], body: Vec<u8>) -> Resp {
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    send(addr, "POST", PATH, &refs, body).await
}

fn laravel_hits(e: &Edge) -> usize {
    e.laravel.hits.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_uploads_declaring_large_bodies_cost_the_bytes_received_not_the_declared_length() {
    use tokio::io::AsyncWriteExt;
    let e = edge("").await;
    // Warm: one delivery through, so the idle figure includes what a first request allocates.
    let body = br#"{"event":"session_ready","data":{"workspace_id":1}}"#.to_vec();
    assert_eq!(
        post(e.edge, &signed(SECRET, now(), &body), body)
            .await
            .status,
        200
    );
    let (rss, size) = (e.gw.status_kib("VmRSS"), e.gw.status_kib("VmSize"));

    // 16 senders with well-formed signature headers declare 32 MiB each and send 256 KiB.
    const SENT: usize = 262144;
    let mut uploads = Vec::new();
    for _ in 0..16 {
        let mut stream = tokio::net::TcpStream::connect(e.edge).await.unwrap();
        let head = format!(
            "POST {PATH} HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nX-Timestamp: {}\r\nX-HMAC-Signature: {}\r\nContent-Length: {}\r\n\r\n",
            now(),
            "ab".repeat(32),
            32 << 20
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&vec![b' '; SENT]).await.unwrap();
        uploads.push(stream);
    }
    wait_for("the gateway to read what was sent", DEADLINE, || async {
        (unread_on(e.edge) == (16, 0)).then_some(())
    })
    .await;
    let rss_growth = e.gw.status_kib("VmRSS").saturating_sub(rss);
    let size_growth = e.gw.status_kib("VmSize").saturating_sub(size);
    assert!(rss_growth < 16 * 1024, "RSS grew {rss_growth} KiB");
    // 16 × 32 MiB reserved up front would be 512 MiB of address space.
    assert!(
        size_growth < 64 * 1024,
        "virtual size grew {size_growth} KiB"
    );
    drop(uploads);
    assert_eq!(laravel_hits(&e), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_spelling_of_the_webhook_path_is_verified_or_refused_never_passed_through() {
    let e = edge("").await;
    let body = br#"{"event":"session_ready","data":{"workspace_id":1}}"#.to_vec();
    let unsigned = [("content-type", "application/json")];
    // Verified as the webhook it is, or refused when its meaning depends on the decoder.
    let (unsigned_webhook, bad_path) = (
        (401, "webhook.missing_signature"),
        (400, "request.bad_path"),
    );
    for (path, (status, code)) in [
        ("/api/whatsapp/webhooks/webj%73", unsigned_webhook),
        ("//api/whatsapp/webhooks/webjs", unsigned_webhook),
        ("/api/whatsapp/./webhooks/webjs", unsigned_webhook),
        ("/api/whatsapp/x/../webhooks/webjs", unsigned_webhook),
        ("/api/whatsapp/webhooks%2Fwebjs", bad_path),
        ("/api/whatsapp%2fwebhooks/webjs", bad_path),
    ] {
        let resp = send(e.edge, "POST", path, &unsigned, body.clone()).await;
        assert_eq!(
            (resp.status, resp.error_code()),
            (status, code.to_string()),
            "{path}"
        );
    }
    assert_eq!(laravel_hits(&e), 0, "nothing unverified reached Laravel");
    // Signed, another spelling is the webhook route: verified, and Laravel gets the canonical path.
    let ts = now();
    let refs = signed(SECRET, ts, &body);
    let refs: Vec<(&str, &str)> = refs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let resp = send(
        e.edge,
        "POST",
        "//api/whatsapp/webhooks/webj%73",
        &refs,
        body.clone(),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(
        e.laravel.paths.lock().unwrap().as_slice(),
        [PATH.to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_webhook_reaches_laravel_byte_for_byte_with_its_signature_headers() {
    let e = edge("").await;
    for size in [100 * 1024, 50 << 20] {
        // Escapes and spacing that a JSON re-encoder would change.
        let body = format!(
            r#"{{"event":"message_received","data":{{"media":"{}","t":"é\/"}}}}"#,
            "A".repeat(size)
        )
        .into_bytes();
        let headers = signed(SECRET, now(), &body);
        let resp = post(e.edge, &headers, body.clone()).await;
        assert_eq!(
            resp.status,
            200,
            "{}",
            String::from_utf8_lossy(&resp.body[..resp.body.len().min(300)])
        );
        let seen = resp.json();
        assert_eq!(seen["instance"], "laravel");
        assert_eq!(seen["body_sha256"], sha256_hex(&body), "size {size}");
        assert_eq!(
            seen["headers"]["x-hmac-signature"][0],
            headers[1].1.as_str()
        );
        assert_eq!(seen["headers"]["x-timestamp"][0], headers[0].1.as_str());
        assert_eq!(seen["headers"]["x-forwarded-for"][0], "127.0.0.1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn laravels_status_and_body_go_back_to_the_sender_unchanged() {
    let e = edge("").await;
    let body = br#"{"event":"session_error","data":{"workspace_id":1}}"#.to_vec();
    let mut headers = signed(SECRET, now(), &body);
    headers.push(("x-stub-status".into(), "422".into()));
    let resp = post(e.edge, &headers, body).await;
    assert_eq!(resp.status, 422);
    assert_eq!(resp.json()["instance"], "laravel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_are_rejected_at_the_edge_with_laravels_wording_and_the_connection_closed() {
    let e = edge("").await;
    let body = br#"{"event":"qr_code_generated","data":{"workspace_id":3}}"#.to_vec();
    let ts = now();
    let good = signed(SECRET, ts, &body);
    // An empty header counts as missing, as in Laravel's `!$header`.
    type Case = (Vec<(String, String)>, u16, &'static str, &'static str);
    let cases: Vec<Case> = vec![
        (
            vec![],
            401,
            "webhook.missing_signature",
            "Missing required security headers",
        ),
        (
            vec![good[0].clone()],
            401,
            "webhook.missing_signature",
            "Missing required security headers",
        ),
        (
            signed(SECRET, ts - 301, &body),
            401,
            "webhook.timestamp_out_of_tolerance",
            "Request timestamp expired",
        ),
        (
            signed(SECRET, ts + 301, &body),
            401,
            "webhook.timestamp_out_of_tolerance",
            "Request timestamp expired",
        ),
        (
            signed("wrong-secret", ts, &body),
            401,
            "webhook.signature_mismatch",
            "Invalid signature",
        ),
        (
            vec![good[0].clone(), ("x-hmac-signature".into(), String::new())],
            401,
            "webhook.missing_signature",
            "Missing required security headers",
        ),
        (
            vec![
                good[0].clone(),
                ("x-hmac-signature".into(), "zz".repeat(32)),
            ],
            400,
            "webhook.malformed_signature",
            "Malformed signature",
        ),
        (
            vec![
                good[0].clone(),
                ("x-hmac-signature".into(), good[1].1[..63].to_string()),
            ],
            400,
            "webhook.malformed_signature",
            "Malformed signature",
        ),
    ];
    for (headers, status, code, message) in cases {
        let resp = post(e.edge, &headers, body.clone()).await;
        assert_eq!(
            (resp.status, resp.error_code()),
            (status, code.to_string()),
            "{headers:?}"
        );
        let json = resp.json();
        assert_eq!(json["message"], message);
        let text = String::from_utf8_lossy(&resp.body);
        assert!(
            !text.contains(&good[1].1) && !text.contains(SECRET),
            "the answer leaks: {text}"
        );
    }
    // A tampered body with a valid signature for the original.
    let resp = post(
        e.edge,
        &good,
        br#"{"event":"qr_code_generated","data":{"workspace_id":4}}"#.to_vec(),
    )
    .await;
    assert_eq!(resp.error_code(), "webhook.signature_mismatch");
    assert_eq!(laravel_hits(&e), 0, "a rejected webhook reached Laravel");

    let raw_request = format!("POST {PATH} HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{{}}");
    let (answer, closed) = raw(e.edge, raw_request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(closed, "the connection must be closed after a rejection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_gets_413_before_laravel_sees_it() {
    let e = edge("    max_body: 1KiB").await;
    let body = vec![b'x'; 4096];
    let resp = post(e.edge, &signed(SECRET, now(), &body), body).await;
    assert_eq!(
        (resp.status, resp.error_code()),
        (413, "request.body_too_large".into())
    );
    assert_eq!(laravel_hits(&e), 0);
    let metrics = e.gw.metrics().await;
    assert!(
        metrics.contains(
            r#"fleetgate_webhook_verifications_total{result="too_large",route="webjs-webhooks"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_secret_still_verifies_during_rotation() {
    let e = edge("").await;
    let body = br#"{"event":"session_ready","data":{"workspace_id":2}}"#.to_vec();
    let resp = post(e.edge, &signed(OLD_SECRET, now(), &body), body).await;
    assert_eq!(resp.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_delivery_is_answered_200_as_a_duplicate_without_reaching_laravel_again() {
    let e = edge("").await;
    let body = br#"{"event":"message_sent","data":{"workspace_id":2}}"#.to_vec();
    let headers = signed(SECRET, now(), &body);
    assert_eq!(post(e.edge, &headers, body.clone()).await.status, 200);
    let again = post(e.edge, &headers, body).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.headers["x-fleetgate-duplicate"], "true");
    assert_eq!(laravel_hits(&e), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_instance_url_teaches_the_session_table_and_laravel_sees_the_gateways_url() {
    let e = edge("").await;
    // Workspace 1 would be u2 by modulo; the webhook says u4 (port of node[3]) holds the session.
    let session = "webjs_1_1700000000_abcd1234";
    let body = format!(
        r#"{{"event":"session_ready","data":{{"workspace_id":1,"session_id":"{session}"}}}}"#
    )
    .into_bytes();
    let mut headers = signed(SECRET, now(), &body);
    headers.push((
        "x-instance-url".into(),
        format!("http://localhost:{}", e.node[3].addr.port()),
    ));
    let resp = post(e.edge, &headers, body).await;
    assert_eq!(
        resp.json()["headers"]["x-instance-url"][0],
        format!("http://{}", e.fleet)
    );
    let routed = send(
        e.fleet,
        "GET",
        &format!("/api/sessions/{session}/status"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(routed.instance(), "u4");
}

/// With the spool off, a delivery Laravel cannot take is answered 429 (the one answer the Node
/// sender retries); with it on (the default), it is spooled (tests/spool.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_spool_a_verified_webhook_is_deferred_with_429_when_laravel_is_down() {
    let secrets = format!(r#"["{SECRET}", "{OLD_SECRET}"]"#);
    let mut e = edge_top(
        "hex-timestamp-body",
        &secrets,
        "",
        "spool: { enabled: false }\n",
    )
    .await;
    e.laravel.stop();
    let body = br#"{"event":"message_received","data":{"workspace_id":2}}"#.to_vec();
    let resp = post(e.edge, &signed(SECRET, now(), &body), body.clone()).await;
    assert_eq!(
        (resp.status, resp.error_code()),
        (429, "webhook.upstream_unavailable".into())
    );
    assert!(resp.headers.contains_key("retry-after"));
    e.laravel.restart().await;
    // The sender's retry (re-signed) goes through once Laravel is back.
    let resp = wait_for("Laravel to be reachable again", DEADLINE, || {
        let body = body.clone();
        async move {
            let r = post(e.edge, &signed(SECRET, now(), &body), body).await;
            (r.status == 200).then_some(r)
        }
    })
    .await;
    assert_eq!(resp.json()["instance"], "laravel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_webhooks_and_github_deliveries_verify_through_the_gateway() {
    use fleetgate::signing::{sign, Scheme, Secret};
    let whsec = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    for (scheme, secret) in [
        (Scheme::StandardWebhooks, whsec),
        (Scheme::GitHub, "It's a Secret to Everybody"),
    ] {
        let e = edge_with(scheme.as_str(), &format!(r#"["{secret}"]"#), "").await;
        let body = br#"{"event":"message_read","data":{"workspace_id":9}}"#.to_vec();
        let key = Secret::from_config(scheme, secret).unwrap();
        let good: Vec<(String, String)> = sign(scheme, &key, &body, now(), Some("msg_1"))
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let resp = post(e.edge, &good, body.clone()).await;
        assert_eq!(
            resp.status,
            200,
            "{scheme:?}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        let wrong =
            Secret::from_config(scheme, "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
                .unwrap();
        let bad: Vec<(String, String)> = sign(scheme, &wrong, &body, now(), Some("msg_2"))
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(
            post(e.edge, &bad, body).await.error_code(),
            "webhook.signature_mismatch",
            "{scheme:?}"
        );
        assert_eq!(laravel_hits(&e), 1);
    }
}

/// `fleetgate validate` / `run` on a webhook route whose secret variable is unset or empty.
fn fleetgate_with_secret(command: &str, secret: Option<&str>) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    let yaml = "listeners: { edge: { listen: 127.0.0.1:0 } }\n\
                upstreams: { laravel: { instances: [{ name: laravel, addr: 127.0.0.1:8000 }] } }\n\
                routes:\n  - name: hooks\n    listener: edge\n    upstream: laravel\n    treatment: webhook\n\
                \x20   webhook: { scheme: hex-timestamp-body, secrets: [\"${FLEETGATE_TEST_HMAC}\"] }\n";
    std::fs::write(&path, yaml).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fleetgate"));
    cmd.args([command, "-c"])
        .arg(&path)
        .env_remove("FLEETGATE_TEST_HMAC");
    if let Some(value) = secret {
        cmd.env("FLEETGATE_TEST_HMAC", value);
    }
    cmd.output().unwrap()
}

#[test]
fn a_webhook_route_with_an_unset_or_empty_secret_refuses_to_start() {
    for secret in [None, Some("")] {
        for command in ["validate", "run"] {
            let out = fleetgate_with_secret(command, secret);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{command} with {secret:?}: {stderr}"
            );
            assert!(
                stderr.contains("routes[0].webhook.secrets[0]")
                    && stderr.contains("FLEETGATE_TEST_HMAC"),
                "{stderr}"
            );
        }
    }
    let ok = fleetgate_with_secret("validate", Some("s3cret"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}
