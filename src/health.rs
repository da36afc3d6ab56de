//! Instance health: active checks on an interval plus passive marking on connect errors.
//!
//! State lives in one [`InstanceHealth`] per `(group, instance name)`, shared by the data plane
//! (reads `is_healthy` per request, marks connect errors) and the checker task (writes results).
//! Keyed by name, so it survives reloads that keep the instance.

use crate::config::{Group, HealthConfig, Instance};
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
    /// The status of the last active check that got an answer.
    pub last_status: Option<u16>,
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
                last_status: None,
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

    /// Records the status an active check was answered with; returns the previous one.
    pub fn record_status(&self, status: u16) -> Option<u16> {
        let mut detail = self.detail.lock().unwrap_or_else(|p| p.into_inner());
        detail.last_status.replace(status)
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

/// One active check of `addr`, recorded in `state`: `GET {path}` over a fresh connection within
/// `timeout`, passed when `expect` accepts the status (by default any answer below 500). Returns
/// the new state if it changed. The first 404 after another answer is logged: the app has no
/// such route, so the check proves only that it answers.
pub async fn check(
    state: &InstanceHealth,
    addr: SocketAddr,
    conf: &HealthConfig,
    name: (&str, &str),
) -> Option<bool> {
    let result = probe(addr, &conf.path, conf.timeout)
        .await
        .and_then(|status| {
            if state.record_status(status) != Some(404) && status == 404 {
                tracing::warn!(
                    group = name.0,
                    instance = name.1,
                    path = conf.path,
                    alive = conf.expect.passes(404),
                    "the health check path answers 404: the app has no such route"
                );
            }
            match conf.expect.passes(status) {
                true => Ok(()),
                false => Err(format!("health check answered {status}")),
            }
        });
    state.record_check(result, conf)
}

/// `GET {path}` on `addr`: the answer's status, or why there was none within `timeout`.
pub async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<u16, String> {
    match tokio::time::timeout(timeout, get(addr, path)).await {
        Ok(result) => result,
        Err(_) => Err(format!("health check timed out after {timeout:?}")),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Result<u16, String> {
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
    Ok(response?.status().as_u16())
}

/// Every instance of `groups` asked its group's health path once, concurrently, each within its
/// group's timeout: what `fleetgate validate` reports.
pub async fn survey(groups: &[Group]) -> Vec<(&Group, &Instance, Result<u16, String>)> {
    let asks = groups.iter().flat_map(|group| {
        group.instances.iter().map(move |instance| async move {
            let health = &group.health;
            let answer = probe(instance.addr, &health.path, health.timeout).await;
            (group, instance, answer)
        })
    });
    futures_util::future::join_all(asks).await
}

/// How long a client should wait before retrying a workspace on a down instance.
pub fn retry_after(conf: &HealthConfig) -> u64 {
    conf.interval.max(Duration::from_secs(1)).as_secs()
}
