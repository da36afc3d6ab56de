//! The fan-out engine: apps, channels, their subscribers and presence members.
//!
//! An event is serialized once into a [`Frame`] (its WebSocket frame, reference-counted bytes)
//! and the same bytes go to every subscriber's socket, directly when the socket takes them
//! (`conn`). Each connection queues at most [`SEND_QUEUE`] frames the kernel did not take.
//! **Slow-consumer policy**: a subscriber whose queue is full when a frame arrives is closed with
//! 4100 (pusher-js reconnects after a back-off) and counted; the publisher never waits for it and
//! other subscribers never notice it.

use super::channel::is_cache_channel;
use super::webhooks::Webhooks;
use crate::cluster::Cluster;
use crate::config::App;
use crate::metrics::{AppMetrics, HubMetrics};
use crate::rate::TokenBucket;
use arc_swap::ArcSwap;
use dashmap::DashMap;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use tokio::sync::watch;

mod conn;
mod deliver;
mod lanes;
mod subscribers;

pub use conn::{Closer, Conn, Offered, Outbox};
pub use lanes::Lanes;
use lanes::{Job, Lane};

/// Frames a connection may have queued before it counts as a slow consumer.
pub const SEND_QUEUE: usize = 512;

/// One serialized text frame, shared by every subscriber it goes to.
pub use super::wire::Frame;

/// A presence member: how many of the user's sockets are subscribed, and their info.
struct Member {
    sockets: usize,
    info: String,
}

#[derive(Default)]
pub struct Channel {
    /// By connection id: a fan-out visits sockets in the order they were opened.
    subs: RwLock<BTreeMap<u64, Conn>>,
    members: Mutex<HashMap<String, Member>>,
    /// Last event of a cache channel.
    pub cache: Mutex<Option<Frame>>,
    /// Set (under `subs`) when its last subscriber left: it is leaving the map, and a subscriber
    /// holding it takes a new channel instead.
    closed: std::sync::atomic::AtomicBool,
}

impl Channel {
    pub fn subscription_count(&self) -> usize {
        self.subs.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// `(user_id, user_info)` of every present user.
    pub fn members(&self) -> Vec<(String, String)> {
        let members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        members
            .iter()
            .map(|(id, m)| (id.clone(), m.info.clone()))
            .collect()
    }

    /// A cache channel's last event here, if any.
    pub fn last_event(&self) -> Option<Frame> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn user_count(&self) -> usize {
        self.members.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Presence outcome of a join or leave: whether the user's presence changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Presence {
    /// The user's first socket joined (`member_added` to the others).
    Added,
    /// The user's last socket left (`member_removed` to the others).
    Removed,
    Unchanged,
    /// The channel already has `max_members` users.
    Full,
}

pub struct AppState {
    /// The app's id (fixed: a reload that changes an id removes one app and adds another).
    pub id: String,
    /// The app's settings; a reload replaces them in place (secret rotation, limits).
    conf: ArcSwap<App>,
    /// Set when a reload removes the app: its connections close with 4200.
    retired: watch::Sender<bool>,
    /// Told when a channel gets its first or loses its last local subscriber (clustered).
    cluster: Option<Arc<Cluster>>,
    channels: DashMap<String, Arc<Channel>>,
    pub connections: AtomicUsize,
    /// Sockets by signed-in user id (`pusher:signin`), for `#server-to-user-{id}` and terminate.
    pub users: DashMap<String, HashMap<u64, Conn>>,
    pub metrics: AppMetrics,
    /// The HTTP API's requests: `api_requests_per_second`, as a burst too.
    api_requests: Mutex<TokenBucket>,
    /// Where the app's webhook events go (`None`: no spool, so no app webhooks).
    webhooks: Option<Webhooks>,
}

pub struct Hub {
    /// In configuration order; replaced as a whole by [`Hub::apply`].
    apps: ArcSwap<Vec<Arc<AppState>>>,
    next_conn: AtomicU64,
    /// Cluster node id: the first half of every socket id.
    pub node_id: u32,
    pub metrics: HubMetrics,
    /// The Redis link carrying publishes to every node, when clustered.
    cluster: Option<Arc<Cluster>>,
    /// Open WebSocket connections by client address (each app's `max_connections_per_ip`).
    pub admission: Arc<crate::admission::Admission>,
    /// The threads that write their share of each publish (`threads` lanes in all).
    lanes: Lanes,
    /// Where app webhook events go.
    webhooks: Option<Webhooks>,
}

impl Hub {
    pub fn new(
        apps: &[App],
        node_id: u32,
        metrics: HubMetrics,
        cluster: Option<Arc<Cluster>>,
        lanes: Lanes,
        webhooks: Option<Webhooks>,
    ) -> Self {
        let hub = Self {
            apps: Default::default(),
            next_conn: AtomicU64::new(1),
            node_id,
            metrics,
            cluster,
            admission: Arc::default(),
            lanes,
            webhooks,
        };
        hub.apply(apps);
        hub
    }

    /// Makes `apps` the hub's apps: an app whose id is kept keeps its connections and channels and
    /// takes the new settings; new ids are added; removed apps' connections are closed with 4200.
    pub fn apply(&self, apps: &[App]) {
        let current = self.apps.load_full();
        let next: Vec<Arc<AppState>> = apps
            .iter()
            .map(|conf| match current.iter().find(|a| a.id == conf.id) {
                Some(kept) => {
                    kept.conf.store(Arc::new(conf.clone()));
                    kept.clone()
                }
                None => Arc::new(AppState {
                    id: conf.id.clone(),
                    cluster: self.cluster.clone(),
                    metrics: self.metrics.for_app(&conf.id),
                    conf: ArcSwap::from_pointee(conf.clone()),
                    retired: watch::Sender::new(false),
                    channels: DashMap::new(),
                    connections: AtomicUsize::new(0),
                    users: DashMap::new(),
                    api_requests: Mutex::new(TokenBucket::full(
                        conf.api_requests_per_second,
                        Instant::now(),
                    )),
                    webhooks: self.webhooks.clone(),
                }),
            })
            .collect();
        for gone in current
            .iter()
            .filter(|a| !next.iter().any(|n| n.id == a.id))
        {
            tracing::info!(app = %gone.id, "hub app removed: closing its connections with 4200");
            gone.retired.send_replace(true);
        }
        self.apps.store(Arc::new(next));
    }

    /// The current apps.
    pub fn apps(&self) -> Arc<Vec<Arc<AppState>>> {
        self.apps.load_full()
    }

    /// Sets the hub's scrape-time gauges (connections, channels, subscriptions per app).
    pub fn export_gauges(&self) {
        for app in self.apps().iter() {
            let (mut channels, mut subs) = (0, 0);
            for ch in app.channels.iter() {
                let count = ch.subscription_count();
                channels += usize::from(count > 0);
                subs += count;
            }
            let connections = app.connections.load(Ordering::Relaxed);
            self.metrics
                .set_app_gauges(&app.id, connections, channels, subs);
        }
    }

    pub fn app_by_key(&self, key: &str) -> Option<Arc<AppState>> {
        self.apps
            .load()
            .iter()
            .find(|a| a.conf().key == key)
            .cloned()
    }

    pub fn app_by_id(&self, id: &str) -> Option<Arc<AppState>> {
        self.apps.load().iter().find(|a| a.id == id).cloned()
    }

    /// A new connection id and its socket id (`{node}.{counter}`).
    pub fn next_socket(&self) -> (u64, String) {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        (id, super::protocol::socket_id(self.node_id, id))
    }

    /// The Redis link, when clustered.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }
}

impl AppState {
    /// The app's current settings.
    pub fn conf(&self) -> arc_swap::Guard<Arc<App>> {
        self.conf.load()
    }

    /// Changes to `true` when a reload removes the app.
    pub fn retired(&self) -> watch::Receiver<bool> {
        self.retired.subscribe()
    }

    pub fn channel(&self, name: &str) -> Option<Arc<Channel>> {
        self.channels.get(name).map(|c| c.clone())
    }

    /// Closes every socket of a signed-in `user` (`terminate_connections`) with 4009.
    pub fn terminate(&self, user: &str) {
        if let Some(sockets) = self.users.get(user) {
            for conn in sockets.values() {
                conn.closer.close(4009);
            }
        }
    }

    /// Whether `name` exists here (it has, or is just getting, a local subscriber).
    pub fn has_channel(&self, name: &str) -> bool {
        self.channels.contains_key(name)
    }

    /// Every channel that exists here (see [`AppState::has_channel`]).
    pub fn channel_keys(&self) -> Vec<String> {
        self.channels.iter().map(|c| c.key().clone()).collect()
    }

    /// Every channel with at least one subscriber.
    pub fn channel_names(&self) -> Vec<String> {
        self.channels
            .iter()
            .filter(|c| c.subscription_count() > 0)
            .map(|c| c.key().clone())
            .collect()
    }

    /// Takes one of the app's `max` connection slots (told to the cluster); `false` when all are
    /// taken.
    pub fn open_connection(&self, max: usize) -> bool {
        if self.connections.fetch_add(1, Ordering::Relaxed) >= max {
            self.connections.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        if let Some(cluster) = &self.cluster {
            cluster.count_connection(&self.id, 1);
        }
        true
    }

    /// Takes one HTTP API request from the app's budget; `false` when it is spent.
    pub fn take_api_request(&self) -> bool {
        let rate = self.conf().api_requests_per_second;
        let mut bucket = self.api_requests.lock().unwrap_or_else(|p| p.into_inner());
        bucket.try_take(rate, rate, Instant::now())
    }

    /// Gives back a slot [`AppState::open_connection`] took.
    pub fn close_connection(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
        if let Some(cluster) = &self.cluster {
            cluster.count_connection(&self.id, -1);
        }
    }
}
