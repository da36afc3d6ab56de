//! Process-level sections: `access_log` and `shutdown`.

use super::super::raw::{RawAccessLog, RawShutdown};
use super::super::types::{defaults, AccessLogTarget, ShutdownConfig};
use super::super::units::parse_duration;
use super::Problems;
use std::path::PathBuf;

/// `access_log: { enabled, path }`: absent or `enabled: false` is off; `path` is `stdout`
/// (the default) or a file.
pub(super) fn access_log(p: &mut Problems, raw: Option<RawAccessLog>) -> Option<AccessLogTarget> {
    let raw = raw?;
    let path = raw.path.as_deref().unwrap_or("stdout");
    if path.is_empty() {
        p.push(
            "access_log.path",
            "is empty (write `stdout` or a file path)",
        );
        return None;
    }
    let target = match path {
        "stdout" | "-" => AccessLogTarget::Stdout,
        file => AccessLogTarget::File(PathBuf::from(file)),
    };
    raw.enabled.unwrap_or(true).then_some(target)
}

/// `shutdown: { drain_delay }` (zero is allowed: stop accepting at once).
pub(super) fn shutdown(p: &mut Problems, raw: Option<RawShutdown>) -> ShutdownConfig {
    let text = raw.and_then(|r| r.drain_delay);
    ShutdownConfig {
        drain_delay: p.parse_or(
            "shutdown.drain_delay".into(),
            text.as_deref(),
            defaults::DRAIN_DELAY,
            parse_duration,
        ),
    }
}
