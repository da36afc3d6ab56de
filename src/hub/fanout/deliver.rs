//! Publishing a frame: through the cluster when there is one, else to this node's subscribers,
//! each written directly when its socket takes it.

use super::*;

impl Hub {
    /// Publishes `frame` on `channel` to every subscriber but `except` (a socket id): through the
    /// cluster when there is one and its link is up (this node's subscribers get it back from
    /// Redis, in the cluster's order), else directly. Never waits.
    /// Clustered, the returned receiver completes once Redis took the event (or it was delivered
    /// here instead).
    pub fn publish(
        &self,
        app: &AppState,
        channel: &str,
        frame: &Frame,
        except: Option<&str>,
    ) -> Option<tokio::sync::oneshot::Receiver<()>> {
        app.metrics.published.inc();
        if let Some(cluster) = &self.cluster {
            let (done, taken) = tokio::sync::oneshot::channel();
            if cluster.publish(&app.id, channel, frame.payload(), except, done) {
                return Some(taken);
            }
        }
        self.deliver(app, channel, frame, except);
        None
    }

    /// Queues `frame` for this node's subscribers of `channel` but `except`; returns how many.
    pub fn deliver(
        &self,
        app: &AppState,
        channel: &str,
        frame: &Frame,
        except: Option<&str>,
    ) -> usize {
        let Some(ch) = app.channels.get(channel).map(|c| c.clone()) else {
            return 0;
        };
        if is_cache_channel(channel) {
            *ch.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(frame.clone());
        }
        let subs = ch.subs.read().unwrap_or_else(|p| p.into_inner());
        let published = Instant::now();
        let (mut written, mut queued) = (0, 0);
        for conn in subs.values() {
            if except.is_some_and(|s| s == &*conn.socket_id) {
                continue;
            }
            match conn.offer(frame, Some(published), &app.metrics.dropped_slow) {
                Offered::Written => written += 1,
                Offered::Queued => queued += 1,
                Offered::Full | Offered::Gone => {}
            }
        }
        drop(subs);
        count_written(&app.metrics, written, published);
        written + queued
    }
}

/// Counts `written` deliveries written at once, each as taking until now since `published`.
fn count_written(metrics: &AppMetrics, written: usize, published: Instant) {
    if written == 0 {
        return;
    }
    metrics.delivered.inc_by(written as u64);
    let latency = published.elapsed().as_secs_f64();
    let local = metrics.delivery_latency.local();
    for _ in 0..written {
        local.observe(latency);
    }
    local.flush();
}
