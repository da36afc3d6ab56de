//! Instance health: active checks on an interval plus passive marking on connect errors.
//!
//! State lives in one [`InstanceHealth`] per `(group, instance name)`, shared by the data plane
//! (reads `is_healthy` per request, marks connect errors) and the checker task (writes results).
//! Keyed by name, so it survives reloads that keep the instance.

use crate::config::HealthConfig;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

pub struct InstanceHealth {
    healthy: AtomicBool,
    successes: AtomicU32,
    failures: AtomicU32,
    /// Requests currently being proxied to this instance.
    pub in_flight: AtomicI64,
    detail: Mutex<Detail>,
}

#[derive(Clone)]
pub struct Detail {
    pub since: SystemTime,
    pub last_error: Option<String>,
}

impl Default for InstanceHealth {
    fn default() -> Self {
        Self {
            // Optimistic start, like nginx: the first failed check or connect error marks it down.
            healthy: AtomicBool::new(true),
            successes: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            in_flight: AtomicI64::new(0),
            detail: Mutex::new(Detail {
                since: SystemTime::now(),
                last_error: None,
            }),
        }
    }
}

impl InstanceHealth {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn detail(&self) -> Detail {
        self.detail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records an active check result; returns the new state if it changed.
    pub fn record_check(&self, result: Result<(), String>, conf: &HealthConfig) -> Option<bool> {
        match result {
            Ok(()) => {
                self.failures.store(0, Ordering::Relaxed);
                let n = self.successes.fetch_add(1, Ordering::Relaxed) + 1;
                (n >= conf.healthy_threshold)
                    .then(|| self.set(true, None))
                    .flatten()
            }
            Err(error) => {
                self.successes.store(0, Ordering::Relaxed);
                let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= conf.unhealthy_threshold {
                    self.set(false, Some(error))
                } else {
                    self.note_error(error);
                    None
                }
            }
        }
    }

    /// Passive check: a connect error marks the instance down at once.
    pub fn mark_down(&self, error: String) -> Option<bool> {
        self.successes.store(0, Ordering::Relaxed);
        self.set(false, Some(error))
    }

    fn note_error(&self, error: String) {
        self.detail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_error = Some(error);
    }

    fn set(&self, healthy: bool, error: Option<String>) -> Option<bool> {
        let mut detail = self.detail.lock().unwrap_or_else(|p| p.into_inner());
        if error.is_some() {
            detail.last_error = error;
        }
        let changed = self.healthy.swap(healthy, Ordering::Relaxed) != healthy;
        if changed {
            detail.since = SystemTime::now();
        }
        changed.then_some(healthy)
    }
}

/// One active check: `GET {path}` over a fresh connection; any 2xx within `timeout` passes.
pub async fn check(addr: SocketAddr, conf: &HealthConfig) -> Result<(), String> {
    match tokio::time::timeout(conf.timeout, probe(addr, &conf.path)).await {
        Ok(result) => result,
        Err(_) => Err(format!("health check timed out after {:?}", conf.timeout)),
    }
}

async fn probe(addr: SocketAddr, path: &str) -> Result<(), String> {
    use http_body_util::Empty;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<bytes::Bytes>>(io)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let driver = tokio::spawn(conn);
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::CONNECTION, "close")
        .header(http::header::USER_AGENT, "fleetgate-health")
        .body(Empty::new())
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"));
    driver.abort();
    let status = response?.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("health check answered {status}"))
    }
}

/// How long a client should wait before retrying a workspace on a down instance.
pub fn retry_after(conf: &HealthConfig) -> u64 {
    conf.interval.max(Duration::from_secs(1)).as_secs()
}
