//! Signatures made by other implementations verify with `fleetgate::signing::verify`, and
//! `fleetgate sign` signs exactly as they do.
//!
//! The other implementations live in `tests/interop/sign.js`: Node's `crypto` exactly as the Node
//! service signs (hex-timestamp-body), the official `standardwebhooks` npm package, and GitHub's
//! `sha256=` hex. `npm install` runs once, only when `tests/interop/node_modules` lacks the
//! package (the only network access). Every child process runs under a deadline.
//! Node.js is required: without it these tests fail (skip them by name if you must: `cargo test -- --skip node`).

mod common;
use common::process::run_bounded;
use fleetgate::signing::{verify, Scheme, Secret, VerifyError};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TOLERANCE: Duration = Duration::from_secs(300);
const TIMESTAMP: i64 = 1_700_000_000;
const ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
const NPM_DEADLINE: Duration = Duration::from_secs(300);
const RUN_DEADLINE: Duration = Duration::from_secs(60);

fn secret_text(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::HexTimestampBody => "s3cr3t-shared-by-node-and-laravel",
        Scheme::StandardWebhooks => "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        Scheme::GitHub => "It's a Secret to Everybody",
    }
}

fn secret(scheme: Scheme) -> Secret {
    Secret::from_config(scheme, secret_text(scheme)).unwrap()
}

/// The bodies every implementation must agree on.
fn bodies() -> Vec<(&'static str, Vec<u8>)> {
    let ascii = br#"{"event":"session_ready","data":{"workspace_id":1,"session_id":"webjs_1_1700000000_ab12cd34","phone_number":"6281234567890","status":"connected"}}"#;
    let unicode = r#"{"t":"é\u00e9\/","emoji":"😀","cjk":"漢字","nl":"a\nb","tab":"	"}"#;
    vec![
        ("ascii json", ascii.to_vec()),
        ("unicode and escapes", unicode.as_bytes().to_vec()),
        ("1 MiB base64 media", media_body(1 << 20)),
        ("empty", Vec::new()),
    ]
}

/// A `message_received` envelope carrying `len` deterministic base64 characters.
fn media_body(len: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state: u32 = 0x2545_f491;
    let media: Vec<u8> = (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            ALPHABET[(state >> 16) as usize % 64]
        })
        .collect();
    let head =
        br#"{"event":"message_received","data":{"workspace_id":7,"media":"data:image/jpeg;base64,"#;
    [&head[..], &media, br#""}}"#].concat()
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `command` to completion, killing it and failing the test past `deadline`.
fn run(command: Command, deadline: Duration) -> Output {
    run_bounded(command, None, deadline)
}

/// Installs the Node half once (`npm install` in `tests/interop`); fails loudly without Node.js
/// (there is no switch that lets these tests pass without running it).
fn node_ready() {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let installed = INSTALLED.get_or_init(|| {
        let dir = repo().join("tests/interop");
        if dir
            .join("node_modules/standardwebhooks/package.json")
            .exists()
        {
            return Ok(());
        }
        let mut npm = Command::new("npm");
        npm.args(["install", "--no-audit", "--no-fund"])
            .current_dir(&dir);
        let out = run(npm, NPM_DEADLINE);
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = installed {
        panic!("npm install in tests/interop failed (is Node.js installed?):\n{e}");
    }
}

/// Writes `body` to a temporary file that lives as long as the returned handle.
fn body_file(body: &[u8]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), body).unwrap();
    file
}

/// The headers `tests/interop/sign.js` makes for `scheme`.
fn node_sign(scheme: Scheme, timestamp: i64, body: &Path) -> BTreeMap<String, String> {
    let mut node = Command::new("node");
    node.current_dir(repo())
        .arg("tests/interop/sign.js")
        .args([scheme.as_str(), secret_text(scheme)])
        .arg(timestamp.to_string())
        .arg(ID)
        .arg(body);
    let out = run(node, RUN_DEADLINE);
    assert!(
        out.status.success(),
        "sign.js: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("sign.js prints a JSON object")
}

/// The headers `fleetgate sign` prints for `scheme`, and its closing curl hint.
fn fleetgate_sign(
    scheme: Scheme,
    timestamp: Option<i64>,
    body: &Path,
) -> (BTreeMap<String, String>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleetgate"));
    cmd.args(["sign", "--scheme", scheme.as_str()])
        .args(["--secret-env", "INTEROP_SECRET"])
        .arg("--body-file")
        .arg(body)
        .env("INTEROP_SECRET", secret_text(scheme));
    if scheme == Scheme::StandardWebhooks {
        cmd.args(["--id", ID]);
    }
    if let Some(timestamp) = timestamp {
        cmd.args(["--timestamp", &timestamp.to_string()]);
    }
    let out = run(cmd, RUN_DEADLINE);
    assert!(
        out.status.success(),
        "fleetgate sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines: Vec<&str> = stdout.lines().collect();
    let hint = lines.pop().expect("a curl hint").to_string();
    let headers = lines
        .into_iter()
        .map(|line| {
            let (name, value) = line.split_once(": ").expect("`Name: value` lines");
            (name.to_string(), value.to_string())
        })
        .collect();
    (headers, hint)
}

fn header_map(headers: &BTreeMap<String, String>) -> HeaderMap {
    headers
        .iter()
        .map(|(name, value)| {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            (name, HeaderValue::from_str(value).unwrap())
        })
        .collect()
}

fn verify_at(
    scheme: Scheme,
    headers: &BTreeMap<String, String>,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    verify(
        scheme,
        &header_map(headers),
        body,
        &[secret(scheme)],
        now,
        TOLERANCE,
    )
    .map(|_| ())
}

/// `body` with one byte changed (or one added, if empty).
fn tampered(body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    match body.len() {
        0 => body.push(b' '),
        n => body[n / 2] ^= 0x01,
    }
    body
}

/// Node's signatures for `scheme` verify for every body, and fail once one byte changes.
fn node_signatures_verify(scheme: Scheme) {
    node_ready();
    for (what, body) in bodies() {
        let file = body_file(&body);
        let headers = node_sign(scheme, TIMESTAMP, file.path());
        assert_eq!(
            verify_at(scheme, &headers, &body, TIMESTAMP),
            Ok(()),
            "{what}: {headers:?}"
        );
        assert_eq!(
            verify_at(scheme, &headers, &tampered(&body), TIMESTAMP),
            Err(VerifyError::Mismatch),
            "{what}"
        );
    }
}

#[test]
fn the_node_services_hex_timestamp_body_signatures_verify() {
    node_signatures_verify(Scheme::HexTimestampBody);
}

#[test]
fn the_standardwebhooks_npm_packages_signatures_verify() {
    node_signatures_verify(Scheme::StandardWebhooks);
}

#[test]
fn github_style_signatures_from_node_crypto_verify() {
    node_signatures_verify(Scheme::GitHub);
}

#[test]
fn fleetgate_sign_signs_exactly_as_node_does() {
    node_ready();
    for scheme in Scheme::ALL {
        for (what, body) in bodies() {
            let file = body_file(&body);
            let (ours, _) = fleetgate_sign(scheme, Some(TIMESTAMP), file.path());
            assert_eq!(
                ours,
                node_sign(scheme, TIMESTAMP, file.path()),
                "{scheme:?} {what}"
            );
        }
    }
}

#[test]
fn fleetgate_sign_output_verifies_and_ends_with_a_curl_hint() {
    for scheme in Scheme::ALL {
        let body = br#"{"event":"connection_test"}"#;
        let file = body_file(body);
        let (headers, hint) = fleetgate_sign(scheme, None, file.path());
        let now: i64 = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .try_into()
            .unwrap();
        assert_eq!(
            verify_at(scheme, &headers, body, now),
            Ok(()),
            "{scheme:?}: {headers:?}"
        );
        assert!(hint.starts_with("# curl -X POST "), "{hint}");
        for (name, value) in &headers {
            assert!(hint.contains(&format!("-H '{name}: {value}'")), "{hint}");
        }
        assert!(
            hint.ends_with(&format!("--data-binary '@{}'", file.path().display())),
            "{hint}"
        );
    }
}

#[test]
fn fleetgate_sign_reads_the_body_from_standard_input() {
    let body = media_body(256 << 10);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleetgate"));
    cmd.args([
        "sign",
        "--scheme",
        "github",
        "--secret",
        secret_text(Scheme::GitHub),
        "--body-file",
        "-",
    ]);
    let out = run_bounded(cmd, Some(body.clone()), RUN_DEADLINE);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (name, value) = stdout.lines().next().unwrap().split_once(": ").unwrap();
    let headers = BTreeMap::from([(name.to_string(), value.to_string())]);
    assert_eq!(
        verify_at(Scheme::GitHub, &headers, &body, 0),
        Ok(()),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with("--data-binary '@-'"),
        "{stdout}"
    );
}

#[test]
fn fleetgate_sign_explains_bad_input_and_exits_1() {
    let body = body_file(b"{}");
    let missing = repo().join("tests/interop/no-such-body.json");
    let cases = [
        (
            "--scheme nope --secret x --body-file BODY",
            "unknown scheme `nope`",
        ),
        ("--scheme github --body-file BODY", "no secret"),
        (
            "--scheme github --secret-env FLEETGATE_INTEROP_UNSET --body-file BODY",
            "FLEETGATE_INTEROP_UNSET is not set",
        ),
        (
            "--scheme github --secret x --body-file MISSING",
            "no-such-body.json",
        ),
        (
            "--scheme standard-webhooks --secret whsec_*** --body-file BODY",
            "not valid base64",
        ),
    ];
    for (args, expected) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleetgate"));
        cmd.arg("sign").env_remove("FLEETGATE_INTEROP_UNSET");
        for arg in args.split(' ') {
            match arg {
                "BODY" => cmd.arg(body.path()),
                "MISSING" => cmd.arg(&missing),
                arg => cmd.arg(arg),
            };
        }
        let out = run(cmd, RUN_DEADLINE);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args}: {stderr}");
        assert!(stderr.contains(expected), "{args}: {stderr}");
        assert!(out.stdout.is_empty(), "{args}: nothing on stdout");
    }
}
