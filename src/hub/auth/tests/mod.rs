use super::*;

mod api;

// Pusher's documented credentials (auth-signatures and HTTP API reference worked examples).
const KEY: &str = "278d425bdf160c739803";
const SECRET: &str = "7ad3773142a6692b25b8";
const SOCKET: &str = "1234.1234";
const PRIVATE_SIG: &str = "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
const PRESENCE_DATA: &str = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
const PRESENCE_SIG: &str = "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80";
const USER_DATA: &str = r#"{"id":"12345"}"#;
const SIGNIN_SIG: &str = "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba";
const EVENTS_BODY: &str = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
const EVENTS_MD5: &str = "ec365a775a4cd0599faeb73354201b6f";
const EVENTS_TS: i64 = 1353088179;
const EVENTS_SIG: &str = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";

fn docs_events_query() -> String {
    format!(
        "auth_key={KEY}&auth_timestamp={EVENTS_TS}&auth_version=1.0&body_md5={EVENTS_MD5}&auth_signature={EVENTS_SIG}"
    )
}

fn verify_events(query: &str, body: &str, now: i64) -> Result<(), ApiAuthError> {
    verify_api_request(
        KEY,
        SECRET,
        "POST",
        "/apps/3/events",
        query,
        body.as_bytes(),
        now,
    )
}

// ---- channel auth and signin ----

#[test]
fn private_channel_signature_matches_the_pusher_docs() {
    assert_eq!(
        channel_signature(SECRET, SOCKET, "private-foobar", None),
        PRIVATE_SIG
    );
    let auth = format!("{KEY}:{PRIVATE_SIG}");
    assert_eq!(
        sign_channel_auth(KEY, SECRET, SOCKET, "private-foobar", None),
        auth
    );
    assert!(verify_channel_auth(
        KEY,
        SECRET,
        SOCKET,
        "private-foobar",
        None,
        &auth
    ));
}

#[test]
fn presence_signature_covers_channel_data_verbatim_as_in_the_pusher_docs() {
    let sig = channel_signature(SECRET, SOCKET, "presence-foobar", Some(PRESENCE_DATA));
    assert_eq!(sig, PRESENCE_SIG);
    let auth = format!("{KEY}:{PRESENCE_SIG}");
    assert!(verify_channel_auth(
        KEY,
        SECRET,
        SOCKET,
        "presence-foobar",
        Some(PRESENCE_DATA),
        &auth
    ));
    let reordered = r#"{"user_info":{"name":"Mr. Channels"},"user_id":10}"#;
    assert!(!verify_channel_auth(
        KEY,
        SECRET,
        SOCKET,
        "presence-foobar",
        Some(reordered),
        &auth
    ));
    assert!(!verify_channel_auth(
        KEY,
        SECRET,
        SOCKET,
        "presence-foobar",
        None,
        &auth
    ));
}

#[test]
fn signin_signature_matches_the_pusher_docs() {
    let auth = format!("{KEY}:{SIGNIN_SIG}");
    assert_eq!(sign_signin(KEY, SECRET, SOCKET, USER_DATA), auth);
    assert!(verify_signin(KEY, SECRET, SOCKET, USER_DATA, &auth));
    assert!(!verify_signin(
        KEY,
        SECRET,
        SOCKET,
        r#"{"id":"12346"}"#,
        &auth
    ));
    assert!(!verify_signin(KEY, SECRET, "1234.1235", USER_DATA, &auth));
}

#[test]
fn a_signature_for_another_socket_or_channel_is_rejected() {
    let auth = format!("{KEY}:{PRIVATE_SIG}");
    assert!(!verify_channel_auth(
        KEY,
        SECRET,
        "1234.1235",
        "private-foobar",
        None,
        &auth
    ));
    assert!(!verify_channel_auth(
        KEY,
        SECRET,
        SOCKET,
        "private-foobaz",
        None,
        &auth
    ));
    assert!(!verify_channel_auth(
        KEY,
        "other-secret",
        SOCKET,
        "private-foobar",
        None,
        &auth
    ));
}

#[test]
fn malformed_channel_auth_strings_are_rejected() {
    let upper = PRIVATE_SIG.to_ascii_uppercase();
    let bad = [
        String::new(),
        KEY.to_string(),
        format!("{KEY}:"),
        format!(":{PRIVATE_SIG}"),
        PRIVATE_SIG.to_string(),
        format!("{KEY}:{}", &PRIVATE_SIG[..63]),
        format!("{KEY}:{}", &PRIVATE_SIG[..62]),
        format!("{KEY}:{PRIVATE_SIG}0"),
        format!("{KEY}:{PRIVATE_SIG}00"),
        format!("{KEY}:{upper}"),
        format!("{KEY}:{PRIVATE_SIG} "),
        format!(" {KEY}:{PRIVATE_SIG}"),
        format!("wrongkey0000000000000:{PRIVATE_SIG}"),
        format!("{}:{PRIVATE_SIG}", KEY.to_ascii_uppercase()),
        format!("{KEY}:{KEY}:{PRIVATE_SIG}"),
        format!("{KEY}:{}", "0".repeat(64)),
        format!("{KEY}:{}g", &PRIVATE_SIG[..63]),
        format!("{KEY}:{}", "é".repeat(32)),
    ];
    for auth in &bad {
        assert!(
            !verify_channel_auth(KEY, SECRET, SOCKET, "private-foobar", None, auth),
            "{auth:?}"
        );
    }
}

#[test]
fn an_empty_secret_verifies_nothing() {
    let auth = sign_channel_auth(KEY, "", SOCKET, "private-a", None);
    assert_eq!(auth, format!("{KEY}:"));
    let real = hex::encode(
        HmacSha256::new_from_slice(b"")
            .unwrap()
            .chain_update(b"1234.1234:private-a")
            .finalize()
            .into_bytes(),
    );
    assert!(!verify_channel_auth(
        KEY,
        "",
        SOCKET,
        "private-a",
        None,
        &format!("{KEY}:{real}")
    ));
    assert!(!verify_signin(
        KEY,
        "",
        SOCKET,
        USER_DATA,
        &format!("{KEY}:{real}")
    ));
}

#[test]
fn every_api_error_has_a_stable_code_and_a_status() {
    use ApiAuthError::*;
    let all = [
        MalformedQuery("x"),
        MissingParameter("auth_key"),
        UnknownKey,
        InvalidTimestamp,
        StaleTimestamp,
        UnsupportedVersion,
        BodyMd5Mismatch,
        MalformedSignature,
        SignatureMismatch,
    ];
    let codes: std::collections::HashSet<_> = all.iter().map(|e| e.code()).collect();
    assert_eq!(codes.len(), all.len());
    assert!(all
        .iter()
        .all(|e| e.code().starts_with("api_auth.") && matches!(e.status(), 400 | 401)));
    assert!(all.iter().all(|e| !e.to_string().contains(SECRET)));
}
