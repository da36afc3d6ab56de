//! TLS listeners end to end, on loopback with certificates made by the `openssl` CLI: the
//! certificate is chosen by SNI, TLS listeners speak HTTP/2 by ALPN, the hub serves `wss://`,
//! certificates replaced on disk are served without a restart (a broken replacement is refused and
//! logged), and a missing or empty certificate directory stops startup.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

// ---------------------------------------------------------------------------------------------
// Certificates (openssl CLI)

/// A test CA and the directory a listener serves, each in its own temp dir.
struct Pki {
    ca: tempfile::TempDir,
    /// The listener's `tls.dir`.
    certs: tempfile::TempDir,
}

impl Pki {
    /// A CA plus pairs `a.test` (serial 1001) and `b.test` (serial 2002) in the served directory.
    fn new() -> Self {
        let (ca, certs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        make_ca(ca.path(), "fleetgate test CA");
        let pki = Self { ca, certs };
        pki.issue("a.test", 1001, pki.certs.path());
        pki.issue("b.test", 2002, pki.certs.path());
        pki
    }

    /// Writes `out/NAME.crt` + `out/NAME.key` for DNS name `name`, signed by the CA.
    fn issue(&self, name: &str, serial: u64, out: &Path) {
        let san = format!("DNS:{name}");
        issue(self.ca.path(), out, name, &san, serial);
    }

    fn dir(&self) -> &Path {
        self.certs.path()
    }

    fn ca_cert(&self) -> CertificateDer<'static> {
        let pem = std::fs::read(self.ca.path().join("ca.crt")).unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        CertificateDer::from(block.contents)
    }
}

/// The serial of a DER certificate.
fn serial(der: &[u8]) -> u64 {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial()
        .iter()
        .fold(0, |n, b| (n << 8) | u64::from(*b))
}

// ---------------------------------------------------------------------------------------------
// Clients

/// A TLS connection to `addr` asking for `server_name`, trusting only the test CA.
async fn connect(
    pki: &Pki,
    addr: SocketAddr,
    server_name: &str,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_cert()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("TLS handshake timed out"))?
}

/// The serial of the certificate the gateway presents for `server_name` (`None` if the
/// handshake fails).
async fn served_serial(pki: &Pki, addr: SocketAddr, server_name: &str) -> Option<u64> {
    let tls = connect(pki, addr, server_name, &[]).await.ok()?;
    let leaf = tls.get_ref().1.peer_certificates()?.first()?.clone();
    Some(serial(&leaf))
}

/// `GET path` over HTTP/1.1 on a TLS connection; the answer's status and JSON body.
async fn get_http1(tls: TlsStream<TcpStream>, host: &str, path: &str) -> (u16, Value) {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("an answer in time")
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

// ---------------------------------------------------------------------------------------------
// Gateways

/// A gateway with one TLS proxy listener `edge` (`tls_extra`: more keys of its `tls` map) in front
/// of `stub`.
async fn edge_gateway(pki: &Pki, stub: &Upstream, tls_extra: &str) -> (Gateway, SocketAddr) {
    let (edge, admin) = (loopback(), loopback());
    let yaml = format!(
        "threads: 2\nadmin: {{ listen: {admin} }}\nlisteners:\n  edge:\n    listen: {edge}\n    tls: {{ dir: {dir}{tls_extra} }}\nupstreams:\n  node:\n    instances:\n      - {{ name: {name}, addr: {addr} }}\n    health: {{ interval: 300ms, timeout: 250ms }}\nroutes:\n  - {{ name: api, listener: edge, upstream: node }}\n",
        dir = pki.dir().display(),
        name = stub.name,
        addr = stub.addr,
    );
    (Gateway::start(&yaml, admin, &[edge]).await, edge)
}

/// Runs `fleetgate run` on `yaml` to its exit; its exit code and stderr.
async fn run_to_exit(command: &str, yaml: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.yaml");
    std::fs::write(&config, yaml).unwrap();
    let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetgate"))
        .args([command, "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .spawn()
        .unwrap();
    let status = wait_for("fleetgate to exit", DEADLINE, || {
        let exited = child.try_wait().unwrap();
        async move { exited }
    })
    .await;
    let text = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    (status.code(), text)
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn sni_picks_each_names_certificate_and_upstreams_see_x_forwarded_proto_https() {
    let pki = Pki::new();
    let stub = Upstream::node("n1").await;
    let (_gw, edge) = edge_gateway(&pki, &stub, "").await;

    assert_eq!(served_serial(&pki, edge, "a.test").await, Some(1001));
    assert_eq!(served_serial(&pki, edge, "b.test").await, Some(2002));

    let tls = connect(&pki, edge, "b.test", &[b"http/1.1"]).await.unwrap();
    let (status, body) = get_http1(tls, "b.test", "/info").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["instance"], "n1");
    assert_eq!(body["headers"]["x-forwarded-proto"][0], "https", "{body}");
}

#[tokio::test]
async fn tls_listeners_negotiate_http2_by_alpn_and_proxy_h2_requests() {
    let pki = Pki::new();
    let stub = Upstream::node("n1").await;
    let (_gw, edge) = edge_gateway(&pki, &stub, "").await;

    let tls = connect(&pki, edge, "a.test", &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("https://a.test/api/sessions")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("an answer in time")
        .unwrap();
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["path"], "/api/sessions");
    assert_eq!(body["headers"]["x-forwarded-proto"][0], "https");

    // An HTTP/1.1-only client still gets HTTP/1.1.
    let tls = connect(&pki, edge, "a.test", &[b"http/1.1"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn tls_h2_false_offers_no_http2() {
    let pki = Pki::new();
    let stub = Upstream::node("n1").await;
    let (_gw, edge) = edge_gateway(&pki, &stub, ", h2: false").await;
    let tls = connect(&pki, edge, "a.test", &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    let (status, body) = get_http1(tls, "a.test", "/").await;
    assert_eq!((status, &body["path"]), (200, &Value::from("/")));
}

#[tokio::test]
async fn the_hub_serves_wss_over_http1_on_a_tls_listener() {
    let pki = Pki::new();
    let (addr, admin) = (loopback(), loopback());
    let apps = format!("    - id: {APP_ID}\n      key: {KEY}\n      secret: {SECRET}\n");
    let plain = format!("hub: {{ listen: {addr} }}");
    let yaml = hub_yaml(addr, admin, &apps).replacen(
        &plain,
        &format!(
            "hub: {{ listen: {addr}, tls: {{ dir: {} }} }}",
            pki.dir().display()
        ),
        1,
    );
    assert!(yaml.contains("tls:"), "{yaml}");
    let _gw = Gateway::start(&yaml, admin, &[addr]).await;

    // A browser offers h2 too; the hub answers without ALPN, i.e. HTTP/1.1.
    let tls = connect(&pki, addr, "a.test", &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    let url = format!("wss://a.test/app/{KEY}?protocol=7&client=js&version=8.4.0");
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    let hello = common::pusher::next(&mut ws).await;
    assert_eq!(hello["event"], "pusher:connection_established", "{hello}");
}

/// Writes `bytes` beside `path` and renames it over `path`, as deployment tools do.
fn rename_over(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn replaced_certificates_are_served_without_a_restart_and_a_broken_one_is_refused() {
    let pki = Pki::new();
    let stub = Upstream::node("n1").await;
    let (gw, edge) = edge_gateway(&pki, &stub, "").await;
    assert_eq!(served_serial(&pki, edge, "a.test").await, Some(1001));

    // A renewed a.test (new serial) made aside, then renamed over the served pair.
    let staging = tempfile::tempdir().unwrap();
    pki.issue("a.test", 1003, staging.path());
    for file in ["a.test.key", "a.test.crt"] {
        let bytes = std::fs::read(staging.path().join(file)).unwrap();
        rename_over(&pki.dir().join(file), &bytes);
    }
    wait_for("the renewed a.test certificate", DEADLINE, || async {
        (served_serial(&pki, edge, "a.test").await == Some(1003)).then_some(())
    })
    .await;
    assert_eq!(served_serial(&pki, edge, "b.test").await, Some(2002));

    // A broken key: refused, named in the log, and the last good certificates stay.
    rename_over(&pki.dir().join("a.test.key"), b"not a key\n");
    wait_for("the refused reload in the log", DEADLINE, || async {
        gw.log()
            .lines()
            .any(|l| {
                l.contains("not reloaded")
                    && l.contains("a.test.key")
                    && l.contains("no PEM private key")
            })
            .then_some(())
    })
    .await;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    for _ in 0..8 {
        tick.tick().await;
        assert_eq!(served_serial(&pki, edge, "a.test").await, Some(1003));
        assert_eq!(served_serial(&pki, edge, "b.test").await, Some(2002));
    }
}

#[tokio::test]
async fn startup_stops_with_the_directory_named_when_it_is_missing_empty_or_has_a_bad_pair() {
    let empty = tempfile::tempdir().unwrap();
    let missing: PathBuf = empty.path().join("no-such-certs");
    let lonely = tempfile::tempdir().unwrap();
    std::fs::write(lonely.path().join("site.crt"), "x").unwrap();
    let cases = [
        (missing.clone(), missing.display().to_string()),
        (
            empty.path().to_path_buf(),
            "no certificate pairs".to_string(),
        ),
        (
            lonely.path().to_path_buf(),
            "site.key is missing".to_string(),
        ),
    ];
    for (dir, expected) in cases {
        let (edge, admin) = (loopback(), loopback());
        let yaml = format!(
            "admin: {{ listen: {admin} }}\nlisteners:\n  edge: {{ listen: {edge}, tls: {{ dir: {} }} }}\nupstreams:\n  node: {{ instances: [{{ name: n, addr: 127.0.0.1:9 }}] }}\nroutes: [{{ name: api, listener: edge, upstream: node }}]\n",
            dir.display()
        );
        // `validate` finds what `run` would stop on.
        for command in ["run", "validate"] {
            let (code, stderr) = run_to_exit(command, &yaml).await;
            assert_ne!(code, Some(0), "{command}: {stderr}");
            assert!(code.is_some(), "killed by a signal: {stderr}");
            assert!(stderr.contains("listener `edge`"), "{command}: {stderr}");
            assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
            assert!(stderr.contains(&expected), "{stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

#[test]
fn a_relative_tls_dir_is_relative_to_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        "listeners:\n  edge: { listen: 127.0.0.1:8443, tls: { dir: certs/live } }\n  plain: { listen: 127.0.0.1:8080 }\n",
    )
    .unwrap();
    let config = fleetgate::config::load(&path).unwrap();
    let edge = config.listeners.iter().find(|l| l.name == "edge").unwrap();
    let tls = edge.tls.as_ref().unwrap();
    assert_eq!(tls.dir, dir.path().join("certs/live"));
    assert!(tls.h2, "h2 defaults to on");
    let plain = config.listeners.iter().find(|l| l.name == "plain").unwrap();
    assert_eq!(plain.tls, None);
}

#[test]
fn h2_is_refused_on_the_hub_listener_and_off_by_default_there() {
    let hub = |tls: &str| {
        format!(
            "listeners:\n  hub: {{ listen: 127.0.0.1:8080, tls: {{ dir: /certs{tls} }} }}\nhub: {{ listener: hub, apps: [{{ id: a, key: k, secret: s }}] }}\n"
        )
    };
    let err = fleetgate::config::parse(&hub(", h2: true"), &|_| None).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert_eq!(err.problems[0].path, "listeners.hub.tls.h2");
    let config = fleetgate::config::parse(&hub(""), &|_| None).unwrap();
    assert_eq!(config.listeners[0].tls.as_ref().map(|t| t.h2), Some(false));
    let config = fleetgate::config::parse(&hub(", h2: false"), &|_| None).unwrap();
    assert_eq!(config.listeners[0].tls.as_ref().map(|t| t.h2), Some(false));
    let err = fleetgate::config::parse(&hub(", h2: true, certs: x"), &|_| None).unwrap_err();
    assert!(
        err.problems
            .iter()
            .any(|p| p.path == "listeners.hub.tls.certs"),
        "{err}"
    );
}
