//! `gateway.yaml`: loading, `${VAR}` interpolation, and validation into typed values.
//!
//! Pipeline: text → YAML tree → interpolate `${VAR}` → raw serde structs (unknown keys collected)
//! → typed [`Config`]. Every stage keeps going after a problem so that one run reports *every*
//! problem, each with its YAML path (`routes[0].upstream: no upstream group named "nodes"`).

mod app;
pub mod defaults;
mod effective;
mod interp;
mod raw;
pub mod schema;
pub mod types;
mod units;
mod validate;

pub use effective::REDACTED;
pub use types::*;

use std::fmt;
use std::path::Path;

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// YAML path such as `upstreams.node.instances[2].addr` (empty for the whole file).
    pub path: String,
    pub message: String,
}

/// Every problem found in a configuration file (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        writeln!(
            f,
            "{count} problem{} in configuration:",
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            let path = if problem.path.is_empty() {
                "(file)"
            } else {
                &problem.path
            };
            writeln!(f, "  {path}: {}", problem.message)?;
        }
        Ok(())
    }
}

impl ConfigError {
    fn single(path: &str, message: impl Into<String>) -> Self {
        Self {
            problems: vec![Problem {
                path: path.to_string(),
                message: message.into(),
            }],
        }
    }
}

/// Reads and validates a configuration file, taking `${VAR}` values from the process environment.
/// Relative paths to directories the gateway reads (`listeners.NAME.tls.dir`) are made relative
/// to the file's own directory, so the same file works whatever the working directory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_text(path, &read(path)?)
}

/// The text of a configuration file.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::single("", format!("cannot read {}: {e}", path.display())))
}

/// [`load`] for text already read from `path`.
pub fn load_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let mut config = parse(text, &|name| std::env::var(name).ok())?;
    let base = path.parent().unwrap_or(Path::new(""));
    for tls in config.listeners.iter_mut().filter_map(|l| l.tls.as_mut()) {
        if tls.dir.is_relative() {
            tls.dir = base.join(&tls.dir);
        }
    }
    if let Some(spool) = config.spool.as_mut().filter(|s| s.dir.is_relative()) {
        spool.dir = base.join(&spool.dir);
    }
    Ok(config)
}

/// Parses and validates configuration text with the given environment lookup.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let mut tree: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
        .map_err(|e| ConfigError::single("", format!("not valid YAML: {e}")))?;
    if tree.is_null() {
        tree = serde_yaml_ng::Value::Mapping(Default::default());
    }
    let mut interpolated = interp::Interpolated::default();
    interp::interpolate(&mut tree, "", env, &mut interpolated);
    let mut found = interpolated.errors;

    let (raw, unknown) = loop {
        let mut unknown = Vec::new();
        let mut on_unknown = |path: serde_ignored::Path<'_>| unknown.push(yaml_path(&path));
        let raw = serde_ignored::Deserializer::new(tree.clone(), &mut on_unknown);
        match serde_path_to_error::deserialize::<_, raw::RawConfig>(raw) {
            Ok(raw) => break (raw, unknown),
            Err(e) => {
                let path = e.path().to_string();
                // A whole `${VAR}` its key refuses as text: read it again as a number or boolean.
                let whole = interpolated.whole.iter().position(|p| *p == path);
                if let Some(at) = whole {
                    if interp::retype(&mut tree, &path) {
                        interpolated.whole.swap_remove(at);
                        continue;
                    }
                }
                found.push((
                    if path == "." { String::new() } else { path },
                    e.into_inner().to_string(),
                ));
                found.extend(unknown.into_iter().map(|path| (path, "unknown key".into())));
                return Err(into_error(found));
            }
        }
    };
    found.extend(
        unknown
            .into_iter()
            .map(|path| (path, "unknown key".to_string())),
    );

    let (config, problems) = validate::validate(raw);
    found.extend(problems);
    if found.is_empty() {
        Ok(config)
    } else {
        Err(into_error(found))
    }
}

/// `serde_ignored`'s path in the form every other problem uses (`routes[0].name`,
/// `upstreams.node.routing.assign`) rather than its own (`routes.0.name`, `routing.?.assign`).
fn yaml_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", yaml_path(parent)),
        Path::Map { parent, key } => match yaml_path(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => yaml_path(parent),
    }
}

fn into_error(found: Vec<(String, String)>) -> ConfigError {
    ConfigError {
        problems: found
            .into_iter()
            .map(|(path, message)| Problem { path, message })
            .collect(),
    }
}
