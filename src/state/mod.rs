//! Shared runtime state: the current config snapshot plus state that outlives snapshots.
//!
//! The data plane loads one [`Snapshot`] per request (`ArcSwap`, no lock) and never writes it.
//! Health and learned sessions are keyed by group/instance *name* and live here, outside the
//! snapshot, so a reload that keeps an instance keeps its health and its sessions.
//!
//! - [`snapshot`]: the snapshot and how a configuration is built into one.
//! - [`reload`]: re-reading `gateway.yaml`, and its refusals ([`ReloadError`]).
//! - [`learned`]: the learned-session bridge (this node's table and, clustered, every node's).
//! - [`readiness`]: what `/readyz` reports.

mod learned;
mod readiness;
mod reload;
mod snapshot;

pub use readiness::Readiness;
pub use reload::ReloadError;
pub use snapshot::{GroupState, Snapshot};

use crate::access_log::AccessLog;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::dedupe::SeenDeliveries;
use crate::health::InstanceHealth;
use crate::hub::fanout::Hub;
use crate::hub::webhooks::{queue_name, Batcher, WebhookService, Webhooks};
use crate::metrics::Metrics;
use crate::routing::learned::LearnedSessions;
use arc_swap::ArcSwap;
use dashmap::DashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// The app webhooks' batcher, until the server takes it to run.
    pub webhook_service: Mutex<Option<WebhookService>>,
}

impl Gateway {
    pub fn new(config: Config, config_path: Option<PathBuf>) -> anyhow::Result<Arc<Self>> {
        let tried = config_path.as_deref().and_then(reload::file_fingerprint);
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
        let spool = open_spool(&config, &metrics)?;
        let grace = config.shutdown.grace_period;
        let (webhooks, webhook_service) = app_webhooks(spool.as_ref(), &metrics, grace);
        let hub = match &config.hub {
            Some(h) => Some(Arc::new(Hub::new(
                &h.apps,
                node_id,
                metrics.hub.clone(),
                cluster.clone(),
                crate::hub::fanout::Lanes::new(config.threads)?,
                webhooks,
            ))),
            None => None,
        };
        let gateway = Self {
            webhook_service: Mutex::new(webhook_service),
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
                    .upstream
                    .in_flight
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

    /// Publishes a health change to the instance gauge.
    pub fn health_changed(&self, group: &str, instance: &str, healthy: bool) {
        self.metrics
            .upstream
            .healthy
            .with_label_values(&[group, instance])
            .set(i64::from(healthy));
        tracing::warn!(group, instance, healthy, "instance health changed");
    }
}

/// The spool of `config` (`None` when off), with a queue opened for every webhook route.
fn open_spool(
    config: &Config,
    metrics: &Metrics,
) -> anyhow::Result<Option<Arc<crate::spool::Spool>>> {
    let Some(conf) = &config.spool else {
        return Ok(None);
    };
    let spool = crate::spool::Spool::open(conf.clone(), metrics.spool.clone())
        .map_err(|e| anyhow::anyhow!("spool.dir {}: {e}", conf.dir.display()))?;
    let routes = config.routes.iter().filter(|r| r.webhook.is_some());
    let apps = config.hub.iter().flat_map(|h| &h.apps);
    let hooks = apps.flat_map(|a| a.webhooks.iter().map(|w| queue_name(&a.id, &w.url)));
    for queue in routes.map(|r| r.name.clone()).chain(hooks) {
        spool
            .queue(&queue)
            .map_err(|e| anyhow::anyhow!("spool.dir, queue {queue}: {e}"))?;
    }
    Ok(Some(spool))
}

/// Where the hub's app webhook events go, and the service that batches them into the spool
/// (none without a spool).
fn app_webhooks(
    spool: Option<&Arc<crate::spool::Spool>>,
    metrics: &Metrics,
    grace_period: std::time::Duration,
) -> (Option<Webhooks>, Option<WebhookService>) {
    let Some(spool) = spool else {
        return (None, None);
    };
    let counted = metrics.hub.webhook_events.clone();
    let (webhooks, events) = Webhooks::new(counted.clone());
    let batcher = Batcher {
        spool: spool.clone(),
        counted,
        grace_period,
    };
    let service = WebhookService {
        batcher,
        events: std::sync::Mutex::new(Some(events)),
    };
    (Some(webhooks), Some(service))
}
