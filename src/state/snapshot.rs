//! One immutable view of the configuration with its runtime handles resolved, and how a
//! configuration is built into one and swapped in.

use super::Gateway;
use crate::access_log::AccessLog;
use crate::config::{defaults, Config, ConfigError, Group, Problem, Route, ShutdownConfig};
use crate::dedupe::SeenDeliveries;
use crate::health::InstanceHealth;
use crate::metrics::{InstanceMetrics, RouteMetrics};
use crate::routing::learned::LearnedSessions;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// One immutable view of the configuration with its runtime handles resolved.
pub struct Snapshot {
    pub config: Config,
    pub groups: Vec<GroupState>,
    /// Per listener: route indices, longest path prefix first.
    routes_by_listener: HashMap<String, Vec<usize>>,
    /// Per route (same index as `config.routes`): seen deliveries of webhook routes.
    pub seen: Vec<Option<Arc<SeenDeliveries>>>,
    /// Per route (same index as `config.routes`): its request metrics.
    pub route_metrics: Vec<RouteMetrics>,
    /// The effective configuration with secrets redacted, and its SHA-256 (`GET /admin/config`).
    pub effective: serde_json::Value,
    pub hash: String,
}

pub struct GroupState {
    pub names: Vec<String>,
    pub health: Vec<Arc<InstanceHealth>>,
    pub learned: Arc<LearnedSessions>,
    /// Round-robin cursor for `treatment: balance`.
    pub cursor: AtomicUsize,
    /// Per instance: its upstream metrics.
    pub metrics: Vec<InstanceMetrics>,
}

impl Gateway {
    /// Builds a snapshot for `config` (reusing health and learned state by name) and swaps it in.
    /// Fails, changing nothing, only when the access log file cannot be opened.
    pub fn install(&self, config: Config) -> Result<(), ConfigError> {
        let access_log = self.access_log_for(&config)?;
        crate::logging::apply(&config.log);
        if let (Some(hub), Some(conf)) = (&self.hub, &config.hub) {
            hub.apply(&conf.apps);
        }
        let groups = config.groups.iter().map(|g| self.group_state(g)).collect();
        for route in config.routes.iter().filter(|r| r.webhook.is_some()) {
            self.metrics.webhook.init_route(&route.name);
        }
        let effective = config.effective();
        let hash = config.hash();
        self.metrics.config.applied(&hash);
        let mut routes_by_listener: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, route) in config.routes.iter().enumerate() {
            routes_by_listener
                .entry(route.listener.clone())
                .or_default()
                .push(index);
        }
        for indices in routes_by_listener.values_mut() {
            indices.sort_by_key(|&i| std::cmp::Reverse(config.routes[i].path_prefix.len()));
        }
        let seen = config
            .routes
            .iter()
            .map(|r| {
                let webhook = r.webhook.as_ref()?;
                let make = || {
                    Arc::new(SeenDeliveries::new(
                        webhook.duplicates_ttl,
                        webhook.duplicates_capacity,
                    ))
                };
                Some(self.seen.entry(r.name.clone()).or_insert_with(make).clone())
            })
            .collect();
        let route_metrics = config
            .routes
            .iter()
            .map(|r| RouteMetrics::new(&self.metrics, &r.listener, &r.name))
            .collect();
        self.snapshot.store(Arc::new(Snapshot {
            config,
            groups,
            routes_by_listener,
            seen,
            route_metrics,
            effective,
            hash,
        }));
        self.access_log.store(access_log);
        Ok(())
    }

    /// The access log writer for `config`: the current one if it already writes there, else a new
    /// one (a file that cannot be opened is a configuration problem).
    fn access_log_for(&self, config: &Config) -> Result<Option<Arc<AccessLog>>, ConfigError> {
        let current = self.access_log.load_full();
        let target = config.access_log.as_ref();
        if current.as_ref().map(|log| log.target()) == target {
            return Ok(current);
        }
        target
            .map(|t| AccessLog::open(t, self.metrics.access_log_dropped.clone()).map(Arc::new))
            .transpose()
            .map_err(|message| ConfigError {
                problems: vec![Problem {
                    path: "access_log.path".into(),
                    message,
                }],
            })
    }

    fn group_state(&self, group: &Group) -> GroupState {
        let health = group
            .instances
            .iter()
            .map(|i| {
                let key = (group.name.clone(), i.name.clone());
                let entry = self.health.entry(key).or_default().clone();
                self.metrics.init_instance(&group.name, &i.name);
                self.metrics
                    .upstream
                    .healthy
                    .with_label_values(&[&group.name, &i.name])
                    .set(i64::from(entry.is_healthy()));
                entry
            })
            .collect();
        let capacity = group.routing.as_ref().map_or(1, |r| r.learned_capacity);
        let learned = self
            .learned
            .entry(group.name.clone())
            .or_insert_with(|| Arc::new(LearnedSessions::new(capacity)))
            .clone();
        GroupState {
            names: group.instances.iter().map(|i| i.name.clone()).collect(),
            health,
            learned,
            cursor: AtomicUsize::new(0),
            metrics: group
                .instances
                .iter()
                .map(|i| InstanceMetrics::new(&self.metrics, &group.name, &i.name))
                .collect(),
        }
    }
}

impl Snapshot {
    pub(super) fn empty() -> Self {
        Self {
            config: Config {
                threads: 1,
                admin: None,
                listeners: vec![],
                groups: vec![],
                routes: vec![],
                hub: None,
                access_log: None,
                log: Default::default(),
                cluster: None,
                shutdown: ShutdownConfig {
                    drain_delay: defaults::DRAIN_DELAY,
                    grace_period: defaults::GRACE_PERIOD,
                },
                spool: None,
            },
            groups: vec![],
            routes_by_listener: HashMap::new(),
            seen: Vec::new(),
            route_metrics: Vec::new(),
            effective: serde_json::Value::Null,
            hash: String::new(),
        }
    }

    /// The route on `listener` with the longest prefix matching `path`.
    pub fn route_for(&self, listener: &str, path: &str) -> Option<(usize, &Route)> {
        self.routes_by_listener
            .get(listener)?
            .iter()
            .map(|&i| (i, &self.config.routes[i]))
            .find(|(_, r)| prefix_matches(&r.path_prefix, path))
    }
}

/// `/api` matches `/api`, `/api/x` and `/api?…`, not `/apix`; a prefix ending in `/` matches below it.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefixes_match_whole_segments() {
        use super::prefix_matches as m;
        assert!(m("/", "/anything"));
        assert!(m("/api", "/api") && m("/api", "/api/x"));
        assert!(!m("/api", "/apix"));
        assert!(m("/api/", "/api/x") && !m("/api/", "/api"));
    }
}
