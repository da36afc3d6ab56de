use super::*;

fn kind(name: &str) -> (ChannelKind, bool) {
    let c = ChannelName::parse(name).unwrap();
    (c.kind(), c.is_cache())
}

#[test]
fn each_pusher_prefix_gives_its_kind_and_cache_flag() {
    use ChannelKind::*;
    assert_eq!(kind("workspace.7"), (Public, false));
    assert_eq!(kind("cache-ticker"), (Public, true));
    assert_eq!(kind("private-workspace.7"), (Private, false));
    assert_eq!(kind("private-cache-workspace.7"), (Private, true));
    assert_eq!(kind("presence-room.1"), (Presence, false));
    assert_eq!(kind("presence-cache-room.1"), (Presence, true));
    assert_eq!(kind("private-encrypted-chat.3"), (PrivateEncrypted, false));
    assert_eq!(
        kind("private-encrypted-cache-chat.3"),
        (PrivateEncrypted, true)
    );
}

#[test]
fn prefixes_match_whole_words_only() {
    use ChannelKind::*;
    assert_eq!(kind("privatefoo"), (Public, false));
    assert_eq!(kind("presencefoo"), (Public, false));
    assert_eq!(kind("cached-thing"), (Public, false));
    assert_eq!(
        kind("Private-foo"),
        (Public, false),
        "prefixes are case-sensitive"
    );
    // `private-cache` without the trailing dash is a private channel named "cache".
    assert_eq!(kind("private-cache"), (Private, false));
    assert_eq!(kind("private-encrypted"), (Private, false));
}

#[test]
fn private_presence_and_encrypted_channels_require_auth_public_and_cache_do_not() {
    for name in [
        "private-a",
        "presence-a",
        "private-encrypted-a",
        "private-cache-a",
        "presence-cache-a",
    ] {
        assert!(ChannelName::parse(name).unwrap().requires_auth(), "{name}");
    }
    for name in ["a", "cache-a", "workspace.7"] {
        assert!(!ChannelName::parse(name).unwrap().requires_auth(), "{name}");
    }
}

#[test]
fn client_events_are_accepted_on_private_and_presence_channels_only() {
    let accepts = |n: &str| ChannelName::parse(n).unwrap().accepts_client_events();
    assert!(accepts("private-chat.1"));
    assert!(accepts("private-cache-chat.1"));
    assert!(accepts("presence-room.1"));
    assert!(!accepts("chat.1"));
    assert!(!accepts("cache-chat.1"));
    assert!(!accepts("private-encrypted-chat.1"));
}

#[test]
fn every_allowed_punctuation_character_is_accepted() {
    let name = "Az09_-=@,.;";
    assert_eq!(ChannelName::parse(name).unwrap().as_str(), name);
}

#[test]
fn characters_outside_the_pusher_set_are_rejected() {
    for name in [
        "a b", "a/b", "a:b", "a#b", "a+b", "a%20b", "ä", "a\u{0}", "a\n", "*", "a?b", "\"a\"",
    ] {
        assert_eq!(
            ChannelName::parse(name),
            Err(ChannelError::InvalidCharacter),
            "{name:?}"
        );
    }
}

#[test]
fn names_of_1_to_200_characters_are_accepted_and_longer_or_empty_are_rejected() {
    assert!(ChannelName::parse("a").is_ok());
    assert!(ChannelName::parse(&"a".repeat(200)).is_ok());
    assert_eq!(
        ChannelName::parse(&"a".repeat(201)),
        Err(ChannelError::TooLong)
    );
    assert_eq!(
        ChannelName::parse(&"a".repeat(1 << 20)),
        Err(ChannelError::TooLong)
    );
    assert_eq!(ChannelName::parse(""), Err(ChannelError::Empty));
}

#[test]
fn clients_cannot_subscribe_to_server_to_user_channels() {
    assert_eq!(
        ChannelName::parse("#server-to-user-42"),
        Err(ChannelError::Reserved)
    );
    assert_eq!(ChannelName::parse("#anything"), Err(ChannelError::Reserved));
}

#[test]
fn the_http_api_may_publish_to_server_to_user_channels() {
    let c = ChannelName::parse_publishable("#server-to-user-42").unwrap();
    assert_eq!(c.kind(), ChannelKind::ServerToUser);
    assert_eq!(c.server_to_user_id(), Some("42"));
    assert!(c.requires_auth());
    assert!(!c.accepts_client_events());
    assert_eq!(
        ChannelName::parse_publishable("private-a").unwrap().kind(),
        ChannelKind::Private
    );
}

#[test]
fn publishable_names_still_follow_the_character_and_length_rules() {
    assert_eq!(
        ChannelName::parse_publishable("#server-to-user-"),
        Err(ChannelError::Empty)
    );
    assert_eq!(
        ChannelName::parse_publishable("#server-to-user-a b"),
        Err(ChannelError::InvalidCharacter)
    );
    assert_eq!(
        ChannelName::parse_publishable("#server-to-user-#1"),
        Err(ChannelError::InvalidCharacter)
    );
    assert_eq!(
        ChannelName::parse_publishable("#other-42"),
        Err(ChannelError::Reserved)
    );
    let long = format!("#server-to-user-{}", "1".repeat(MAX_CHANNEL_NAME_LEN));
    assert_eq!(
        ChannelName::parse_publishable(&long),
        Err(ChannelError::TooLong)
    );
}

#[test]
fn server_to_user_names_round_trip() {
    assert_eq!(server_to_user("42"), "#server-to-user-42");
    assert!(is_server_to_user(&server_to_user("42")));
    assert!(!is_server_to_user("private-user.42"));
    let c = ChannelName::for_user("user@example.com").unwrap();
    assert_eq!(c.as_str(), "#server-to-user-user@example.com");
    assert_eq!(c.server_to_user_id(), Some("user@example.com"));
    assert_eq!(ChannelName::for_user(""), Err(ChannelError::Empty));
}

#[test]
fn a_channel_name_borrows_displays_and_parses_as_its_text() {
    use std::collections::HashSet;
    let c: ChannelName = "private-workspace.7".parse().unwrap();
    assert_eq!(c.to_string(), "private-workspace.7");
    let set: HashSet<ChannelName> = [c.clone()].into();
    assert!(set.contains("private-workspace.7"));
    assert_eq!(String::from(c), "private-workspace.7");
}
