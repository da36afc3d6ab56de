//! Process-level sections: `access_log`, `log`, `shutdown`, `spool` and `cluster`.

use super::super::raw::{RawAccessLog, RawCluster, RawLog, RawShutdown, RawSpool};
use super::super::types::{
    defaults, AccessLogTarget, ClusterConfig, LogConfig, LogFormat, ShutdownConfig, SpoolConfig,
};
use super::super::units::{parse_duration, parse_size};
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

/// `cluster: { redis, prefix }`: the URL must be `redis://` (or `rediss://`) and parse.
pub(super) fn cluster(p: &mut Problems, raw: Option<RawCluster>) -> Option<ClusterConfig> {
    let raw = raw?;
    let scheme_ok = raw.redis.starts_with("redis://") || raw.redis.starts_with("rediss://");
    if !scheme_ok || redis::Client::open(raw.redis.as_str()).is_err() {
        p.push(
            "cluster.redis",
            "is not a Redis URL (write redis://host:port, e.g. redis://127.0.0.1:6379)",
        );
    }
    let prefix = raw
        .prefix
        .unwrap_or_else(|| defaults::CLUSTER_PREFIX.to_string());
    if prefix.is_empty() || prefix.contains(char::is_whitespace) {
        p.push("cluster.prefix", "must be a non-empty word");
    }
    Some(ClusterConfig {
        redis: raw.redis,
        prefix,
    })
}

/// `spool: { enabled, dir, max_bytes, max_age, max_attempts }`: on unless `enabled: false`.
pub(super) fn spool(p: &mut Problems, raw: Option<RawSpool>) -> Option<SpoolConfig> {
    let raw = raw.unwrap_or(RawSpool {
        enabled: None,
        dir: None,
        max_bytes: None,
        max_age: None,
        max_attempts: None,
    });
    let dir = raw.dir.unwrap_or_else(|| defaults::SPOOL_DIR.to_string());
    if dir.trim().is_empty() {
        p.push("spool.dir", "is empty (write a directory, e.g. spool)");
    }
    let max_bytes = p.parse_or(
        "spool.max_bytes".into(),
        raw.max_bytes.as_deref(),
        defaults::SPOOL_MAX_BYTES,
        parse_size,
    );
    if max_bytes < 1 << 20 {
        p.push("spool.max_bytes", "must be at least 1MiB");
    }
    let max_age = p.parse_or(
        "spool.max_age".into(),
        raw.max_age.as_deref(),
        defaults::SPOOL_MAX_AGE,
        parse_duration,
    );
    let max_attempts = raw.max_attempts.unwrap_or(defaults::SPOOL_MAX_ATTEMPTS);
    if max_attempts == 0 {
        p.push("spool.max_attempts", "must be at least 1");
    }
    raw.enabled.unwrap_or(true).then(|| SpoolConfig {
        dir: PathBuf::from(dir),
        max_bytes,
        max_age,
        max_attempts,
    })
}

/// `shutdown: { drain_delay, grace_period }` (zero is allowed for both).
pub(super) fn shutdown(p: &mut Problems, raw: Option<RawShutdown>) -> ShutdownConfig {
    let (drain, grace) = raw.map_or((None, None), |r| (r.drain_delay, r.grace_period));
    let grace_period = p.parse_or(
        "shutdown.grace_period".into(),
        grace.as_deref(),
        defaults::GRACE_PERIOD,
        parse_duration,
    );
    if grace_period.subsec_nanos() != 0 {
        p.push("shutdown.grace_period", "must be whole seconds (e.g. 10s)");
    }
    ShutdownConfig {
        drain_delay: p.parse_or(
            "shutdown.drain_delay".into(),
            drain.as_deref(),
            defaults::DRAIN_DELAY,
            parse_duration,
        ),
        grace_period,
    }
}

/// `log: { format, level }`.
pub(super) fn log(p: &mut Problems, raw: Option<RawLog>) -> LogConfig {
    let raw = raw.unwrap_or_default();
    let format = match raw.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            p.push("log.format", format!("`{other}` is not text or json"));
            LogFormat::Text
        }
    };
    if let Some(level) = raw
        .level
        .as_deref()
        .filter(|l| tracing_subscriber::EnvFilter::try_new(l).is_err())
    {
        p.push(
            "log.level",
            format!("`{level}` is not a level (error, warn, info, debug, trace) or filter"),
        );
    }
    LogConfig {
        format,
        level: raw.level,
    }
}
