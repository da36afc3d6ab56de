//! A channel's subscribers and presence members coming and going, and the app webhook events
//! that follows from it (`channel_occupied` / `channel_vacated`: decided by the cluster when
//! clustered, so they fire once for all nodes).

use super::{AppState, Channel, Conn, Member, Presence};
use crate::pusher::webhook::AppEvent;
use std::sync::atomic::Ordering;
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

    /// Whether a webhook of the app wants events of `kind` (checked before building a costly one).
    pub fn wants(&self, kind: crate::pusher::webhook::Kind) -> bool {
        self.webhooks.is_some()
            && self
                .conf()
                .webhooks
                .iter()
                .any(|w| w.events.contains(&kind))
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
        loop {
            let ch = self.channel_entry(name);
            let mut subs = ch.subs.write().unwrap_or_else(|p| p.into_inner());
            if ch.closed.load(Ordering::Relaxed) {
                // Its last subscriber just left and it is on its way out of the map: a new one.
                drop(subs);
                self.drop_channel(name, &ch);
                continue;
            }
            let presence = match user {
                None => Presence::Unchanged,
                Some((id, info)) => self.join(&ch, id, info),
            };
            if presence == Presence::Full {
                return (ch.clone(), presence);
            }
            let added = subs.insert(conn.id, conn.clone()).is_none();
            if added && subs.len() == 1 {
                self.occupancy(name, true);
            }
            drop(subs);
            if let (true, Some(cluster)) = (added, &self.cluster) {
                cluster.count_subscription(&self.id, name, 1);
            }
            return (ch, presence);
        }
    }

    /// `name`'s channel, created (and told to the cluster) if there is none.
    fn channel_entry(&self, name: &str) -> Arc<Channel> {
        match self.channels.entry(name.to_string()) {
            dashmap::Entry::Occupied(e) => e.get().clone(),
            dashmap::Entry::Vacant(e) => {
                let ch = e.insert(Arc::default()).clone();
                if let Some(cluster) = &self.cluster {
                    cluster.channel_changed(&self.id, name);
                }
                ch
            }
        }
    }

    /// Removes `ch` from the map if it is still `name`'s channel (and tells the cluster).
    fn drop_channel(&self, name: &str, ch: &Arc<Channel>) {
        let removed = self.channels.remove_if(name, |_, c| Arc::ptr_eq(c, ch));
        if let (Some(_), Some(cluster)) = (removed, &self.cluster) {
            cluster.channel_changed(&self.id, name);
        }
    }

    /// Counts a socket of user `id` in `ch`'s presence members (under the subscriber lock).
    fn join(&self, ch: &Channel, id: &str, info: &str) -> Presence {
        let mut members = ch.members.lock().unwrap_or_else(|p| p.into_inner());
        let full = members.len() >= self.conf().max_presence_members;
        match members.get_mut(id) {
            Some(member) => {
                member.sockets += 1;
                Presence::Unchanged
            }
            None if full => Presence::Full,
            None => {
                let member = Member {
                    sockets: 1,
                    info: info.to_string(),
                };
                members.insert(id.to_string(), member);
                Presence::Added
            }
        }
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
            self.emit(AppEvent::member(name, user, false));
        }
        if removed && subs.is_empty() {
            self.occupancy(name, false);
        }
        // Emptied, the channel is closed under its lock: a subscriber that already holds it
        // takes a new one instead of joining one no longer in the map.
        let empty = subs.is_empty();
        if empty {
            ch.closed.store(true, Ordering::Relaxed);
        }
        drop(subs);
        if let (true, Some(cluster)) = (removed, &self.cluster) {
            cluster.count_subscription(&self.id, name, -1);
        }
        if empty {
            self.drop_channel(name, &ch);
        }
        presence
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Hub, Lanes, Outbox};
    use super::*;

    fn conn(id: u64) -> Conn {
        Conn {
            id,
            socket_id: format!("1.{id}").into(),
            outbox: Arc::new(Outbox::new(None)),
            closer: Default::default(),
        }
    }

    fn app() -> Arc<AppState> {
        let yaml = "listeners: { hub: { listen: \"127.0.0.1:1\" } }\nhub: { listener: hub, apps: [{ id: a, key: k, secret: s }] }\n";
        let apps = crate::config::parse(yaml, &|_| None)
            .unwrap()
            .hub
            .unwrap()
            .apps;
        let metrics = crate::metrics::Metrics::new().unwrap().hub;
        let hub = Hub::new(&apps, 1, metrics, None, Lanes::default(), None);
        hub.app_by_id("a").unwrap()
    }

    fn holds(app: &AppState, name: &str, id: u64) -> bool {
        app.channel(name)
            .is_some_and(|ch| ch.subs.read().unwrap().contains_key(&id))
    }

    #[test]
    fn an_emptied_channel_is_closed_and_the_next_subscriber_gets_a_new_one() {
        let app = app();
        app.subscribe("c", &conn(1), None);
        let old = app.channel("c").unwrap();
        app.unsubscribe("c", 1, None);
        assert!(old.closed.load(Ordering::Relaxed));
        assert!(app.channel("c").is_none());
        app.subscribe("c", &conn(2), None);
        let new = app.channel("c").unwrap();
        assert!(!Arc::ptr_eq(&old, &new));
        assert!(holds(&app, "c", 2));
    }

    #[test]
    fn a_subscriber_racing_the_last_unsubscribe_is_always_in_the_map() {
        let app = app();
        let churn = {
            let app = app.clone();
            std::thread::spawn(move || {
                for _ in 0..20_000 {
                    app.subscribe("c", &conn(1), None);
                    app.unsubscribe("c", 1, None);
                }
            })
        };
        for _ in 0..20_000 {
            app.subscribe("c", &conn(2), None);
            assert!(
                holds(&app, "c", 2),
                "subscribed to a channel no longer in the map"
            );
            app.unsubscribe("c", 2, None);
        }
        churn.join().unwrap();
    }
}
