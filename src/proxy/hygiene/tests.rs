use super::*;

use super::header_map as headers;

#[test]
fn ambiguous_framing_is_rejected() {
    let bad = [
        headers(&[("content-length", "5"), ("transfer-encoding", "chunked")]),
        headers(&[("content-length", "5"), ("content-length", "5")]),
        headers(&[("host", "a"), ("host", "b")]),
        headers(&[("content-length", "+5")]),
        headers(&[("content-length", "")]),
    ];
    for h in bad {
        assert!(check_framing(&h).is_err(), "{h:?}");
    }
    assert!(check_framing(&headers(&[("content-length", "5"), ("host", "a")])).is_ok());
}

#[test]
fn deny_lists_see_through_encoding_case_dots_and_slashes() {
    let deny: Vec<String> = ["/cleanup/", "/remoteauth/", "/api/internal/"]
        .map(String::from)
        .to_vec();
    for path in [
        "/cleanup/x",
        "/cleanup",
        "//cleanup/x",
        "/CleanUp/x",
        "/%63leanup/x",
        "/api/../cleanup/x",
        "/api/./internal/x",
        "/api//internal/y",
    ] {
        assert!(is_denied(&deny, path), "{path}");
    }
    for path in ["/api/sessions", "/cleanupx", "/api/internalx/y"] {
        assert!(!is_denied(&deny, path), "{path}");
    }
}

#[test]
fn canonical_paths_decode_unreserved_collapse_slashes_and_resolve_dots() {
    let cases = [
        ("/api/sessions", "/api/sessions"),
        ("/", "/"),
        ("/api/sessions/", "/api/sessions/"),
        ("/.well-known/x", "/.well-known/x"),
        (
            "//api/whatsapp/webhooks/webjs",
            "/api/whatsapp/webhooks/webjs",
        ),
        (
            "/api/whatsapp/webhooks/webj%73",
            "/api/whatsapp/webhooks/webjs",
        ),
        (
            "/api/%77hatsapp//webhooks/./webjs",
            "/api/whatsapp/webhooks/webjs",
        ),
        ("/cleanup/..", "/"),
        ("/cleanup/%2e%2e/all", "/all"),
        ("/api/internal/%2E%2E", "/api/"),
        ("/remoteauth/..", "/"),
        ("/a/b/../c", "/a/c"),
        ("/a/b/.", "/a/b/"),
        ("/a%20b/%7e%41", "/a%20b/~A"),
        ("/a%c3%a9", "/a%C3%A9"),
        // Raw UTF-8 (which http's parser lets through) stays as it came (found by fuzzing).
        ("//caf\u{e9}/./x", "/caf\u{e9}/x"),
        ("/%7e\u{e9}%7e", "/~\u{e9}~"),
        ("*", "*"),
    ];
    for (raw, want) in cases {
        assert_eq!(canonical_path(raw).as_deref(), Ok(want), "{raw}");
    }
}

#[test]
fn paths_whose_meaning_depends_on_the_decoder_are_refused() {
    for raw in [
        "/api/whatsapp/webhooks%2Fwebjs",
        "/api/whatsapp/webhooks%2fwebjs",
        "/api%5Cinternal",
        "/api\\internal",
        "/..",
        "/a/../../b",
        "/%2e%2e/etc",
        "/a%2",
        "/a%zz",
        "api",
    ] {
        assert_eq!(
            canonical_path(raw).map_err(|e| e.code()),
            Err("request.bad_path"),
            "{raw}"
        );
    }
}

#[test]
fn hop_by_hop_names_are_matched_in_any_case() {
    for (name, hop) in [
        (&b"Connection"[..], Some(Hop::Connection)),
        (b"UPGRADE", Some(Hop::Upgrade)),
        (b"te", Some(Hop::Other)),
        (b"Keep-Alive", Some(Hop::Other)),
        (b"proxy-connection", Some(Hop::Other)),
        (b"Trailer", Some(Hop::Other)),
        (b"transfer-encoding", None),
        (b"tx", None),
    ] {
        assert_eq!(hop_by_hop(name), hop, "{name:?}");
    }
}

#[test]
fn json_bodies_are_known_by_their_media_type_in_any_case() {
    for (value, json) in [
        ("application/json", true),
        ("Application/JSON; charset=utf-8", true),
        ("application/vnd.api+json", true),
        (" application/problem+JSON ;q=1", true),
        ("text/json", false),
        ("application/jsonx", false),
        ("application/x-www-form-urlencoded", false),
        ("+json", false),
    ] {
        assert_eq!(
            is_json(&headers(&[("content-type", value)])),
            json,
            "{value}"
        );
    }
    assert!(!is_json(&headers(&[])));
}
