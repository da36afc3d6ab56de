//! The one way an event is published to the hub ([`Hub::publish_event`]), for the Pusher HTTP
//! API and the edge's webhook rules alike: its channels checked, its data held to the app's
//! message limit, framed once per channel and published. Its refusals are [`PublishError`], with
//! one table of HTTP statuses and stable codes.

use super::channel::ChannelName;
use super::fanout::{AppState, Frame, Hub};
use super::protocol;
use tokio::sync::oneshot;

/// An event to publish.
pub struct Event<'a> {
    pub channels: &'a [String],
    pub name: &'a str,
    /// The event's `data` as it goes on the wire (a string).
    pub data: &'a str,
    /// A socket that does not get it (the sender's own, from the API's `socket_id`).
    pub except: Option<&'a str>,
}

/// An event that passed [`Hub::check_event`].
pub struct Checked<'a>(Event<'a>);

/// Why an event was not published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// No channel, or more than the app's `max_channels_per_event` (`limit`).
    ChannelCount { count: usize, limit: usize },
    /// A name a server may not publish to.
    InvalidChannel(String),
    /// `data` over the app's `max_message_size`.
    TooLarge { size: usize, limit: usize },
}

impl PublishError {
    /// The HTTP status and stable error code (the Pusher HTTP API's answer).
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            PublishError::ChannelCount { .. } => (400, "hub.too_many_channels"),
            PublishError::InvalidChannel(_) => (400, "hub.invalid_channel"),
            PublishError::TooLarge { .. } => (413, "hub.message_too_large"),
        }
    }
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::ChannelCount { count, limit } => {
                write!(f, "an event goes to 1 to {limit} channels, not {count}")
            }
            PublishError::InvalidChannel(name) => write!(f, "invalid channel name `{name}`"),
            PublishError::TooLarge { size, limit } => write!(
                f,
                "event data is {size} bytes, over the app's message limit of {limit}"
            ),
        }
    }
}

impl Hub {
    /// Checks `event` against the app's limits and channel rules, publishing nothing: a batch is
    /// checked whole before any of it is published ([`Hub::publish_checked`]).
    pub fn check_event<'a>(
        &self,
        app: &AppState,
        event: Event<'a>,
    ) -> Result<Checked<'a>, PublishError> {
        let conf = app.conf();
        let (count, limit) = (event.channels.len(), conf.max_channels_per_event);
        if count == 0 || count > limit {
            return Err(PublishError::ChannelCount { count, limit });
        }
        let longest = conf.max_channel_name_length;
        if let Some(bad) = event
            .channels
            .iter()
            .find(|c| c.len() > longest || ChannelName::parse_publishable(c).is_err())
        {
            return Err(PublishError::InvalidChannel(bad.clone()));
        }
        let limit = conf.max_message_size;
        if event.data.len() > limit {
            return Err(PublishError::TooLarge {
                size: event.data.len(),
                limit,
            });
        }
        Ok(Checked(event))
    }

    /// Checks `event` and publishes it to each of its channels; nothing is published when a
    /// check fails. Clustered, the receivers complete once Redis took each copy (see
    /// [`Hub::publish`]).
    pub fn publish_event(
        &self,
        app: &AppState,
        event: Event<'_>,
    ) -> Result<Vec<oneshot::Receiver<()>>, PublishError> {
        let checked = self.check_event(app, event)?;
        Ok(self.publish_checked(app, checked))
    }

    /// Publishes an event [`Hub::check_event`] passed.
    pub fn publish_checked(
        &self,
        app: &AppState,
        Checked(event): Checked<'_>,
    ) -> Vec<oneshot::Receiver<()>> {
        let except = event.except.filter(|s| protocol::is_valid_socket_id(s));
        let mut acks = Vec::new();
        for channel in event.channels {
            let frame = Frame::from(protocol::event(channel, event.name, event.data, None));
            acks.extend(self.publish(app, channel, &frame, except));
        }
        acks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API's answers are part of its contract: pinned.
    #[test]
    fn each_refusal_has_its_status_and_code() {
        let table = [
            (
                PublishError::ChannelCount {
                    count: 0,
                    limit: 100,
                },
                400,
                "hub.too_many_channels",
            ),
            (
                PublishError::ChannelCount {
                    count: 101,
                    limit: 100,
                },
                400,
                "hub.too_many_channels",
            ),
            (
                PublishError::InvalidChannel("bad name".into()),
                400,
                "hub.invalid_channel",
            ),
            (
                PublishError::TooLarge {
                    size: 10_241,
                    limit: 10_240,
                },
                413,
                "hub.message_too_large",
            ),
        ];
        for (error, status, code) in table {
            assert_eq!(error.status_and_code(), (status, code), "{error}");
        }
    }
}
