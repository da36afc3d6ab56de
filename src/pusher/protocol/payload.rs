//! The JSON strings carried inside frames: presence `channel_data` and signin `user_data`.
//!
//! Both are signed verbatim (see `hub::auth`), so they travel as strings; this only reads them.
//! User ids may be JSON strings or integers (Laravel sends `getAuthIdentifier()`, often a number);
//! an integer becomes its decimal text, which is what the hub sends back out.

use super::{json_or_null, to_json, ProtocolError, Val};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// A presence member from `channel_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceMember {
    /// A non-empty string, or an integer's decimal text.
    pub user_id: String,
    /// The exact JSON text of `user_info` (`null` when absent).
    pub user_info: String,
}

#[derive(Deserialize)]
struct ChannelData<'a> {
    user_id: Value,
    #[serde(default, borrow)]
    user_info: Option<&'a RawValue>,
}

/// Decodes presence `channel_data` (`{"user_id": "1"|1, "user_info": {…}?}`). Verify the signature
/// over the verbatim string first; this only reads it.
pub fn decode_channel_data(channel_data: &str) -> Result<PresenceMember, ProtocolError> {
    const RULE: &str = "channel_data must be an object with user_id (non-empty string or integer)";
    let data: ChannelData =
        serde_json::from_str(channel_data).map_err(|_| ProtocolError::InvalidMessage(RULE))?;
    let user_id = user_id_text(data.user_id).ok_or(ProtocolError::InvalidMessage(RULE))?;
    let user_info = data.user_info.unwrap_or(RawValue::NULL).get().to_string();
    Ok(PresenceMember { user_id, user_info })
}

/// The `channel_data` string an auth endpoint would return for `member`.
pub fn encode_channel_data(member: &PresenceMember) -> String {
    let user_info = json_or_null(&member.user_info);
    to_json(&Val::Obj(vec![
        ("user_id", Val::Str(&member.user_id)),
        ("user_info", user_info),
    ]))
}

/// The user id in a `pusher:signin` `user_data` (`{"id": "…"|n, …}`), as text.
pub fn decode_user_data(user_data: &str) -> Result<String, ProtocolError> {
    const RULE: &str = "user_data must be an object with id (non-empty string or integer)";
    #[derive(Deserialize)]
    struct UserData {
        id: Value,
    }
    let data: UserData =
        serde_json::from_str(user_data).map_err(|_| ProtocolError::InvalidMessage(RULE))?;
    user_id_text(data.id).ok_or(ProtocolError::InvalidMessage(RULE))
}

fn user_id_text(id: Value) -> Option<String> {
    match id {
        Value::String(s) if !s.is_empty() => Some(s),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}
