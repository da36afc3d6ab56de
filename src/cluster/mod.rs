//! Several fleetgate nodes sharing hub traffic and learned sessions through Redis
//! (`cluster: { redis, prefix }`; without it a node runs alone and never touches Redis).
//!
//! **Fan-out.** A publish on any node goes to the Redis channel `{prefix}:hub:{app}:{channel}`.
//! Each node subscribes to exactly the channels it has local subscribers for (so it receives only
//! their traffic, not a firehose) and delivers what Redis sends it. Events published on this node
//! also come back through Redis, so every node sees Redis's single order per channel and each
//! subscriber gets an event once.
//!
//! **Faults.** The subscriber connection is re-established with back-off and every wanted channel
//! resubscribed; commands go through redis' reconnecting `ConnectionManager`. While the link is
//! down, publishes are delivered to this node's subscribers directly, and `/readyz`, the
//! `fleetgate_cluster_link_up` gauge and the log say the link is down. Nothing here blocks the data
//! path: publishes and session updates are queued (bounded; overflow is delivered locally or
//! dropped and counted).
//!
//! **Node ids** come from `INCR {prefix}:node-seq`, so socket ids are unique across the cluster.
//!
//! Layout: this file holds [`Cluster`] (what the hub and the proxy call), [`link`] the background
//! service that keeps the Redis connections, [`presence`] the cluster-wide presence scripts and
//! the liveness/reaping of nodes, [`occupancy`] channels occupied and vacated once per cluster.

mod counts;
mod link;
mod occupancy;
mod presence;

pub use link::ClusterLink;

use crate::metrics::ClusterMetrics;
use crate::pusher::channel::is_cache_channel;
use dashmap::DashSet;
use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;

/// Publishes and session updates waiting for Redis.
const OUTBOX: usize = 65_536;
/// How long a Redis command may take before the link counts as broken.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long Redis keeps a learned session no node forgot (WhatsApp sessions live for days).
const LEARNED_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a cache channel's last event is kept (Pusher's 30 minutes).
const CACHE_TTL: Duration = Duration::from_secs(30 * 60);
/// How long a learned-session lookup may add to a request.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_millis(100);

/// What the link sends to Redis, in order.
enum Outgoing {
    Publish {
        channel: String,
        payload: Vec<u8>,
        /// Told once Redis took the event (or it was delivered here instead).
        done: tokio::sync::oneshot::Sender<()>,
    },
    Learn {
        key: String,
        instance: String,
    },
    Forget {
        key: String,
    },
    /// A cache channel's last event, kept for subscribers on any node.
    Cache {
        key: String,
        frame: Vec<u8>,
    },
    /// One of this node's counts changed by `delta`: `field` of the hash `key` (a channel's
    /// subscriptions, an app's connections).
    Count {
        key: String,
        field: String,
        delta: i64,
    },
    /// This node's subscribers of a channel went from 0 to 1 or from 1 to 0.
    Occupancy(occupancy::Occupancy),
    /// Make Redis's view of this node's channels the hub's (after the link came up).
    Resync,
}

pub struct Cluster {
    pub node_id: u32,
    prefix: String,
    client: redis::Client,
    up: AtomicBool,
    outbox: mpsc::Sender<Outgoing>,
    /// Redis channels whose subscription may need to change (reconciled against the hub).
    nudges: mpsc::UnboundedSender<String>,
    receivers: Mutex<Option<(mpsc::Receiver<Outgoing>, mpsc::UnboundedReceiver<String>)>>,
    /// Redis channels this node is subscribed to (confirmed by Redis).
    subscribed: DashSet<String>,
    /// Bumped whenever `subscribed` or the link state changes (for [`Cluster::until_receiving`]).
    changes: tokio::sync::watch::Sender<u64>,
    commands: tokio::sync::OnceCell<ConnectionManager>,
    pub metrics: ClusterMetrics,
}

/// This node's hub as the cluster sees it: which channels it holds, and where the events other
/// nodes publish are handed back. The hub implements it; the cluster knows nothing else of it.
pub trait LocalHub: Send + Sync {
    /// The ids of the apps this node serves.
    fn app_ids(&self) -> Vec<String>;
    /// `app`'s channels with at least one subscriber on this node.
    fn channels(&self, app: &str) -> Vec<String>;
    /// Whether `app`'s `channel` has a subscriber on this node.
    fn has_channel(&self, app: &str, channel: &str) -> bool;
    /// Hands an event (a serialized Pusher frame) to this node's subscribers of `channel`, but the
    /// socket `except`.
    fn deliver(&self, app: &str, channel: &str, frame: &str, except: Option<&str>);
    /// Closes `user`'s sockets of `app` on this node.
    fn terminate(&self, app: &str, user: &str);
    /// An app webhook event the cluster decided this node fires (occupancy, a dead node's
    /// members and channels).
    fn webhook(&self, app: &str, event: crate::pusher::webhook::AppEvent);
}

/// What the API reports about an app's channels: this node's view, or (clustered, link up) every
/// node's ([`Cluster::view`]).
pub struct ChannelView {
    /// Subscriptions per channel (channels with at least one).
    pub subscriptions: HashMap<String, usize>,
    /// Member ids of each presence channel in `subscriptions`.
    pub members: HashMap<String, Vec<String>>,
}

impl Cluster {
    /// Connects once to allocate this node's id (falls back to `random_id()`, logged, when Redis
    /// cannot be reached: the link keeps trying later).
    pub fn new(
        url: &str,
        prefix: &str,
        metrics: ClusterMetrics,
        random_id: fn() -> u32,
    ) -> Result<Self, String> {
        // `rediss://` uses rustls with the process's provider: ring, as pingora's listeners.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = redis::Client::open(url).map_err(|e| format!("cluster.redis: {e}"))?;
        let node_id = allocate_node_id(&client, prefix).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cluster: Redis unreachable at start; using a random node id");
            random_id()
        });
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX);
        let (nudges, nudges_rx) = mpsc::unbounded_channel();
        Ok(Self {
            node_id,
            prefix: prefix.to_string(),
            client,
            up: AtomicBool::new(false),
            outbox,
            nudges,
            receivers: Mutex::new(Some((outbox_rx, nudges_rx))),
            subscribed: DashSet::new(),
            changes: tokio::sync::watch::Sender::new(0),
            commands: tokio::sync::OnceCell::new(),
            metrics,
        })
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn set_up(&self, up: bool) {
        self.changed();
        if self.up.swap(up, Ordering::Relaxed) != up {
            self.metrics.link_up.set(i64::from(up));
            match up {
                true => tracing::info!(node = self.node_id, "cluster link up"),
                false => {
                    tracing::warn!(node = self.node_id, "cluster link down: delivering locally")
                }
            }
        }
    }

    /// The Redis channel of a hub channel.
    pub fn hub_channel(&self, app: &str, channel: &str) -> String {
        format!("{}:hub:{app}:{channel}", self.prefix)
    }

    /// `(app, channel)` of a Redis channel name.
    fn parse_hub_channel<'n>(&self, name: &'n str) -> Option<(&'n str, &'n str)> {
        let rest = name.strip_prefix(&self.prefix)?.strip_prefix(":hub:")?;
        rest.rsplit_once(':')
    }

    /// Sends an event to every node with subscribers of the channel. `false` when it could not be
    /// queued (link down or outbox full): the caller delivers locally instead.
    pub fn publish(
        &self,
        app: &str,
        channel: &str,
        frame: &[u8],
        except: Option<&str>,
        done: tokio::sync::oneshot::Sender<()>,
    ) -> bool {
        if !self.is_up() {
            return false;
        }
        if is_cache_channel(channel) {
            let _ = self.outbox.try_send(Outgoing::Cache {
                key: self.cache_key(app, channel),
                frame: frame.to_vec(),
            });
        }
        let payload = message(except, frame);
        let queued = self
            .outbox
            .try_send(Outgoing::Publish {
                channel: self.hub_channel(app, channel),
                payload,
                done,
            })
            .is_ok();
        if !queued {
            self.metrics.messages.with_label_values(&["overflow"]).inc();
        }
        queued
    }

    /// Asks the link to (un)subscribe `channel` of `app` to match whether it has local subscribers.
    pub fn channel_changed(&self, app: &str, channel: &str) {
        let _ = self.nudges.send(self.hub_channel(app, channel));
    }

    /// Whether this node receives `channel`'s events from Redis (or needs not: link down).
    pub fn receives(&self, app: &str, channel: &str) -> bool {
        !self.is_up() || self.subscribed.contains(&self.hub_channel(app, channel))
    }

    /// Waits (at most `limit`) until this node receives `channel`'s events, so a client told
    /// "subscribed" does not miss an event published right after.
    pub async fn until_receiving(&self, app: &str, channel: &str, limit: Duration) {
        let mut changes = self.changes.subscribe();
        let wait = changes.wait_for(|_| self.receives(app, channel));
        let _ = tokio::time::timeout(limit, wait).await;
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// One key per learned session, expiring after [`LEARNED_TTL`] so Redis does not keep
    /// sessions nobody forgot explicitly forever.
    fn learned_key(&self, group: &str, session: &str) -> String {
        format!("{}:learned:{group}:{session}", self.prefix)
    }

    /// Shares a learned session with the other nodes.
    pub fn learn(&self, group: &str, session: &str, instance: &str) {
        let _ = self.outbox.try_send(Outgoing::Learn {
            key: self.learned_key(group, session),
            instance: instance.to_string(),
        });
    }

    pub fn forget(&self, group: &str, session: &str) {
        let _ = self.outbox.try_send(Outgoing::Forget {
            key: self.learned_key(group, session),
        });
    }

    /// The set of node ids that may hold presence memberships.
    fn nodes_key(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    fn node_key(&self, node: u32, what: &str) -> String {
        format!("{}:node:{node}:{what}", self.prefix)
    }

    /// Records that this node's subscriptions to `channel` changed by `delta` (for the HTTP API's
    /// cluster-wide counts).
    pub fn count_subscription(&self, app: &str, channel: &str, delta: i64) {
        let _ = self.outbox.try_send(Outgoing::Count {
            key: self.node_key(self.node_id, &format!("subs:{app}")),
            field: channel.to_string(),
            delta,
        });
    }

    /// Subscriptions per channel of `app` over every live node, and the members of its presence
    /// channels; `None` when the link is down (the caller answers from this node's view).
    pub async fn view(&self, app: &str) -> Option<ChannelView> {
        self.over_nodes(async |conn, nodes| {
            let mut subscriptions: HashMap<String, usize> = HashMap::new();
            for node in nodes {
                let counts: Vec<(String, i64)> = redis::cmd("HGETALL")
                    .arg(self.node_key(node, &format!("subs:{app}")))
                    .query_async(conn)
                    .await?;
                for (channel, count) in counts.into_iter().filter(|(_, n)| *n > 0) {
                    *subscriptions.entry(channel).or_default() += count as usize;
                }
            }
            let mut members = HashMap::new();
            for channel in subscriptions.keys().filter(|c| c.starts_with("presence-")) {
                let (_, key) = self.presence_keys(app, channel);
                let users: Vec<String> = redis::cmd("HKEYS").arg(key).query_async(conn).await?;
                members.insert(channel.clone(), users);
            }
            Ok(ChannelView {
                subscriptions,
                members,
            })
        })
        .await
    }

    fn cache_key(&self, app: &str, channel: &str) -> String {
        format!("{}:cache:{app}:{channel}", self.prefix)
    }

    /// A cache channel's last event published on any node.
    pub async fn cached(&self, app: &str, channel: &str) -> Option<String> {
        let mut conn = self.commands.get().filter(|_| self.is_up())?.clone();
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.cache_key(app, channel));
        let get = cmd.query_async::<Option<String>>(&mut conn);
        tokio::time::timeout(COMMAND_TIMEOUT, get)
            .await
            .ok()?
            .ok()?
    }

    fn control_channel(&self) -> String {
        format!("{}:control", self.prefix)
    }

    /// Closes `user`'s sockets on every node (`terminate_connections`); `false` when the link is
    /// down (the caller closes this node's).
    pub async fn terminate(&self, app: &str, user: &str) -> bool {
        let (done, taken) = tokio::sync::oneshot::channel();
        let queued = self.is_up()
            && self
                .outbox
                .try_send(Outgoing::Publish {
                    channel: self.control_channel(),
                    payload: format!("terminate\n{app}\n{user}").into_bytes(),
                    done,
                })
                .is_ok();
        queued && tokio::time::timeout(COMMAND_TIMEOUT, taken).await.is_ok()
    }

    /// The instance another node learned for `session`, within [`LOOKUP_TIMEOUT`].
    pub async fn lookup(&self, group: &str, session: &str) -> Option<String> {
        let mut conn = self.commands.get()?.clone();
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.learned_key(group, session));
        let get = cmd.query_async::<Option<String>>(&mut conn);
        tokio::time::timeout(LOOKUP_TIMEOUT, get).await.ok()?.ok()?
    }
}

/// `INCR {prefix}:node-seq` over a short-lived connection.
/// A cluster message on a hub channel: `{except socket id}\n{frame}`.
fn message(except: Option<&str>, frame: &[u8]) -> Vec<u8> {
    let except = except.unwrap_or("").as_bytes();
    let mut payload = Vec::with_capacity(except.len() + 1 + frame.len());
    payload.extend_from_slice(except);
    payload.push(b'\n');
    payload.extend_from_slice(frame);
    payload
}

fn allocate_node_id(client: &redis::Client, prefix: &str) -> Result<u32, redis::RedisError> {
    let mut conn = client.get_connection_with_timeout(COMMAND_TIMEOUT)?;
    conn.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    let seq: u64 = redis::cmd("INCR")
        .arg(format!("{prefix}:node-seq"))
        .query(&mut conn)?;
    Ok((seq % 1_000_000_000) as u32)
}
