//! App webhooks as Pusher sends them: the events (`channel_occupied`, `member_added`, …), their
//! JSON, and the body of one batch (`{"time_ms": …, "events": […]}`).

use serde_json::{json, Map, Value};

/// The kinds of app webhook event, by their Pusher names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    ChannelOccupied,
    ChannelVacated,
    MemberAdded,
    MemberRemoved,
    ClientEvent,
    CacheMiss,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::ChannelOccupied,
        Kind::ChannelVacated,
        Kind::MemberAdded,
        Kind::MemberRemoved,
        Kind::ClientEvent,
        Kind::CacheMiss,
    ];

    /// Pusher's name of the event.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ChannelOccupied => "channel_occupied",
            Kind::ChannelVacated => "channel_vacated",
            Kind::MemberAdded => "member_added",
            Kind::MemberRemoved => "member_removed",
            Kind::ClientEvent => "client_event",
            Kind::CacheMiss => "cache_miss",
        }
    }

    /// The kind named `name` (Pusher's name).
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One app webhook event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppEvent {
    /// A channel got its first subscriber (in the cluster).
    ChannelOccupied { channel: String },
    /// A channel lost its last subscriber (in the cluster).
    ChannelVacated { channel: String },
    /// A user's first socket joined a presence channel (in the cluster).
    MemberAdded { channel: String, user_id: String },
    /// A user's last socket left a presence channel (in the cluster).
    MemberRemoved { channel: String, user_id: String },
    /// A `client-…` event a socket sent; `data` as the client sent it (JSON text).
    ClientEvent {
        channel: String,
        event: String,
        data: String,
        socket_id: String,
        /// The sender's user id, on presence channels.
        user_id: Option<String>,
    },
    /// A cache channel was subscribed to with no event to replay.
    CacheMiss { channel: String },
}

impl AppEvent {
    /// `channel_occupied` (`occupied`) or `channel_vacated` of `channel`.
    pub fn occupancy(channel: &str, occupied: bool) -> AppEvent {
        let channel = channel.to_string();
        match occupied {
            true => AppEvent::ChannelOccupied { channel },
            false => AppEvent::ChannelVacated { channel },
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            AppEvent::ChannelOccupied { .. } => Kind::ChannelOccupied,
            AppEvent::ChannelVacated { .. } => Kind::ChannelVacated,
            AppEvent::MemberAdded { .. } => Kind::MemberAdded,
            AppEvent::MemberRemoved { .. } => Kind::MemberRemoved,
            AppEvent::ClientEvent { .. } => Kind::ClientEvent,
            AppEvent::CacheMiss { .. } => Kind::CacheMiss,
        }
    }

    /// `member_added` (`added`) or `member_removed` of `user_id` in `channel`.
    pub fn member(channel: &str, user_id: &str, added: bool) -> AppEvent {
        let (channel, user_id) = (channel.to_string(), user_id.to_string());
        match added {
            true => AppEvent::MemberAdded { channel, user_id },
            false => AppEvent::MemberRemoved { channel, user_id },
        }
    }

    /// Roughly the bytes the event holds (its texts and a fixed part), for memory budgets.
    pub fn size(&self) -> usize {
        let texts = match self {
            AppEvent::ClientEvent {
                event,
                data,
                socket_id,
                user_id,
                ..
            } => {
                event.len() + data.len() + socket_id.len() + user_id.as_ref().map_or(0, String::len)
            }
            AppEvent::MemberAdded { user_id, .. } | AppEvent::MemberRemoved { user_id, .. } => {
                user_id.len()
            }
            _ => 0,
        };
        texts + self.channel().len() + 64
    }

    /// The channel the event is about.
    pub fn channel(&self) -> &str {
        match self {
            AppEvent::ChannelOccupied { channel }
            | AppEvent::ChannelVacated { channel }
            | AppEvent::MemberAdded { channel, .. }
            | AppEvent::MemberRemoved { channel, .. }
            | AppEvent::ClientEvent { channel, .. }
            | AppEvent::CacheMiss { channel } => channel,
        }
    }

    /// The event as Pusher writes it in a webhook body. A client event's `data` is a string, as
    /// Pusher sends it: the client's JSON text (a JSON string's own text).
    pub fn to_json(&self) -> Value {
        let mut event = Map::new();
        event.insert("name".into(), self.kind().name().into());
        event.insert("channel".into(), self.channel().into());
        match self {
            AppEvent::MemberAdded { user_id, .. } | AppEvent::MemberRemoved { user_id, .. } => {
                event.insert("user_id".into(), user_id.as_str().into());
            }
            AppEvent::ClientEvent {
                event: name,
                data,
                socket_id,
                user_id,
                ..
            } => {
                let data = match serde_json::from_str::<Value>(data) {
                    Ok(Value::String(text)) => text,
                    _ => data.clone(),
                };
                event.insert("event".into(), name.as_str().into());
                event.insert("data".into(), data.into());
                event.insert("socket_id".into(), socket_id.as_str().into());
                if let Some(user_id) = user_id {
                    event.insert("user_id".into(), user_id.as_str().into());
                }
            }
            _ => {}
        }
        Value::Object(event)
    }
}

/// The body of one webhook request: its events, stamped with `time_ms` (Unix milliseconds).
pub fn body(time_ms: u64, events: &[Value]) -> Vec<u8> {
    json!({ "time_ms": time_ms, "events": events })
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_written_as_pusher_writes_them() {
        let occupied = AppEvent::ChannelOccupied {
            channel: "orders".into(),
        };
        assert_eq!(
            occupied.to_json(),
            json!({"name": "channel_occupied", "channel": "orders"})
        );
        let added = AppEvent::MemberAdded {
            channel: "presence-room".into(),
            user_id: "7".into(),
        };
        assert_eq!(
            added.to_json(),
            json!({"name": "member_added", "channel": "presence-room", "user_id": "7"})
        );
        let whisper = AppEvent::ClientEvent {
            channel: "private-chat".into(),
            event: "client-typing".into(),
            data: r#"{"typing":true}"#.into(),
            socket_id: "1.2".into(),
            user_id: None,
        };
        assert_eq!(
            whisper.to_json(),
            json!({"name": "client_event", "channel": "private-chat", "event": "client-typing",
                   "data": "{\"typing\":true}", "socket_id": "1.2"})
        );
        let text = AppEvent::ClientEvent {
            channel: "presence-chat".into(),
            event: "client-said".into(),
            data: r#""hello""#.into(),
            socket_id: "1.2".into(),
            user_id: Some("9".into()),
        };
        assert_eq!(text.to_json()["data"], "hello");
        assert_eq!(text.to_json()["user_id"], "9");
    }

    #[test]
    fn every_kind_is_found_by_its_name() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.name()), Some(kind));
        }
        assert_eq!(Kind::parse("channel_existence"), None);
    }
}
