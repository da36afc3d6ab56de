//! What triggers a configuration reload besides `POST /admin/reload`: `SIGHUP`, and a change of
//! `gateway.yaml` on disk (unless `fleetgate run --no-watch`: then only the first two, as nginx).
//!
//! The file's *directory* is watched (inotify), so every way a file gets replaced counts: in-place
//! writes, editors' write-new-then-rename, and Kubernetes' ConfigMap symlink swaps (a new `..data`
//! symlink renamed into the directory). Events are debounced for [`DEBOUNCE`], then the file is read
//! through its path and applied if its content differs from what the last reload (from any
//! trigger) read, so each change is applied once and an invalid file is reported once. The file is also read every [`POLL`] in case events
//! are missed (a directory replaced from outside, a filesystem without inotify).
//! Every reload is all or nothing ([`Gateway::reload`]).

use crate::state::Gateway;
use async_trait::async_trait;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// How long after a directory event the file is read (editors and `kubectl` touch several files).
pub const DEBOUNCE: Duration = Duration::from_millis(20);
/// The safety-net poll.
pub const POLL: Duration = Duration::from_secs(2);

pub struct ReloadTriggers {
    pub gateway: Arc<Gateway>,
    pub path: PathBuf,
    /// Watch (and poll) the file; `false`: SIGHUP only.
    pub watch: bool,
}

/// Watches the directory holding `path`; each event is a nudge on the returned channel. `None`
/// (logged) when inotify is unavailable: the poll still sees changes.
fn watch_directory(path: &Path) -> Option<(RecommendedWatcher, mpsc::Receiver<()>)> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (tx, rx) = mpsc::channel(1);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading the file is an access event itself: only changes nudge, or every read would
        // cause the next one.
        if event.is_ok_and(|e| changes_files(&e.kind)) {
            // A full channel already holds a nudge: nothing is lost by dropping this one.
            let _ = tx.try_send(());
        }
    });
    let result = watcher.and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w));
    match result {
        Ok(watcher) => Some((watcher, rx)),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the configuration directory; polling every {}s", POLL.as_secs());
            None
        }
    }
}

/// Whether a directory event marks a finished change of a file: written and closed, created,
/// renamed (editors and Kubernetes swap files in) or removed. Reads are not (the reload reads the
/// file: every read would cause the next), nor writes still in progress (a file being written
/// is read once it is closed, not half-written).
fn changes_files(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Metadata(_)) => false,
        _ => true,
    }
}

impl ReloadTriggers {
    fn reload(&self, trigger: &str) {
        // Failures are logged and counted by `Gateway::reload`.
        if self.gateway.reload().is_ok() {
            tracing::info!(trigger, "configuration applied");
        }
    }
}

#[async_trait]
impl BackgroundService for ReloadTriggers {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangup = signal(SignalKind::hangup())
            .inspect_err(|e| tracing::error!(error = %e, "cannot watch SIGHUP"))
            .ok();
        let (_watcher, mut events) = match self.watch.then(|| watch_directory(&self.path)) {
            Some(Some((watcher, events))) => (Some(watcher), Some(events)),
            _ => (None, None),
        };
        let mut poll = tokio::time::interval(POLL);
        let polling = self.watch;
        loop {
            let trigger = tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = async { hangup.as_mut()?.recv().await } => {
                    self.reload("SIGHUP");
                    continue;
                }
                Some(()) = async { events.as_mut()?.recv().await } => {
                    tokio::time::sleep(DEBOUNCE).await;
                    if let Some(events) = events.as_mut() {
                        while events.try_recv().is_ok() {}
                    }
                    "file change"
                }
                _ = poll.tick(), if polling => "file change (poll)",
            };
            if self.gateway.config_changed() {
                self.reload(trigger);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::changes_files;
    use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind};

    #[test]
    fn reading_the_file_is_not_a_change_but_writing_it_is() {
        // The reload reads the file: if that counted, every read would cause the next one.
        assert!(!changes_files(&EventKind::Access(AccessKind::Open(
            AccessMode::Read
        ))));
        assert!(!changes_files(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!changes_files(&EventKind::Access(AccessKind::Read)));
        assert!(changes_files(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(changes_files(&EventKind::Modify(ModifyKind::Any)));
        assert!(changes_files(&EventKind::Create(CreateKind::File)));
    }
}
