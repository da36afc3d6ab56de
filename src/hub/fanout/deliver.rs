//! Publishing a frame: through the cluster when there is one, else to this node's subscribers,
//! each written directly when its socket takes it.

use super::*;

impl Hub {
    /// Publishes `frame` on `channel` to every subscriber but `except` (a socket id): through the
    /// cluster when there is one and its link is up (this node's subscribers get it back from
    /// Redis, in the cluster's order), else directly. Never waits for a subscriber (only, briefly,
    /// for a fan-out lane whose backlog is full).
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

    /// Writes (or queues) `frame` for this node's subscribers of `channel` but `except`: this
    /// thread writes its lane, the other lanes' threads theirs (see `lanes`).
    pub fn deliver(&self, app: &AppState, channel: &str, frame: &Frame, except: Option<&str>) {
        let Some(ch) = app.channels.get(channel).map(|c| c.clone()) else {
            return;
        };
        if is_cache_channel(channel) {
            *ch.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(frame.clone());
        }
        let published = Instant::now();
        let own = self.lanes.own();
        if own.of > 1 {
            // Read apart from the hand-off: a publisher waiting on a full lane holds no lock.
            let ids = ch.subs.read().unwrap_or_else(|p| p.into_inner());
            let occupied = lanes::occupied(ids.keys().copied(), own.of);
            drop(ids);
            self.lanes.hand_off(occupied, || Job {
                metrics: app.metrics.clone(),
                channel: ch.clone(),
                frame: frame.clone(),
                except: except.map(Into::into),
                published,
            });
        }
        write_lane(own, &app.metrics, &ch, frame, except, published);
    }
}

/// Offers `frame` to every subscriber of `channel` in `lane` (in the order they connected) but
/// the one `except`ed.
pub(super) fn write_lane(
    lane: Lane,
    metrics: &AppMetrics,
    channel: &Channel,
    frame: &Frame,
    except: Option<&str>,
    published: Instant,
) {
    let subs = channel.subs.read().unwrap_or_else(|p| p.into_inner());
    let mut written = 0;
    for conn in subs.values().filter(|c| lane.holds(c.id)) {
        if except == Some(&*conn.socket_id) {
            continue;
        }
        let offered = conn.offer(frame, Some(published), &metrics.dropped_slow);
        written += usize::from(offered == Offered::Written);
    }
    drop(subs);
    count_written(metrics, written, published);
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
