//! Cache channels' last event for a new subscriber: this node's, else the cluster's, else
//! `pusher:cache_miss` (and the app's `cache_miss` webhook).

use super::fanout::{AppState, Conn, Frame};
use super::protocol;
use crate::cluster::Cluster;
use crate::pusher::webhook::AppEvent;

/// Sends a new subscriber of a cache channel its last event: `local` (this node's), else the
/// cluster's, else `pusher:cache_miss`.
pub(super) async fn replay_cache(
    cluster: Option<&Cluster>,
    conn: &Conn,
    app: &AppState,
    channel: &str,
    local: Option<Frame>,
) {
    let frame = match (local, cluster) {
        (Some(frame), _) => frame,
        (None, Some(cluster)) => match cluster.cached(&app.id, channel).await {
            Some(text) => Frame::from(text),
            None => missed(app, channel),
        },
        (None, None) => missed(app, channel),
    };
    conn.offer(&frame, None, &app.metrics.dropped_slow);
}

/// `pusher:cache_miss` for the subscriber, and the app's `cache_miss` webhook event.
pub(super) fn missed(app: &AppState, channel: &str) -> Frame {
    app.emit(AppEvent::CacheMiss {
        channel: channel.to_string(),
    });
    Frame::from(protocol::cache_miss(channel))
}
