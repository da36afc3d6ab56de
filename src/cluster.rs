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

use crate::hub::fanout::{Frame, Hub};
use crate::metrics::ClusterMetrics;
use dashmap::DashSet;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// A node refreshes its liveness key this often …
const HEARTBEAT: Duration = Duration::from_secs(1);
/// … which expires after this long without a refresh (kill -9, network loss) …
const ALIVE_TTL: Duration = Duration::from_secs(5);
/// … and the other nodes look for expired ones this often: a dead node's presence members are
/// removed within ALIVE_TTL + REAP_EVERY (≤ 7 s).
const REAP_EVERY: Duration = Duration::from_secs(2);

/// Joins a presence member. KEYS: the node's memberships, the channel's socket counts per user,
/// the channel's members (user → info), the node registry, the node's liveness key. ARGV:
/// membership field, user, info, node id, liveness TTL (ms). The node is registered (and marked
/// alive) in the same step, so a node that dies before its first heartbeat is still cleaned up.
/// Returns {1 if the user was added, every member as a flat list of user, info}.
const JOIN: &str = r"
redis.call('SADD', KEYS[4], ARGV[4])
redis.call('SET', KEYS[5], 1, 'PX', ARGV[5])
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local added = 0
if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
  added = 1
end
return {added, redis.call('HGETALL', KEYS[3])}
";

/// Removes ARGV[3] sockets of a member (same KEYS, the last two unused; ARGV: membership field,
/// user, count).
/// Returns 1 if that was the user's last socket in the cluster (the user left).
const LEAVE: &str = r"
local n = tonumber(ARGV[3])
if redis.call('HINCRBY', KEYS[1], ARGV[1], -n) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
if redis.call('HINCRBY', KEYS[2], ARGV[2], -n) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  return 1
end
return 0
";
const BACKOFF_MAX: Duration = Duration::from_secs(2);

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
    /// A channel's subscription count on this node changed by `delta`.
    Count {
        key: String,
        channel: String,
        delta: i64,
    },
}

/// Channel facts over every live node, for the HTTP API.
pub struct ClusterView {
    /// Subscriptions per channel (channels with at least one).
    pub subscriptions: HashMap<String, usize>,
    /// Member ids of each presence channel in `subscriptions`.
    pub members: HashMap<String, Vec<String>>,
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

impl Cluster {
    /// Connects once to allocate this node's id (falls back to a random id, logged, when Redis
    /// cannot be reached: the link keeps trying later).
    pub fn new(url: &str, prefix: &str, metrics: ClusterMetrics) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("cluster.redis: {e}"))?;
        let node_id = allocate_node_id(&client, prefix).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cluster: Redis unreachable at start; using a random node id");
            crate::state::random_node_id()
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
        frame: &Frame,
        except: Option<&str>,
        done: tokio::sync::oneshot::Sender<()>,
    ) -> bool {
        if !self.is_up() {
            return false;
        }
        if channel.starts_with("cache-") || channel.contains("-cache-") {
            let _ = self.outbox.try_send(Outgoing::Cache {
                key: self.cache_key(app, channel),
                frame: frame.as_bytes().to_vec(),
            });
        }
        let mut payload = Vec::with_capacity(frame.len() + 32);
        payload.extend_from_slice(except.unwrap_or("").as_bytes());
        payload.push(b'\n');
        payload.extend_from_slice(frame.as_bytes());
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

    /// The presence keys of a channel: (socket counts per user, members).
    fn presence_keys(&self, app: &str, channel: &str) -> (String, String) {
        let base = format!("{}:presence:{app}:{channel}", self.prefix);
        (format!("{base}:count"), base)
    }

    /// Runs a presence script for `node`'s membership of `user` in `channel`.
    async fn presence_script<T: redis::FromRedisValue>(
        &self,
        script: &str,
        node: u32,
        (app, channel, user): (&str, &str, &str),
        last: &str,
    ) -> Result<T, String> {
        let mut conn = match (self.is_up(), self.commands.get()) {
            (true, Some(conn)) => conn.clone(),
            _ => return Err("the cluster link is down".into()),
        };
        let (counts, members) = self.presence_keys(app, channel);
        let field = serde_json::json!([app, channel, user]).to_string();
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script).arg(5).arg(self.node_key(node, "presence"));
        cmd.arg(counts).arg(members).arg(self.nodes_key());
        cmd.arg(self.node_key(node, "alive"));
        cmd.arg(field).arg(user).arg(last).arg(node);
        cmd.arg(ALIVE_TTL.as_millis() as u64);
        match tokio::time::timeout(COMMAND_TIMEOUT, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("Redis did not answer in time".into()),
        }
    }

    /// Adds one socket of `user` to `channel`'s members cluster-wide: whether that added the
    /// user, and every member `(user, info)`.
    pub async fn join(
        &self,
        app: &str,
        channel: &str,
        user: &str,
        info: &str,
    ) -> Result<(bool, Vec<(String, String)>), String> {
        let (added, flat): (i64, Vec<String>) = self
            .presence_script(JOIN, self.node_id, (app, channel, user), info)
            .await?;
        let members = flat
            .chunks_exact(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        Ok((added == 1, members))
    }

    /// Removes `sockets` sockets of `user` (held by this node) from `channel`: whether the user
    /// left the cluster's members.
    pub async fn leave(
        &self,
        app: &str,
        channel: &str,
        user: &str,
        sockets: i64,
    ) -> Result<bool, String> {
        self.leave_for(self.node_id, app, channel, user, sockets)
            .await
    }

    async fn leave_for(
        &self,
        node: u32,
        app: &str,
        channel: &str,
        user: &str,
        sockets: i64,
    ) -> Result<bool, String> {
        let left: i64 = self
            .presence_script(LEAVE, node, (app, channel, user), &sockets.to_string())
            .await?;
        Ok(left == 1)
    }

    /// Records that this node's subscriptions to `channel` changed by `delta` (for the HTTP API's
    /// cluster-wide counts).
    pub fn count_subscription(&self, app: &str, channel: &str, delta: i64) {
        let _ = self.outbox.try_send(Outgoing::Count {
            key: self.node_key(self.node_id, &format!("subs:{app}")),
            channel: channel.to_string(),
            delta,
        });
    }

    /// Subscriptions per channel of `app` over every live node, and the members of its presence
    /// channels; `None` when the link is down (the caller answers from this node's view).
    pub async fn view(&self, app: &str) -> Option<ClusterView> {
        let mut conn = self.commands.get().filter(|_| self.is_up())?.clone();
        let query = async {
            let nodes: Vec<u32> = redis::cmd("SMEMBERS")
                .arg(self.nodes_key())
                .query_async(&mut conn)
                .await?;
            let mut subscriptions: HashMap<String, usize> = HashMap::new();
            for node in nodes {
                let counts: Vec<(String, i64)> = redis::cmd("HGETALL")
                    .arg(self.node_key(node, &format!("subs:{app}")))
                    .query_async(&mut conn)
                    .await?;
                for (channel, count) in counts.into_iter().filter(|(_, n)| *n > 0) {
                    *subscriptions.entry(channel).or_default() += count as usize;
                }
            }
            let mut members = HashMap::new();
            for channel in subscriptions.keys().filter(|c| c.starts_with("presence-")) {
                let (_, key) = self.presence_keys(app, channel);
                let users: Vec<String> =
                    redis::cmd("HKEYS").arg(key).query_async(&mut conn).await?;
                members.insert(channel.clone(), users);
            }
            redis::RedisResult::Ok(ClusterView {
                subscriptions,
                members,
            })
        };
        tokio::time::timeout(COMMAND_TIMEOUT, query)
            .await
            .ok()?
            .ok()
    }

    fn cache_key(&self, app: &str, channel: &str) -> String {
        format!("{}:cache:{app}:{channel}", self.prefix)
    }

    /// A cache channel's last event published on any node (within [`LOOKUP_TIMEOUT`]).
    pub async fn cached(&self, app: &str, channel: &str) -> Option<String> {
        let mut conn = self.commands.get().filter(|_| self.is_up())?.clone();
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.cache_key(app, channel));
        let get = cmd.query_async::<Option<String>>(&mut conn);
        tokio::time::timeout(LOOKUP_TIMEOUT, get).await.ok()?.ok()?
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
fn allocate_node_id(client: &redis::Client, prefix: &str) -> Result<u32, redis::RedisError> {
    let mut conn = client.get_connection_with_timeout(COMMAND_TIMEOUT)?;
    conn.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    let seq: u64 = redis::cmd("INCR")
        .arg(format!("{prefix}:node-seq"))
        .query(&mut conn)?;
    Ok((seq % 1_000_000_000) as u32)
}

/// The background service keeping the node connected: sends the outbox in order and keeps the
/// subscriber connection and its subscriptions.
pub struct ClusterLink {
    pub cluster: Arc<Cluster>,
    /// The hub whose channels are subscribed (none: the link only shares learned sessions).
    pub hub: Option<Arc<Hub>>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for ClusterLink {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let Some((outbox, mut nudges)) = self
            .cluster
            .receivers
            .lock()
            .ok()
            .and_then(|mut r| r.take())
        else {
            return;
        };
        let sender = tokio::spawn(send_outbox(self.cluster.clone(), self.hub.clone(), outbox));
        let keeper = tokio::spawn(keep_alive(self.cluster.clone(), self.hub.clone()));
        let mut backoff = BACKOFF_MIN;
        loop {
            // A connection subscribes every wanted channel from scratch: nudges queued while the
            // link was down are moot (dropping them keeps memory flat through an outage).
            while nudges.try_recv().is_ok() {}
            let connect = self.cluster.client.get_async_pubsub();
            match tokio::time::timeout(COMMAND_TIMEOUT, connect).await {
                Ok(Ok(pubsub)) => {
                    backoff = BACKOFF_MIN;
                    if self.serve(pubsub, &mut nudges, &mut shutdown).await {
                        break;
                    }
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "cluster: cannot connect the subscriber"),
                Err(_) => tracing::debug!("cluster: connecting the subscriber timed out"),
            }
            self.cluster.subscribed.clear();
            self.cluster.set_up(false);
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        sender.abort();
        keeper.abort();
    }
}

impl ClusterLink {
    /// Runs one subscriber connection until it breaks (`false`) or shutdown (`true`).
    async fn serve(
        &self,
        pubsub: redis::aio::PubSub,
        nudges: &mut mpsc::UnboundedReceiver<String>,
        shutdown: &mut pingora::server::ShutdownWatch,
    ) -> bool {
        let (mut sink, mut stream) = pubsub.split();
        // The control channel and every channel with local subscribers, then live.
        if sink
            .subscribe(self.cluster.control_channel())
            .await
            .is_err()
        {
            return false;
        }
        for name in self.wanted_channels() {
            if sink.subscribe(&name).await.is_err() {
                return false;
            }
            self.cluster.subscribed.insert(name);
        }
        if self.cluster.commands.get().is_none() {
            let manager = self.cluster.client.get_connection_manager().await;
            match manager {
                Ok(manager) => drop(self.cluster.commands.set(manager)),
                Err(_) => return false,
            }
        }
        self.cluster.set_up(true);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return true,
                message = stream.next() => match message {
                    Some(message) => self.deliver(&message),
                    None => return false,
                },
                Some(name) = nudges.recv() => {
                    if self.reconcile(&mut sink, name).await.is_err() {
                        return false;
                    }
                }
            }
        }
    }

    /// Subscribes or unsubscribes `name` to match whether the hub has that channel now (nudges
    /// can arrive out of order; the hub's state is the truth).
    async fn reconcile(
        &self,
        sink: &mut redis::aio::PubSubSink,
        name: String,
    ) -> redis::RedisResult<()> {
        let subscribed = &self.cluster.subscribed;
        match (self.is_wanted(&name), subscribed.contains(&name)) {
            (true, false) => {
                sink.subscribe(&name).await?;
                subscribed.insert(name);
                self.cluster.changed();
            }
            (false, true) => {
                sink.unsubscribe(&name).await?;
                subscribed.remove(&name);
            }
            _ => {}
        }
        Ok(())
    }

    fn wanted_channels(&self) -> Vec<String> {
        let mut names = Vec::new();
        let Some(hub) = &self.hub else { return names };
        for app in hub.apps().iter() {
            for channel in app.channel_keys() {
                names.push(self.cluster.hub_channel(&app.id, &channel));
            }
        }
        names
    }

    fn is_wanted(&self, name: &str) -> bool {
        self.cluster
            .parse_hub_channel(name)
            .and_then(|(app, channel)| {
                let hub = self.hub.as_ref()?;
                hub.app_by_id(app).map(|a| a.has_channel(channel))
            })
            .unwrap_or(false)
    }

    fn deliver(&self, message: &redis::Msg) {
        let Some(hub) = &self.hub else { return };
        let (channel, payload) = (message.get_channel_name(), message.get_payload_bytes());
        if channel == self.cluster.control_channel() {
            return control(hub, payload);
        }
        let received = self
            .cluster
            .metrics
            .messages
            .with_label_values(&["received"]);
        received.inc();
        deliver(&self.cluster, hub, channel, payload);
    }
}

/// Applies a control message to this node: `terminate\n{app}\n{user}` closes the user's sockets.
fn control(hub: &Hub, payload: &[u8]) {
    let text = String::from_utf8_lossy(payload);
    let mut parts = text.splitn(3, '\n');
    if let (Some("terminate"), Some(app), Some(user)) = (parts.next(), parts.next(), parts.next()) {
        if let Some(app) = hub.app_by_id(app) {
            app.terminate(user);
        }
    }
}

/// Delivers one cluster message (`{except socket id}\n{frame}` on a hub channel) to this node's
/// subscribers.
fn deliver(cluster: &Cluster, hub: &Hub, channel: &str, payload: &[u8]) {
    let Some((app, channel)) = cluster.parse_hub_channel(channel) else {
        return;
    };
    let Some(split) = payload.iter().position(|&b| b == b'\n') else {
        return;
    };
    let (except, frame) = (&payload[..split], &payload[split + 1..]);
    let (Ok(except), Ok(frame)) = (std::str::from_utf8(except), std::str::from_utf8(frame)) else {
        return;
    };
    let Some(app) = hub.app_by_id(app) else {
        return;
    };
    let except = (!except.is_empty()).then_some(except);
    hub.deliver(&app, channel, &Frame::from(frame.to_string()), except);
}

/// Sends queued publishes and session updates in order; a publish Redis refuses is delivered to
/// this node's subscribers instead, so a link failure loses nothing locally.
async fn send_outbox(
    cluster: Arc<Cluster>,
    hub: Option<Arc<Hub>>,
    mut outbox: mpsc::Receiver<Outgoing>,
) {
    while let Some(item) = outbox.recv().await {
        let Some(mut conn) = cluster.commands.get().cloned() else {
            fall_back(&cluster, hub.as_deref(), item);
            continue;
        };
        let cmd = match &item {
            Outgoing::Publish {
                channel, payload, ..
            } => {
                let mut cmd = redis::cmd("PUBLISH");
                cmd.arg(channel).arg(payload.as_slice());
                cmd
            }
            Outgoing::Learn { key, instance } => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(key)
                    .arg(instance)
                    .arg("EX")
                    .arg(LEARNED_TTL.as_secs());
                cmd
            }
            Outgoing::Forget { key } => {
                let mut cmd = redis::cmd("DEL");
                cmd.arg(key);
                cmd
            }
            Outgoing::Cache { key, frame } => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(key)
                    .arg(frame.as_slice())
                    .arg("EX")
                    .arg(CACHE_TTL.as_secs());
                cmd
            }
            Outgoing::Count {
                key,
                channel,
                delta,
            } => {
                let mut cmd = redis::cmd("HINCRBY");
                cmd.arg(key).arg(channel).arg(delta);
                cmd
            }
        };
        // One retry: after Redis restarts, the reconnecting connection fails the first command.
        let mut sent = false;
        for _attempt in 0..2 {
            let query = cmd.query_async::<redis::Value>(&mut conn);
            if matches!(
                tokio::time::timeout(COMMAND_TIMEOUT, query).await,
                Ok(Ok(_))
            ) {
                sent = true;
                break;
            }
        }
        match (sent, item) {
            (true, Outgoing::Publish { done, .. }) => {
                cluster.metrics.messages.with_label_values(&["sent"]).inc();
                let _ = done.send(());
            }
            (true, _) => {}
            (false, item) => fall_back(&cluster, hub.as_deref(), item),
        }
    }
}

/// A publish that cannot go through Redis reaches this node's subscribers directly.
fn fall_back(cluster: &Cluster, hub: Option<&Hub>, item: Outgoing) {
    // A session update is only an optimisation for the other nodes: nothing to do locally.
    if let (
        Outgoing::Publish {
            channel,
            payload,
            done,
        },
        Some(hub),
    ) = (item, hub)
    {
        cluster
            .metrics
            .messages
            .with_label_values(&["local_fallback"])
            .inc();
        deliver(cluster, hub, &channel, &payload);
        let _ = done.send(());
    }
}

/// Keeps this node's liveness key fresh and removes the presence members of nodes whose key
/// expired (one node does each dead node's cleanup, under a lock).
async fn keep_alive(cluster: Arc<Cluster>, hub: Option<Arc<Hub>>) {
    let mut beat = tokio::time::interval(HEARTBEAT);
    let mut last_reap = tokio::time::Instant::now();
    loop {
        beat.tick().await;
        let Some(mut conn) = cluster.commands.get().cloned().filter(|_| cluster.is_up()) else {
            continue;
        };
        let nodes = cluster.nodes_key();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(cluster.node_key(cluster.node_id, "alive"))
            .arg(1)
            .arg("PX")
            .arg(ALIVE_TTL.as_millis() as u64)
            .ignore();
        pipe.cmd("SADD").arg(&nodes).arg(cluster.node_id).ignore();
        let _ = tokio::time::timeout(COMMAND_TIMEOUT, pipe.query_async::<()>(&mut conn)).await;
        if last_reap.elapsed() >= REAP_EVERY {
            last_reap = tokio::time::Instant::now();
            if let Err(e) = reap(&cluster, hub.as_deref(), &mut conn, &nodes).await {
                tracing::debug!(error = %e, "cluster: reaping dead nodes failed; retrying");
            }
        }
    }
}

/// Removes every presence membership of nodes that stopped refreshing their liveness key, with
/// `member_removed` for users who left the cluster with them.
async fn reap(
    cluster: &Cluster,
    hub: Option<&Hub>,
    conn: &mut ConnectionManager,
    nodes: &str,
) -> redis::RedisResult<()> {
    let members: Vec<u32> = redis::cmd("SMEMBERS").arg(nodes).query_async(conn).await?;
    for node in members.into_iter().filter(|&n| n != cluster.node_id) {
        let alive: bool = redis::cmd("EXISTS")
            .arg(cluster.node_key(node, "alive"))
            .query_async(conn)
            .await?;
        let lock = cluster.node_key(node, "reaper");
        let locked: Option<String> = match alive {
            true => None,
            false => {
                let mut set = redis::cmd("SET");
                set.arg(&lock)
                    .arg(cluster.node_id)
                    .arg("NX")
                    .arg("PX")
                    .arg(10_000);
                set.query_async(conn).await?
            }
        };
        if locked.is_none() {
            continue;
        }
        let memberships: Vec<(String, i64)> = redis::cmd("HGETALL")
            .arg(cluster.node_key(node, "presence"))
            .query_async(conn)
            .await?;
        for (field, sockets) in memberships {
            let Ok([app, channel, user]) = serde_json::from_str::<[String; 3]>(&field) else {
                continue;
            };
            let left = cluster
                .leave_for(node, &app, &channel, &user, sockets)
                .await;
            let app = hub.and_then(|h| h.app_by_id(&app).map(|a| (h, a)));
            if let (Ok(true), Some((hub, app))) = (left, app) {
                let frame = Frame::from(crate::hub::protocol::member_removed(&channel, &user));
                hub.publish(&app, &channel, &frame, None);
            }
        }
        tracing::info!(node, "cluster: removed a dead node's presence members");
        let mut cleanup = redis::pipe();
        cleanup
            .cmd("DEL")
            .arg(cluster.node_key(node, "presence"))
            .ignore();
        for app in hub
            .map(|h| h.apps())
            .into_iter()
            .flat_map(|apps| apps.to_vec())
        {
            let key = cluster.node_key(node, &format!("subs:{}", app.id));
            cleanup.cmd("DEL").arg(key).ignore();
        }
        cleanup.cmd("SREM").arg(nodes).arg(node).ignore();
        cleanup.query_async::<()>(conn).await?;
    }
    Ok(())
}
