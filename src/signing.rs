//! Webhook signatures: verify what a sender signed, and sign the way a sender would.
//!
//! Pure: no I/O, no config reading, time is passed in. Three schemes (the senders' wire contracts; README "Webhooks"):
//! - [`Scheme::HexTimestampBody`], the Node service's: `x-timestamp` (Unix seconds) and
//!   `x-hmac-signature` = lowercase hex HMAC-SHA256 over the timestamp text followed by the raw body.
//! - [`Scheme::StandardWebhooks`]: `webhook-id`, `webhook-timestamp`, `webhook-signature`
//!   (space-separated `v1,<base64>` entries) over `{id}.{ts}.{body}`; the key is the base64 after `whsec_`.
//! - [`Scheme::GitHub`]: `x-hub-signature-256: sha256=<hex>` over the raw body, no timestamp.
//!
//! Checks run in one order for every scheme: missing header, malformed timestamp, stale timestamp,
//! malformed signature, mismatch. A header that is present but empty counts as missing (Laravel's
//! `!$header` does the same); a header sent twice is malformed (the two readers could pick different
//! copies). Signatures are decoded, their exact length checked, and only then compared, in constant
//! time (`Mac::verify_slice`), against every configured secret (rotation).

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use std::time::Duration;

type HmacSha256 = Hmac<Sha256>;

const X_TIMESTAMP: &str = "x-timestamp";
const X_HMAC_SIGNATURE: &str = "x-hmac-signature";
const WEBHOOK_ID: &str = "webhook-id";
const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
const WEBHOOK_SIGNATURE: &str = "webhook-signature";
const X_HUB_SIGNATURE_256: &str = "x-hub-signature-256";
const WHSEC_PREFIX: &str = "whsec_";
const GITHUB_PREFIX: &[u8] = b"sha256=";
/// The `webhook-id` [`sign`] uses for Standard Webhooks when none is given.
pub const DEFAULT_ID: &str = "msg_fleetgate";
/// Bytes in an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

/// Standard alphabet; padding optional on input (some senders strip it), written on output.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// How a webhook route's sender signs its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    HexTimestampBody,
    StandardWebhooks,
    GitHub,
}

impl Scheme {
    pub const ALL: [Scheme; 3] = [
        Scheme::HexTimestampBody,
        Scheme::StandardWebhooks,
        Scheme::GitHub,
    ];

    /// The scheme named in `gateway.yaml` (`webhook.scheme`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::HexTimestampBody => "hex-timestamp-body",
            Scheme::StandardWebhooks => "standard-webhooks",
            Scheme::GitHub => "github",
        }
    }

    /// Whether deliveries carry a signed timestamp checked against the accept window.
    pub fn uses_timestamp(self) -> bool {
        !matches!(self, Scheme::GitHub)
    }
}

/// HMAC key bytes, kept as the keyed HMAC state. `Debug` never shows the key.
#[derive(Clone)]
pub struct Secret(HmacSha256);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// From the configured text: for Standard Webhooks `whsec_<base64>` is base64-decoded (so is a
    /// value without the prefix); otherwise the UTF-8 bytes as they are. An empty key is an error.
    /// Error messages never contain the secret.
    pub fn from_config(scheme: Scheme, text: &str) -> Result<Secret, String> {
        let key = match scheme {
            Scheme::StandardWebhooks => {
                let encoded = text.strip_prefix(WHSEC_PREFIX).unwrap_or(text);
                B64.decode(encoded).map_err(|_| {
                    "is not valid base64 (a Standard Webhooks secret is `whsec_<base64>`)"
                        .to_string()
                })?
            }
            Scheme::HexTimestampBody | Scheme::GitHub => text.as_bytes().to_vec(),
        };
        if key.is_empty() {
            return Err("is empty (an empty secret would let anyone sign)".to_string());
        }
        HmacSha256::new_from_slice(&key)
            .map(Secret)
            .map_err(|_| "is not a usable HMAC key".to_string())
    }

    /// HMAC over the concatenation of `parts`.
    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac
    }
}

/// Why a delivery was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("a signature header is missing")]
    Missing,
    #[error("the timestamp is outside the accept window")]
    Stale,
    #[error("a signature header is malformed")]
    Malformed,
    #[error("no configured secret matches the signature")]
    Mismatch,
}

impl VerifyError {
    /// Stable label for metrics and error codes.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyError::Missing => "missing",
            VerifyError::Stale => "stale",
            VerifyError::Malformed => "malformed",
            VerifyError::Mismatch => "mismatch",
        }
    }
}

/// A delivery whose signature matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The delivery's identity for replay detection: the `webhook-id` for Standard Webhooks,
    /// otherwise the signature header value in canonical (lowercase hex) form, which is the value
    /// as received from any sender that follows its scheme.
    pub dedupe_key: String,
}

/// Checks a delivery's signature against every secret. `now_unix` and `tolerance` bound the
/// timestamp in both directions (ignored by GitHub, which signs none).
pub fn verify(
    scheme: Scheme,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[Secret],
    now_unix: i64,
    tolerance: Duration,
) -> Result<Verified, VerifyError> {
    let window = Window {
        now_unix,
        tolerance,
    };
    match scheme {
        Scheme::HexTimestampBody => verify_hex_timestamp_body(headers, body, secrets, window),
        Scheme::StandardWebhooks => verify_standard(headers, body, secrets, window),
        Scheme::GitHub => verify_github(headers, body, secrets),
    }
}

/// Checks everything [`verify`] checks that does not need the body (headers present and well
/// formed, timestamp within the window), so a delivery that cannot pass is refused before its
/// body is read.
pub fn precheck(
    scheme: Scheme,
    headers: &HeaderMap,
    now_unix: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    // With no secret to try, a delivery whose headers pass ends at the signature comparison.
    match verify(scheme, headers, &[], &[], now_unix, tolerance) {
        Ok(_) | Err(VerifyError::Mismatch) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The headers a sender would send, as (lower-case name, value). `id` is the Standard Webhooks
/// `webhook-id` ([`DEFAULT_ID`] if `None`); the other schemes ignore it.
pub fn sign(
    scheme: Scheme,
    secret: &Secret,
    body: &[u8],
    timestamp: i64,
    id: Option<&str>,
) -> Vec<(&'static str, String)> {
    let ts = timestamp.to_string();
    match scheme {
        Scheme::HexTimestampBody => {
            let tag = secret.mac(&[ts.as_bytes(), body]).finalize().into_bytes();
            vec![(X_TIMESTAMP, ts), (X_HMAC_SIGNATURE, hex::encode(tag))]
        }
        Scheme::StandardWebhooks => {
            let id = id.unwrap_or(DEFAULT_ID);
            let tag = secret
                .mac(&standard_content(id.as_bytes(), &ts, body))
                .finalize()
                .into_bytes();
            vec![
                (WEBHOOK_ID, id.to_string()),
                (WEBHOOK_TIMESTAMP, ts),
                (WEBHOOK_SIGNATURE, format!("v1,{}", B64.encode(tag))),
            ]
        }
        Scheme::GitHub => {
            let tag = secret.mac(&[body]).finalize().into_bytes();
            vec![(X_HUB_SIGNATURE_256, format!("sha256={}", hex::encode(tag)))]
        }
    }
}

#[derive(Clone, Copy)]
struct Window {
    now_unix: i64,
    tolerance: Duration,
}

impl Window {
    fn check(self, ts: i64) -> Result<(), VerifyError> {
        if self.now_unix.abs_diff(ts) > self.tolerance.as_secs() {
            return Err(VerifyError::Stale);
        }
        Ok(())
    }
}

fn verify_hex_timestamp_body(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[Secret],
    window: Window,
) -> Result<Verified, VerifyError> {
    require(headers, &[X_TIMESTAMP, X_HMAC_SIGNATURE])?;
    let ts_text = single(headers, X_TIMESTAMP)?;
    window.check(parse_timestamp(ts_text)?)?;
    let tag = decode_hex_tag(single(headers, X_HMAC_SIGNATURE)?)?;
    // Signed over the timestamp text as received, as Laravel verifies it.
    matches_any(secrets, &[ts_text, body], &[tag])?;
    Ok(Verified {
        dedupe_key: hex::encode(tag),
    })
}

fn verify_standard(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[Secret],
    window: Window,
) -> Result<Verified, VerifyError> {
    require(headers, &[WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE])?;
    let id = single(headers, WEBHOOK_ID)?;
    if !id.iter().all(u8::is_ascii_graphic) {
        return Err(VerifyError::Malformed);
    }
    let ts = parse_timestamp(single(headers, WEBHOOK_TIMESTAMP)?)?;
    window.check(ts)?;
    let tags = standard_tags(single(headers, WEBHOOK_SIGNATURE)?);
    if tags.is_empty() {
        return Err(VerifyError::Malformed);
    }
    // The reference libraries sign the timestamp as they re-format it (no leading zeros).
    let ts = ts.to_string();
    let content = standard_content(id, &ts, body);
    matches_any(secrets, &content, &tags)?;
    Ok(Verified {
        // Graphic ASCII, checked above.
        dedupe_key: String::from_utf8_lossy(id).into_owned(),
    })
}

fn verify_github(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[Secret],
) -> Result<Verified, VerifyError> {
    require(headers, &[X_HUB_SIGNATURE_256])?;
    let value = single(headers, X_HUB_SIGNATURE_256)?;
    let hex_part = value
        .strip_prefix(GITHUB_PREFIX)
        .ok_or(VerifyError::Malformed)?;
    let tag = decode_hex_tag(hex_part)?;
    matches_any(secrets, &[body], &[tag])?;
    Ok(Verified {
        dedupe_key: format!("sha256={}", hex::encode(tag)),
    })
}

/// `{id}.{ts}.{body}`, the Standard Webhooks signed content, in parts.
fn standard_content<'a>(id: &'a [u8], ts: &'a str, body: &'a [u8]) -> [&'a [u8]; 5] {
    [id, b".", ts.as_bytes(), b".", body]
}

/// The `v1` entries of a `webhook-signature` list that decode to exactly one tag; others are ignored.
fn standard_tags(list: &[u8]) -> Vec<[u8; TAG_LEN]> {
    list.split(|b| *b == b' ')
        .filter_map(|entry| {
            let comma = entry.iter().position(|b| *b == b',')?;
            let (version, encoded) = (&entry[..comma], &entry[comma + 1..]);
            // The length bound keeps hostile input cheap: a tag is 44 characters.
            if version != b"v1" || encoded.len() > 64 {
                return None;
            }
            B64.decode(encoded).ok()?.try_into().ok()
        })
        .collect()
}

/// Exactly 64 hex digits (either case) → the tag.
fn decode_hex_tag(text: &[u8]) -> Result<[u8; TAG_LEN], VerifyError> {
    let mut tag = [0u8; TAG_LEN];
    hex::decode_to_slice(text, &mut tag).map_err(|_| VerifyError::Malformed)?;
    Ok(tag)
}

/// Unix seconds: 1 to 19 ASCII digits that fit an `i64`.
fn parse_timestamp(text: &[u8]) -> Result<i64, VerifyError> {
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return Err(VerifyError::Malformed);
    }
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(VerifyError::Malformed)
}

/// `Missing` unless every header is present with a non-empty value.
fn require(headers: &HeaderMap, names: &[&str]) -> Result<(), VerifyError> {
    let present = |name: &&str| headers.get(*name).is_some_and(|v| !v.is_empty());
    if names.iter().all(present) {
        Ok(())
    } else {
        Err(VerifyError::Missing)
    }
}

/// The value of a header that must appear exactly once.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a [u8], VerifyError> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) if !value.is_empty() => Ok(value.as_bytes()),
        (None, _) => Err(VerifyError::Missing),
        _ => Err(VerifyError::Malformed),
    }
}

/// `Ok` if any (secret, tag) pair matches the HMAC over `parts`, compared in constant time.
fn matches_any(
    secrets: &[Secret],
    parts: &[&[u8]],
    tags: &[[u8; TAG_LEN]],
) -> Result<(), VerifyError> {
    for secret in secrets {
        let mac = secret.mac(parts);
        if tags.iter().any(|tag| mac.clone().verify_slice(tag).is_ok()) {
            return Ok(());
        }
    }
    Err(VerifyError::Mismatch)
}

#[cfg(test)]
mod tests;
