//! Health and the learned session table, end to end: real binary, real stubs, instances killed
//! and brought back, config changed under a running gateway.

mod common;
use common::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn ws_header(ws: u64) -> String {
    ws.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_instance_under_load_leaves_the_others_error_free_and_it_recovers() {
    let (mut stubs, gw, fleet) = fleet("", "").await;
    // Load on workspaces of u1, u3 and u4 while u2 dies and comes back.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for ws in [0u64, 2, 3, 4, 6, 7] {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) && n < 5_000 {
                n += 1;
                match try_send(
                    fleet,
                    "GET",
                    "/api/sessions",
                    &[("x-workspace-id", &ws_header(ws))],
                    vec![],
                )
                .await
                {
                    Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
            }
        }));
    }
    wait_for("load to flow", DEADLINE, || async {
        (ok.load(Ordering::SeqCst) > 50).then_some(())
    })
    .await;

    stubs[1].stop();
    let down = until_status(fleet, "1", 503, DEADLINE).await;
    assert_eq!(down.error_code(), "routing.instance_down");
    assert_eq!(down.json()["error"]["fault"], "upstream");
    assert!(down.headers.contains_key("retry-after"));

    stubs[1].restart().await;
    // Health interval is 300ms: the workspace must come back within about one interval.
    let back = until_status(fleet, "1", 200, Duration::from_secs(2)).await;
    assert_eq!(back.instance(), "u2");

    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    assert!(
        ok.load(Ordering::SeqCst) > 100,
        "too little load to mean anything"
    );
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests for healthy instances failed"
    );
    let upstreams = gw.upstreams().await;
    assert_eq!(upstreams["groups"][0]["instances"][1]["healthy"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_health_check_takes_an_instance_out_and_a_passing_one_brings_it_back() {
    let (stubs, gw, fleet) = fleet("", "").await;
    stubs[0].healthy.store(false, Ordering::SeqCst);
    let r = until_status(fleet, "4", 503, DEADLINE).await;
    assert_eq!(r.error_code(), "routing.instance_down");
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"fleetgate_instance_healthy{group="node",instance_name="u1"} 0"#),
        "{metrics}"
    );
    stubs[0].healthy.store(true, Ordering::SeqCst);
    let r = until_status(fleet, "4", 200, DEADLINE).await;
    assert_eq!(r.instance(), "u1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_reassign_a_down_instances_workspace_moves_to_a_healthy_one_without_errors() {
    let (mut stubs, _gw, fleet) = fleet("when_instance_down: reassign", "").await;
    assert_eq!(sessions(fleet, "1").await.instance(), "u2");
    stubs[1].stop();
    // Even the request that discovers the death succeeds: the connect failed, so it is retried.
    for _ in 0..5 {
        let r = sessions(fleet, "1").await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_ne!(r.instance(), "u2");
    }
}

/// The fleet with `when_instance_down: reassign`, health checked once at start only, and `u2`
/// (workspace 1's instance under `ws % 4`) at `u2`.
async fn reassigning_fleet(stubs: &[Upstream], u2: SocketAddr) -> (Gateway, SocketAddr) {
    let fleet: SocketAddr = loopback();
    let admin: SocketAddr = loopback();
    let yaml = fleet_yaml(
        fleet,
        admin,
        &stubs.iter().collect::<Vec<_>>(),
        "when_instance_down: reassign",
        "",
    )
    .replace("interval: 300ms", "interval: 1h")
    .replace(&stubs[1].addr.to_string(), &u2.to_string());
    let gw = Gateway::start(&yaml, admin, &[fleet]).await;
    // The one check at start is done (it would otherwise undo, or make, a later marking).
    wait_for("every instance's first health check", DEADLINE, || async {
        let upstreams = gw.upstreams().await;
        let instances = upstreams["groups"][0]["instances"].as_array().cloned();
        instances
            .filter(|all| all.iter().all(|i| i["last_check_status"] == 200))
            .map(|_| ())
    })
    .await;
    (gw, fleet)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reassigned_request_keeps_its_body() {
    let mut stubs = nodes(4).await;
    let u2 = stubs[1].addr;
    let (gw, fleet) = reassigning_fleet(&stubs, u2).await;
    stubs[1].stop();
    wait_for("u2 to refuse connections", DEADLINE, || async {
        tokio::net::TcpStream::connect(u2)
            .await
            .is_err()
            .then_some(())
    })
    .await;

    let body = br#"{"workspace_id":1,"session_id":"s","to":"628123","message":"hello"}"#.to_vec();
    let r = send(
        fleet,
        "POST",
        "/api/messages/send",
        &[
            ("x-workspace-id", "1"),
            ("content-type", "application/json"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_ne!(r.instance(), "u2");
    assert_eq!(r.json()["body_len"], body.len());
    assert_eq!(r.json()["body_sha256"], sha256_hex(&body));
    // It was the refused connect that moved it (health is checked once an hour here).
    let refused = r#"fleetgate_upstream_requests_total{group="node",instance_name="u2",outcome="connect_error"}"#;
    assert_eq!(gw.sample(refused).await, 1.0);
}

/// An instance that dies mid-request: it answers its health check, but takes every other
/// request's head and closes the connection without a word. Counts the requests it took.
async fn dropper() -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let taken = Arc::new(AtomicUsize::new(0));
    let count = taken.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if head.starts_with(b"GET /health ") {
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                    let _ = stream.write_all(ok).await;
                    return;
                }
                count.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, taken, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_drops_a_fresh_connection_is_marked_down_and_only_idempotent_requests_move(
) {
    let stubs = nodes(4).await;
    let (u2, taken, task) = dropper().await;
    let (gw, fleet) = reassigning_fleet(&stubs, u2).await;
    let ws1 = [("x-workspace-id", "1")];

    // A GET may be sent twice: it moves on to a healthy instance.
    let r = send(fleet, "GET", "/api/sessions", &ws1, vec![]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_ne!(r.instance(), "u2");
    assert_eq!(taken.load(Ordering::SeqCst), 1);
    let dropped =
        r#"fleetgate_upstream_requests_total{group="node",instance_name="u2",outcome="reset"}"#;
    assert_eq!(gw.sample(dropped).await, 1.0);
    assert_eq!(
        gw.upstreams().await["groups"][0]["instances"][1]["healthy"],
        false
    );

    // A POST that an instance took and dropped may have been acted on: it is not sent again
    // (a new gateway, to which u2 looks healthy again).
    drop(gw);
    let (_gw, fleet) = reassigning_fleet(&stubs, u2).await;
    let r = send(fleet, "POST", "/api/messages/send", &ws1, b"{}".to_vec()).await;
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.error_code(), "upstream.broken");
    assert_eq!(taken.load(Ordering::SeqCst), 2, "the POST was taken once");
    assert_eq!(
        total_hits(&stubs),
        1,
        "only the GET reached a healthy instance"
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_session_keeps_its_instance_when_the_rule_changes() {
    let mut stubs = Vec::new();
    for i in 1..=4 {
        stubs.push(Upstream::node(&format!("u{i}")).await);
    }
    let fleet_addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let all: Vec<&Upstream> = stubs.iter().collect();
    let gw = Gateway::start(
        &fleet_yaml(fleet_addr, admin, &all, "", ""),
        admin,
        &[fleet_addr],
    )
    .await;

    let session = "webjs_5_1700000000_abcd1234";
    let create = format!(r#"{{"workspace_id":5,"session_id":"{session}","api_key":"k"}}"#);
    let r = send(
        fleet_addr,
        "POST",
        "/api/sessions",
        &[("content-type", "application/json")],
        create.into_bytes(),
    )
    .await;
    assert_eq!(r.instance(), "u2", "5 % 4 = 1: the 2nd instance");

    // Five instances now: the rule sends workspace 5 to u1, the learned session stays on u2.
    let u5 = Upstream::node("u5").await;
    let five: Vec<&Upstream> = stubs.iter().chain([&u5]).collect();
    let reload = gw
        .reload(&fleet_yaml(fleet_addr, admin, &five, "", ""))
        .await;
    assert_eq!(
        reload.status,
        200,
        "{}",
        String::from_utf8_lossy(&reload.body)
    );
    let status_path = format!("/api/sessions/{session}/status");
    assert_eq!(
        send(fleet_addr, "GET", &status_path, &[], vec![])
            .await
            .instance(),
        "u2"
    );
    let by_rule = send(
        fleet_addr,
        "GET",
        "/api/sessions?workspace_id=5",
        &[],
        vec![],
    )
    .await;
    assert_eq!(
        by_rule.instance(),
        "u1",
        "requests without the session follow the rule"
    );

    let upstreams = gw.upstreams().await;
    assert_eq!(upstreams["groups"][0]["learned_sessions"]["size"], 1);
    assert_eq!(
        upstreams["groups"][0]["instances"][1]["learned_sessions"],
        1
    );
    assert!(gw
        .metrics()
        .await
        .contains(r#"fleetgate_learned_sessions{group="node"} 1"#));

    // Deleting the session forgets it.
    let r = send(
        fleet_addr,
        "DELETE",
        &format!("/api/sessions/{session}"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.instance(), "u2");
    assert_eq!(
        send(fleet_addr, "GET", &status_path, &[], vec![])
            .await
            .instance(),
        "u1"
    );
    assert_eq!(
        gw.upstreams().await["groups"][0]["learned_sessions"]["size"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_reload_changes_nothing_and_lists_every_problem() {
    let (_stubs, gw, fleet) = fleet("", "").await;
    let r = gw.reload("listeners: { fleet: { listen: nope } }\nroutes: [{ name: x, listener: fleet, upstream: missing }]\n").await;
    assert_eq!(r.status, 422);
    let problems = r.json()["error"]["problems"].as_array().unwrap().len();
    assert!(problems >= 2, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        send(
            fleet,
            "GET",
            "/api/sessions",
            &[("x-workspace-id", "3")],
            vec![]
        )
        .await
        .instance(),
        "u4"
    );
}

/// A gateway with one balance route to a Laravel 10-style app (no health route) checked at `/up`
/// with `expect` (a YAML fragment, or nothing for the default).
async fn laravel_checked_at_up(expect: &str) -> (Upstream, Gateway, SocketAddr) {
    let laravel = Upstream::laravel("laravel").await;
    let (edge, admin) = (loopback(), loopback());
    let yaml = format!(
        "admin: {{ listen: {admin} }}\nlisteners:\n  edge: {{ listen: {edge} }}\nupstreams:\n  laravel:\n    instances: [{{ name: laravel, addr: {} }}]\n    health: {{ path: /up, interval: 200ms, timeout: 250ms{expect} }}\nroutes:\n  - {{ name: app, listener: edge, upstream: laravel }}\n",
        laravel.addr
    );
    let gw = Gateway::start(&yaml, admin, &[edge]).await;
    (laravel, gw, edge)
}

/// Waits until `laravel` has been checked three times (so two failures would have marked it down).
async fn three_checks(laravel: &Upstream) {
    wait_for("three health checks", DEADLINE, || {
        let n = laravel.health_checks.load(Ordering::SeqCst);
        async move { (n >= 3).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_answers_404_to_the_health_path_is_alive_by_default() {
    let (laravel, gw, edge) = laravel_checked_at_up("").await;
    three_checks(&laravel).await;
    let instance = &gw.upstreams().await["groups"][0]["instances"][0];
    assert_eq!(
        (&instance["healthy"], &instance["last_check_status"]),
        (&true.into(), &404.into())
    );
    let home = send(edge, "GET", "/", &[], vec![]).await;
    assert_eq!((home.status, home.instance()), (200, "laravel".to_string()));
    assert!(
        gw.log().contains("the health check path answers 404"),
        "{}",
        gw.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_expect_2xx_an_app_that_answers_404_to_the_health_path_is_marked_down() {
    let (laravel, gw, edge) = laravel_checked_at_up(", expect: 2xx").await;
    three_checks(&laravel).await;
    let instance = &gw.upstreams().await["groups"][0]["instances"][0];
    assert_eq!(instance["healthy"], false);
    assert_eq!(instance["last_error"], "health check answered 404");
    let home = send(edge, "GET", "/", &[], vec![]).await;
    assert_eq!(
        (home.status, home.error_code()),
        (503, "upstream.no_healthy_instance".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_from_the_health_path_marks_an_instance_down_under_the_default_expect() {
    let (stubs, gw, _fleet) = fleet("", "").await;
    stubs[2].healthy.store(false, Ordering::SeqCst);
    wait_for("u3 to be marked down", DEADLINE, || async {
        let instance = gw.upstreams().await["groups"][0]["instances"][2].clone();
        (instance["healthy"] == false).then_some(instance)
    })
    .await;
    let instance = &gw.upstreams().await["groups"][0]["instances"][2];
    assert_eq!(instance["last_check_status"], 500);
}
