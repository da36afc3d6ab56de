use super::*;
use serde_json::{json, Value};

mod server;

fn subscribe(channel: &str, auth: Option<&str>, channel_data: Option<&str>) -> ClientMessage {
    ClientMessage::Subscribe {
        channel: channel.into(),
        auth: auth.map(Into::into),
        channel_data: channel_data.map(Into::into),
    }
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// The inner payload of a server frame whose `data` must be a JSON-encoded string.
fn inner(frame: &str) -> Value {
    let v = parse(frame);
    let data = v["data"]
        .as_str()
        .expect("data of pusher events is a JSON string");
    serde_json::from_str(data).unwrap()
}

// ---- client → server ----

#[test]
fn subscribe_from_pusher_js_has_data_as_an_object() {
    let text = r#"{"event":"pusher:subscribe","data":{"auth":"","channel":"workspace.7"}}"#;
    assert_eq!(
        decode_client(text),
        Ok(subscribe("workspace.7", None, None))
    );
}

#[test]
fn subscribe_data_may_be_a_json_string_holding_the_object() {
    let text =
        r#"{"event":"pusher:subscribe","data":"{\"channel\":\"private-a\",\"auth\":\"k:s\"}"}"#;
    assert_eq!(
        decode_client(text),
        Ok(subscribe("private-a", Some("k:s"), None))
    );
}

#[test]
fn presence_subscribe_keeps_channel_data_verbatim() {
    let cd = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
    let text = json!({"event":"pusher:subscribe","data":{"channel":"presence-a","auth":"k:s","channel_data":cd}});
    assert_eq!(
        decode_client(&text.to_string()),
        Ok(subscribe("presence-a", Some("k:s"), Some(cd)))
    );
}

#[test]
fn empty_or_null_auth_and_channel_data_decode_as_none() {
    let text =
        r#"{"event":"pusher:subscribe","data":{"channel":"a","auth":null,"channel_data":""}}"#;
    assert_eq!(decode_client(text), Ok(subscribe("a", None, None)));
}

#[test]
fn unknown_fields_are_ignored() {
    let text = r#"{"event":"pusher:subscribe","data":{"channel":"a","extra":1},"id":5}"#;
    assert_eq!(decode_client(text), Ok(subscribe("a", None, None)));
}

#[test]
fn subscribe_without_a_string_channel_is_an_invalid_message() {
    for text in [
        r#"{"event":"pusher:subscribe","data":{}}"#,
        r#"{"event":"pusher:subscribe","data":{"channel":5}}"#,
        r#"{"event":"pusher:subscribe"}"#,
        r#"{"event":"pusher:subscribe","data":null}"#,
        r#"{"event":"pusher:subscribe","data":"not json"}"#,
        r#"{"event":"pusher:subscribe","data":"\"a string in a string\""}"#,
        r#"{"event":"pusher:subscribe","data":[1,2]}"#,
        r#"{"event":"pusher:subscribe","data":{"channel":"a","channel_data":{"user_id":1}}}"#,
    ] {
        assert!(
            matches!(decode_client(text), Err(ProtocolError::InvalidMessage(_))),
            "{text}"
        );
    }
}

#[test]
fn unsubscribe_ping_pong_and_signin_decode() {
    let t = r#"{"event":"pusher:unsubscribe","data":{"channel":"a"}}"#;
    assert_eq!(
        decode_client(t),
        Ok(ClientMessage::Unsubscribe {
            channel: "a".into()
        })
    );
    assert_eq!(
        decode_client(r#"{"event":"pusher:ping","data":{}}"#),
        Ok(ClientMessage::Ping)
    );
    assert_eq!(
        decode_client(r#"{"event":"pusher:ping"}"#),
        Ok(ClientMessage::Ping)
    );
    assert_eq!(
        decode_client(r#"{"event":"pusher:pong","data":"{}"}"#),
        Ok(ClientMessage::Pong)
    );
    let t = r#"{"event":"pusher:signin","data":{"auth":"k:s","user_data":"{\"id\":\"1\"}"}}"#;
    let signin = ClientMessage::Signin {
        auth: "k:s".into(),
        user_data: r#"{"id":"1"}"#.into(),
    };
    assert_eq!(decode_client(t), Ok(signin));
    let t = r#"{"event":"pusher:signin","data":{"auth":"k:s"}}"#;
    assert!(matches!(
        decode_client(t),
        Err(ProtocolError::InvalidMessage(_))
    ));
}

#[test]
fn client_event_data_is_kept_as_the_exact_json_text() {
    let t =
        r#"{"event":"client-typing","channel":"private-chat.1","data":{"b": 1.50, "a":[true]}}"#;
    let expected = ClientMessage::ClientEvent {
        event: "client-typing".into(),
        channel: "private-chat.1".into(),
        data: r#"{"b": 1.50, "a":[true]}"#.into(),
    };
    assert_eq!(decode_client(t), Ok(expected));
}

#[test]
fn client_event_data_given_as_a_string_stays_a_json_string() {
    let t = r#"{"event":"client-x","channel":"private-a","data":"{\"a\":1}"}"#;
    let Ok(ClientMessage::ClientEvent { data, .. }) = decode_client(t) else {
        panic!()
    };
    assert_eq!(data, r#""{\"a\":1}""#);
}

#[test]
fn client_event_without_data_carries_null_and_without_channel_is_invalid() {
    let t = r#"{"event":"client-x","channel":"private-a"}"#;
    let Ok(ClientMessage::ClientEvent { data, .. }) = decode_client(t) else {
        panic!()
    };
    assert_eq!(data, "null");
    let t = r#"{"event":"client-x","data":{}}"#;
    assert!(matches!(
        decode_client(t),
        Err(ProtocolError::InvalidMessage(_))
    ));
    let t = r#"{"event":"client-x","channel":7,"data":{}}"#;
    assert!(matches!(
        decode_client(t),
        Err(ProtocolError::InvalidMessage(_))
    ));
}

#[test]
fn unknown_and_internal_events_are_rejected_with_a_truncated_name() {
    for (text, name) in [
        (r#"{"event":"pusher:bogus","data":{}}"#, "pusher:bogus"),
        (
            r#"{"event":"pusher_internal:member_added","data":{}}"#,
            "pusher_internal:member_added",
        ),
        (
            r#"{"event":"my-event","channel":"a","data":{}}"#,
            "my-event",
        ),
        (r#"{"event":"","data":{}}"#, ""),
    ] {
        assert_eq!(
            decode_client(text),
            Err(ProtocolError::UnknownEvent(name.into())),
            "{text}"
        );
    }
    let long = format!(r#"{{"event":"{}é"}}"#, "x".repeat(63));
    let Err(ProtocolError::UnknownEvent(echoed)) = decode_client(&long) else {
        panic!()
    };
    assert_eq!(
        echoed,
        "x".repeat(63),
        "cut at a char boundary, at most 64 bytes"
    );
}

#[test]
fn malformed_frames_are_errors_not_panics() {
    let deep = format!(
        "{{\"event\":\"client-x\",\"channel\":\"a\",\"data\":{}}}",
        "[".repeat(100_000)
    );
    let garbage: String = (0..1 << 20)
        .map(|i| char::from(b' ' + (i % 90) as u8))
        .collect();
    for text in [
        "",
        "   ",
        "not json",
        "{",
        "[]",
        "[1,2]",
        "null",
        "42",
        "\"pusher:ping\"",
        "{}",
        r#"{"event":5}"#,
        r#"{"event":null}"#,
        r#"{"data":{}}"#,
        r#"{"event":"pusher:ping"} trailing"#,
        r#"{"event":"pusher:ping","event":"pusher:pong"}"#,
        "{\"event\":\"\\ud800\"}",
        &deep,
        &garbage,
    ] {
        let got = decode_client(text);
        assert!(got.is_err(), "{:?}", &text[..text.len().min(40)]);
        assert_eq!(got.unwrap_err().code(), 4200);
    }
}

#[test]
fn syntax_errors_and_shape_errors_are_told_apart() {
    assert_eq!(decode_client("{"), Err(ProtocolError::InvalidJson));
    assert!(matches!(
        decode_client("[]"),
        Err(ProtocolError::InvalidMessage(_))
    ));
}

#[test]
fn error_messages_never_echo_the_payload() {
    let secret_ish = "x".repeat(10_000);
    let text =
        format!(r#"{{"event":"pusher:subscribe","data":{{"channel":{{"{secret_ish}":1}}}}}}"#);
    let message = decode_client(&text).unwrap_err().to_string();
    assert!(message.len() < 200, "{message}");
}

#[test]
fn every_client_message_round_trips_through_encode_and_decode() {
    let messages = [
        subscribe("workspace.7", None, None),
        subscribe("private-workspace.7", Some("k:abc"), None),
        subscribe("presence-a", Some("k:abc"), Some(r#"{"user_id":"1"}"#)),
        ClientMessage::Unsubscribe {
            channel: "a".into(),
        },
        ClientMessage::Ping,
        ClientMessage::Pong,
        ClientMessage::Signin {
            auth: "k:abc".into(),
            user_data: r#"{"id":"1"}"#.into(),
        },
        ClientMessage::ClientEvent {
            event: "client-a".into(),
            channel: "private-b".into(),
            data: r#"{"x":[1,"é"]}"#.into(),
        },
        ClientMessage::ClientEvent {
            event: "client-a".into(),
            channel: "private-b".into(),
            data: "null".into(),
        },
    ];
    for m in messages {
        assert_eq!(decode_client(&encode_client(&m)), Ok(m.clone()), "{m:?}");
    }
}

#[test]
fn encode_client_writes_pusher_js_frames() {
    assert_eq!(
        encode_client(&ClientMessage::Ping),
        r#"{"event":"pusher:ping","data":{}}"#
    );
    assert_eq!(
        encode_client(&subscribe("private-a", Some("k:s"), None)),
        r#"{"event":"pusher:subscribe","data":{"channel":"private-a","auth":"k:s"}}"#
    );
}
