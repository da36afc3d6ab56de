//! Unit tests of `signing`: golden vectors from the specs, then one rule per test.

use super::*;
use http::HeaderValue;

mod checks;

const TOLERANCE: Duration = Duration::from_secs(300);
const NOW: i64 = 1_700_000_000;
const BODY: &[u8] = br#"{"event":"x"}"#;

fn secret(scheme: Scheme, text: &str) -> Secret {
    Secret::from_config(scheme, text).expect("test secret")
}

/// A usable secret per scheme (Standard Webhooks keys are base64).
fn any_secret(scheme: Scheme) -> Secret {
    match scheme {
        Scheme::StandardWebhooks => secret(scheme, "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
        _ => secret(scheme, "secret"),
    }
}

fn header_map(pairs: &[(&str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        map.append(name, HeaderValue::from_str(value).unwrap());
    }
    map
}

/// Signed headers for `scheme` at `NOW`, as a map.
fn signed(scheme: Scheme, body: &[u8]) -> HeaderMap {
    header_map(&sign(scheme, &any_secret(scheme), body, NOW, None))
}

fn check(scheme: Scheme, headers: &HeaderMap, body: &[u8]) -> Result<Verified, VerifyError> {
    verify(scheme, headers, body, &[any_secret(scheme)], NOW, TOLERANCE)
}

/// The signature header's name for `scheme`.
fn signature_header(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::HexTimestampBody => X_HMAC_SIGNATURE,
        Scheme::StandardWebhooks => WEBHOOK_SIGNATURE,
        Scheme::GitHub => X_HUB_SIGNATURE_256,
    }
}

fn with_header(mut headers: HeaderMap, name: &str, value: &[u8]) -> HeaderMap {
    let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
    headers.insert(name, HeaderValue::from_bytes(value).unwrap());
    headers
}

#[test]
fn standard_webhooks_golden_vector_from_the_spec() {
    let key = secret(
        Scheme::StandardWebhooks,
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    );
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    let id = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    let headers = sign(Scheme::StandardWebhooks, &key, body, 1649367553, Some(id));
    assert_eq!(
        headers,
        vec![
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", "1649367553".to_string()),
            (
                "webhook-signature",
                "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=".to_string()
            ),
        ]
    );
    let verified = verify(
        Scheme::StandardWebhooks,
        &header_map(&headers),
        body,
        &[key],
        1649367553,
        TOLERANCE,
    );
    assert_eq!(verified.unwrap().dedupe_key, id);
}

#[test]
fn github_golden_vector_from_githubs_docs() {
    let key = secret(Scheme::GitHub, "It's a Secret to Everybody");
    let headers = sign(Scheme::GitHub, &key, b"Hello, World!", 0, None);
    let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(headers, vec![("x-hub-signature-256", expected.to_string())]);
    let verified = verify(
        Scheme::GitHub,
        &header_map(&headers),
        b"Hello, World!",
        &[key],
        NOW,
        TOLERANCE,
    );
    assert_eq!(verified.unwrap().dedupe_key, expected);
}

#[test]
fn hex_timestamp_body_vector_computed_with_openssl() {
    // printf '%s%s' 1700000000 '{"event":"x"}' | openssl dgst -sha256 -hmac secret
    let expected = "875bd7daf09b13c664936ea990d4b1ed5d9a24a00512aaa76084f3cc516a8486";
    let key = secret(Scheme::HexTimestampBody, "secret");
    let headers = sign(Scheme::HexTimestampBody, &key, BODY, NOW, None);
    assert_eq!(
        headers,
        vec![
            ("x-timestamp", "1700000000".to_string()),
            ("x-hmac-signature", expected.to_string()),
        ]
    );
    let verified = check(Scheme::HexTimestampBody, &header_map(&headers), BODY);
    assert_eq!(verified.unwrap().dedupe_key, expected);
}

#[test]
fn every_scheme_verifies_what_it_signs() {
    for scheme in Scheme::ALL {
        for body in [&b""[..], BODY, "é\u{e9}\\/ \0 \u{1F600}".as_bytes()] {
            assert!(
                check(scheme, &signed(scheme, body), body).is_ok(),
                "{scheme:?} {body:?}"
            );
        }
    }
}

#[test]
fn scheme_names_round_trip_and_only_github_has_no_timestamp() {
    for scheme in Scheme::ALL {
        assert_eq!(Scheme::parse(scheme.as_str()), Some(scheme));
        assert_eq!(scheme.uses_timestamp(), scheme != Scheme::GitHub);
    }
    assert_eq!(Scheme::parse("GitHub"), None);
    assert_eq!(Scheme::parse(""), None);
}

#[test]
fn verify_error_labels_are_stable() {
    let labels = [
        VerifyError::Missing,
        VerifyError::Stale,
        VerifyError::Malformed,
        VerifyError::Mismatch,
    ]
    .map(VerifyError::as_str);
    assert_eq!(labels, ["missing", "stale", "malformed", "mismatch"]);
}

#[test]
fn secret_debug_never_shows_the_key() {
    let printed = format!("{:?}", secret(Scheme::GitHub, "hunter2-very-secret"));
    assert!(!printed.contains("hunter2"), "{printed}");
}

#[test]
fn standard_webhooks_secret_decodes_with_or_without_the_whsec_prefix() {
    let with = secret(
        Scheme::StandardWebhooks,
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    );
    let without = secret(Scheme::StandardWebhooks, "C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
    let sign_with = |key: &Secret| sign(Scheme::StandardWebhooks, key, BODY, NOW, None);
    assert_eq!(sign_with(&with), sign_with(&without));
}

#[test]
fn invalid_base64_secret_is_an_error_that_does_not_echo_it() {
    let err = Secret::from_config(Scheme::StandardWebhooks, "whsec_not*base64!").unwrap_err();
    assert!(!err.contains("not*base64"), "{err}");
    // The other schemes take the text as it is.
    assert!(Secret::from_config(Scheme::HexTimestampBody, "not*base64!").is_ok());
}

#[test]
fn empty_secret_is_an_error_for_every_scheme() {
    for scheme in Scheme::ALL {
        assert!(Secret::from_config(scheme, "").is_err(), "{scheme:?}");
    }
    assert!(Secret::from_config(Scheme::StandardWebhooks, "whsec_").is_err());
}

#[test]
fn a_missing_or_empty_header_is_missing() {
    for scheme in Scheme::ALL {
        let full = signed(scheme, BODY);
        for name in full.keys() {
            let mut without = full.clone();
            without.remove(name);
            assert_eq!(
                check(scheme, &without, BODY),
                Err(VerifyError::Missing),
                "{name}"
            );
            let emptied = with_header(full.clone(), name.as_str(), b"");
            assert_eq!(
                check(scheme, &emptied, BODY),
                Err(VerifyError::Missing),
                "{name}"
            );
        }
        assert_eq!(
            check(scheme, &HeaderMap::new(), BODY),
            Err(VerifyError::Missing)
        );
    }
}

#[test]
fn a_timestamp_that_is_not_plain_digits_is_malformed() {
    let bad: [&[u8]; 9] = [
        b"abc",
        b"-5",
        b"+1700000000",
        b"1700000000.5",
        b" 1700000000x",
        b"1e9",
        b"99999999999999999999", // 20 digits
        b"9999999999999999999",  // 19 digits, over i64::MAX
        b"\xff\xfe",
    ];
    for (scheme, name) in [
        (Scheme::HexTimestampBody, X_TIMESTAMP),
        (Scheme::StandardWebhooks, WEBHOOK_TIMESTAMP),
    ] {
        for value in bad {
            let headers = with_header(signed(scheme, BODY), name, value);
            assert_eq!(
                check(scheme, &headers, BODY),
                Err(VerifyError::Malformed),
                "{value:?}"
            );
        }
    }
}
