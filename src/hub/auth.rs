//! Pusher signatures: channel authorization, user signin, and HTTP API request authentication.
//!
//! Pure: no I/O, no config, no clock (`now_unix` is passed in). Every check has its signing
//! counterpart, used by tests and benchmarks. Signatures are lowercase hex HMAC-SHA256 (what every
//! Pusher library writes; Pusher's reference server compares the text, so uppercase is refused):
//! the hex is checked for exactly 64 lowercase digits, decoded to 32 bytes, and only then compared
//! in constant time (`Mac::verify_slice`). An empty secret verifies nothing.
//!
//! - Channel auth (`pusher:subscribe`): `auth` = `{key}:{hex}` over `{socket_id}:{channel}`, or
//!   `{socket_id}:{channel}:{channel_data}` for presence (channel_data verbatim).
//! - Signin (`pusher:signin`): `{key}:{hex}` over `{socket_id}::user::{user_data}`.
//! - HTTP API ([`verify_api_request`]), checked in this order: the query parses (else 400), then
//!   `auth_key` (present, equal to the app key), `auth_timestamp` (decimal seconds within
//!   ±[`API_TIMESTAMP_GRACE_SECS`], bounds included), `auth_version` (optional, must be `1.0`),
//!   `body_md5` (required when the body is non-empty; when present it must equal the lowercase hex
//!   MD5 of the body, empty body included), `auth_signature` over
//!   `"{METHOD}\n{path}\n{params}"`. All authentication failures answer 401.
//!
//! The signed `{params}` are every query parameter but `auth_signature`, keys lower-cased, sorted by
//! key (byte order), joined `k=v` with `&`, **percent-decoded** (`+` is a space): Pusher's HTTP API
//! reference says the string "must not be url escaped", its reference server (the `signature` gem)
//! signs the decoded Rack params, and the PHP library (Laravel's) signs raw values but sends them
//! percent-encoded, so only decoding verifies every client. The Node library sends values raw,
//! which decoding leaves unchanged for the characters it uses. A parameter given twice, or more
//! than [`MAX_QUERY_PARAMS`] parameters, is malformed. `path` is the request path as received
//! (not decoded), which is what the libraries sign.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes in an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;
/// How far `auth_timestamp` may be from the server's clock, either way (Pusher: 600 s).
pub const API_TIMESTAMP_GRACE_SECS: u64 = 600;
/// More query parameters than this is malformed (a Pusher request carries fewer than ten).
pub const MAX_QUERY_PARAMS: usize = 64;
/// What [`sign_api_request`] leaves unescaped: RFC 3986 unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why an HTTP API request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiAuthError {
    #[error("the query string is malformed: {0}")]
    MalformedQuery(&'static str),
    #[error("missing required parameter {0}")]
    MissingParameter(&'static str),
    #[error("auth_key is not this app's key")]
    UnknownKey,
    #[error("auth_timestamp is not a Unix time in seconds")]
    InvalidTimestamp,
    #[error("auth_timestamp is more than 600 seconds away from the server's clock")]
    StaleTimestamp,
    #[error("auth_version must be 1.0")]
    UnsupportedVersion,
    #[error("body_md5 does not match the request body")]
    BodyMd5Mismatch,
    #[error("auth_signature is not 64 lowercase hex characters")]
    MalformedSignature,
    #[error("invalid signature")]
    SignatureMismatch,
}

impl ApiAuthError {
    /// 400 for a query that cannot be read, 401 for every authentication failure.
    pub fn status(&self) -> u16 {
        match self {
            ApiAuthError::MalformedQuery(_) => 400,
            _ => 401,
        }
    }

    /// The stable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiAuthError::MalformedQuery(_) => "api_auth.malformed_query",
            ApiAuthError::MissingParameter(_) => "api_auth.missing_parameter",
            ApiAuthError::UnknownKey => "api_auth.unknown_key",
            ApiAuthError::InvalidTimestamp => "api_auth.invalid_timestamp",
            ApiAuthError::StaleTimestamp => "api_auth.stale_timestamp",
            ApiAuthError::UnsupportedVersion => "api_auth.unsupported_version",
            ApiAuthError::BodyMd5Mismatch => "api_auth.body_md5_mismatch",
            ApiAuthError::MalformedSignature => "api_auth.malformed_signature",
            ApiAuthError::SignatureMismatch => "api_auth.signature_mismatch",
        }
    }
}

/// HMAC over the concatenation of `parts`; `None` for an empty secret (it would sign for anyone).
fn mac(secret: &str, parts: &[&str]) -> Option<HmacSha256> {
    if secret.is_empty() {
        return None;
    }
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).ok()?;
    for part in parts {
        mac.update(part.as_bytes());
    }
    Some(mac)
}

fn sign_hex(secret: &str, parts: &[&str]) -> String {
    mac(secret, parts).map_or_else(String::new, |m| hex::encode(m.finalize().into_bytes()))
}

/// Constant-time check of a 64-character lowercase hex tag.
fn verify_hex(secret: &str, parts: &[&str], hex_tag: &str) -> bool {
    match (decode_tag(hex_tag), mac(secret, parts)) {
        (Some(tag), Some(mac)) => mac.verify_slice(&tag).is_ok(),
        _ => false,
    }
}

fn decode_tag(hex_tag: &str) -> Option<[u8; TAG_LEN]> {
    let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if hex_tag.len() != 2 * TAG_LEN || !hex_tag.bytes().all(lower_hex) {
        return None;
    }
    let mut tag = [0; TAG_LEN];
    hex::decode_to_slice(hex_tag, &mut tag).ok()?;
    Some(tag)
}

fn channel_parts<'a>(
    socket_id: &'a str,
    channel: &'a str,
    channel_data: Option<&'a str>,
) -> Vec<&'a str> {
    let mut parts = vec![socket_id, ":", channel];
    if let Some(data) = channel_data {
        parts.extend([":", data]);
    }
    parts
}

/// Hex HMAC-SHA256 of `{socket_id}:{channel}` or `{socket_id}:{channel}:{channel_data}`.
pub fn channel_signature(
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> String {
    sign_hex(secret, &channel_parts(socket_id, channel, channel_data))
}

/// `X-Pusher-Signature` of an app webhook: hex HMAC-SHA256 of its body.
pub fn webhook_signature(secret: &str, body: &str) -> String {
    sign_hex(secret, &[body])
}

/// The `auth` an auth endpoint returns: `{key}:{channel_signature}`.
pub fn sign_channel_auth(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> String {
    format!(
        "{key}:{}",
        channel_signature(secret, socket_id, channel, channel_data)
    )
}

/// Checks a `pusher:subscribe` `auth` (`{key}:{hex}`) in constant time.
pub fn verify_channel_auth(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
    auth: &str,
) -> bool {
    auth.split_once(':').is_some_and(|(k, sig)| {
        k == key
            && verify_hex(
                secret,
                &channel_parts(socket_id, channel, channel_data),
                sig,
            )
    })
}

/// The `auth` a user-authentication endpoint returns for `user_data`.
pub fn sign_signin(key: &str, secret: &str, socket_id: &str, user_data: &str) -> String {
    format!(
        "{key}:{}",
        sign_hex(secret, &[socket_id, "::user::", user_data])
    )
}

/// Checks a `pusher:signin` `auth` over `{socket_id}::user::{user_data}` in constant time.
pub fn verify_signin(
    key: &str,
    secret: &str,
    socket_id: &str,
    user_data: &str,
    auth: &str,
) -> bool {
    auth.split_once(':').is_some_and(|(k, sig)| {
        k == key && verify_hex(secret, &[socket_id, "::user::", user_data], sig)
    })
}

/// The query's parameters, percent-decoded (`+` is a space), keys lower-cased, sorted by key.
/// Empty segments (`a=1&&b=2`) are skipped; a segment without `=` has an empty value.
pub fn query_params(query: &str) -> Result<Vec<(String, String)>, ApiAuthError> {
    let mut params = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        if params.len() == MAX_QUERY_PARAMS {
            return Err(ApiAuthError::MalformedQuery("too many parameters"));
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        params.push((form_decode(key)?.to_ascii_lowercase(), form_decode(value)?));
    }
    params.sort_by(|a, b| a.0.cmp(&b.0));
    if params.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(ApiAuthError::MalformedQuery("a parameter is given twice"));
    }
    Ok(params)
}

fn form_decode(s: &str) -> Result<String, ApiAuthError> {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| ApiAuthError::MalformedQuery("a parameter is not UTF-8 once percent-decoded"))
}

fn find<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .binary_search_by(|(k, _)| k.as_str().cmp(name))
        .ok()
        .map(|i| params[i].1.as_str())
}

/// `{METHOD}\n{path}\n{k=v&…}` over `params` (sorted) without `auth_signature`.
fn string_to_sign(method: &str, path: &str, params: &[(String, String)]) -> String {
    let joined: Vec<String> = params
        .iter()
        .filter(|(k, _)| k != "auth_signature")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "{}\n{path}\n{}",
        method.to_ascii_uppercase(),
        joined.join("&")
    )
}

/// Authenticates one HTTP API request (see the module doc for the rules and their order).
pub fn verify_api_request(
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
    now_unix: i64,
) -> Result<(), ApiAuthError> {
    let params = query_params(query)?;
    let required =
        |name: &'static str| find(&params, name).ok_or(ApiAuthError::MissingParameter(name));
    if required("auth_key")? != key {
        return Err(ApiAuthError::UnknownKey);
    }
    check_timestamp(required("auth_timestamp")?, now_unix)?;
    if find(&params, "auth_version").is_some_and(|v| v != "1.0") {
        return Err(ApiAuthError::UnsupportedVersion);
    }
    match find(&params, "body_md5") {
        // The MD5 of a body is no secret (anyone holding the body computes it): plain comparison.
        Some(sent) if sent != body_md5(body) => return Err(ApiAuthError::BodyMd5Mismatch),
        None if !body.is_empty() => return Err(ApiAuthError::MissingParameter("body_md5")),
        _ => {}
    }
    let signature = required("auth_signature")?;
    let tag = decode_tag(signature).ok_or(ApiAuthError::MalformedSignature)?;
    let signed = string_to_sign(method, path, &params);
    match mac(secret, &[&signed]).map(|mac| mac.verify_slice(&tag)) {
        Some(Ok(())) => Ok(()),
        _ => Err(ApiAuthError::SignatureMismatch),
    }
}

fn check_timestamp(text: &str, now_unix: i64) -> Result<(), ApiAuthError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiAuthError::InvalidTimestamp);
    }
    let ts: i64 = text.parse().map_err(|_| ApiAuthError::InvalidTimestamp)?;
    if now_unix.abs_diff(ts) > API_TIMESTAMP_GRACE_SECS {
        return Err(ApiAuthError::StaleTimestamp);
    }
    Ok(())
}

/// Lowercase hex MD5 of `body`, as Pusher's `body_md5`.
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// The full query string a Pusher server library would send (`auth_key`, `auth_timestamp`,
/// `auth_version=1.0`, `body_md5` for a non-empty body, `params`, then `auth_signature`), values
/// percent-encoded. A param named like a generated one replaces it (to build bad requests in
/// tests); keys are lower-cased.
pub fn sign_api_request(
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    body: &[u8],
    timestamp: i64,
) -> String {
    let mut all = vec![
        ("auth_key".to_string(), key.to_string()),
        ("auth_timestamp".to_string(), timestamp.to_string()),
        ("auth_version".to_string(), "1.0".to_string()),
    ];
    if !body.is_empty() {
        all.push(("body_md5".to_string(), body_md5(body)));
    }
    for (k, v) in params {
        let k = k.to_ascii_lowercase();
        match all.iter_mut().find(|(seen, _)| *seen == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => all.push((k, v.to_string())),
        }
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let signature = sign_hex(secret, &[&string_to_sign(method, path, &all)]);
    let mut query: Vec<String> = all
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, QUERY_VALUE),
                utf8_percent_encode(v, QUERY_VALUE)
            )
        })
        .collect();
    query.push(format!("auth_signature={signature}"));
    query.join("&")
}

#[cfg(test)]
mod tests;
