//! A channel's subscribers and presence members coming and going, and the app webhook events
//! that follows from it (`channel_occupied` / `channel_vacated`: decided by the cluster when
//! clustered, so they fire once for all nodes).

use super::{AppState, Channel, Conn, Member, Presence};
use crate::pusher::webhook::AppEvent;
use std::sync::Arc;

impl AppState {
    /// Hands an app webhook event to the batcher (if the app has a webhook that wants it).
    pub fn emit(&self, event: AppEvent) {
        if let Some(webhooks) = &self.webhooks {
            if !self.conf().webhooks.is_empty() {
                webhooks.emit(self.conf.load_full(), event);
            }
        }
    }

    /// `name` got its first (`true`) or lost its last subscriber on this node: alone, that is the
    /// app's `channel_occupied` / `channel_vacated`; clustered, the cluster decides whether it is
    /// for the whole cluster. Called under the channel's subscriber lock, so the two alternate.
    fn occupancy(&self, name: &str, occupied: bool) {
        if name.starts_with('#') {
            // `#server-to-user-…`: the hub's own channels, not the app's.
            return;
        }
        match &self.cluster {
            Some(cluster) => cluster.occupancy(&self.id, name, occupied),
            None => self.emit(AppEvent::occupancy(name, occupied)),
        }
    }
    /// Adds `conn` to `name`; for presence channels also the member (`user` = id and info).
    pub fn subscribe(
        &self,
        name: &str,
        conn: &Conn,
        user: Option<(&str, &str)>,
    ) -> (Arc<Channel>, Presence) {
        let ch = match self.channels.entry(name.to_string()) {
            dashmap::Entry::Occupied(e) => e.get().clone(),
            dashmap::Entry::Vacant(e) => {
                let ch = e.insert(Arc::default()).clone();
                if let Some(cluster) = &self.cluster {
                    cluster.channel_changed(&self.id, name);
                }
                ch
            }
        };
        let presence = match user {
            None => Presence::Unchanged,
            Some((id, info)) => {
                let mut members = ch.members.lock().unwrap_or_else(|p| p.into_inner());
                let full = members.len() >= self.conf().max_presence_members;
                match members.get_mut(id) {
                    Some(member) => {
                        member.sockets += 1;
                        Presence::Unchanged
                    }
                    None if full => return (ch.clone(), Presence::Full),
                    None => {
                        members.insert(
                            id.to_string(),
                            Member {
                                sockets: 1,
                                info: info.to_string(),
                            },
                        );
                        Presence::Added
                    }
                }
            }
        };
        let mut subs = ch.subs.write().unwrap_or_else(|p| p.into_inner());
        let added = subs.insert(conn.id, conn.clone()).is_none();
        if added && subs.len() == 1 {
            self.occupancy(name, true);
        }
        drop(subs);
        if let (true, Some(cluster)) = (added, &self.cluster) {
            cluster.count_subscription(&self.id, name, 1);
        }
        (ch, presence)
    }

    /// Removes connection `id` from `name` (and its presence member, if `user`: alone, its
    /// `member_removed` webhook event too).
    pub fn unsubscribe(&self, name: &str, id: u64, user: Option<&str>) -> Presence {
        let Some(ch) = self.channel(name) else {
            return Presence::Unchanged;
        };
        let mut subs = ch.subs.write().unwrap_or_else(|p| p.into_inner());
        let removed = subs.remove(&id).is_some();
        let presence = match (removed, user) {
            (true, Some(user)) => {
                let mut members = ch.members.lock().unwrap_or_else(|p| p.into_inner());
                match members.get_mut(user) {
                    Some(member) if member.sockets > 1 => {
                        member.sockets -= 1;
                        Presence::Unchanged
                    }
                    Some(_) => {
                        members.remove(user);
                        Presence::Removed
                    }
                    None => Presence::Unchanged,
                }
            }
            _ => Presence::Unchanged,
        };
        // Alone, the member leaves before the channel empties (clustered, Redis decides both).
        if let (Presence::Removed, Some(user), None) = (&presence, user, &self.cluster) {
            self.emit(AppEvent::MemberRemoved {
                channel: name.to_string(),
                user_id: user.to_string(),
            });
        }
        if removed && subs.is_empty() {
            self.occupancy(name, false);
        }
        drop(subs);
        if let (true, Some(cluster)) = (removed, &self.cluster) {
            cluster.count_subscription(&self.id, name, -1);
        }
        if ch.subscription_count() == 0 {
            let removed = self
                .channels
                .remove_if(name, |_, c| c.subscription_count() == 0);
            if let (Some(_), Some(cluster)) = (removed, &self.cluster) {
                cluster.channel_changed(&self.id, name);
            }
        }
        presence
    }
}
