//! `client-…` events: whispers between a channel's subscribers.

use super::*;
use crate::pusher::webhook::Kind;

impl Session<'_> {
    /// A `client-…` event: only on private/presence channels this socket is subscribed to, only if
    /// the app allows it, never echoed, `user_id` added on presence, at most 10 per second.
    pub(super) fn client_event(&mut self, event: &str, name: &str, data: &str) -> bool {
        if !self.app.conf().client_events {
            self.send(protocol::error(
                None,
                "Client events are not enabled for this app",
            ));
            return true;
        }
        let Some(member) = self.subscriptions.get(name) else {
            self.send(protocol::error(
                None,
                "Client event on a channel this connection is not subscribed to",
            ));
            return true;
        };
        let allowed = ChannelName::parse(name).is_ok_and(|c| c.accepts_client_events());
        if !allowed {
            self.send(protocol::error(
                None,
                "Client events are only allowed on private and presence channels",
            ));
            return true;
        }
        if over(&mut self.events, self.app.conf().client_events_per_second) {
            self.conn.closer.close(close::CLIENT_EVENT_RATE_LIMIT);
            return false;
        }
        let frame = Frame::from(protocol::client_event(name, event, data, member.as_deref()));
        self.hub
            .publish(self.app, name, &frame, Some(&self.conn.socket_id));
        if self.app.wants(Kind::ClientEvent) {
            self.app.emit(AppEvent::ClientEvent {
                channel: name.to_string(),
                event: event.to_string(),
                data: data.to_string(),
                socket_id: self.conn.socket_id.to_string(),
                user_id: member.clone(),
            });
        }
        true
    }
}
