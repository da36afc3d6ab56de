//! Cluster-wide presence: atomic scripts counting each user's sockets per channel on every node,
//! the nodes' liveness keys, and the reaping of dead nodes' memberships.

use super::LocalHub;
use super::{message, Cluster, COMMAND_TIMEOUT};
use crate::pusher::protocol;
use crate::pusher::webhook::AppEvent;
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::time::Duration;

/// A node refreshes its liveness key this often …
const HEARTBEAT: Duration = Duration::from_secs(1);
/// … which expires after this long without a refresh (kill -9, network loss) …
const ALIVE_TTL: Duration = Duration::from_secs(5);
/// … and the other nodes look for expired ones this often: a dead node's presence members are
/// removed within ALIVE_TTL + REAP_EVERY (≤ 7 s).
const REAP_EVERY: Duration = Duration::from_secs(2);

/// Joins a presence member. KEYS: the node's memberships, the channel's socket counts per user,
/// the channel's members (user → info), the node registry, the node's liveness key. ARGV:
/// membership field, user, info, node id, liveness TTL (ms), the hub channel's Redis channel,
/// the `member_added` message. The node is registered (and marked alive) in the same step, so a
/// node that dies before its first heartbeat is still cleaned up; `member_added` is published in
/// the same step too, so no node can die between counting the user in and announcing them.
/// Returns {1 if the user was added, every member as a flat list of user, info}.
const JOIN: &str = r"
redis.call('SADD', KEYS[4], ARGV[4])
redis.call('SET', KEYS[5], 1, 'PX', ARGV[5])
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local added = 0
if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
  redis.call('PUBLISH', ARGV[6], ARGV[7])
  added = 1
end
return {added, redis.call('HGETALL', KEYS[3])}
";

/// Removes ARGV[3] sockets of a member (same KEYS and ARGV as [`JOIN`], the last two KEYS and
/// ARGV[4..5] unused, ARGV[3] the count, ARGV[7] the `member_removed` message). Publishing in the
/// script makes the departure and its announcement one step: a node killed right after a user's
/// last socket left cannot swallow the `member_removed`.
/// Returns 1 if that was the user's last socket in the cluster (the user left).
const LEAVE: &str = r"
local n = tonumber(ARGV[3])
if redis.call('HINCRBY', KEYS[1], ARGV[1], -n) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
if redis.call('HINCRBY', KEYS[2], ARGV[2], -n) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  redis.call('PUBLISH', ARGV[6], ARGV[7])
  return 1
end
return 0
";

impl Cluster {
    /// The presence keys of a channel: (socket counts per user, members).
    pub(super) fn presence_keys(&self, app: &str, channel: &str) -> (String, String) {
        let base = format!("{}:presence:{app}:{channel}", self.prefix);
        (format!("{base}:count"), base)
    }

    /// Runs a presence script for `node`'s membership of `user` in `channel`; `announce` is the
    /// cluster message (`{except}\n{frame}`) the script publishes if the user's presence changes.
    async fn presence_script<T: redis::FromRedisValue>(
        &self,
        script: &str,
        node: u32,
        (app, channel, user): (&str, &str, &str),
        last: &str,
        announce: Vec<u8>,
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
        cmd.arg(self.hub_channel(app, channel)).arg(announce);
        match tokio::time::timeout(COMMAND_TIMEOUT, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("Redis did not answer in time".into()),
        }
    }

    /// Adds one socket (`socket_id`) of `user` to `channel`'s members cluster-wide and, if that
    /// added the user, announces them to every other socket: whether it did, and every member
    /// `(user, info)`.
    pub async fn join(
        &self,
        (app, channel): (&str, &str),
        socket_id: &str,
        user: &str,
        info: &str,
    ) -> Result<(bool, Vec<(String, String)>), String> {
        let added = protocol::member_added(channel, user, info);
        let announce = message(Some(socket_id), added.as_bytes());
        let (added, flat): (i64, Vec<String>) = self
            .presence_script(JOIN, self.node_id, (app, channel, user), info, announce)
            .await?;
        let members = flat
            .chunks_exact(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        Ok((added == 1, members))
    }

    /// Removes `sockets` sockets of `user` (held by this node) from `channel` and, if that was the
    /// user's last, announces their departure: whether the user left the cluster's members.
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
        let removed = protocol::member_removed(channel, user);
        let announce = message(None, removed.as_bytes());
        let left: i64 = self
            .presence_script(
                LEAVE,
                node,
                (app, channel, user),
                &sockets.to_string(),
                announce,
            )
            .await?;
        Ok(left == 1)
    }
}

/// Keeps this node's liveness key fresh and removes the presence members of nodes whose key
/// expired (one node does each dead node's cleanup, under a lock).
pub(super) async fn keep_alive(cluster: Arc<Cluster>, hub: Option<Arc<dyn LocalHub>>) {
    let mut beat = tokio::time::interval(HEARTBEAT);
    let mut last_reap = tokio::time::Instant::now();
    loop {
        beat.tick().await;
        // The heartbeat does not wait for the subscriber link: a node resubscribing many
        // channels after a reconnect is alive, and must not be reaped meanwhile.
        let Some(mut conn) = cluster.commands.get().cloned() else {
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
        if last_reap.elapsed() >= REAP_EVERY && cluster.is_up() {
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
    hub: Option<&dyn LocalHub>,
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
        if locked.is_some() {
            reap_node(cluster, hub, conn, nodes, node).await?;
        }
    }
    Ok(())
}

/// Removes dead node `node`'s presence memberships (announcing users who left with it), vacates
/// its channels, and removes its keys.
async fn reap_node(
    cluster: &Cluster,
    hub: Option<&dyn LocalHub>,
    conn: &mut ConnectionManager,
    nodes: &str,
    node: u32,
) -> redis::RedisResult<()> {
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
        match (left, hub) {
            (Ok(true), Some(hub)) => hub.webhook(&app, AppEvent::member(&channel, &user, false)),
            (Ok(_), _) => {}
            (Err(e), _) => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "presence leave",
                    e,
                )))
            }
        }
    }
    super::occupancy::vacate_node(cluster, hub, conn, node).await?;
    tracing::info!(node, "cluster: removed a dead node's presence members");
    let mut cleanup = redis::pipe();
    cleanup
        .cmd("DEL")
        .arg(cluster.node_key(node, "presence"))
        .ignore()
        .cmd("DEL")
        .arg(cluster.connections_key(node))
        .ignore()
        .cmd("DEL")
        .arg(cluster.occupied_key(node))
        .ignore();
    for app in hub.map(|h| h.app_ids()).unwrap_or_default() {
        let key = cluster.node_key(node, &format!("subs:{app}"));
        cleanup.cmd("DEL").arg(key).ignore();
    }
    cleanup.cmd("SREM").arg(nodes).arg(node).ignore();
    cleanup.query_async::<()>(conn).await?;
    Ok(())
}
