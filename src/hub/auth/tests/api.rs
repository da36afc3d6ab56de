//! The Pusher HTTP API's request signatures (the channel-auth tests are in the parent).

use super::*;

// ---- HTTP API ----

#[test]
fn the_pusher_docs_events_request_verifies() {
    assert_eq!(body_md5(EVENTS_BODY.as_bytes()), EVENTS_MD5);
    assert_eq!(
        verify_events(&docs_events_query(), EVENTS_BODY, EVENTS_TS),
        Ok(())
    );
}

#[test]
fn sign_api_request_reproduces_the_pusher_docs_query() {
    let q = sign_api_request(
        KEY,
        SECRET,
        "POST",
        "/apps/3/events",
        &[],
        EVENTS_BODY.as_bytes(),
        EVENTS_TS,
    );
    assert_eq!(q, docs_events_query());
}

#[test]
fn parameters_in_any_order_and_any_key_case_verify() {
    let q = format!(
        "body_md5={EVENTS_MD5}&auth_signature={EVENTS_SIG}&AUTH_VERSION=1.0&auth_timestamp={EVENTS_TS}&Auth_Key={KEY}"
    );
    assert_eq!(verify_events(&q, EVENTS_BODY, EVENTS_TS), Ok(()));
}

#[test]
fn percent_encoded_values_are_signed_decoded() {
    // What Laravel's PHP library does: sign raw `user_count,subscription_count`, send `%2C`.
    let path = "/apps/3/channels/presence-a";
    let q = sign_api_request(
        KEY,
        SECRET,
        "GET",
        path,
        &[("info", "user_count,subscription_count")],
        b"",
        100,
    );
    assert!(q.contains("info=user_count%2Csubscription_count"), "{q}");
    assert_eq!(
        verify_api_request(KEY, SECRET, "GET", path, &q, b"", 100),
        Ok(())
    );
    let raw = q.replace("%2C", ",");
    assert_eq!(
        verify_api_request(KEY, SECRET, "GET", path, &raw, b"", 100),
        Ok(()),
        "the Node library sends it raw"
    );
    let params = query_params("a=x+y%20z&b=%E2%9C%93&c").unwrap();
    assert_eq!(
        params,
        [
            ("a".into(), "x y z".into()),
            ("b".into(), "✓".into()),
            ("c".into(), String::new())
        ]
    );
}

#[test]
fn method_is_upper_cased_and_path_is_signed_as_given() {
    assert_eq!(
        verify_api_request(
            KEY,
            SECRET,
            "post",
            "/apps/3/events",
            &docs_events_query(),
            EVENTS_BODY.as_bytes(),
            EVENTS_TS
        ),
        Ok(())
    );
    let other_path = verify_api_request(
        KEY,
        SECRET,
        "POST",
        "/apps/4/events",
        &docs_events_query(),
        EVENTS_BODY.as_bytes(),
        EVENTS_TS,
    );
    assert_eq!(other_path, Err(ApiAuthError::SignatureMismatch));
    let other_method = verify_api_request(
        KEY,
        SECRET,
        "PUT",
        "/apps/3/events",
        &docs_events_query(),
        EVENTS_BODY.as_bytes(),
        EVENTS_TS,
    );
    assert_eq!(other_method, Err(ApiAuthError::SignatureMismatch));
}

#[test]
fn a_timestamp_within_600_seconds_either_way_is_accepted() {
    for now in [EVENTS_TS - 600, EVENTS_TS + 600, EVENTS_TS] {
        assert_eq!(
            verify_events(&docs_events_query(), EVENTS_BODY, now),
            Ok(()),
            "{now}"
        );
    }
}

#[test]
fn a_stale_timestamp_is_rejected_with_401_in_both_directions() {
    for now in [EVENTS_TS + 601, EVENTS_TS - 601, 0, i64::MAX, i64::MIN] {
        let e = verify_events(&docs_events_query(), EVENTS_BODY, now).unwrap_err();
        assert_eq!(
            (e.clone(), e.status(), e.code()),
            (
                ApiAuthError::StaleTimestamp,
                401,
                "api_auth.stale_timestamp"
            )
        );
    }
}

#[test]
fn a_timestamp_that_is_not_decimal_seconds_is_invalid() {
    for ts in [
        "",
        "abc",
        "-1353088179",
        "+1353088179",
        "1353088179.5",
        "99999999999999999999",
        " 1",
    ] {
        let q = sign_api_request(
            KEY,
            SECRET,
            "POST",
            "/apps/3/events",
            &[("auth_timestamp", ts)],
            EVENTS_BODY.as_bytes(),
            0,
        );
        assert_eq!(
            verify_events(&q, EVENTS_BODY, EVENTS_TS),
            Err(ApiAuthError::InvalidTimestamp),
            "{ts:?}"
        );
    }
}

#[test]
fn a_wrong_body_md5_is_rejected_even_when_signed() {
    let q = sign_api_request(
        KEY,
        SECRET,
        "POST",
        "/apps/3/events",
        &[],
        b"{\"other\":1}",
        EVENTS_TS,
    );
    let e = verify_events(&q, EVENTS_BODY, EVENTS_TS).unwrap_err();
    assert_eq!(
        (e.clone(), e.status()),
        (ApiAuthError::BodyMd5Mismatch, 401)
    );
    let upper = sign_api_request(
        KEY,
        SECRET,
        "POST",
        "/a",
        &[("body_md5", &EVENTS_MD5.to_ascii_uppercase())],
        b"",
        5,
    );
    let e = verify_api_request(KEY, SECRET, "POST", "/a", &upper, EVENTS_BODY.as_bytes(), 5);
    assert_eq!(
        e,
        Err(ApiAuthError::BodyMd5Mismatch),
        "md5 is compared as lowercase hex text"
    );
}

#[test]
fn a_non_empty_body_without_body_md5_is_rejected() {
    let q = sign_api_request(KEY, SECRET, "POST", "/apps/3/events", &[], b"", EVENTS_TS);
    assert_eq!(
        verify_events(&q, EVENTS_BODY, EVENTS_TS),
        Err(ApiAuthError::MissingParameter("body_md5"))
    );
}

#[test]
fn an_empty_body_needs_no_body_md5_but_a_sent_one_must_match() {
    let q = sign_api_request(
        KEY,
        SECRET,
        "GET",
        "/apps/3/channels",
        &[("filter_by_prefix", "presence-")],
        b"",
        9,
    );
    assert!(!q.contains("body_md5"));
    assert_eq!(
        verify_api_request(KEY, SECRET, "GET", "/apps/3/channels", &q, b"", 9),
        Ok(())
    );
    let with = sign_api_request(
        KEY,
        SECRET,
        "GET",
        "/x",
        &[("body_md5", "d41d8cd98f00b204e9800998ecf8427e")],
        b"",
        9,
    );
    assert_eq!(
        verify_api_request(KEY, SECRET, "GET", "/x", &with, b"", 9),
        Ok(())
    );
    let wrong = sign_api_request(
        KEY,
        SECRET,
        "GET",
        "/x",
        &[("body_md5", EVENTS_MD5)],
        b"",
        9,
    );
    assert_eq!(
        verify_api_request(KEY, SECRET, "GET", "/x", &wrong, b"", 9),
        Err(ApiAuthError::BodyMd5Mismatch)
    );
}

#[test]
fn missing_auth_parameters_are_401() {
    for name in ["auth_key", "auth_timestamp", "auth_signature"] {
        let full = docs_events_query();
        let q: Vec<&str> = full.split('&').filter(|p| !p.starts_with(name)).collect();
        let e = verify_events(&q.join("&"), EVENTS_BODY, EVENTS_TS).unwrap_err();
        assert_eq!(
            (e.clone(), e.status()),
            (ApiAuthError::MissingParameter(name), 401),
            "{name}"
        );
    }
    assert_eq!(
        verify_events("", "", 0),
        Err(ApiAuthError::MissingParameter("auth_key"))
    );
}

#[test]
fn another_apps_key_is_rejected() {
    let q = sign_api_request(
        "other-key",
        SECRET,
        "POST",
        "/apps/3/events",
        &[],
        EVENTS_BODY.as_bytes(),
        EVENTS_TS,
    );
    let e = verify_events(&q, EVENTS_BODY, EVENTS_TS).unwrap_err();
    assert_eq!(
        (e.clone(), e.status(), e.code()),
        (ApiAuthError::UnknownKey, 401, "api_auth.unknown_key")
    );
}

#[test]
fn auth_version_other_than_1_0_is_rejected_and_absent_is_accepted() {
    let q = sign_api_request(KEY, SECRET, "GET", "/x", &[("auth_version", "2.0")], b"", 1);
    assert_eq!(
        verify_api_request(KEY, SECRET, "GET", "/x", &q, b"", 1),
        Err(ApiAuthError::UnsupportedVersion)
    );
    let full = docs_events_query();
    let without: Vec<&str> = full
        .split('&')
        .filter(|p| !p.starts_with("auth_version"))
        .collect();
    let tag = sign_hex(
        SECRET,
        &[&format!("POST\n/apps/3/events\n{}", without[..3].join("&"))],
    );
    let q = format!("{}&auth_signature={tag}", without[..3].join("&"));
    assert_eq!(verify_events(&q, EVENTS_BODY, EVENTS_TS), Ok(()));
}

#[test]
fn malformed_or_wrong_api_signatures_are_rejected() {
    let base = docs_events_query();
    let cases = [
        (
            base.replace(EVENTS_SIG, ""),
            ApiAuthError::MalformedSignature,
        ),
        (
            base.replace(EVENTS_SIG, &EVENTS_SIG[..63]),
            ApiAuthError::MalformedSignature,
        ),
        (
            base.replace(EVENTS_SIG, &EVENTS_SIG.to_ascii_uppercase()),
            ApiAuthError::MalformedSignature,
        ),
        (format!("{base}00"), ApiAuthError::MalformedSignature),
        (
            base.replace(EVENTS_SIG, &"0".repeat(64)),
            ApiAuthError::SignatureMismatch,
        ),
        (format!("{base}&extra=1"), ApiAuthError::SignatureMismatch),
        (
            base.replace("auth_version=1.0", "auth_version=1.0&auth_version=1.0"),
            ApiAuthError::MalformedQuery("a parameter is given twice"),
        ),
    ];
    for (q, expected) in cases {
        assert_eq!(
            verify_events(&q, EVENTS_BODY, EVENTS_TS),
            Err(expected),
            "{q}"
        );
    }
    let e = verify_api_request(
        KEY,
        "other",
        "POST",
        "/apps/3/events",
        &base,
        EVENTS_BODY.as_bytes(),
        EVENTS_TS,
    );
    assert_eq!(e, Err(ApiAuthError::SignatureMismatch));
}

#[test]
fn an_unreadable_query_is_400() {
    let long = "a=1&".repeat(MAX_QUERY_PARAMS + 1);
    for q in ["auth_key=%FF", "a=1&A=2", &long] {
        let e = verify_events(q, "", 0).unwrap_err();
        assert_eq!(
            (e.status(), e.code()),
            (400, "api_auth.malformed_query"),
            "{q}"
        );
    }
}

#[test]
fn signed_extra_parameters_verify_and_tampering_with_them_does_not() {
    let path = "/apps/3/channels";
    let q = sign_api_request(
        KEY,
        SECRET,
        "GET",
        path,
        &[("info", "user_count"), ("filter_by_prefix", "presence-")],
        b"",
        50,
    );
    assert_eq!(
        verify_api_request(KEY, SECRET, "GET", path, &q, b"", 50),
        Ok(())
    );
    let tampered = q.replace("filter_by_prefix=presence-", "filter_by_prefix=private-");
    assert_eq!(
        verify_api_request(KEY, SECRET, "GET", path, &tampered, b"", 50),
        Err(ApiAuthError::SignatureMismatch)
    );
}
