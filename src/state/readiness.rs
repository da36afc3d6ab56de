//! What `/readyz` reports: starting until every listener accepts, ready, then draining from the
//! start of shutdown; and the probe endpoints' answers, the same wherever they are served (the
//! admin listener, the hub's listener for `/up`, any listener with `health: true`).

use super::Gateway;
use std::sync::atomic::Ordering;

/// What `/readyz` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Starting,
    Ready,
    Draining,
}

impl Gateway {
    /// Marks every listener as accepting.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Marks the start of shutdown: `/readyz` answers 503 from now on.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn readiness(&self) -> Readiness {
        if self.draining.load(Ordering::Relaxed) {
            Readiness::Draining
        } else if self.ready.load(Ordering::Relaxed) {
            Readiness::Ready
        } else {
            Readiness::Starting
        }
    }
}

/// A probe endpoint's answer: status and JSON body.
pub struct ProbeAnswer {
    pub status: http::StatusCode,
    pub body: String,
}

impl Gateway {
    /// The answer to a probe path: `/healthz` (200 while the process runs), `/readyz` and `/up`
    /// (200 `ready`, 503 `starting` or `draining`; with the cluster link's state when
    /// clustered). `None` for any other path.
    pub fn probe(&self, path: &str) -> Option<ProbeAnswer> {
        use http::StatusCode as S;
        let (status, word) = match path {
            "/healthz" => (S::OK, "ok"),
            "/readyz" | "/up" => match self.readiness() {
                Readiness::Ready => (S::OK, "ready"),
                Readiness::Starting => (S::SERVICE_UNAVAILABLE, "starting"),
                Readiness::Draining => (S::SERVICE_UNAVAILABLE, "draining"),
            },
            _ => return None,
        };
        let mut body = serde_json::json!({ "status": word });
        if let (Some(cluster), false) = (&self.cluster, path == "/healthz") {
            body["cluster"] = serde_json::json!(if cluster.is_up() { "up" } else { "down" });
        }
        Some(ProbeAnswer {
            status,
            body: body.to_string(),
        })
    }
}
