//! Canonical paths (what routes, deny lists and the instance see) and the normalised form deny
//! lists are matched on.

use crate::errors::GatewayError;
use std::borrow::Cow;

/// The path routes, deny lists and the instance see (RFC 3986, 6.2.2): percent-encoded unreserved
/// characters decoded, other escapes kept (hex in upper case), repeated slashes collapsed, `.` and
/// `..` segments resolved. Refused with 400 `request.bad_path`, as no two backends agree on them:
/// an encoded `/` or `\` (a backend that decodes before splitting sees other segments), a raw `\`,
/// `..` above the root, and a `%` without two hex digits.
pub fn canonical_path(path: &str) -> Result<Cow<'_, str>, GatewayError> {
    match path.strip_prefix('/') {
        None if path == "*" => return Ok(Cow::Borrowed(path)),
        None => return Err(GatewayError::BadPath("the path must start with /")),
        Some(rest) if is_canonical(rest) => return Ok(Cow::Borrowed(path)),
        Some(_) => {}
    }
    let mut out = String::with_capacity(path.len());
    // Where each kept segment starts in `out` (its `/`), for `..`.
    let mut starts: Vec<usize> = Vec::new();
    let mut trailing = false;
    let segments: Vec<&str> = path[1..].split('/').collect();
    for (i, raw) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let start = out.len();
        out.push('/');
        decode_segment(raw, &mut out)?;
        let segment = &out[start + 1..];
        trailing = last;
        match segment {
            "" | "." => out.truncate(start),
            ".." => {
                out.truncate(start);
                let above = starts
                    .pop()
                    .ok_or(GatewayError::BadPath("a dot segment above the root"))?;
                out.truncate(above);
            }
            _ => {
                starts.push(start);
                trailing = false;
            }
        }
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// Whether a path (after its first `/`) is canonical already: no escapes, backslashes, empty
/// segments (but a trailing slash) or dot segments.
fn is_canonical(rest: &str) -> bool {
    if rest.bytes().any(|b| b == b'%' || b == b'\\') {
        return false;
    }
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if (segment.is_empty() && !last) || segment == "." || segment == ".." {
            return false;
        }
    }
    true
}

/// Appends one raw path segment to `out`, unreserved escapes decoded.
fn decode_segment(raw: &str, out: &mut String) -> Result<(), GatewayError> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' => return Err(GatewayError::BadPath("a backslash")),
            b'%' => {
                let hex = |at: usize| bytes.get(at).and_then(|h| (*h as char).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    return Err(GatewayError::BadPath("broken percent-encoding"));
                };
                let decoded = (hi * 16 + lo) as u8;
                match decoded {
                    b'/' | b'\\' => {
                        return Err(GatewayError::BadPath("an encoded slash or backslash"))
                    }
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        out.push(decoded as char)
                    }
                    _ => {
                        out.push('%');
                        out.push_str(&raw[i + 1..i + 3].to_ascii_uppercase());
                    }
                }
                i += 3;
            }
            _ => {
                // Up to the next escape or backslash (ASCII, so a char boundary): raw UTF-8
                // stays as it came.
                let run = bytes[i..]
                    .iter()
                    .position(|&b| b == b'%' || b == b'\\')
                    .map_or(bytes.len(), |n| i + n);
                out.push_str(&raw[i..run]);
                i = run;
            }
        }
    }
    Ok(())
}

/// The path as a Node/Express router would match it, for deny checks: percent-decoded, lower-case
/// (Express routes are case-insensitive), repeated slashes collapsed, `.`/`..` resolved.
pub fn normalize_path(path: &str) -> std::borrow::Cow<'_, str> {
    // Fast path (nearly every request): nothing to decode, fold or resolve.
    let mut previous = 0;
    let plain = path.bytes().all(|b| {
        let folded =
            matches!(b, b'%' | b'.' | b'\\' | b'A'..=b'Z') || (b == b'/' && previous == b'/');
        previous = b;
        !folded
    });
    if plain && path.starts_with('/') {
        return std::borrow::Cow::Borrowed(path);
    }
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .to_ascii_lowercase();
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        match segment {
            "" | "." => {}
            ".." => drop(segments.pop()),
            s => segments.push(s),
        }
    }
    let trailing = decoded.ends_with('/') && !segments.is_empty();
    let mut out = format!("/{}", segments.join("/"));
    if trailing {
        out.push('/');
    }
    std::borrow::Cow::Owned(out)
}

/// Whether `path` falls under any deny prefix (`/cleanup/` also denies `/cleanup`).
pub fn is_denied(deny: &[String], path: &str) -> bool {
    if deny.is_empty() {
        return false;
    }
    let normalized = normalize_path(path);
    let normalized = normalized.as_bytes();
    // `normalized` is lower-case; prefixes are compared ignoring case, without a copy.
    deny.iter().any(|prefix| {
        let prefix = prefix.as_bytes();
        let whole = prefix.strip_suffix(b"/").unwrap_or(prefix);
        normalized
            .get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
            || normalized.eq_ignore_ascii_case(whole)
    })
}
