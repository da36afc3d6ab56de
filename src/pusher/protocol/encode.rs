//! What a client sends, written as pusher-js writes it (for tests, tools and the fuzz targets).

use super::{frame, json_or_string, ClientMessage, Val};

/// The frame a client would send for `message` (pusher-js's form: `data` as an object).
pub fn encode_client(message: &ClientMessage) -> String {
    use ClientMessage::*;
    let (event, channel, data) = match message {
        Subscribe {
            channel,
            auth,
            channel_data,
        } => {
            let mut data = vec![("channel", Val::Str(channel))];
            data.extend(auth.as_deref().map(|a| ("auth", Val::Str(a))));
            data.extend(
                channel_data
                    .as_deref()
                    .map(|c| ("channel_data", Val::Str(c))),
            );
            ("pusher:subscribe", None, Val::Obj(data))
        }
        Unsubscribe { channel } => (
            "pusher:unsubscribe",
            None,
            Val::Obj(vec![("channel", Val::Str(channel))]),
        ),
        Ping => ("pusher:ping", None, Val::Obj(vec![])),
        Pong => ("pusher:pong", None, Val::Obj(vec![])),
        Signin { auth, user_data } => {
            let data = vec![("auth", Val::Str(auth)), ("user_data", Val::Str(user_data))];
            ("pusher:signin", None, Val::Obj(data))
        }
        ClientEvent {
            event,
            channel,
            data,
        } => (event.as_str(), Some(channel.as_str()), json_or_string(data)),
    };
    frame(event, channel, Some(data), None)
}
