//! Pusher protocol 7 frames: client messages in, server messages out.
//!
//! Pure: no I/O, no config, no clocks. Every frame is a JSON text frame `{"event", "channel"?,
//! "data"?}`. Rules this module pins:
//! - Client → server: [`decode_client`] accepts the `data` of `pusher:` events as an object
//!   (pusher-js) or as a JSON string holding one (other clients); [`encode_client`] writes objects.
//!   A `client-…` event keeps its `data` as the exact JSON text received (nothing re-serialized).
//!   Any other event name, bad JSON or a missing field is a [`ProtocolError`]: the session answers
//!   `pusher:error` (code [`ProtocolError::code`]) and keeps the connection.
//! - Server → client: the `data` of `pusher:`/`pusher_internal:` events is a JSON-encoded string
//!   (as Pusher's own server writes it). Channel events from the HTTP API carry the publisher's string as a JSON string
//!   ([`event`]); client events carry the sender's JSON as is ([`client_event`]).
//! - The JSON strings nested in frames (presence `channel_data`, signin `user_data`) are read by
//!   [`decode_channel_data`] / [`decode_user_data`]: user ids may be JSON integers (Laravel sends
//!   `getAuthIdentifier()`), which become their text; ids are always strings on the way out.
//! - Socket ids are `{node}.{counter}`, matching `^\d+\.\d+$` ([`socket_id`]).
//! - Close codes and their reconnect meaning live in [`close`].

use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

pub mod close;
mod encode;
mod ids;
mod payload;

pub use encode::encode_client;
pub use ids::{is_valid_socket_id, random_node_id, socket_id};
pub use payload::{decode_channel_data, decode_user_data, encode_channel_data, PresenceMember};

/// Longest event name echoed back in an error message.
const MAX_ECHOED_NAME: usize = 64;

/// A frame a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// `pusher:subscribe`. An empty `auth`/`channel_data` (pusher-js sends `auth: ""` for public
    /// channels) decodes as `None`.
    Subscribe {
        channel: String,
        auth: Option<String>,
        channel_data: Option<String>,
    },
    Unsubscribe {
        channel: String,
    },
    Ping,
    Pong,
    /// `pusher:signin`: `auth` = `{key}:{hex}` over `{socket_id}::user::{user_data}`.
    Signin {
        auth: String,
        user_data: String,
    },
    /// `client-…`: `data` is the exact JSON text the client sent (`null` when it sent none).
    ClientEvent {
        event: String,
        channel: String,
        data: String,
    },
}

/// Why a client frame could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("Invalid message format: not valid JSON")]
    InvalidJson,
    #[error("Invalid message format: {0}")]
    InvalidMessage(&'static str),
    #[error("Unsupported event received: {0}")]
    UnknownEvent(String),
}

impl ProtocolError {
    /// The `code` for the `pusher:error` answer (4200, as Laravel Reverb sends for bad input).
    pub fn code(&self) -> u16 {
        4200
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    event: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    channel: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct SubscribeData {
    channel: String,
    auth: Option<String>,
    channel_data: Option<String>,
}

#[derive(Deserialize)]
struct UnsubscribeData {
    channel: String,
}

#[derive(Deserialize)]
struct SigninData {
    auth: String,
    user_data: String,
}

/// Decodes one client text frame. Never panics. A `client-` event's `data` is kept as raw text
/// however deeply it nests (bounded by the app's `max_message_size`); elsewhere, nesting deeper
/// than serde_json's limit (128) is [`ProtocolError::InvalidJson`].
pub fn decode_client(text: &str) -> Result<ClientMessage, ProtocolError> {
    let envelope: Envelope = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ProtocolError::InvalidMessage("expected an object with a string `event`")
        }
        _ => ProtocolError::InvalidJson,
    })?;
    let data = envelope.data;
    match envelope.event.as_ref() {
        "pusher:subscribe" => {
            let d: SubscribeData = payload(data, "pusher:subscribe needs data.channel (string)")?;
            let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
            Ok(ClientMessage::Subscribe {
                channel: d.channel,
                auth: non_empty(d.auth),
                channel_data: non_empty(d.channel_data),
            })
        }
        "pusher:unsubscribe" => {
            let d: UnsubscribeData =
                payload(data, "pusher:unsubscribe needs data.channel (string)")?;
            Ok(ClientMessage::Unsubscribe { channel: d.channel })
        }
        "pusher:ping" => Ok(ClientMessage::Ping),
        "pusher:pong" => Ok(ClientMessage::Pong),
        "pusher:signin" => {
            let d: SigninData = payload(
                data,
                "pusher:signin needs data.auth and data.user_data (strings)",
            )?;
            Ok(ClientMessage::Signin {
                auth: d.auth,
                user_data: d.user_data,
            })
        }
        name if name.starts_with("client-") => {
            let channel = envelope.channel.ok_or(ProtocolError::InvalidMessage(
                "a client event needs a string `channel`",
            ))?;
            Ok(ClientMessage::ClientEvent {
                event: name.to_string(),
                channel: channel.into_owned(),
                data: data.unwrap_or(RawValue::NULL).get().to_string(),
            })
        }
        name => Err(ProtocolError::UnknownEvent(
            truncate(name, MAX_ECHOED_NAME).to_string(),
        )),
    }
}

/// The payload of a `pusher:` event: an object, or a JSON string holding an object.
fn payload<T: serde::de::DeserializeOwned>(
    data: Option<&RawValue>,
    rule: &'static str,
) -> Result<T, ProtocolError> {
    let raw = data.ok_or(ProtocolError::InvalidMessage(rule))?.get();
    let parsed = if raw.starts_with('"') {
        serde_json::from_str::<String>(raw).and_then(|inner| serde_json::from_str(&inner))
    } else {
        serde_json::from_str(raw)
    };
    parsed.map_err(|_| ProtocolError::InvalidMessage(rule))
}

#[derive(Serialize)]
struct Frame<'a, D: Serialize> {
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<D>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
}

fn frame<D: Serialize>(
    event: &str,
    channel: Option<&str>,
    data: Option<D>,
    user_id: Option<&str>,
) -> String {
    to_json(&Frame {
        event,
        channel,
        data,
        user_id,
    })
}

/// A `pusher:` event whose `data` is the object `payload`, JSON-encoded into a string.
fn pusher_frame(event: &str, channel: Option<&str>, payload: Vec<(&str, Val)>) -> String {
    frame(event, channel, Some(to_json(&Val::Obj(payload))), None)
}

/// A JSON value inside a frame. Encoders build from these only, so they always emit valid JSON.
#[derive(Serialize)]
#[serde(untagged)]
enum Val<'a> {
    Null,
    Int(u64),
    Str(&'a str),
    Raw(&'a RawValue),
    List(Vec<Val<'a>>),
    #[serde(serialize_with = "object")]
    Obj(Vec<(&'a str, Val<'a>)>),
}

fn object<S: Serializer>(pairs: &[(&str, Val)], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

/// Frames hold only strings, integers, string-keyed maps and validated raw JSON, on which
/// serde_json cannot fail: the empty fallback is unreachable, and keeps this function total.
fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// `text` as raw JSON if it is valid JSON, else `null`.
fn json_or_null(text: &str) -> Val<'_> {
    serde_json::from_str(text).map_or(Val::Null, Val::Raw)
}

/// `text` as raw JSON if it is valid JSON, else as a JSON string.
fn json_or_string(text: &str) -> Val<'_> {
    serde_json::from_str(text).map_or(Val::Str(text), Val::Raw)
}

/// `pusher:connection_established` with the socket id and the idle seconds before the client pings.
pub fn connection_established(socket_id: &str, activity_timeout_secs: u64) -> String {
    let data = vec![
        ("socket_id", Val::Str(socket_id)),
        ("activity_timeout", Val::Int(activity_timeout_secs)),
    ];
    pusher_frame("pusher:connection_established", None, data)
}

/// `pusher_internal:subscription_succeeded`; for presence channels `members` is every
/// `(user_id, user_info JSON)` (distinct ids) and becomes `{"presence":{"ids","hash","count"}}`.
/// An info that is not valid JSON is sent as `null`.
pub fn subscription_succeeded(channel: &str, members: Option<&[(String, String)]>) -> String {
    let data = match members {
        None => vec![],
        Some(members) => {
            let ids = members.iter().map(|(id, _)| Val::Str(id)).collect();
            let hash = members
                .iter()
                .map(|(id, info)| (id.as_str(), json_or_null(info)))
                .collect();
            let count = Val::Int(members.len() as u64);
            let presence = vec![
                ("ids", Val::List(ids)),
                ("hash", Val::Obj(hash)),
                ("count", count),
            ];
            vec![("presence", Val::Obj(presence))]
        }
    };
    pusher_frame(
        "pusher_internal:subscription_succeeded",
        Some(channel),
        data,
    )
}

/// `pusher:subscription_error`, read by pusher-js / Echo's `.error()`:
/// `{"type":"AuthError","error":"…","status":401}`.
pub fn subscription_error(channel: &str, kind: &str, error: &str, status: u16) -> String {
    let data = vec![
        ("type", Val::Str(kind)),
        ("error", Val::Str(error)),
        ("status", Val::Int(status.into())),
    ];
    pusher_frame("pusher:subscription_error", Some(channel), data)
}

/// `pusher_internal:member_added` (a user's first socket joined); `user_info` is JSON text.
pub fn member_added(channel: &str, user_id: &str, user_info: &str) -> String {
    let data = vec![
        ("user_id", Val::Str(user_id)),
        ("user_info", json_or_null(user_info)),
    ];
    pusher_frame("pusher_internal:member_added", Some(channel), data)
}

/// `pusher_internal:member_removed` (a user's last socket left).
pub fn member_removed(channel: &str, user_id: &str) -> String {
    pusher_frame(
        "pusher_internal:member_removed",
        Some(channel),
        vec![("user_id", Val::Str(user_id))],
    )
}

/// The server's `pusher:ping` after `activity_timeout` of silence.
pub fn ping() -> String {
    pusher_frame("pusher:ping", None, vec![])
}

/// The answer to a client's `pusher:ping`.
pub fn pong() -> String {
    pusher_frame("pusher:pong", None, vec![])
}

/// `pusher:error` with `{"code": code|null, "message"}`. It does not close the connection; a close
/// frame does ([`close`]).
pub fn error(code: Option<u16>, message: &str) -> String {
    let code = code.map_or(Val::Null, |c| Val::Int(c.into()));
    pusher_frame(
        "pusher:error",
        None,
        vec![("code", code), ("message", Val::Str(message))],
    )
}

/// `pusher:signin_success`; `user_data` is the signed string, passed on as a string.
pub fn signin_success(user_data: &str) -> String {
    pusher_frame(
        "pusher:signin_success",
        None,
        vec![("user_data", Val::Str(user_data))],
    )
}

/// A channel event published through the HTTP API: `data` is the publisher's string, sent as a
/// JSON string exactly as Pusher does (pusher-js parses it if it holds JSON).
pub fn event(channel: &str, event: &str, data: &str, user_id: Option<&str>) -> String {
    frame(event, Some(channel), Some(data), user_id)
}

/// A `client-…` event relayed to the channel's other subscribers: `data_json` (as decoded by
/// [`decode_client`]) is inserted as is, and `user_id` is the sender's on presence channels.
/// Text that is not valid JSON is sent as a JSON string.
pub fn client_event(channel: &str, event: &str, data_json: &str, user_id: Option<&str>) -> String {
    frame(
        event,
        Some(channel),
        Some(json_or_string(data_json)),
        user_id,
    )
}

/// `pusher:cache_miss`: a cache channel had no event to replay on subscribe.
pub fn cache_miss(channel: &str) -> String {
    frame::<()>("pusher:cache_miss", Some(channel), None, None)
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
