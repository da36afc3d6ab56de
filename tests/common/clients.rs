//! Runs the Node scenarios in tests/clients (laravel-echo 2 over pusher-js 8, the `pusher` server
//! library) against the real gateway: each prints one JSON line per observed event and exits by
//! itself within its deadline (killed if it does not).

use super::{Gateway, APP_ID, KEY, SECRET};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a scenario gets to finish on its own (it reports `deadline` and exits 3 after this).
pub const SCENARIO_DEADLINE: Duration = Duration::from_secs(15);
/// When the test kills a scenario that is still running.
pub const HARD_DEADLINE: Duration = Duration::from_secs(30);
/// `npm ci` on a fresh checkout.
pub const INSTALL_DEADLINE: Duration = Duration::from_secs(300);

pub fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Installs the npm project once (`npm ci`, bounded) if node_modules is missing.
pub async fn ensure_installed() {
    static INSTALL: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INSTALL
        .get_or_init(|| async {
            let dir = clients_dir();
            if dir.join("node_modules").is_dir() {
                return;
            }
            let child = tokio::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .kill_on_drop(true)
                .output();
            let out = tokio::time::timeout(INSTALL_DEADLINE, child)
                .await
                .expect("npm ci timed out")
                .expect("npm runs");
            assert!(
                out.status.success(),
                "npm ci failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        })
        .await;
}

/// What a scenario printed: one JSON value per stdout line.
pub struct Run {
    pub lines: Vec<Value>,
    pub stderr: String,
    pub log: String,
}

impl Run {
    /// Every line whose `event` is `event`.
    pub fn all(&self, event: &str) -> Vec<&Value> {
        self.lines.iter().filter(|l| l["event"] == event).collect()
    }

    /// The only line whose `event` is `event`.
    pub fn one(&self, event: &str) -> &Value {
        let found = self.all(event);
        assert_eq!(found.len(), 1, "expected one `{event}` line\n{self}");
        found[0]
    }

    /// Every `event` line whose `key` is `value`.
    pub fn where_(&self, event: &str, key: &str, value: &str) -> Vec<&Value> {
        self.all(event)
            .into_iter()
            .filter(|l| l[key] == value)
            .collect()
    }

    /// Index of the first `event` line whose `key` is `value`.
    pub fn position(&self, event: &str, key: &str, value: &str) -> usize {
        self.lines
            .iter()
            .position(|l| l["event"] == event && l[key] == value)
            .unwrap_or_else(|| panic!("no `{event}` line with {key} = {value}\n{self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "--- scenario stdout")?;
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        writeln!(f, "--- scenario stderr\n{}", self.stderr)?;
        write!(f, "--- gateway log (tail)\n{}", tail(&self.log, 4000))
    }
}

fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Runs `node tests/clients/{script}` against the hub at `hub` (with `extra` environment
/// variables) and waits for it (killed after [`HARD_DEADLINE`]); asserts it finished cleanly (a
/// `done` line, exit 0). `gw` supplies the gateway log shown on failure.
pub async fn scenario_with(
    gw: &Gateway,
    hub: std::net::SocketAddr,
    script: &str,
    extra: &[(&str, String)],
) -> Run {
    ensure_installed().await;
    let child = tokio::process::Command::new("node")
        .arg(clients_dir().join(script))
        .current_dir(clients_dir())
        .env("HUB_PORT", hub.port().to_string())
        .env("APP_ID", APP_ID)
        .env("KEY", KEY)
        .env("SECRET", SECRET)
        .env("DEADLINE_MS", SCENARIO_DEADLINE.as_millis().to_string())
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(HARD_DEADLINE, child)
        .await
        .unwrap_or_else(|_| panic!("{script} still running after {HARD_DEADLINE:?}: killed"))
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let run = Run {
        lines: stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(
                    |e| json!({"event": "unparsed", "line": l, "error": e.to_string()}),
                )
            })
            .collect(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        log: gw.log(),
    };
    assert!(
        out.status.success() && run.lines.last().is_some_and(|l| l["event"] == "done"),
        "{script} did not finish ({})\n{run}",
        out.status
    );
    run
}
