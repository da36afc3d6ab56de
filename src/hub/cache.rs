//! Cache channels' last event for a new subscriber: this node's, else the cluster's, else
//! `pusher:cache_miss`.

use super::fanout::{Conn, Frame};
use super::protocol;
use crate::cluster::Cluster;

/// Sends a new subscriber of a cache channel its last event: `local` (this node's), else the
/// cluster's, else `pusher:cache_miss`.
pub(super) async fn replay_cache(
    cluster: Option<&Cluster>,
    conn: &Conn,
    dropped: &prometheus::IntCounter,
    app: &str,
    channel: &str,
    local: Option<Frame>,
) {
    let frame = match (local, cluster) {
        (Some(frame), _) => frame,
        (None, Some(cluster)) => match cluster.cached(app, channel).await {
            Some(text) => Frame::from(text),
            None => Frame::from(protocol::cache_miss(channel)),
        },
        (None, None) => Frame::from(protocol::cache_miss(channel)),
    };
    conn.offer(&frame, None, dropped);
}
