//! Channel names and what their prefix means (Pusher rules).
//!
//! Pure: no I/O, no config. A name is 1..=200 characters of `[A-Za-z0-9_\-=@,.;]`; its prefix picks
//! the [`ChannelKind`] and whether it is a cache channel:
//!
//! | prefix                      | kind                            | cache |
//! |-----------------------------|---------------------------------|-------|
//! | `private-encrypted-cache-`  | [`ChannelKind::PrivateEncrypted`] | yes |
//! | `private-encrypted-`        | [`ChannelKind::PrivateEncrypted`] | no  |
//! | `private-cache-`            | [`ChannelKind::Private`]        | yes   |
//! | `private-`                  | [`ChannelKind::Private`]        | no    |
//! | `presence-cache-`           | [`ChannelKind::Presence`]       | yes   |
//! | `presence-`                 | [`ChannelKind::Presence`]       | no    |
//! | `cache-`                    | [`ChannelKind::Public`]         | yes   |
//! | anything else               | [`ChannelKind::Public`]         | no    |
//!
//! `#server-to-user-{user_id}` is the reserved channel a signed-in user's sockets receive
//! server-to-user events on ([`ChannelKind::ServerToUser`]). Clients can never subscribe to it
//! ([`ChannelName::parse`] refuses the `#`); the HTTP API may publish to it
//! ([`ChannelName::parse_publishable`]).

use std::borrow::Borrow;
use std::fmt;

/// Longest channel name any app may allow, in characters (all allowed characters are one byte):
/// Soketi's 200. An app's own limit, `max_channel_name_length`, is Pusher's 164 by default.
pub const MAX_CHANNEL_NAME_LEN: usize = 200;
/// Prefix of the reserved per-user channel.
pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

/// What a channel's prefix says about who may subscribe and what they see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// Anyone with the app key may subscribe.
    Public,
    /// `private-`: subscribing needs a signature over `{socket_id}:{channel}`.
    Private,
    /// `presence-`: like private, plus `channel_data` (user id and info) in the signature.
    Presence,
    /// `private-encrypted-`: private, and payloads are end-to-end encrypted by the publisher.
    PrivateEncrypted,
    /// `#server-to-user-{id}`: reserved; only the hub subscribes a signed-in user's sockets.
    ServerToUser,
}

/// Why a channel name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("channel name is empty")]
    Empty,
    #[error("channel name is longer than {MAX_CHANNEL_NAME_LEN} characters")]
    TooLong,
    #[error("channel name contains a character outside [A-Za-z0-9_-=@,.;]")]
    InvalidCharacter,
    #[error("channel name is reserved for the server")]
    Reserved,
}

/// A validated channel name. Compares, hashes and borrows as its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(String);

impl ChannelName {
    /// A name a client may subscribe to (or an API caller query): Pusher's character set and
    /// length. `#server-to-user-…` is [`ChannelError::Reserved`].
    pub fn parse(name: &str) -> Result<ChannelName, ChannelError> {
        if name.starts_with('#') {
            return Err(ChannelError::Reserved);
        }
        check_chars(name)?;
        Ok(ChannelName(name.to_string()))
    }

    /// A name the HTTP API may publish to: everything [`parse`](Self::parse) accepts, plus
    /// `#server-to-user-{user_id}` with a non-empty user id of allowed characters.
    pub fn parse_publishable(name: &str) -> Result<ChannelName, ChannelError> {
        let Some(user_id) = name.strip_prefix(SERVER_TO_USER_PREFIX) else {
            return ChannelName::parse(name);
        };
        if name.len() > MAX_CHANNEL_NAME_LEN {
            return Err(ChannelError::TooLong);
        }
        check_chars(user_id)?;
        Ok(ChannelName(name.to_string()))
    }

    /// The reserved channel of one user (what [`parse_publishable`](Self::parse_publishable)
    /// accepts for a valid user id).
    pub fn for_user(user_id: &str) -> Result<ChannelName, ChannelError> {
        ChannelName::parse_publishable(&server_to_user(user_id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    pub fn kind(&self) -> ChannelKind {
        kind_of(&self.0).0
    }

    /// `cache-`, `private-cache-`, `presence-cache-` or `private-encrypted-cache-`: the hub keeps the
    /// last event and replays it to new subscribers (or sends `pusher:cache_miss`).
    pub fn is_cache(&self) -> bool {
        kind_of(&self.0).1
    }

    pub fn is_presence(&self) -> bool {
        self.kind() == ChannelKind::Presence
    }

    /// Private, presence and private-encrypted channels need a signed `auth` to subscribe
    /// (server-to-user channels are never subscribed by clients, so they count as protected too).
    pub fn requires_auth(&self) -> bool {
        self.kind() != ChannelKind::Public
    }

    /// Pusher allows `client-` events on private and presence channels only (not on encrypted ones:
    /// the server cannot encrypt for the sender).
    pub fn accepts_client_events(&self) -> bool {
        matches!(self.kind(), ChannelKind::Private | ChannelKind::Presence)
    }

    /// The user id of a `#server-to-user-{id}` channel.
    pub fn server_to_user_id(&self) -> Option<&str> {
        self.0.strip_prefix(SERVER_TO_USER_PREFIX)
    }
}

/// `#server-to-user-{user_id}`: where the HTTP API sends events for one signed-in user.
pub fn server_to_user(user_id: &str) -> String {
    format!("{SERVER_TO_USER_PREFIX}{user_id}")
}

/// Whether `name` is a reserved per-user channel.
pub fn is_server_to_user(name: &str) -> bool {
    name.starts_with(SERVER_TO_USER_PREFIX)
}

fn check_chars(name: &str) -> Result<(), ChannelError> {
    if name.is_empty() {
        return Err(ChannelError::Empty);
    }
    if name.len() > MAX_CHANNEL_NAME_LEN {
        return Err(ChannelError::TooLong);
    }
    if !name.bytes().all(is_channel_byte) {
        return Err(ChannelError::InvalidCharacter);
    }
    Ok(())
}

fn is_channel_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'@' | b',' | b'.' | b';')
}

/// `(kind, cache)` from the prefix; the longest prefix wins.
/// Whether `name` is a cache channel, as [`ChannelName::is_cache`] decides (for a name already
/// checked, without parsing it again).
pub fn is_cache_channel(name: &str) -> bool {
    kind_of(name).1
}

fn kind_of(name: &str) -> (ChannelKind, bool) {
    const PREFIXES: [(&str, ChannelKind, bool); 8] = [
        (
            "private-encrypted-cache-",
            ChannelKind::PrivateEncrypted,
            true,
        ),
        ("private-encrypted-", ChannelKind::PrivateEncrypted, false),
        ("private-cache-", ChannelKind::Private, true),
        ("private-", ChannelKind::Private, false),
        ("presence-cache-", ChannelKind::Presence, true),
        ("presence-", ChannelKind::Presence, false),
        ("cache-", ChannelKind::Public, true),
        (SERVER_TO_USER_PREFIX, ChannelKind::ServerToUser, false),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _, _)| name.starts_with(prefix))
        .map_or((ChannelKind::Public, false), |&(_, kind, cache)| {
            (kind, cache)
        })
}

impl std::str::FromStr for ChannelName {
    type Err = ChannelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChannelName::parse(s)
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ChannelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for ChannelName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<ChannelName> for String {
    fn from(name: ChannelName) -> String {
        name.0
    }
}

#[cfg(test)]
mod tests;
