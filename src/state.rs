//! Shared runtime state: the current config snapshot plus state that outlives snapshots.
//!
//! The data plane loads one [`Snapshot`] per request (`ArcSwap`, no lock) and never writes it.
//! Health and learned sessions are keyed by group/instance *name* and live here, outside the
//! snapshot, so a future reload that keeps an instance keeps its health and its sessions.

use crate::access_log::AccessLog;
use crate::cluster::Cluster;
use crate::config::{defaults, Config, ConfigError, Group, Problem, Route, ShutdownConfig};
use crate::dedupe::SeenDeliveries;
use crate::health::InstanceHealth;
use crate::hub::fanout::Hub;
use crate::metrics::{InstanceMetrics, Metrics, RouteMetrics};
use crate::routing::learned::LearnedSessions;
use arc_swap::ArcSwap;
use dashmap::DashMap;
use sha2::Digest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    pub metrics: Metrics,
    /// The Pusher hub, when configured.
    pub hub: Option<Arc<Hub>>,
    /// The Redis link, when `cluster` is configured.
    pub cluster: Option<Arc<Cluster>>,
    health: DashMap<(String, String), Arc<InstanceHealth>>,
    learned: DashMap<String, Arc<LearnedSessions>>,
    /// Seen deliveries per webhook route name.
    seen: DashMap<String, Arc<SeenDeliveries>>,
    /// Per-workspace budgets (`routing.workspace_limits`).
    pub budgets: Arc<crate::routing::budget::Budgets>,
    /// Where the configuration was read from (for reloads).
    config_path: Option<PathBuf>,
    /// Serialises reloads so two never interleave.
    reloading: Mutex<()>,
    /// The fingerprint of the configuration text last read by a reload (applied or refused).
    tried: Mutex<Option<[u8; 32]>>,
    /// Set once every listener accepts connections (`/readyz`).
    ready: AtomicBool,
    /// Set when shutdown begins (`/readyz` answers 503 from then on).
    draining: AtomicBool,
    /// The access log writer for the current `access_log` setting (`None` when off).
    pub access_log: arc_swap::ArcSwapOption<AccessLog>,
    /// Verified webhooks waiting for Laravel (`None`: `spool.enabled: false`).
    pub spool: Option<Arc<crate::spool::Spool>>,
}

/// What `/readyz` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Starting,
    Ready,
    Draining,
}

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
    pub fn new(config: Config, config_path: Option<PathBuf>) -> anyhow::Result<Arc<Self>> {
        let tried = config_path.as_deref().and_then(file_fingerprint);
        let metrics = Metrics::new()?;
        let cluster = match &config.cluster {
            Some(c) => Some(Arc::new(
                Cluster::new(
                    &c.redis,
                    &c.prefix,
                    metrics.cluster.clone(),
                    crate::hub::protocol::random_node_id,
                )
                .map_err(anyhow::Error::msg)?,
            )),
            None => None,
        };
        let node_id = cluster
            .as_ref()
            .map_or_else(crate::hub::protocol::random_node_id, |c| c.node_id);
        let hub = config.hub.as_ref().map(|h| {
            Arc::new(Hub::new(
                &h.apps,
                node_id,
                metrics.hub.clone(),
                cluster.clone(),
            ))
        });
        let webhook_routes = config
            .routes
            .iter()
            .filter(|r| r.webhook.is_some())
            .map(|r| r.name.clone());
        let spool = match &config.spool {
            Some(conf) => Some(
                crate::spool::Spool::open(conf.clone(), metrics.spool.clone())
                    .map_err(|e| anyhow::anyhow!("spool.dir {}: {e}", conf.dir.display()))?,
            ),
            None => None,
        };
        if let Some(spool) = &spool {
            for route in webhook_routes {
                spool
                    .queue(&route)
                    .map_err(|e| anyhow::anyhow!("spool.dir, route {route}: {e}"))?;
            }
        }
        let gateway = Self {
            snapshot: ArcSwap::from_pointee(Snapshot::empty()),
            spool,
            metrics,
            hub,
            cluster,
            health: DashMap::new(),
            learned: DashMap::new(),
            seen: DashMap::new(),
            budgets: Arc::default(),
            config_path,
            reloading: Mutex::new(()),
            tried: Mutex::new(tried),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            access_log: Default::default(),
        };
        gateway.install(config)?;
        Ok(Arc::new(gateway))
    }

    /// Whether `path`'s current content differs from what the last reload read (so the file
    /// watcher applies each change once, whichever trigger saw it first).
    pub fn config_changed(&self) -> bool {
        let Some(path) = self.config_path.as_deref() else {
            return false;
        };
        let now = file_fingerprint(path);
        now.is_some() && now != *self.tried.lock().unwrap_or_else(|p| p.into_inner())
    }

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

    /// The Prometheus exposition, with scrape-time gauges (hub, in-flight, learned) brought up
    /// to date first.
    pub fn render_metrics(&self) -> Vec<u8> {
        if let Some(hub) = &self.hub {
            hub.export_gauges();
        }
        if let Some(spool) = &self.spool {
            spool.export_gauges();
        }
        let snap = self.snapshot();
        for (group, state) in snap.config.groups.iter().zip(&snap.groups) {
            self.metrics
                .learned_sessions
                .with_label_values(&[&group.name])
                .set(state.learned.len() as i64);
            for (instance, health) in group.instances.iter().zip(&state.health) {
                self.metrics
                    .upstream_in_flight
                    .with_label_values(&[&group.name, &instance.name])
                    .set(health.in_flight.load(Ordering::Relaxed));
            }
        }
        self.metrics.render()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Re-reads the configuration file and, only if it is entirely valid, swaps it in.
    /// Listener and admin addresses cannot change live: such a change is refused as "needs restart".
    /// Every outcome is counted in `fleetgate_config_reloads_total` and logged (a refusal with every
    /// problem and its YAML path).
    pub fn reload(&self) -> Result<(), ConfigError> {
        let result = self.try_reload();
        let label = match &result {
            Ok(()) => "ok",
            Err(e) if e.problems.iter().any(|p| p.message.contains(NEEDS_RESTART)) => {
                "needs_restart"
            }
            Err(_) => "invalid",
        };
        self.metrics
            .config_reloads
            .with_label_values(&[label])
            .inc();
        if let Err(e) = &result {
            tracing::error!(result = label, "configuration not reloaded: {e}");
        }
        result
    }

    fn try_reload(&self) -> Result<(), ConfigError> {
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
            return Err(ConfigError {
                problems: restart
                    .into_iter()
                    .map(|(path, what)| Problem {
                        path: path.into(),
                        message: format!("{what} changed: {NEEDS_RESTART} (nothing was applied)"),
                    })
                    .collect(),
            });
        }
        self.install(config)?;
        tracing::info!(path = %path.display(), hash = %self.snapshot().hash, "configuration reloaded");
        Ok(())
    }

    /// Builds a snapshot for `config` (reusing health and learned state by name) and swaps it in.
    /// Fails, changing nothing, only when the access log file cannot be opened.
    pub fn install(&self, config: Config) -> Result<(), ConfigError> {
        let access_log = self.access_log_for(&config)?;
        if let (Some(hub), Some(conf)) = (&self.hub, &config.hub) {
            hub.apply(&conf.apps);
        }
        let groups = config.groups.iter().map(|g| self.group_state(g)).collect();
        for route in &config.routes {
            self.metrics
                .init_route(&route.name, route.webhook.is_some());
        }
        let effective = config.effective();
        let hash = config.hash();
        self.metrics.config_applied(&hash);
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
                    .instance_healthy
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

    /// Records that `session` lives on `instance` of `group`: here and, clustered, on every node.
    pub fn learn_session(&self, state: &GroupState, group: &str, session: &str, instance: &str) {
        state.learned.learn(session, instance);
        if let Some(cluster) = &self.cluster {
            cluster.learn(group, session, instance);
        }
    }

    /// Forgets `session` here and, clustered, on every node.
    pub fn forget_session(&self, state: &GroupState, group: &str, session: &str) {
        state.learned.forget(session);
        if let Some(cluster) = &self.cluster {
            cluster.forget(group, session);
        }
    }

    /// The instance `session` was learned on: here, else (clustered) by another node, which is
    /// then remembered here too.
    pub async fn learned_instance(
        &self,
        state: &GroupState,
        group: &str,
        session: &str,
    ) -> Option<String> {
        if let Some(instance) = state.learned.get(session) {
            return Some(instance);
        }
        let instance = self.cluster.as_ref()?.lookup(group, session).await?;
        state.learned.learn(session, &instance);
        Some(instance)
    }

    /// Publishes a health change to the instance gauge.
    pub fn health_changed(&self, group: &str, instance: &str, healthy: bool) {
        self.metrics
            .instance_healthy
            .with_label_values(&[group, instance])
            .set(i64::from(healthy));
        tracing::warn!(group, instance, healthy, "instance health changed");
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
fn file_fingerprint(path: &std::path::Path) -> Option<[u8; 32]> {
    std::fs::read(path).ok().map(|text| fingerprint(&text))
}

/// Marks a reload refusal for a change that only a restart can apply.
const NEEDS_RESTART: &str = "needs restart";

impl Snapshot {
    fn empty() -> Self {
        Self {
            config: Config {
                threads: 1,
                admin: None,
                listeners: vec![],
                groups: vec![],
                routes: vec![],
                hub: None,
                access_log: None,
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
