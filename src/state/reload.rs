//! Re-reading `gateway.yaml`: all or nothing, one at a time, each outcome counted and logged.

use super::Gateway;
use crate::config::{Config, ConfigError, Problem};
use sha2::Digest;

/// Why a reload applied nothing.
#[derive(Debug)]
pub enum ReloadError {
    /// The file could not be read, is not a valid configuration, or names an access log file
    /// that cannot be opened.
    Invalid(ConfigError),
    /// Valid, but it changes what only a restart can apply (each such change a problem).
    NeedsRestart(ConfigError),
}

impl ReloadError {
    /// The `result` label of `fleetgate_config_reloads_total`.
    pub fn label(&self) -> &'static str {
        match self {
            ReloadError::Invalid(_) => "invalid",
            ReloadError::NeedsRestart(_) => "needs_restart",
        }
    }

    /// Every problem, with its YAML path.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ReloadError::Invalid(e) | ReloadError::NeedsRestart(e) => &e.problems,
        }
    }
}

impl From<ConfigError> for ReloadError {
    fn from(e: ConfigError) -> Self {
        ReloadError::Invalid(e)
    }
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::Invalid(e) | ReloadError::NeedsRestart(e) => e.fmt(f),
        }
    }
}

impl Gateway {
    /// Whether `path`'s current content differs from what the last reload read (so the file
    /// watcher applies each change once, whichever trigger saw it first).
    pub fn config_changed(&self) -> bool {
        let Some(path) = self.config_path.as_deref() else {
            return false;
        };
        let now = file_fingerprint(path);
        now.is_some() && now != *self.tried.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-reads the configuration file and, only if it is entirely valid, swaps it in.
    /// Listener and admin addresses cannot change live: such a change is refused as "needs restart".
    /// Every outcome is counted in `fleetgate_config_reloads_total` and logged (a refusal with every
    /// problem and its YAML path).
    pub fn reload(&self) -> Result<(), ReloadError> {
        let result = self.try_reload();
        let label = result.as_ref().err().map_or("ok", ReloadError::label);
        self.metrics
            .config
            .reloads
            .with_label_values(&[label])
            .inc();
        if let Err(e) = &result {
            tracing::error!(result = label, "configuration not reloaded: {e}");
        }
        result
    }

    fn try_reload(&self) -> Result<(), ReloadError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.config_path.as_deref().ok_or_else(|| ConfigError {
            problems: vec![Problem {
                path: String::new(),
                message: "no configuration file to reload".into(),
            }],
        })?;
        let text = crate::config::read(path)?;
        // Recorded before validation: the file watcher does not retry content already tried.
        *self.tried.lock().unwrap_or_else(|p| p.into_inner()) = Some(fingerprint(text.as_bytes()));
        let config = crate::config::load_text(path, &text)?;
        let restart = needs_restart(&self.snapshot().config, &config);
        if !restart.is_empty() {
            return Err(ReloadError::NeedsRestart(ConfigError {
                problems: restart
                    .into_iter()
                    .map(|(path, what)| Problem {
                        path: path.into(),
                        message: format!("{what} changed: needs restart (nothing was applied)"),
                    })
                    .collect(),
            }));
        }
        self.install(config)?;
        tracing::info!(path = %path.display(), hash = %self.snapshot().hash, "configuration reloaded");
        Ok(())
    }
}

/// What differs between the running and a new configuration that only a restart can apply:
/// `(YAML path, what)` pairs.
fn needs_restart(running: &Config, new: &Config) -> Vec<(&'static str, &'static str)> {
    let hub_listener = |c: &Config| c.hub.as_ref().map(|h| h.listener.clone());
    [
        (
            running.listeners != new.listeners,
            "listeners",
            "listeners (address or tls)",
        ),
        (
            running.admin != new.admin,
            "admin.listen",
            "the admin address",
        ),
        (
            running.threads != new.threads,
            "threads",
            "the thread count",
        ),
        (
            running.cluster != new.cluster,
            "cluster",
            "the cluster settings",
        ),
        (running.spool != new.spool, "spool", "the spool settings"),
        (
            running.shutdown.grace_period != new.shutdown.grace_period,
            "shutdown.grace_period",
            "the grace period",
        ),
        (
            hub_listener(running) != hub_listener(new),
            "hub.listener",
            "the hub's listener",
        ),
    ]
    .into_iter()
    .filter_map(|(changed, path, what)| changed.then_some((path, what)))
    .collect()
}

/// SHA-256 of configuration text.
fn fingerprint(text: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(text).into()
}

/// The fingerprint of the file at `path` (`None` while it cannot be read, e.g. mid-swap).
pub(super) fn file_fingerprint(path: &std::path::Path) -> Option<[u8; 32]> {
    std::fs::read(path).ok().map(|text| fingerprint(&text))
}
