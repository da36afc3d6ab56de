//! An app webhook receiver (tests/clients/webhook-receiver.js): a Node HTTP server that checks
//! every request with the `pusher` server library's `webhook()` helper and reports it.

use super::clients::{clients_dir, ensure_installed};
use super::{APP_ID, KEY, SECRET};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// How long the receiver may take to report the next request.
const NEXT: Duration = Duration::from_secs(20);

pub struct Receiver {
    pub addr: SocketAddr,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Events of requests to other paths than the one asked for, by path.
    pending: std::collections::HashMap<String, Vec<Value>>,
    /// Every request reported so far.
    pub requests: Vec<Value>,
    _child: tokio::process::Child,
}

impl Receiver {
    /// A receiver on any free port.
    pub async fn start() -> Receiver {
        Receiver::start_on(0, 0).await
    }

    /// A receiver on `port` (0: any) answering its first `fail_first` valid requests 503.
    pub async fn start_on(port: u16, fail_first: usize) -> Receiver {
        ensure_installed().await;
        let mut child = tokio::process::Command::new("node")
            .arg("webhook-receiver.js")
            .current_dir(clients_dir())
            .envs([("APP_ID", APP_ID), ("KEY", KEY), ("SECRET", SECRET)])
            .env("PORT", port.to_string())
            .env("FAIL_FIRST", fail_first.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, mut lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut out = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = out.next_line().await {
                let _ = tx.send(serde_json::from_str(&line).unwrap_or(Value::String(line)));
            }
        });
        let hello = tokio::time::timeout(NEXT, lines.recv())
            .await
            .expect("the receiver starts")
            .expect("the receiver reports");
        assert_eq!(hello["event"], "listening", "{hello}");
        let port = hello["port"].as_u64().unwrap();
        Receiver {
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            lines,
            pending: Default::default(),
            requests: Vec::new(),
            _child: child,
        }
    }

    /// The receiver's URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request it got (also kept in `requests`).
    pub async fn next(&mut self) -> Value {
        let request = tokio::time::timeout(NEXT, self.lines.recv())
            .await
            .expect("a webhook request in time")
            .expect("the receiver runs");
        self.requests.push(request.clone());
        request
    }

    /// The events of the requests to `path` until `count` arrived (each request valid and
    /// answered 200), in order; other paths' requests are kept for their turn. Fails on more
    /// events than `count`.
    pub async fn events(&mut self, path: &str, count: usize) -> Vec<Value> {
        let mut events = self.pending.remove(path).unwrap_or_default();
        while events.len() < count {
            let request = self.next().await;
            assert_eq!(request["valid"], true, "{request}");
            assert_eq!(request["status"], 200, "{request}");
            let batch = request["body"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .cloned();
            match request["path"].as_str().unwrap() {
                p if p == path => events.extend(batch),
                other => self
                    .pending
                    .entry(other.to_string())
                    .or_default()
                    .extend(batch),
            }
        }
        assert_eq!(events.len(), count, "{events:?}");
        events
    }
}

/// `name channel` of each event, for comparing sequences.
pub fn names(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["name"].as_str().unwrap(),
                e["channel"].as_str().unwrap()
            )
        })
        .collect()
}
