//! What triggers a configuration reload besides `POST /admin/reload`: `SIGHUP`, and a change of
//! `gateway.yaml` on disk.
//!
//! The file is watched by reading it every [`WATCH_INTERVAL`] through its path, so every way a file
//! gets replaced counts: in-place writes, editors' write-new-then-rename, and Kubernetes' ConfigMap
//! symlink swaps (the path resolves to the new target). A change is applied once the content has
//! been stable for [`SETTLE`] (an editor's half-written file is not reloaded), and only if it
//! differs from what was last tried, so an invalid file is reported once, not every interval.
//! Every reload is all or nothing ([`Gateway::reload`]).

use crate::state::Gateway;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// How often the configuration file is read.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(250);
/// How long a changed file must stay the same before it is applied.
pub const SETTLE: Duration = Duration::from_millis(100);

pub struct ReloadTriggers {
    pub gateway: Arc<Gateway>,
    pub path: PathBuf,
}

/// The file's content hash (`None` while it cannot be read, e.g. mid-swap).
fn fingerprint(path: &std::path::Path) -> Option<[u8; 32]> {
    std::fs::read(path).ok().map(|b| Sha256::digest(b).into())
}

impl ReloadTriggers {
    fn reload(&self, trigger: &str) {
        // Failures are logged and counted by `Gateway::reload`.
        if self.gateway.reload().is_ok() {
            tracing::info!(trigger, "configuration applied");
        }
    }

    /// Waits until two reads [`SETTLE`] apart agree; returns the settled fingerprint.
    async fn settled(&self, mut seen: Option<[u8; 32]>) -> Option<[u8; 32]> {
        loop {
            tokio::time::sleep(SETTLE).await;
            let now = fingerprint(&self.path);
            if now == seen {
                return now;
            }
            seen = now;
        }
    }
}

#[async_trait]
impl BackgroundService for ReloadTriggers {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => Some(hangup),
            Err(e) => {
                tracing::error!(error = %e, "cannot watch SIGHUP; reload with POST /admin/reload");
                None
            }
        };
        let mut tried = fingerprint(&self.path);
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = async { hangup.as_mut()?.recv().await } => {
                    tried = fingerprint(&self.path);
                    self.reload("SIGHUP");
                }
                _ = tick.tick() => {
                    let now = fingerprint(&self.path);
                    if now.is_none() || now == tried {
                        continue;
                    }
                    tried = self.settled(now).await;
                    if tried.is_some() {
                        self.reload("file change");
                    }
                }
            }
        }
    }
}
