//! Server → client frames, presence data, socket ids and close codes (client frames are in the parent).

use super::*;

// ---- server → client ----

#[test]
fn connection_established_carries_socket_id_and_activity_timeout_in_a_string() {
    assert_eq!(
        connection_established("1.2", 120),
        r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":120}"}"#
    );
}

#[test]
fn subscription_succeeded_for_a_non_presence_channel_has_empty_data() {
    assert_eq!(
        subscription_succeeded("private-a", None),
        r#"{"event":"pusher_internal:subscription_succeeded","channel":"private-a","data":"{}"}"#
    );
}

#[test]
fn presence_subscription_succeeded_lists_ids_hash_and_count() {
    let members = [
        ("1".to_string(), r#"{"name":"Ann"}"#.to_string()),
        ("2".to_string(), "null".to_string()),
    ];
    let frame = subscription_succeeded("presence-room", Some(&members));
    assert_eq!(parse(&frame)["channel"], "presence-room");
    assert_eq!(
        inner(&frame),
        json!({"presence":{"ids":["1","2"],"hash":{"1":{"name":"Ann"},"2":null},"count":2}})
    );
}

#[test]
fn presence_user_info_that_is_not_json_is_sent_as_null() {
    let members = [("1".to_string(), "{broken".to_string())];
    let frame = subscription_succeeded("presence-room", Some(&members));
    assert_eq!(inner(&frame)["presence"]["hash"]["1"], Value::Null);
    assert_eq!(
        inner(&member_added("presence-room", "1", "{broken"))["user_info"],
        Value::Null
    );
}

#[test]
fn an_empty_presence_channel_still_has_the_presence_object() {
    let frame = subscription_succeeded("presence-room", Some(&[]));
    assert_eq!(
        inner(&frame),
        json!({"presence":{"ids":[],"hash":{},"count":0}})
    );
}

#[test]
fn subscription_error_has_type_error_and_status_for_echo() {
    assert_eq!(
        subscription_error("private-a", "AuthError", "Invalid signature", 401),
        r#"{"event":"pusher:subscription_error","channel":"private-a","data":"{\"type\":\"AuthError\",\"error\":\"Invalid signature\",\"status\":401}"}"#
    );
}

#[test]
fn member_added_and_removed_carry_the_user() {
    let added = member_added("presence-a", "7", r#"{"name":"Bo"}"#);
    assert_eq!(parse(&added)["event"], "pusher_internal:member_added");
    assert_eq!(parse(&added)["channel"], "presence-a");
    assert_eq!(
        inner(&added),
        json!({"user_id":"7","user_info":{"name":"Bo"}})
    );
    assert_eq!(
        member_removed("presence-a", "7"),
        r#"{"event":"pusher_internal:member_removed","channel":"presence-a","data":"{\"user_id\":\"7\"}"}"#
    );
}

#[test]
fn ping_pong_error_and_signin_success_frames() {
    assert_eq!(ping(), r#"{"event":"pusher:ping","data":"{}"}"#);
    assert_eq!(pong(), r#"{"event":"pusher:pong","data":"{}"}"#);
    assert_eq!(
        error(Some(4001), "nope"),
        r#"{"event":"pusher:error","data":"{\"code\":4001,\"message\":\"nope\"}"}"#
    );
    assert_eq!(
        error(None, "x"),
        r#"{"event":"pusher:error","data":"{\"code\":null,\"message\":\"x\"}"}"#
    );
    assert_eq!(
        signin_success(r#"{"id":"1"}"#),
        r#"{"event":"pusher:signin_success","data":"{\"user_data\":\"{\\\"id\\\":\\\"1\\\"}\"}"}"#
    );
}

#[test]
fn an_api_event_sends_the_publishers_data_string_as_a_json_string() {
    let data = r#"{"workspace_id":7,"qr_code_base64":"data:image/png;base64,AAA="}"#;
    let frame = event("private-workspace.7", "qr-code-generated", data, None);
    assert_eq!(
        frame,
        r#"{"event":"qr-code-generated","channel":"private-workspace.7","data":"{\"workspace_id\":7,\"qr_code_base64\":\"data:image/png;base64,AAA=\"}"}"#
    );
    let decoded: Value = serde_json::from_str(parse(&frame)["data"].as_str().unwrap()).unwrap();
    assert!(
        decoded["workspace_id"].is_u64(),
        "workspace_id stays a JSON number"
    );
    assert_eq!(
        parse(&event("a", "e", "plain text", None))["data"],
        "plain text"
    );
}

#[test]
fn a_client_event_relays_the_senders_json_and_adds_user_id_on_presence() {
    assert_eq!(
        client_event(
            "presence-a",
            "client-typing",
            r#"{"typing": true}"#,
            Some("9")
        ),
        r#"{"event":"client-typing","channel":"presence-a","data":{"typing": true},"user_id":"9"}"#
    );
    assert_eq!(
        client_event("private-a", "client-x", "not json", None),
        r#"{"event":"client-x","channel":"private-a","data":"not json"}"#
    );
}

#[test]
fn cache_miss_names_the_channel() {
    assert_eq!(
        cache_miss("cache-a"),
        r#"{"event":"pusher:cache_miss","channel":"cache-a"}"#
    );
}

#[test]
fn encoders_escape_hostile_strings_into_valid_json() {
    let nasty = "\"}\n\u{0}\u{2028}é\\";
    for frame in [
        event(nasty, nasty, nasty, Some(nasty)),
        error(None, nasty),
        subscription_error(nasty, nasty, nasty, 400),
        member_removed(nasty, nasty),
        connection_established(nasty, 0),
    ] {
        let v = parse(&frame);
        assert!(v.is_object(), "{frame}");
    }
    assert_eq!(parse(&event("a", "e", nasty, None))["data"], nasty);
}

// ---- presence channel_data, signin user_data, socket ids, close codes ----

#[test]
fn channel_data_gives_the_user_id_as_text_and_the_info_verbatim() {
    let m = decode_channel_data(r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#).unwrap();
    assert_eq!(
        m,
        PresenceMember {
            user_id: "10".into(),
            user_info: r#"{"name":"Mr. Channels"}"#.into()
        }
    );
    let m = decode_channel_data(r#"{"user_id":"u-1"}"#).unwrap();
    assert_eq!(m.user_info, "null");
    assert_eq!(decode_channel_data(&encode_channel_data(&m)), Ok(m));
}

#[test]
fn channel_data_without_a_usable_user_id_is_rejected() {
    for cd in [
        "",
        "{}",
        "[]",
        r#"{"user_id":""}"#,
        r#"{"user_id":null}"#,
        r#"{"user_id":1.5}"#,
        r#"{"user_id":{"a":1}}"#,
        r#"{"user_id":true}"#,
        "{\"user_id\":\"1\"",
        "\"{}\"",
    ] {
        assert!(decode_channel_data(cd).is_err(), "{cd}");
    }
}

#[test]
fn signin_user_data_needs_a_non_empty_id() {
    assert_eq!(
        decode_user_data(r#"{"id":"12345","name":"x"}"#),
        Ok("12345".into())
    );
    assert_eq!(decode_user_data(r#"{"id":12345}"#), Ok("12345".into()));
    for ud in [
        "",
        "{}",
        r#"{"id":""}"#,
        r#"{"id":[1]}"#,
        r#"{"user_id":"1"}"#,
        "null",
    ] {
        assert!(decode_user_data(ud).is_err(), "{ud}");
    }
}

#[test]
fn socket_ids_are_node_dot_counter_and_validate() {
    assert_eq!(socket_id(3, 42), "3.42");
    assert_eq!(
        socket_id(u32::MAX, u64::MAX),
        "4294967295.18446744073709551615"
    );
    assert!(is_valid_socket_id(&socket_id(0, 0)));
    assert!(is_valid_socket_id("1234.1234"));
}

#[test]
fn socket_ids_not_matching_digits_dot_digits_are_invalid() {
    for s in [
        "", ".", "1.", ".1", "1", "1.2.3", "a.1", "1.a", " 1.2", "1.2 ", "-1.2", "1,2", "١.٢",
        "1.2\n",
    ] {
        assert!(!is_valid_socket_id(s), "{s:?}");
    }
}

#[test]
fn close_codes_follow_the_pusher_table_and_its_reconnect_ranges() {
    use close::*;
    let never = [
        SSL_ONLY,
        APP_NOT_FOUND,
        APP_DISABLED,
        OVER_CONNECTION_QUOTA,
        PATH_NOT_FOUND,
    ];
    let never2 = [
        INVALID_VERSION,
        UNSUPPORTED_PROTOCOL,
        NO_PROTOCOL,
        UNAUTHORIZED,
    ];
    assert!(never
        .iter()
        .chain(&never2)
        .all(|c| (4000..4100).contains(c)));
    assert_eq!(OVER_CAPACITY, 4100);
    assert!([RECONNECT, PONG_NOT_RECEIVED, INACTIVITY]
        .iter()
        .all(|c| (4200..4300).contains(c)));
    assert_eq!(
        (CLIENT_EVENT_REJECTED, CLIENT_EVENT_RATE_LIMIT),
        (4300, 4301)
    );
    assert_eq!(reason(APP_NOT_FOUND), "Application does not exist");
    assert_eq!(reason(PONG_NOT_RECEIVED), "Pong reply not received");
    assert_eq!(reason(1000), "");
}
