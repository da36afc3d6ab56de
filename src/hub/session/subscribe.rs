//! Subscribing a connection to a channel, in steps: admit (name, duplicate, the connection's
//! channel limit) → authorise (signature, presence member) → join (a full presence channel
//! refuses) → confirm (`subscription_succeeded`, once the cluster delivers the channel) →
//! announce the member → replay a cache channel's last event.

use super::*;

/// A presence member: `(user_id, user_info JSON)`; `None` on other channels.
type Member = Option<(String, String)>;

impl Session<'_> {
    pub(super) fn subscribe(
        &mut self,
        name: &str,
        auth_token: Option<&str>,
        channel_data: Option<&str>,
    ) {
        let Some(channel) = self.admit(name) else {
            return;
        };
        let Some(member) = self.authorise(&channel, name, auth_token, channel_data) else {
            return;
        };
        let user = member
            .as_ref()
            .map(|(id, info)| (id.as_str(), info.as_str()));
        let (ch, presence) = self.app.subscribe(name, &self.conn, user);
        if presence == Presence::Full {
            return self.refuse(name, "LimitReached", "Presence channel is full", 403);
        }
        let members = channel.is_presence().then(|| ch.members());
        if let (Some(cluster_presence), Some((id, info)), Some(local_members)) =
            (&self.presence, &user, &members)
        {
            // Clustered: Redis decides who is here and whether this socket added the user; the
            // worker also replays a cache channel's last event after confirming.
            let cache = channel.is_cache().then(|| ch.last_event());
            cluster_presence.join(name, (id, info), presence, local_members.clone(), cache);
            self.subscriptions
                .insert(name.to_string(), Some(id.to_string()));
            return;
        }
        let succeeded = protocol::subscription_succeeded(name, members.as_deref());
        let confirmed_later = self.confirm(&channel, name, succeeded, || ch.last_event());
        self.announce(&presence, name, &member);
        if !confirmed_later && channel.is_cache() {
            self.replay_cache(name, ch.last_event());
        }
        self.subscriptions
            .insert(name.to_string(), member.map(|(id, _)| id));
    }

    /// The channel, if its name is valid, it is not subscribed yet and the connection is under
    /// its channel limit; else the refusal is sent.
    fn admit(&mut self, name: &str) -> Option<ChannelName> {
        let too_long = name.len() > self.app.conf().max_channel_name_length;
        let Some(channel) = ChannelName::parse(name).ok().filter(|_| !too_long) else {
            self.refuse(name, "ChannelNameError", "Invalid channel name", 400);
            return None;
        };
        if self.subscriptions.contains_key(name) {
            return None;
        }
        if self.subscriptions.len() >= self.app.conf().max_channels {
            self.refuse(
                name,
                "LimitReached",
                "Too many channels on this connection",
                429,
            );
            return None;
        }
        Some(channel)
    }

    /// A protected channel's signature checked, and a presence channel's member read from
    /// `channel_data`: the member (`Some(None)` on other channels), or `None` once refused.
    fn authorise(
        &self,
        channel: &ChannelName,
        name: &str,
        auth_token: Option<&str>,
        channel_data: Option<&str>,
    ) -> Option<Member> {
        let conf = self.app.conf();
        if channel.requires_auth() {
            let data = channel_data.filter(|_| channel.is_presence());
            let ok = auth_token.is_some_and(|token| {
                let socket = &self.conn.socket_id;
                auth::verify_channel_auth(&conf.key, &conf.secret, socket, name, data, token)
            });
            if !ok {
                self.refuse(name, "AuthError", "Invalid signature", 401);
                return None;
            }
        }
        match (channel.is_presence(), channel_data) {
            (false, _) => Some(None),
            (true, Some(data)) => match presence_member(data, conf.max_user_info) {
                Some(member) => Some(Some(member)),
                None => {
                    self.refuse(
                        name,
                        "PresenceError",
                        "Invalid or too large channel_data",
                        400,
                    );
                    None
                }
            },
            (true, None) => {
                self.refuse(name, "PresenceError", "channel_data is required", 400);
                None
            }
        }
    }

    /// Sends `succeeded` now, or (clustered, the channel not yet delivered from Redis) once it
    /// is, followed by a cache channel's last event: whether it was left for later.
    fn confirm(
        &self,
        channel: &ChannelName,
        name: &str,
        succeeded: String,
        last_event: impl FnOnce() -> Option<Frame>,
    ) -> bool {
        let cluster = self
            .hub
            .cluster()
            .filter(|c| !c.receives(&self.app.id, name));
        let Some(cluster) = cluster else {
            self.send(succeeded);
            return false;
        };
        let later = self.later(cluster, name);
        let cache = channel.is_cache().then(last_event);
        tokio::spawn(async move {
            let (app, channel) = (&later.app.id, &later.channel);
            later
                .cluster
                .until_receiving(app, channel, SUBSCRIBE_WAIT)
                .await;
            later.offer(succeeded);
            if let Some(local) = cache {
                let cluster = Some(&*later.cluster);
                replay_cache(cluster, &later.conn, &later.app, channel, local).await;
            }
        });
        true
    }

    /// A cache channel's last event to this subscriber: `local` (this node's), else (clustered)
    /// the cluster's, else `pusher:cache_miss`.
    fn replay_cache(&self, name: &str, local: Option<Frame>) {
        match (local, self.hub.cluster().cloned()) {
            // Clustered: the last event may have been published while no one here listened.
            (None, Some(cluster)) => {
                let (conn, app, name) = (self.conn.clone(), self.app.clone(), name.to_string());
                tokio::spawn(async move {
                    replay_cache(Some(&cluster), &conn, &app, &name, None).await;
                });
            }
            (local, _) => {
                let frame = local.unwrap_or_else(|| missed(self.app, name));
                self.conn
                    .offer(&frame, None, &self.app.metrics.dropped_slow);
            }
        }
    }

    /// Refuses the subscription to `name` with `pusher:subscription_error`.
    fn refuse(&self, name: &str, kind: &str, error: &str, status: u16) {
        self.send(protocol::subscription_error(name, kind, error, status));
    }
}
