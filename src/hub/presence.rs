//! Presence channels across a cluster: who is `here`, and `member_added` / `member_removed` once
//! per user for the whole cluster (Reverb gets this wrong across nodes).
//!
//! Each connection of a clustered hub has one worker that applies its joins and leaves to Redis in
//! order ([`crate::cluster::Cluster::join`] / `leave`: atomic scripts counting a user's sockets on
//! every node). The join's answer gives the cluster-wide member list for
//! `pusher_internal:subscription_succeeded` and whether this socket added the user; a leave whether
//! it removed the user. If Redis cannot answer, the node's own view decides (as when alone).

use super::cache::replay_cache;
use super::fanout::{AppState, Conn, Frame, Hub, Presence};
use super::protocol;
use crate::cluster::Cluster;
use crate::pusher::webhook::AppEvent;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a presence subscription waits for the channel's Redis subscription.
const RECEIVE_WAIT: Duration = Duration::from_secs(2);

enum Op {
    Join {
        channel: String,
        user: String,
        info: String,
        /// The node's own view, used when Redis cannot answer.
        local: Presence,
        local_members: Vec<(String, String)>,
        /// A cache channel's replay (this node's last event, if any); `None`: not a cache channel.
        cache: Option<Option<Frame>>,
    },
    Leave {
        channel: String,
        user: String,
        local: Presence,
    },
}

/// A connection's presence worker (clustered hubs only).
pub struct ClusterPresence {
    ops: mpsc::UnboundedSender<Op>,
}

impl ClusterPresence {
    pub fn start(hub: Arc<Hub>, app: Arc<AppState>, conn: Conn, cluster: Arc<Cluster>) -> Self {
        let (ops, rx) = mpsc::unbounded_channel();
        tokio::spawn(work(rx, hub, app, conn, cluster));
        Self { ops }
    }

    /// Joins `user` to `channel` cluster-wide, then confirms the subscription to the client and
    /// announces the user if this socket added them.
    pub fn join(
        &self,
        channel: &str,
        (user, info): (&str, &str),
        local: Presence,
        local_members: Vec<(String, String)>,
        cache: Option<Option<Frame>>,
    ) {
        let _ = self.ops.send(Op::Join {
            channel: channel.to_string(),
            user: user.to_string(),
            info: info.to_string(),
            local,
            local_members,
            cache,
        });
    }

    /// Removes this socket's membership; announces the user's departure if it was their last.
    pub fn leave(&self, channel: &str, user: &str, local: Presence) {
        let _ = self.ops.send(Op::Leave {
            channel: channel.to_string(),
            user: user.to_string(),
            local,
        });
    }
}

/// Applies a connection's joins and leaves to Redis in order.
async fn work(
    mut ops: mpsc::UnboundedReceiver<Op>,
    hub: Arc<Hub>,
    app: Arc<AppState>,
    conn: Conn,
    cluster: Arc<Cluster>,
) {
    let worker = Worker {
        hub,
        app,
        conn,
        cluster,
    };
    while let Some(op) = ops.recv().await {
        match op {
            Op::Join {
                channel,
                user,
                info,
                local,
                local_members,
                cache,
            } => {
                let view = (local, local_members);
                worker.join(&channel, (&user, &info), view, cache).await
            }
            Op::Leave {
                channel,
                user,
                local,
            } => worker.leave(&channel, &user, local).await,
        }
    }
}

/// What a connection's presence worker works with.
struct Worker {
    hub: Arc<Hub>,
    app: Arc<AppState>,
    conn: Conn,
    cluster: Arc<Cluster>,
}

impl Worker {
    /// Joins cluster-wide, confirms the subscription (with the members), replays a cache
    /// channel's last event, and announces the user if Redis could not.
    async fn join(
        &self,
        channel: &str,
        (user, info): (&str, &str),
        (local, local_members): (Presence, Vec<(String, String)>),
        cache: Option<Option<Frame>>,
    ) {
        let (app, conn, cluster) = (&self.app, &self.conn, &self.cluster);
        let joined = cluster
            .join((&app.id, channel), &conn.socket_id, user, info)
            .await;
        // Joined through Redis, the script announced the user; otherwise this node does.
        let (announce, members) = match joined {
            Ok((added, members)) => {
                if added {
                    app.metrics.published.inc();
                    app.emit(AppEvent::member(channel, user, true));
                }
                (false, members)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cluster presence unavailable: this node's view decides");
                (local == Presence::Added, local_members)
            }
        };
        cluster
            .until_receiving(&app.id, channel, RECEIVE_WAIT)
            .await;
        let succeeded = protocol::subscription_succeeded(channel, Some(&members));
        conn.offer(&Frame::from(succeeded), None, &app.metrics.dropped_slow);
        if let Some(local) = cache {
            replay_cache(Some(cluster), conn, app, channel, local).await;
        }
        if announce {
            let frame = Frame::from(protocol::member_added(channel, user, info));
            self.hub
                .publish(app, channel, &frame, Some(&conn.socket_id));
            app.emit(AppEvent::member(channel, user, true));
        }
    }

    /// Leaves cluster-wide; announces the departure if Redis could not.
    async fn leave(&self, channel: &str, user: &str, local: Presence) {
        let app = &self.app;
        // Left through Redis, the script announced the departure; otherwise this node does.
        let announce = match self.cluster.leave(&app.id, channel, user, 1).await {
            Ok(removed) => {
                if removed {
                    app.metrics.published.inc();
                    app.emit(AppEvent::member(channel, user, false));
                }
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "cluster presence unavailable: this node's view decides");
                local == Presence::Removed
            }
        };
        if announce {
            let frame = Frame::from(protocol::member_removed(channel, user));
            self.hub.publish(app, channel, &frame, None);
            app.emit(AppEvent::member(channel, user, false));
        }
    }
}
