//! Test harness: loopback upstreams that behave like the Node service and Laravel
//! ([`upstream`]), the real `fleetgate` binary on ephemeral ports, and small HTTP clients.
//! Everything waits on conditions with deadlines; nothing sleeps to synchronise.
#![allow(dead_code)]

pub mod clients;
pub mod process;
pub mod pusher;
pub mod receiver;
pub mod upstream;

pub use upstream::Upstream;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const DEADLINE: Duration = Duration::from_secs(20);

/// Waits until `check` returns `Some`, polling, or panics with `what` after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A free loopback port (bound then released), below Linux's ephemeral range (32768–60999), so
/// no outgoing connection of this machine can take it between this call and the gateway's bind
/// (a port from `bind(:0)` is an ephemeral one, and the tests open thousands of connections).
/// Ports are handed out in turn from a start that differs per process.
pub fn free_port() -> u16 {
    const LOW: u32 = 12_000;
    const SPAN: u32 = 20_000;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7_919) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (start + n) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{}", LOW + SPAN)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A pseudo-argument for [`Gateway::launch`]: the gateway applies changes of `gateway.yaml` by
/// itself. Without it a test gateway runs with `--no-watch` and reloads only when its test asks
/// (SIGHUP, `POST /admin/reload`), so each reload happens, and counts, exactly once.
pub const WATCH: &str = "(watch gateway.yaml)";

/// The real `fleetgate` binary running on a config file in a temp dir; killed on drop.
pub struct Gateway {
    child: Child,
    pub dir: tempfile::TempDir,
    pub config_path: std::path::PathBuf,
    pub admin: SocketAddr,
}

impl Gateway {
    /// Writes `yaml` (which must contain `admin: { listen: ADMIN }`-style placeholders already
    /// filled) and starts the binary, waiting until `ready` addresses accept connections and the
    /// admin answers.
    /// Starts the binary on `yaml` without waiting for anything.
    pub fn launch(yaml: &str, admin: SocketAddr, args: &[&str]) -> Self {
        Self::launch_env(yaml, admin, args, &[])
    }

    /// [`Gateway::launch`] with environment variables for the process (`${VAR}` in the config).
    pub fn launch_env(yaml: &str, admin: SocketAddr, args: &[&str], env: &[(&str, &str)]) -> Self {
        let watch = args.contains(&WATCH);
        let args: Vec<&str> = args.iter().copied().filter(|a| *a != WATCH).collect();
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("gateway.yaml");
        std::fs::write(&config_path, yaml).unwrap();
        let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_fleetgate"))
            .args(["run", "-c"])
            .arg(&config_path)
            .args((!watch).then_some("--no-watch"))
            .args(args)
            .envs(env.iter().copied())
            .env(
                "FLEETGATE_LOG",
                std::env::var("FLEETGATE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        Self {
            child,
            dir,
            config_path,
            admin,
        }
    }

    pub async fn start(yaml: &str, admin: SocketAddr, listeners: &[SocketAddr]) -> Self {
        Self::start_with(yaml, admin, listeners, &[]).await
    }

    /// [`Gateway::start`] with environment variables for the process.
    pub async fn start_env(
        yaml: &str,
        admin: SocketAddr,
        listeners: &[SocketAddr],
        env: &[(&str, &str)],
    ) -> Self {
        Self::launch_env(yaml, admin, &[], env)
            .until_listening(listeners)
            .await
    }

    /// [`Gateway::start`] with extra arguments to `fleetgate run`.
    pub async fn start_with(
        yaml: &str,
        admin: SocketAddr,
        listeners: &[SocketAddr],
        args: &[&str],
    ) -> Self {
        Self::launch(yaml, admin, args)
            .until_listening(listeners)
            .await
    }

    /// Waits until `listeners` and the admin listener accept connections; a gateway that exits
    /// meanwhile fails the test at once, with its log.
    async fn until_listening(self, listeners: &[SocketAddr]) -> Self {
        let mut gateway = self;
        let start = Instant::now();
        for addr in listeners.iter().chain([&gateway.admin]) {
            while TcpStream::connect(addr).await.is_err() {
                let exited = gateway.child.try_wait().unwrap();
                assert!(
                    exited.is_none(),
                    "fleetgate exited early ({exited:?}): {}",
                    gateway.log()
                );
                assert!(
                    start.elapsed() < DEADLINE,
                    "fleetgate is not listening on {addr}: {}",
                    gateway.log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        gateway
    }

    /// Starts the binary on `yaml`, whose listeners and admin listener may be on port 0, and
    /// waits until it is ready: the admin address is read from the start-up log, the others
    /// from `GET /admin/listeners` (listener name → address). No port is picked by the test,
    /// so none can be taken by another process before the gateway binds it.
    pub async fn start_bound(yaml: &str) -> (Self, HashMap<String, SocketAddr>) {
        let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut gateway = Self::launch(yaml, unknown, &[]);
        let start = Instant::now();
        gateway.admin = loop {
            let log = gateway.log();
            let admin = log
                .lines()
                .filter(|l| l.contains("listening") && l.contains("listener=admin"))
                .find_map(|l| {
                    l.split("addr=")
                        .nth(1)?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                });
            if let Some(admin) = admin {
                break admin;
            }
            let exited = gateway.child.try_wait().unwrap();
            assert!(
                exited.is_none(),
                "fleetgate exited early ({exited:?}): {log}"
            );
            assert!(
                start.elapsed() < DEADLINE,
                "no admin address in the log: {log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let admin = gateway.admin;
        // The address is logged before anything listens: refused connections are waited out.
        wait_for("fleetgate to be ready", DEADLINE, || async move {
            let ready = try_send(admin, "GET", "/readyz", &[], Vec::new()).await;
            ready.is_ok_and(|r| r.status == 200).then_some(())
        })
        .await;
        let bound = send(admin, "GET", "/admin/listeners", &[], Vec::new())
            .await
            .json();
        let listeners = bound["listeners"]
            .as_object()
            .expect("listeners by name")
            .iter()
            .map(|(name, addr)| (name.clone(), addr.as_str().unwrap().parse().unwrap()))
            .collect();
        (gateway, listeners)
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// The names of the gateway process's threads.
    pub fn thread_names(&self) -> Vec<String> {
        let tasks = format!("/proc/{}/task", self.child.id());
        let mut names: Vec<String> = std::fs::read_dir(tasks)
            .expect("the gateway's /proc entry")
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|n| n.trim_end().to_string())
            .collect();
        names.sort();
        names
    }

    /// Sends a signal by name (`HUP`, `TERM`, `QUIT`…).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "could not signal fleetgate"
        );
    }

    /// A sample of the admin scrape (`series` written exactly as exported), 0 when absent.
    pub async fn sample(&self, series: &str) -> f64 {
        sample(&self.metrics().await, series).unwrap_or(0.0)
    }

    /// Waits for the process to exit (by itself) and returns its exit code.
    pub async fn exit_code(&mut self, deadline: Duration) -> Option<i32> {
        let child = &mut self.child;
        let status = wait_for("fleetgate to exit", deadline, || {
            let exited = child.try_wait().unwrap();
            async move { exited }
        })
        .await;
        status.code()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmSize`, `VmHWM`).
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    /// Rewrites the config and asks the gateway to reload it.
    pub async fn reload(&self, yaml: &str) -> Resp {
        std::fs::write(&self.config_path, yaml).unwrap();
        send(self.admin, "POST", "/admin/reload", &[], Vec::new()).await
    }

    pub async fn upstreams(&self) -> Value {
        send(self.admin, "GET", "/admin/upstreams", &[], Vec::new())
            .await
            .json()
    }

    pub async fn metrics(&self) -> String {
        String::from_utf8_lossy(
            &send(self.admin, "GET", "/metrics", &[], Vec::new())
                .await
                .body,
        )
        .into_owned()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `instance` field the Node stub answered with.
    pub fn instance(&self) -> String {
        self.json()["instance"]
            .as_str()
            .unwrap_or_else(|| panic!("no instance in {:?}", self))
            .to_string()
    }

    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Opens a WebSocket (to `workspace`'s instance) through the fleet listener and proves the
/// tunnel works with one echo. No retry: a tunnel torn down after its 101 is a failure.
pub async fn open_tunnel(fleet: SocketAddr, workspace: u64) -> TcpStream {
    let handshake = format!("GET /ws HTTP/1.1\r\nHost: x\r\nX-Workspace-Id: {workspace}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    let mut stream = TcpStream::connect(fleet).await.unwrap();
    stream.write_all(handshake.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "closed during handshake"
        );
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream.write_all(b"probe").await.unwrap();
    let mut echo = [0u8; 5];
    let probe = tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echo)).await;
    assert!(
        matches!(probe, Ok(Ok(_))) && &echo == b"probe",
        "the fresh tunnel did not echo: {probe:?}"
    );
    stream
}

/// The sample of `series` (exact text up to the value) in a scrape, if present.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Resp {
    try_send(addr, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

pub async fn try_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Resp, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let fut = async {
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Resp {
            status,
            headers,
            body,
        })
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// Writes raw bytes and reads until the server closes (or 10 s pass). Returns what was read and
/// whether the connection was closed by the server.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// The YAML for a fleet of `stubs` behind one workspace route, with extra `routing` keys and
/// route keys spliced in (each a YAML fragment of `key: value` lines, no indentation).
pub fn fleet_yaml(
    fleet: SocketAddr,
    admin: SocketAddr,
    stubs: &[&Upstream],
    routing: &str,
    route: &str,
) -> String {
    let instances = instances_yaml(stubs.iter().copied());
    let indent = |text: &str, n: usize| -> String {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| format!("{}{l}\n", " ".repeat(n)))
            .collect()
    };
    format!(
        "threads: 2\nadmin:\n  listen: {admin}\nlisteners:\n  fleet:\n    listen: {fleet}\nupstreams:\n  node:\n    instances:\n{instances}    health:\n      interval: 300ms\n      timeout: 250ms\n    routing:\n{}routes:\n  - name: node-api\n    listener: fleet\n    upstream: node\n    treatment: workspace\n{}",
        indent(if routing.trim().is_empty() { "assign: modulo" } else { routing }, 6),
        indent(route, 4),
    )
}

/// Node stand-ins `u1..=un`.
pub async fn nodes(n: usize) -> Vec<Upstream> {
    let mut nodes = Vec::with_capacity(n);
    for i in 1..=n {
        nodes.push(Upstream::node(&format!("u{i}")).await);
    }
    nodes
}

/// The `instances:` list items for `stubs` (indented six spaces, one per line).
pub fn instances_yaml<'a>(stubs: impl IntoIterator<Item = &'a Upstream>) -> String {
    stubs
        .into_iter()
        .map(|s| format!("      - {{ name: {}, addr: {} }}\n", s.name, s.addr))
        .collect()
}

/// Requests the stubs answered (health checks excluded).
pub fn total_hits(stubs: &[Upstream]) -> usize {
    stubs.iter().map(|s| s.hits.load(Ordering::SeqCst)).sum()
}

/// `GET /api/sessions` for workspace `ws` (the Node service's session list).
pub async fn sessions(fleet: SocketAddr, ws: &str) -> Resp {
    send(
        fleet,
        "GET",
        "/api/sessions",
        &[("x-workspace-id", ws)],
        vec![],
    )
    .await
}

/// Polls `GET /api/sessions` for workspace `ws` until it is answered with `status`.
pub async fn until_status(fleet: SocketAddr, ws: &str, status: u16, deadline: Duration) -> Resp {
    wait_for(
        &format!("workspace {ws} to be answered {status}"),
        deadline,
        || async {
            let r = sessions(fleet, ws).await;
            (r.status == status).then_some(r)
        },
    )
    .await
}

/// Four stubs u1..u4 and a gateway in front of them with the given routing/route fragments.
pub async fn fleet(routing: &str, route: &str) -> (Vec<Upstream>, Gateway, SocketAddr) {
    let mut stubs = Vec::new();
    for i in 1..=4 {
        stubs.push(Upstream::node(&format!("u{i}")).await);
    }
    let (gateway, fleet_addr) = gateway_for(&stubs, routing, route).await;
    (stubs, gateway, fleet_addr)
}

/// A gateway in front of `stubs` with its listeners on port 0: the gateway and the fleet
/// listener's address.
pub async fn gateway_for(stubs: &[Upstream], routing: &str, route: &str) -> (Gateway, SocketAddr) {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let refs: Vec<&Upstream> = stubs.iter().collect();
    let yaml = fleet_yaml(any, any, &refs, routing, route);
    let (gateway, listeners) = Gateway::start_bound(&yaml).await;
    (gateway, listeners["fleet"])
}

/// Established IPv4 connections accepted on `addr`, and the bytes they received that the
/// accepting process has not read yet (`/proc/net/tcp`'s `rx_queue`).
pub fn unread_on(addr: SocketAddr) -> (usize, u64) {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!(":{:04X}", addr.port());
    let mut count = (0, 0);
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // local_address, st (01 = established), tx_queue:rx_queue
        if fields[1].ends_with(&local) && fields[3] == "01" {
            let rx = fields[4].split(':').nth(1).unwrap();
            count.0 += 1;
            count.1 += u64::from_str_radix(rx, 16).unwrap();
        }
    }
    count
}

/// A free loopback address.
pub fn loopback() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

/// The hub app every hub test uses.
pub const APP_ID: &str = "app-1";
pub const KEY: &str = "app-key";
pub const SECRET: &str = "app-secret";

/// The real gateway with only a hub listener.
pub struct Hub {
    pub gw: Gateway,
    pub addr: SocketAddr,
}

/// A hub with one app that allows client events (`app_extra`: more keys of the app, each line
/// indented six spaces).
pub async fn hub(app_extra: &str) -> Hub {
    let (addr, admin) = (loopback(), loopback());
    let apps = format!(
        "    - id: {APP_ID}\n      key: {KEY}\n      secret: {SECRET}\n      client_events: true\n{app_extra}"
    );
    let gw = Gateway::start(&hub_yaml(addr, admin, &apps), admin, &[addr]).await;
    Hub { gw, addr }
}

/// A gateway with only a hub listener, serving `apps` (YAML list items indented four spaces).
pub fn hub_yaml(addr: SocketAddr, admin: SocketAddr, apps: &str) -> String {
    format!(
        "threads: 2\nadmin: {{ listen: {admin} }}\nlisteners:\n  hub: {{ listen: {addr} }}\nhub:\n  listener: hub\n  apps:\n{apps}"
    )
}

/// How many header bytes [`drip_head`] sends at most (one per 100 ms: 20 s).
pub const DRIP_LIMIT: usize = 200;

/// Starts a slowloris client on `addr`: `start`, then one header byte every 100 ms, never ending
/// the head, until the server closes the connection or [`DRIP_LIMIT`] bytes are sent. Resolves
/// to how many were sent.
pub async fn drip_head(addr: SocketAddr, start: &[u8]) -> tokio::task::JoinHandle<usize> {
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(start).await.unwrap();
    tokio::spawn(async move {
        let mut sent = 0;
        while sent < DRIP_LIMIT && slow.write_all(b"X").await.is_ok() {
            sent += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut rest = Vec::new();
        let _ = slow.read_to_end(&mut rest).await;
        sent
    })
}

/// Runs the openssl CLI in `dir` (the TLS tests make their certificates with it).
pub fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI (scripts/deps.sh --test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA in `dir`: `ca.key` and `ca.crt` (P-256, two days), subject CN `name`.
pub fn make_ca(dir: &std::path::Path, name: &str) {
    let subject = format!("/CN={name}");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &subject,
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
}

/// Writes `out/NAME.crt` + `out/NAME.key`, a server certificate for `san` (`DNS:a.test`,
/// `DNS:localhost,IP:127.0.0.1`) with serial `serial`, signed by the CA in `ca_dir`.
pub fn issue(ca_dir: &std::path::Path, out: &std::path::Path, name: &str, san: &str, serial: u64) {
    let ext = format!(
        "subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"
    );
    std::fs::write(ca_dir.join(format!("{name}.ext")), ext).unwrap();
    let path = |dir: &std::path::Path, suffix: &str| {
        dir.join(format!("{name}.{suffix}")).display().to_string()
    };
    let (key, csr, crt) = (path(out, "key"), path(ca_dir, "csr"), path(out, "crt"));
    let (subject, ext, serial) = (
        format!("/CN={name}"),
        format!("{name}.ext"),
        serial.to_string(),
    );
    openssl(
        ca_dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &subject,
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    openssl(
        ca_dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            &serial,
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ],
    );
}
