//! The background service keeping a node connected to the cluster: it sends the outbox to Redis
//! in order, keeps the subscriber connection (reconnecting with back-off and resubscribing every
//! channel that has local subscribers) and delivers what Redis sends.

use super::occupancy;
use super::presence::keep_alive;
use super::{Cluster, LocalHub, Outgoing, CACHE_TTL, COMMAND_TIMEOUT, LEARNED_TTL};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The background service keeping the node connected: sends the outbox in order and keeps the
/// subscriber connection and its subscriptions.
pub struct ClusterLink {
    pub cluster: Arc<Cluster>,
    /// The hub whose channels are subscribed (none: the link only shares learned sessions).
    pub hub: Option<Arc<dyn LocalHub>>,
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
        // What Redis holds of this node's channels may be stale (an outage, a Redis restart):
        // resynced ahead of any change made once the link is seen up.
        if self.hub.is_some() {
            let _ = self.cluster.outbox.try_send(Outgoing::Resync);
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
        for app in hub.app_ids() {
            for channel in hub.channels(&app) {
                names.push(self.cluster.hub_channel(&app, &channel));
            }
        }
        names
    }

    fn is_wanted(&self, name: &str) -> bool {
        self.cluster
            .parse_hub_channel(name)
            .and_then(|(app, channel)| {
                let hub = self.hub.as_ref()?;
                Some(hub.has_channel(app, channel))
            })
            .unwrap_or(false)
    }

    fn deliver(&self, message: &redis::Msg) {
        let Some(hub) = &self.hub else { return };
        let (channel, payload) = (message.get_channel_name(), message.get_payload_bytes());
        if channel == self.cluster.control_channel() {
            return control(hub.as_ref(), payload);
        }
        let received = self
            .cluster
            .metrics
            .messages
            .with_label_values(&["received"]);
        received.inc();
        deliver(&self.cluster, hub.as_ref(), channel, payload);
    }
}

/// Applies a control message to this node: `terminate\n{app}\n{user}` closes the user's sockets.
fn control(hub: &dyn LocalHub, payload: &[u8]) {
    let text = String::from_utf8_lossy(payload);
    let mut parts = text.splitn(3, '\n');
    if let (Some("terminate"), Some(app), Some(user)) = (parts.next(), parts.next(), parts.next()) {
        hub.terminate(app, user);
    }
}

/// Delivers one cluster message (`{except socket id}\n{frame}` on a hub channel) to this node's
/// subscribers.
fn deliver(cluster: &Cluster, hub: &dyn LocalHub, channel: &str, payload: &[u8]) {
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
    let except = (!except.is_empty()).then_some(except);
    hub.deliver(app, channel, frame, except);
}

/// Sends queued publishes and session updates in order; a publish Redis refuses is delivered to
/// this node's subscribers instead, so a link failure loses nothing locally.
async fn send_outbox(
    cluster: Arc<Cluster>,
    hub: Option<Arc<dyn LocalHub>>,
    mut outbox: mpsc::Receiver<Outgoing>,
) {
    while let Some(item) = outbox.recv().await {
        let Some(mut conn) = cluster.commands.get().cloned() else {
            fall_back(&cluster, hub.as_deref(), item);
            continue;
        };
        let Some(cmd) = command(&cluster, &item) else {
            // A resync is several commands of its own.
            if let Some(hub) = &hub {
                occupancy::resync(&cluster, hub.as_ref(), &mut conn).await;
            }
            continue;
        };
        // One retry: after Redis restarts, the reconnecting connection fails the first command.
        let mut answer = None;
        for _attempt in 0..2 {
            let query = cmd.query_async::<redis::Value>(&mut conn);
            if let Ok(Ok(value)) = tokio::time::timeout(COMMAND_TIMEOUT, query).await {
                answer = Some(value);
                break;
            }
        }
        match (answer, item) {
            (Some(_), Outgoing::Publish { done, .. }) => {
                cluster.metrics.messages.with_label_values(&["sent"]).inc();
                let _ = done.send(());
            }
            (Some(redis::Value::Int(1)), Outgoing::Occupancy(change)) => {
                if let Some(hub) = &hub {
                    hub.webhook(&change.app, change.event());
                }
            }
            (Some(_), _) => {}
            (None, item) => fall_back(&cluster, hub.as_deref(), item),
        }
    }
}

/// The Redis command for one outbox item (none for a resync).
fn command(cluster: &Cluster, item: &Outgoing) -> Option<redis::Cmd> {
    let cmd = match item {
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
        Outgoing::Count { key, field, delta } => {
            let mut cmd = redis::cmd("HINCRBY");
            cmd.arg(key).arg(field).arg(delta);
            cmd
        }
        Outgoing::Occupancy(change) => cluster.occupancy_command(change),
        Outgoing::Resync => return None,
    };
    Some(cmd)
}

/// A publish that cannot go through Redis reaches this node's subscribers directly, and an
/// occupancy change is this node's to announce.
fn fall_back(cluster: &Cluster, hub: Option<&dyn LocalHub>, item: Outgoing) {
    if let (Outgoing::Occupancy(change), Some(hub)) = (&item, hub) {
        return hub.webhook(&change.app, change.event());
    }
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
