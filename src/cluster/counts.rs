//! Cluster-wide connection counts (`GET /apps/{id}/connections`): each node keeps its own count
//! per app in Redis (`{prefix}:node:{id}:conns`, removed with a dead node), and a query sums the
//! live nodes'.

use super::Outgoing;
use super::{Cluster, COMMAND_TIMEOUT};
use redis::aio::ConnectionManager;

impl Cluster {
    /// Records that this node's connections to `app` changed by `delta`.
    pub fn count_connection(&self, app: &str, delta: i64) {
        let _ = self.outbox.try_send(Outgoing::Count {
            key: self.connections_key(self.node_id),
            field: app.to_string(),
            delta,
        });
    }

    /// Where `node` counts its connections.
    pub(super) fn connections_key(&self, node: u32) -> String {
        self.node_key(node, "conns")
    }

    /// Open connections to `app` over every live node; `None` when the link is down (the caller
    /// answers with this node's count).
    pub async fn connections(&self, app: &str) -> Option<usize> {
        self.over_nodes(async |conn, nodes| {
            let mut total = 0;
            for node in nodes {
                let count: Option<i64> = redis::cmd("HGET")
                    .arg(self.connections_key(node))
                    .arg(app)
                    .query_async(conn)
                    .await?;
                total += count.unwrap_or(0).max(0) as usize;
            }
            Ok(total)
        })
        .await
    }

    /// Runs `query` with the command connection and the live nodes' ids, within
    /// [`COMMAND_TIMEOUT`]; `None` when the link is down or the query failed.
    pub(super) async fn over_nodes<T>(
        &self,
        query: impl AsyncFnOnce(&mut ConnectionManager, Vec<u32>) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let mut conn = self.commands.get().filter(|_| self.is_up())?.clone();
        let asked = async {
            let nodes: Vec<u32> = redis::cmd("SMEMBERS")
                .arg(self.nodes_key())
                .query_async(&mut conn)
                .await?;
            query(&mut conn, nodes).await
        };
        tokio::time::timeout(COMMAND_TIMEOUT, asked)
            .await
            .ok()?
            .ok()
    }
}
