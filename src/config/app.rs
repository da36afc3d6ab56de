//! The hub's settings: its listener and apps, each app's limits and webhooks.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The listener the hub serves (not used by any route).
    pub listener: String,
    pub apps: Vec<App>,
}

/// One Pusher app (Laravel's `REVERB_APP_*`).
#[derive(Debug, Clone)]
pub struct App {
    pub id: String,
    pub key: String,
    pub secret: String,
    /// `Origin` values allowed to connect; `*` allows any.
    pub allowed_origins: Vec<String>,
    pub max_connections: usize,
    /// Open connections from one client address (well below `max_connections`).
    pub max_connections_per_ip: usize,
    /// Channels one connection may be subscribed to at once.
    pub max_channels: usize,
    /// Subscribes and unsubscribes per connection per second; beyond, close 4301.
    pub max_subscriptions_per_second: u32,
    /// Client events per connection per second; beyond, close 4301.
    pub client_events_per_second: u32,
    /// HTTP API requests per second to the app (a burst as large); beyond, 429.
    pub api_requests_per_second: u32,
    /// Events in one `batch_events` request.
    pub max_batch_size: usize,
    /// Channels one published event may go to.
    pub max_channels_per_event: usize,
    /// The longest channel name a client may subscribe to or the API publish to.
    pub max_channel_name_length: usize,
    /// How long a write to a client may wait; a client that stops reading is closed after it.
    pub write_timeout: Duration,
    pub client_events: bool,
    pub max_message_size: usize,
    /// Told to clients: they ping after this much silence (Pusher's `activity_timeout`).
    pub activity_timeout: Duration,
    /// The server pings a connection silent this long; no pong then closes it with 4201.
    pub ping_interval: Duration,
    pub max_presence_members: usize,
    pub max_user_info: usize,
    /// Where the app's webhooks go (Pusher's format), each with the events it wants.
    pub webhooks: Vec<AppWebhook>,
}

/// One of an app's webhooks (`hub.apps[].webhooks[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppWebhook {
    /// As written (`http://host:port/path`): the webhook's identity (its spool queue).
    pub url: String,
    /// `host:port`, resolved at each delivery (the `Host` header too).
    pub authority: String,
    /// The URL's path and query.
    pub target: String,
    /// The events it wants.
    pub events: Vec<crate::pusher::webhook::Kind>,
    /// Extra request headers.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Only events on channels whose name starts with this …
    pub channel_name_starts_with: Option<String>,
    /// … and ends with this.
    pub channel_name_ends_with: Option<String>,
}

impl AppWebhook {
    /// Whether this webhook wants `event`.
    pub fn wants(&self, event: &crate::pusher::webhook::AppEvent) -> bool {
        let channel = event.channel();
        self.events.contains(&event.kind())
            && self
                .channel_name_starts_with
                .as_deref()
                .is_none_or(|p| channel.starts_with(p))
            && self
                .channel_name_ends_with
                .as_deref()
                .is_none_or(|s| channel.ends_with(s))
    }
}
