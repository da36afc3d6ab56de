//! Operational logs (stderr): `log: { format: text|json, level }` in `gateway.yaml`, applied at
//! start and on every reload. Without `log.level`, `FLEETGATE_LOG` (an `EnvFilter` directive)
//! or `info` decides. Both formats are installed once; a flag picks the one that writes, and
//! the level filter is swapped through a reload handle, so a reload never re-installs anything.

use crate::config::{LogConfig, LogFormat};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{filter, fmt, reload, EnvFilter, Layer, Registry};

/// What a reload can change in the installed logger.
struct Control {
    json: Arc<AtomicBool>,
    level: reload::Handle<EnvFilter, Registry>,
}

static CONTROL: OnceLock<Control> = OnceLock::new();

/// The level when the file names none.
fn default_level() -> EnvFilter {
    EnvFilter::try_from_env("FLEETGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the process's logger, set as `conf` says (once; later calls only apply `conf`).
pub fn init(conf: &LogConfig) {
    let json = Arc::new(AtomicBool::new(false));
    let (level, handle) = reload::Layer::new(default_level());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (as_text, as_json) = (json.clone(), json.clone());
    let text = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_filter(filter::filter_fn(move |_| !as_text.load(Ordering::Relaxed)));
    let structured = fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_writer(std::io::stderr)
        .with_filter(filter::filter_fn(move |_| as_json.load(Ordering::Relaxed)));
    let installed = tracing_subscriber::registry()
        .with(level)
        .with(text)
        .with(structured)
        .try_init()
        .is_ok();
    if installed {
        let _ = CONTROL.set(Control {
            json,
            level: handle,
        });
    }
    apply(conf);
}

/// Applies `conf` to the installed logger (nothing when none is installed, as in tests).
pub fn apply(conf: &LogConfig) {
    let Some(control) = CONTROL.get() else {
        return;
    };
    let json = conf.format == LogFormat::Json;
    control.json.store(json, Ordering::Relaxed);
    let level = match &conf.level {
        Some(directive) => EnvFilter::try_new(directive).unwrap_or_else(|_| default_level()),
        None => default_level(),
    };
    if let Err(e) = control.level.reload(level) {
        tracing::warn!(error = %e, "log: the level could not be changed");
    }
}
