//! Every check's refusals: windows, malformed and mismatched signatures, rotation, order (golden vectors and headers are in the parent).

use super::*;

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
