//! `hub`: the hub's listener and apps.

use super::super::raw::*;
use super::super::types::{defaults, *};
use super::{positive, Problems};
use std::collections::HashSet;

pub(super) fn hub(p: &mut Problems, raw: RawHub, listeners: &[Listener]) -> HubConfig {
    if !listeners.iter().any(|l| l.name == raw.listener) {
        p.push(
            "hub.listener",
            format!("no listener named `{}`", raw.listener),
        );
    }
    if raw.apps.is_empty() {
        p.push("hub.apps", "at least one app is required");
    }
    let mut seen = HashSet::new();
    let apps = raw
        .apps
        .into_iter()
        .enumerate()
        .map(|(i, a)| app(p, &mut seen, i, a))
        .collect();
    HubConfig {
        listener: raw.listener,
        apps,
    }
}

/// `hub.apps[i]`; `seen` holds the ids and keys of the apps before it.
fn app(p: &mut Problems, seen: &mut HashSet<String>, i: usize, a: RawApp) -> App {
    let at = format!("hub.apps[{i}]");
    identity(p, seen, &at, &a);
    let [max_subscriptions_per_second, client_events_per_second, api_requests_per_second] =
        rates(p, &at, &a);
    let [max_connections_per_ip, max_channels, max_batch_size, max_channels_per_event] =
        counts(p, &at, &a);
    let max_channel_name_length = name_length(p, &at, &a);
    let presence = a.presence.unwrap_or_default();
    let size = |p: &mut Problems, key: &str, text: &Option<String>, default: usize| {
        usize::try_from(p.size(format!("{at}.{key}"), text, default as u64)).unwrap_or(usize::MAX)
    };
    App {
        allowed_origins: a.allowed_origins.unwrap_or_else(|| vec!["*".into()]),
        max_connections: a.max_connections.unwrap_or(defaults::HUB_MAX_CONNECTIONS),
        max_connections_per_ip,
        max_channels,
        max_subscriptions_per_second,
        client_events_per_second,
        api_requests_per_second,
        max_batch_size,
        max_channels_per_event,
        max_channel_name_length,
        write_timeout: p.duration(
            format!("{at}.write_timeout"),
            &a.write_timeout,
            defaults::HUB_WRITE_TIMEOUT,
        ),
        client_events: a.client_events.unwrap_or(false),
        max_message_size: size(
            p,
            "max_message_size",
            &a.max_message_size,
            defaults::HUB_MAX_MESSAGE_SIZE,
        ),
        activity_timeout: p.duration(
            format!("{at}.activity_timeout"),
            &a.activity_timeout,
            defaults::HUB_ACTIVITY_TIMEOUT,
        ),
        ping_interval: p.duration(
            format!("{at}.ping_interval"),
            &a.ping_interval,
            defaults::HUB_PING_INTERVAL,
        ),
        max_presence_members: presence
            .max_members
            .unwrap_or(defaults::HUB_MAX_PRESENCE_MEMBERS),
        max_user_info: size(
            p,
            "presence.max_user_info",
            &presence.max_user_info,
            defaults::HUB_MAX_USER_INFO,
        ),
        webhooks: super::app_webhooks::webhooks(p, &at, a.webhooks),
        id: a.id,
        key: a.key,
        secret: a.secret,
    }
}

/// The app's rates: subscriptions, client events and API requests per second.
fn rates(p: &mut Problems, at: &str, a: &RawApp) -> [u32; 3] {
    [
        (
            "max_subscriptions_per_second",
            a.max_subscriptions_per_second,
            defaults::HUB_MAX_SUBSCRIPTIONS_PER_SECOND,
        ),
        (
            "client_events_per_second",
            a.client_events_per_second,
            defaults::HUB_CLIENT_EVENTS_PER_SECOND,
        ),
        (
            "api_requests_per_second",
            a.api_requests_per_second,
            defaults::HUB_API_REQUESTS_PER_SECOND,
        ),
    ]
    .map(|(key, value, default)| rate(p, at, key, value, default))
}

/// The app's counts: connections per address, channels per connection, events per batch and
/// channels per event.
fn counts(p: &mut Problems, at: &str, a: &RawApp) -> [usize; 4] {
    [
        (
            "max_connections_per_ip",
            a.max_connections_per_ip,
            defaults::HUB_MAX_CONNECTIONS_PER_IP,
        ),
        ("max_channels", a.max_channels, defaults::HUB_MAX_CHANNELS),
        (
            "max_batch_size",
            a.max_batch_size,
            defaults::HUB_MAX_BATCH_SIZE,
        ),
        (
            "max_channels_per_event",
            a.max_channels_per_event,
            defaults::HUB_MAX_CHANNELS_PER_EVENT,
        ),
    ]
    .map(|(key, value, default)| positive(p, format!("{at}.{key}"), value, default))
}

/// The longest channel name the app allows: 1 up to the protocol's ceiling.
fn name_length(p: &mut Problems, at: &str, a: &RawApp) -> usize {
    let (path, longest) = (
        format!("{at}.max_channel_name_length"),
        crate::pusher::channel::MAX_CHANNEL_NAME_LEN,
    );
    let length = positive(
        p,
        path.clone(),
        a.max_channel_name_length,
        defaults::HUB_MAX_CHANNEL_NAME_LENGTH,
    );
    if length > longest {
        p.push(path, format!("must be at most {longest}"));
    }
    length.min(longest)
}

/// A per-second rate `at.key`: at least 1.
fn rate(p: &mut Problems, at: &str, key: &str, value: Option<u32>, default: u32) -> u32 {
    let value = value.map(|n| n as usize);
    positive(p, format!("{at}.{key}"), value, default as usize) as u32
}

/// An app's id, key and secret are set, and its id and key are its own.
fn identity(p: &mut Problems, seen: &mut HashSet<String>, at: &str, a: &RawApp) {
    for (key, value) in [("id", &a.id), ("key", &a.key), ("secret", &a.secret)] {
        if value.is_empty() {
            p.push(format!("{at}.{key}"), "must not be empty");
        }
    }
    if !seen.insert(a.id.clone()) || !seen.insert(format!("key:{}", a.key)) {
        p.push(at.to_string(), "app id or key used twice");
    }
}
