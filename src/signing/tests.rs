//! Unit tests of `signing`: golden vectors from the specs, then one rule per test.

use super::*;
use http::HeaderValue;

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

#[test]
fn a_timestamp_outside_the_window_is_stale_in_both_directions() {
    for scheme in [Scheme::HexTimestampBody, Scheme::StandardWebhooks] {
        let headers = signed(scheme, BODY);
        let at = |now| {
            verify(
                scheme,
                &headers,
                BODY,
                &[any_secret(scheme)],
                now,
                TOLERANCE,
            )
        };
        assert_eq!(at(NOW + 301), Err(VerifyError::Stale), "too old");
        assert_eq!(at(NOW - 301), Err(VerifyError::Stale), "from the future");
        assert!(
            at(NOW + 300).is_ok() && at(NOW - 300).is_ok(),
            "the edges are inside"
        );
    }
}

#[test]
fn github_ignores_the_clock() {
    let headers = signed(Scheme::GitHub, BODY);
    let key = [any_secret(Scheme::GitHub)];
    assert!(verify(
        Scheme::GitHub,
        &headers,
        BODY,
        &key,
        i64::MAX,
        Duration::ZERO
    )
    .is_ok());
}

#[test]
fn empty_and_truncated_signatures_are_malformed() {
    let cases: [(Scheme, &[u8]); 10] = [
        (Scheme::StandardWebhooks, b"v1,"),
        (Scheme::StandardWebhooks, b"v1,AAAA"),
        (Scheme::StandardWebhooks, b"v1"),
        (
            Scheme::StandardWebhooks,
            b"v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=AA",
        ),
        (Scheme::GitHub, b"sha256="),
        (Scheme::GitHub, b"sha256"),
        (
            Scheme::GitHub,
            b"sha1=757107ea0eb2509fc211221cce984b8a37570b6d",
        ),
        (Scheme::HexTimestampBody, b""),
        (Scheme::HexTimestampBody, &[b'a'; 63]),
        (Scheme::HexTimestampBody, &[b'a'; 65]),
    ];
    for (scheme, value) in cases {
        let headers = with_header(signed(scheme, BODY), signature_header(scheme), value);
        let want = if value.is_empty() {
            VerifyError::Missing
        } else {
            VerifyError::Malformed
        };
        assert_eq!(
            check(scheme, &headers, BODY),
            Err(want),
            "{scheme:?} {value:?}"
        );
    }
    let sixty_three = [&b"sha256="[..], &[b'a'; 63]].concat();
    let headers = with_header(
        signed(Scheme::GitHub, BODY),
        X_HUB_SIGNATURE_256,
        &sixty_three,
    );
    assert_eq!(
        check(Scheme::GitHub, &headers, BODY),
        Err(VerifyError::Malformed)
    );
}

#[test]
fn non_hex_and_non_utf8_signatures_are_malformed_without_panicking() {
    let mut not_hex = [b'a'; 64];
    not_hex[10] = b'g';
    let mut not_utf8 = [b'a'; 64];
    not_utf8[0] = 0xff;
    for scheme in [Scheme::HexTimestampBody, Scheme::GitHub] {
        for tail in [&not_hex, &not_utf8] {
            let value = match scheme {
                Scheme::GitHub => [&b"sha256="[..], tail].concat(),
                _ => tail.to_vec(),
            };
            let headers = with_header(signed(scheme, BODY), signature_header(scheme), &value);
            assert_eq!(check(scheme, &headers, BODY), Err(VerifyError::Malformed));
        }
    }
    let headers = with_header(
        signed(Scheme::StandardWebhooks, BODY),
        WEBHOOK_SIGNATURE,
        b"v1,\xff\xfe",
    );
    assert_eq!(
        check(Scheme::StandardWebhooks, &headers, BODY),
        Err(VerifyError::Malformed)
    );
    let headers = with_header(
        signed(Scheme::StandardWebhooks, BODY),
        WEBHOOK_ID,
        b"msg_\xff",
    );
    assert_eq!(
        check(Scheme::StandardWebhooks, &headers, BODY),
        Err(VerifyError::Malformed)
    );
}

#[test]
fn a_header_sent_twice_is_malformed() {
    for scheme in Scheme::ALL {
        let mut headers = signed(scheme, BODY);
        let name = signature_header(scheme);
        let copy = headers.get(name).unwrap().clone();
        headers.append(name, copy);
        assert_eq!(
            check(scheme, &headers, BODY),
            Err(VerifyError::Malformed),
            "{scheme:?}"
        );
    }
}

#[test]
fn a_wrong_secret_or_a_changed_body_is_a_mismatch() {
    for scheme in Scheme::ALL {
        let headers = signed(scheme, BODY);
        let wrong = [secret(scheme, "d3JvbmcgYnV0IHZhbGlk")];
        assert_eq!(
            verify(scheme, &headers, BODY, &wrong, NOW, TOLERANCE),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            check(scheme, &headers, br#"{"event":"y"}"#),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(scheme, &headers, BODY, &[], NOW, TOLERANCE),
            Err(VerifyError::Mismatch),
            "no secrets, no match"
        );
    }
}

#[test]
fn any_configured_secret_may_match_during_rotation() {
    for scheme in Scheme::ALL {
        let headers = signed(scheme, BODY);
        let secrets = [secret(scheme, "b2xkIHNlY3JldA=="), any_secret(scheme)];
        assert!(verify(scheme, &headers, BODY, &secrets, NOW, TOLERANCE).is_ok());
    }
}

#[test]
fn checks_run_missing_then_timestamp_then_window_then_signature_then_match() {
    let scheme = Scheme::HexTimestampBody;
    let run = |ts: &[u8], sig: Option<&[u8]>| {
        let mut headers = with_header(HeaderMap::new(), X_TIMESTAMP, ts);
        if let Some(sig) = sig {
            headers = with_header(headers, X_HMAC_SIGNATURE, sig);
        }
        check(scheme, &headers, BODY)
    };
    let stale = b"1600000000";
    assert_eq!(run(b"junk", None), Err(VerifyError::Missing));
    assert_eq!(run(b"junk", Some(b"zz")), Err(VerifyError::Malformed));
    assert_eq!(run(stale, Some(b"zz")), Err(VerifyError::Stale));
    assert_eq!(run(b"1700000000", Some(b"zz")), Err(VerifyError::Malformed));
    assert_eq!(
        run(b"1700000000", Some(&[b'0'; 64])),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn upper_case_hex_is_accepted_and_deduplicates_with_lower_case() {
    let headers = signed(Scheme::HexTimestampBody, BODY);
    let lower = headers
        .get(X_HMAC_SIGNATURE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let upper = with_header(headers, X_HMAC_SIGNATURE, lower.to_uppercase().as_bytes());
    let verified = check(Scheme::HexTimestampBody, &upper, BODY).unwrap();
    assert_eq!(verified.dedupe_key, lower);
}

#[test]
fn standard_webhooks_ignores_other_versions_and_accepts_any_matching_v1() {
    let headers = signed(Scheme::StandardWebhooks, BODY);
    let good = headers
        .get(WEBHOOK_SIGNATURE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let other = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let list = format!("v2,{} {other}  {good} v1a,xyz", &good[3..]);
    let headers = with_header(headers, WEBHOOK_SIGNATURE, list.as_bytes());
    assert!(check(Scheme::StandardWebhooks, &headers, BODY).is_ok());
    let only_v2 = format!("v2,{}", &good[3..]);
    let headers = with_header(headers, WEBHOOK_SIGNATURE, only_v2.as_bytes());
    assert_eq!(
        check(Scheme::StandardWebhooks, &headers, BODY),
        Err(VerifyError::Malformed)
    );
}

#[test]
fn standard_webhooks_signs_the_timestamp_as_a_number() {
    // The reference libraries parse the header and sign the number, so leading zeros don't count.
    let headers = signed(Scheme::StandardWebhooks, BODY);
    let padded = with_header(headers, WEBHOOK_TIMESTAMP, b"01700000000");
    assert!(check(Scheme::StandardWebhooks, &padded, BODY).is_ok());
}

#[test]
fn sign_defaults_the_standard_webhooks_id() {
    let headers = sign(
        Scheme::StandardWebhooks,
        &any_secret(Scheme::StandardWebhooks),
        BODY,
        NOW,
        None,
    );
    assert_eq!(headers[0], ("webhook-id", DEFAULT_ID.to_string()));
}
