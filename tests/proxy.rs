//! The fleet listener end to end: the real binary in front of four real loopback Node stand-ins.

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_workspace_source_routes_to_laravels_modulo_instance() {
    let (_stubs, _gw, fleet) = fleet("", "").await;
    for ws in [0u64, 1, 2, 3, 4, 7, 1001] {
        let expected = format!("u{}", ws % 4 + 1);
        let w = ws.to_string();
        let by_header = send(
            fleet,
            "GET",
            "/api/sessions",
            &[("x-workspace-id", &w)],
            vec![],
        )
        .await;
        assert_eq!(by_header.instance(), expected, "header, ws {ws}");
        let by_query = send(
            fleet,
            "GET",
            &format!("/api/sessions?api_key=k&workspace_id={ws}"),
            &[],
            vec![],
        )
        .await;
        assert_eq!(by_query.instance(), expected, "query, ws {ws}");
        let path = format!("/api/sessions/webjs_{ws}_1700000000_abcd1234/status");
        assert_eq!(
            send(fleet, "GET", &path, &[], vec![]).await.instance(),
            expected,
            "path session, ws {ws}"
        );
        let body = format!(r#"{{"workspace_id":{ws},"api_key":"k"}}"#).into_bytes();
        let by_body = send(
            fleet,
            "POST",
            "/api/messages/send",
            &[("content-type", "application/json")],
            body,
        )
        .await;
        assert_eq!(by_body.instance(), expected, "body, ws {ws}");
        let body = format!(r#"{{"session_id":"webjs_{ws}_1700000000_zzzz9999"}}"#).into_bytes();
        let by_session = send(
            fleet,
            "DELETE",
            "/api/sessions/x",
            &[("content-type", "application/json")],
            body,
        )
        .await;
        assert_eq!(by_session.instance(), expected, "body session, ws {ws}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspected_json_bodies_reach_the_instance_byte_for_byte_at_any_size_up_to_the_limit() {
    let (_stubs, _gw, fleet) = fleet("", "").await;
    for padding in [10usize, 60 * 1024, 300 * 1024, 1000 * 1024] {
        // Odd spacing and escapes: a re-encoded body would hash differently.
        let body = format!(
            "{{ \"pad\" : \"{}\",\n \"text\":\"\\u00e9\\/\", \"workspace_id\" : 6 }}",
            "x".repeat(padding)
        );
        let resp = send(
            fleet,
            "POST",
            "/api/messages/send",
            &[("content-type", "application/json")],
            body.clone().into_bytes(),
        )
        .await;
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
        let json = resp.json();
        assert_eq!(json["instance"], "u3", "padding {padding}");
        assert_eq!(json["body_len"], body.len());
        assert_eq!(json["body_sha256"], sha256_hex(body.as_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_non_json_bodies_stream_through_untouched() {
    let (_stubs, _gw, fleet) = fleet("", "").await;
    // 50 MiB of binary: routed by header, streamed, never inspected.
    let body: Vec<u8> = (0..50u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let digest = sha256_hex(&body);
    let headers = [
        ("x-workspace-id", "5"),
        ("content-type", "application/octet-stream"),
    ];
    let resp = send(fleet, "POST", "/api/messages/send-media", &headers, body).await;
    assert_eq!(resp.json()["body_sha256"], digest);
    assert_eq!(resp.instance(), "u2");
    // JSON over body_limit is not inspected: without another source it has no workspace.
    let big = format!(r#"{{"workspace_id":1,"pad":"{}"}}"#, "y".repeat(2 << 20));
    let resp = send(
        fleet,
        "POST",
        "/api/messages/send",
        &[("content-type", "application/json")],
        big.into_bytes(),
    )
    .await;
    assert_eq!(
        (resp.status, resp.error_code()),
        (400, "routing.no_workspace".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_workspace_gets_400_routing_no_workspace() {
    let (_stubs, _gw, fleet) = fleet("", "").await;
    let resp = send(fleet, "GET", "/api/sessions", &[], vec![]).await;
    assert_eq!(resp.status, 400);
    let json = resp.json();
    assert_eq!(json["error"]["code"], "routing.no_workspace");
    assert_eq!(json["error"]["fault"], "client");
    assert_eq!(resp.headers["content-type"], "application/json");
    let not_json = send(
        fleet,
        "POST",
        "/api/messages/send",
        &[("content-type", "text/plain")],
        b"{\"workspace_id\":1}".to_vec(),
    )
    .await;
    assert_eq!(not_json.error_code(), "routing.no_workspace");
    let negative = send(
        fleet,
        "GET",
        "/api/sessions",
        &[("x-workspace-id", "-1")],
        vec![],
    )
    .await;
    assert_eq!(negative.error_code(), "routing.no_workspace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_no_workspace_any_sends_the_request_to_some_healthy_instance() {
    let (_stubs, _gw, fleet) = fleet("when_no_workspace: any", "").await;
    let resp = send(fleet, "GET", "/api/sessions", &[], vec![]).await;
    assert_eq!(resp.status, 200);
    assert!(resp.instance().starts_with('u'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_override_the_rule_and_rendezvous_is_available() {
    let (_stubs, _gw, fleet) = fleet("assign: modulo\npins: { 7: u1 }", "").await;
    let resp = send(
        fleet,
        "GET",
        "/api/sessions",
        &[("x-workspace-id", "7")],
        vec![],
    )
    .await;
    assert_eq!(resp.instance(), "u1");
    let (_stubs2, _gw2, fleet2) = common::fleet("assign: rendezvous", "").await;
    let names = ["u1", "u2", "u3", "u4"];
    for ws in 0..40u64 {
        let resp = send(
            fleet2,
            "GET",
            "/api/sessions",
            &[("x-workspace-id", &ws.to_string())],
            vec![],
        )
        .await;
        let expected =
            fleetgate::routing::assign::rendezvous(ws, names.iter().copied().enumerate()).unwrap();
        assert_eq!(resp.instance(), names[expected], "ws {ws}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_paths_get_403_however_they_are_spelled() {
    let (stubs, _gw, fleet) = fleet("", "").await;
    for path in [
        "/cleanup/all",
        "/remoteauth/x",
        "/api/internal/sessions",
        "//cleanup/x",
        "/CLEANUP/x",
        "/%63leanup/x",
        "/api/../cleanup/x",
    ] {
        let resp = send(fleet, "POST", path, &[("x-workspace-id", "1")], vec![]).await;
        assert_eq!(
            (resp.status, resp.error_code()),
            (403, "route.denied".to_string()),
            "{path}"
        );
    }
    assert_eq!(total_hits(&stubs), 0, "nothing reached an instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_and_encoded_slashes_never_reach_an_instance_under_a_denied_path() {
    let (stubs, _gw, fleet) = fleet("", "").await;
    let ws = [("x-workspace-id", "1")];
    // Resolved before routing: what reaches the instance is the canonical path.
    for (path, reaches) in [
        ("/cleanup/..", "/"),
        ("/cleanup/%2e%2e/all", "/all"),
        ("/remoteauth/..", "/"),
        ("/api/internal/%2E%2E", "/api/"),
        ("/api/%73essions", "/api/sessions"),
    ] {
        let resp = send(fleet, "GET", path, &ws, vec![]).await;
        assert_ne!(resp.status, 403, "{path}");
        assert_eq!(
            stubs[1].paths.lock().unwrap().last().map(String::as_str),
            Some(reaches),
            "{path}"
        );
    }
    // Meaning depends on who decodes it: refused.
    for path in [
        "/api%2Finternal/x",
        "/api%2finternal/x",
        "/api%5Cinternal",
        "/..",
        "/api/../../cleanup/x",
        "/api/sessions%zz",
    ] {
        let resp = send(fleet, "GET", path, &ws, vec![]).await;
        assert_eq!(
            (resp.status, resp.error_code()),
            (400, "request.bad_path".to_string()),
            "{path}"
        );
    }
    let (answer, _) = raw(
        fleet,
        b"GET /api\\internal/x HTTP/1.1\r\nHost: a\r\nX-Workspace-Id: 1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let reached = stubs.iter().flat_map(|s| s.paths.lock().unwrap().clone());
    for path in reached {
        for denied in ["/cleanup", "/remoteauth", "/api/internal"] {
            assert!(!path.to_ascii_lowercase().starts_with(denied), "{path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_431_and_long_targets_414_and_the_connection_is_closed() {
    let (stubs, _gw, fleet) = fleet("", "").await;
    let get = |target: &str, extra: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: a\r\nX-Workspace-Id: 1\r\n{extra}\r\n")
    };
    let big = |n: usize| format!("X-Big: {}\r\n", "a".repeat(n));
    let many: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let long_target = format!("/api/sessions?q={}", "a".repeat(9 * 1024));
    for (request, status, code) in [
        (
            get("/api/sessions", &big(20 * 1024)),
            431,
            Some("request.header_too_large"),
        ),
        (get(&long_target, ""), 414, Some("request.uri_too_long")),
        // Beyond what the gateway parses at all (64 KiB, 100 fields): hyper's own 431.
        (get("/api/sessions", &big(80 * 1024)), 431, None),
        (get("/api/sessions", &many), 431, None),
    ] {
        let (answer, closed) = raw(fleet, request.as_bytes()).await;
        let status_line = format!("HTTP/1.1 {status} ");
        assert!(answer.starts_with(&status_line), "{answer:.200}");
        if let Some(code) = code {
            assert!(
                answer.contains(&format!(r#""code":"{code}""#)),
                "{answer:.300}"
            );
        }
        assert!(closed, "the connection is closed after {status}");
    }
    assert_eq!(total_hits(&stubs), 0);
    // Just under the limits: served.
    let (answer, _) = raw(
        fleet,
        get(
            "/api/sessions",
            &format!("{}Connection: close\r\n", big(15 * 1024)),
        )
        .as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:.200}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_framing_gets_400_and_the_connection_is_closed() {
    let (stubs, _gw, fleet) = fleet("", "").await;
    let requests = [
        "POST /api/sessions HTTP/1.1\r\nHost: a\r\nX-Workspace-Id: 1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /api/sessions HTTP/1.1\r\nHost: a\r\nX-Workspace-Id: 1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "GET /api/sessions HTTP/1.1\r\nHost: a\r\nHost: b\r\nX-Workspace-Id: 1\r\n\r\n",
    ];
    for request in requests {
        let (answer, closed) = raw(fleet, request.as_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{request:?} -> {answer}"
        );
        assert!(closed, "connection left open after {request:?}");
    }
    assert_eq!(total_hits(&stubs), 0, "nothing reached an instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_appended_and_hop_by_hop_headers_removed() {
    let (_stubs, _gw, fleet) = fleet("", "").await;
    let headers = [
        ("x-workspace-id", "1"),
        ("x-forwarded-for", "203.0.113.7"),
        ("connection", "keep-alive, x-hop"),
        ("x-hop", "secret"),
        ("keep-alive", "timeout=5"),
    ];
    let json = send(fleet, "GET", "/api/sessions", &headers, vec![])
        .await
        .json();
    let seen = &json["headers"];
    assert_eq!(seen["x-forwarded-for"][0], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"][0], "http");
    assert_eq!(seen["x-forwarded-host"][0], fleet.to_string());
    for hop in ["x-hop", "keep-alive"] {
        assert!(
            seen.get(hop).is_none(),
            "{hop} reached the upstream: {seen}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_404_and_oversized_bodies_413() {
    let (stubs, _gw, fleet) = {
        let mut stubs = Vec::new();
        for i in 1..=4 {
            stubs.push(Upstream::node(&format!("u{i}")).await);
        }
        let (gw, fleet) = gateway_for(&stubs, "", "path_prefix: /api\nmax_body: 1KiB").await;
        (stubs, gw, fleet)
    };
    let resp = send(fleet, "GET", "/other", &[("x-workspace-id", "1")], vec![]).await;
    assert_eq!(
        (resp.status, resp.error_code()),
        (404, "route.not_found".into())
    );
    let resp = send(
        fleet,
        "POST",
        "/api/sessions",
        &[("x-workspace-id", "1")],
        vec![b'a'; 2048],
    )
    .await;
    assert_eq!(
        (resp.status, resp.error_code()),
        (413, "request.body_too_large".into())
    );
    drop(stubs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_instance_gets_504_after_the_routes_read_timeout() {
    let (_stubs, _gw, fleet) = fleet("", "read_timeout: 300ms").await;
    let resp = send(
        fleet,
        "GET",
        "/api/sessions?delay_ms=3000",
        &[("x-workspace-id", "2")],
        vec![],
    )
    .await;
    assert_eq!(
        (resp.status, resp.error_code()),
        (504, "upstream.timeout".into())
    );
    assert_eq!(resp.json()["error"]["fault"], "upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_pass_through_and_idle_ones_outlive_the_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_stubs, gw, fleet) = fleet("", "read_timeout: 300ms").await;
    let mut stream = open_tunnel(fleet, 3).await;
    // Idle for several read timeouts: the tunnel must survive (the subject of this test, not a sync).
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    stream.write_all(b"ping-after-idle").await.unwrap();
    let mut echo = [0u8; 15];
    let echoed = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_exact(&mut echo),
    )
    .await;
    // On failure, the gateway's log says which side ended the tunnel.
    assert!(
        matches!(echoed, Ok(Ok(_))),
        "tunnel cut after idling: {echoed:?}\n{}",
        gw.log()
    );
    assert_eq!(&echo, b"ping-after-idle");
}

/// Inputs behind known 2025-26 proxy CVEs (request smuggling through parser disagreements), against our build.
mod known_smuggling_inputs {
    use super::common::*;

    fn paths(stubs: &[Upstream]) -> Vec<String> {
        stubs
            .iter()
            .flat_map(|s| s.paths.lock().unwrap().clone())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_sent_after_an_upgrade_request_never_reach_the_instance_as_a_request_when_it_declines(
    ) {
        let (stubs, _gw, fleet) = fleet("", "").await;
        let request = "GET /api/sessions HTTP/1.1\r\nHost: a\r\nX-Workspace-Id: 1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\
                       GET /cleanup/smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
        let (answer, _) = raw(fleet, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let seen = paths(&stubs);
        assert!(
            !seen.iter().any(|p| p.contains("smuggled")),
            "smuggled request reached an instance: {seen:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_left_unread_by_an_early_error_is_never_parsed_as_the_next_request() {
        let (stubs, _gw, fleet) = fleet("", "").await;
        let inner = "GET /api/internal/x HTTP/1.1\r\nHost: a\r\nX-Workspace-Id: 1\r\n\r\n";
        let request = format!(
            "POST /cleanup/x HTTP/1.1\r\nHost: a\r\nX-Workspace-Id: 1\r\nContent-Length: {}\r\n\r\n{inner}",
            inner.len()
        );
        let (answer, closed) = raw(fleet, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        assert_eq!(
            answer.matches("HTTP/1.1").count(),
            1,
            "a second response came back: {answer}"
        );
        assert!(closed);
        assert!(paths(&stubs).is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn http_1_0_requests_are_proxied_and_closed() {
        let (_stubs, _gw, fleet) = fleet("", "").await;
        let (answer, closed) = raw(
            fleet,
            b"GET /api/sessions HTTP/1.0\r\nX-Workspace-Id: 2\r\n\r\n",
        )
        .await;
        assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
            "{answer}"
        );
        assert!(answer.contains("\"instance\":\"u3\""), "{answer}");
        assert!(
            closed,
            "an HTTP/1.0 request without keep-alive must end with the connection closed"
        );
    }
}
