//! Channel occupancy across the cluster (app webhooks): `channel_occupied` when the first node
//! gets a subscriber of a channel, `channel_vacated` when the last node loses its last. Each node
//! tells Redis when its own count crosses 0 ↔ 1 (in order, through the outbox); an atomic script
//! keeps the set of nodes holding the channel and answers 1 to the one change that filled or
//! emptied it, so exactly one node fires each event. A dead node's channels are vacated by the
//! node that reaps it. While the link is down, each node's own view decides (as when alone);
//! when it comes back (or Redis restarted empty), [`resync`] makes Redis's view of the node's
//! channels the hub's again, in the outbox's order, so later changes fire correctly.

use super::{Cluster, LocalHub, Outgoing, COMMAND_TIMEOUT};
use crate::pusher::webhook::AppEvent;
use redis::aio::ConnectionManager;

/// KEYS: the channel's set of nodes, the node's set of occupied channels. ARGV: the node id,
/// the channel's field in the node's set, `SADD` (occupy) or `SREM` (vacate), and the size the
/// channel's set has when that change filled (1) or emptied (0) it. Returns 1 for that change.
const CHANGE: &str = r"
redis.call(ARGV[3], KEYS[2], ARGV[2])
if redis.call(ARGV[3], KEYS[1], ARGV[1]) == 1 and redis.call('SCARD', KEYS[1]) == tonumber(ARGV[4]) then
  return 1
end
return 0
";

/// A node's occupancy change, as the outbox carries it.
pub(super) struct Occupancy {
    pub app: String,
    pub channel: String,
    pub occupied: bool,
    pub node: u32,
}

impl Occupancy {
    /// The webhook event this change is, when Redis says it filled or emptied the channel.
    pub fn event(&self) -> AppEvent {
        AppEvent::occupancy(&self.channel, self.occupied)
    }
}

impl Cluster {
    /// This node's subscribers of `channel` went from 0 to 1 (`occupied`) or from 1 to 0.
    pub fn occupancy(&self, app: &str, channel: &str, occupied: bool) {
        let change = Occupancy {
            app: app.to_string(),
            channel: channel.to_string(),
            occupied,
            node: self.node_id,
        };
        if self.outbox.try_send(Outgoing::Occupancy(change)).is_err() {
            self.metrics.messages.with_label_values(&["overflow"]).inc();
        }
    }

    /// The script applying `change`.
    pub(super) fn occupancy_command(&self, change: &Occupancy) -> redis::Cmd {
        let mut cmd = redis::cmd("EVAL");
        let (op, filled) = if change.occupied {
            ("SADD", 1)
        } else {
            ("SREM", 0)
        };
        let channel_key = format!("{}:occupied:{}:{}", self.prefix, change.app, change.channel);
        let field = serde_json::json!([change.app, change.channel]).to_string();
        cmd.arg(CHANGE).arg(2).arg(channel_key);
        cmd.arg(self.occupied_key(change.node));
        cmd.arg(change.node).arg(field).arg(op).arg(filled);
        cmd
    }

    /// Where `node` lists the channels it holds.
    pub(super) fn occupied_key(&self, node: u32) -> String {
        self.node_key(node, "occupied")
    }
}

/// Vacates every channel dead node `node` held, firing `channel_vacated` for those it was the
/// last node of.
pub(super) async fn vacate_node(
    cluster: &Cluster,
    hub: Option<&dyn LocalHub>,
    conn: &mut ConnectionManager,
    node: u32,
) -> redis::RedisResult<()> {
    let held: Vec<String> = redis::cmd("SMEMBERS")
        .arg(cluster.occupied_key(node))
        .query_async(conn)
        .await?;
    for field in held {
        let Ok([app, channel]) = serde_json::from_str::<[String; 2]>(&field) else {
            continue;
        };
        let change = Occupancy {
            app,
            channel,
            occupied: false,
            node,
        };
        let last: i64 = cluster.occupancy_command(&change).query_async(conn).await?;
        if let (1, Some(hub)) = (last, hub) {
            hub.webhook(&change.app, change.event());
        }
    }
    Ok(())
}

/// Makes the channels Redis lists for this node the ones its hub holds now: stale ones are
/// vacated and missing ones occupied, firing nothing (what changed meanwhile was announced by
/// this node's own view). Runs from the outbox, so changes queued after it apply after it; tried
/// twice (the first command after Redis restarts fails while the connection reconnects).
pub(super) async fn resync(cluster: &Cluster, hub: &dyn LocalHub, conn: &mut ConnectionManager) {
    for attempt in 1..=2 {
        let synced = tokio::time::timeout(COMMAND_TIMEOUT, resync_once(cluster, hub, conn)).await;
        match synced {
            Ok(Ok(())) => return,
            Ok(Err(e)) => {
                tracing::debug!(attempt, error = %e, "cluster: resyncing channel occupancy failed")
            }
            Err(_) => tracing::debug!(attempt, "cluster: resyncing channel occupancy timed out"),
        }
    }
}

async fn resync_once(
    cluster: &Cluster,
    hub: &dyn LocalHub,
    conn: &mut ConnectionManager,
) -> redis::RedisResult<()> {
    let held: std::collections::HashSet<String> = redis::cmd("SMEMBERS")
        .arg(cluster.occupied_key(cluster.node_id))
        .query_async(conn)
        .await?;
    let mut local = std::collections::HashSet::new();
    for app in hub.app_ids() {
        for channel in hub
            .channels(&app)
            .into_iter()
            .filter(|c| !c.starts_with('#'))
        {
            local.insert(serde_json::json!([app, channel]).to_string());
        }
    }
    let stale = held.difference(&local).map(|f| (f, false));
    let missing = local.difference(&held).map(|f| (f, true));
    for (field, occupied) in stale.chain(missing) {
        let Ok([app, channel]) = serde_json::from_str::<[String; 2]>(field) else {
            continue;
        };
        let node = cluster.node_id;
        let change = Occupancy {
            app,
            channel,
            occupied,
            node,
        };
        let _: i64 = cluster.occupancy_command(&change).query_async(conn).await?;
    }
    Ok(())
}
