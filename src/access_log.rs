//! The access log (one JSON line per proxied request) and request ids.
//!
//! Requests never wait for the log: lines go through a bounded queue to a writer thread, which
//! writes whatever gathered in 100 ms with one flush. When the queue is full the line is
//! dropped and counted (`fleetgate_access_log_dropped_total`). A reload that changes
//! `access_log` opens the new target first (a file that cannot be opened refuses the reload) and
//! the old writer finishes its queue and exits.

use crate::config::AccessLogTarget;
use crate::routing::assign::mix64;
use prometheus::IntCounter;
use serde::Serialize;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Lines that may wait for the writer before new ones are dropped.
const QUEUE: usize = 64 * 1024;
/// How long the writer gathers lines before writing them (a line appears at most this late).
const BATCH: std::time::Duration = std::time::Duration::from_millis(100);

pub struct AccessLog {
    target: AccessLogTarget,
    tx: SyncSender<String>,
    dropped: IntCounter,
}

/// One access log line.
#[derive(Serialize)]
pub struct Entry<'a> {
    /// RFC 3339, UTC, milliseconds.
    pub ts: String,
    pub request_id: &'a str,
    pub listener: &'a str,
    pub route: Option<&'a str>,
    pub method: &'a str,
    /// Without the query string.
    pub path: &'a str,
    pub status: u16,
    pub duration_ms: f64,
    pub workspace: Option<u64>,
    pub instance: Option<&'a str>,
    pub upstream_status: Option<u16>,
    pub bytes_sent: usize,
    /// The webhook verification result, on webhook routes.
    pub webhook: Option<&'static str>,
}

impl AccessLog {
    /// Opens `target` (a file is created or appended to) and starts its writer thread.
    pub fn open(target: &AccessLogTarget, dropped: IntCounter) -> Result<Self, String> {
        let out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?,
            ),
        };
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(rx, out))
            .map_err(|e| format!("cannot start the access log writer: {e}"))?;
        Ok(Self {
            target: target.clone(),
            tx,
            dropped,
        })
    }

    pub fn target(&self) -> &AccessLogTarget {
        &self.target
    }

    /// Queues one line; never waits.
    pub fn write(&self, entry: &Entry<'_>) {
        let Ok(mut line) = serde_json::to_string(entry) else {
            return;
        };
        line.push('\n');
        if let Err(TrySendError::Full(_)) = self.tx.try_send(line) {
            self.dropped.inc();
        }
    }
}

/// The writer thread. After the first line of a quiet spell it waits [`BATCH`] and then writes
/// everything queued with one flush: under load that is one write per [`BATCH`], and requests
/// never wake it (a blocking receive only waits while the queue is empty). Ends when the last
/// [`AccessLog`] for this target is dropped (after writing what was queued).
fn write_lines(rx: mpsc::Receiver<String>, mut out: Box<dyn Write + Send>) {
    let mut buf = std::io::BufWriter::with_capacity(256 * 1024, &mut out);
    while let Ok(first) = rx.recv() {
        std::thread::sleep(BATCH);
        let mut result = buf.write_all(first.as_bytes());
        while let (Ok(()), Ok(more)) = (&result, rx.try_recv()) {
            result = buf.write_all(more.as_bytes());
        }
        // A failed write has nowhere to be reported but the log itself; requests go on.
        let _ = result.and_then(|()| buf.flush());
    }
    let _ = buf.flush();
}

/// Now, as RFC 3339 UTC with milliseconds (`2026-11-25T12:00:00.123Z`).
pub fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = crate::publish::iso8601(now.as_secs() as i64);
    let date_time = seconds.trim_end_matches('Z');
    format!("{date_time}.{:03}Z", now.subsec_millis())
}

/// The request id to use: the client's `X-Request-Id` when it is 1–128 characters of
/// `[A-Za-z0-9._:-]` (kept as is, no copy), else a new one.
pub fn request_id(incoming: Option<&http::HeaderValue>) -> http::HeaderValue {
    match incoming {
        Some(id) if is_valid_request_id(id.as_bytes()) => id.clone(),
        // Hex digits are always a valid header value.
        _ => http::HeaderValue::from_bytes(&new_request_id())
            .unwrap_or(http::HeaderValue::from_static("-")),
    }
}

fn is_valid_request_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// 32 hex digits: a per-process random half and a mixed counter, so ids never repeat within a
/// process and collide across processes only by chance (1 in 2^64).
fn new_request_id() -> [u8; 32] {
    static SEED: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let &(process, key) = SEED.get_or_init(|| {
        // std seeds `RandomState` from the OS's randomness, differently per process.
        let random = |salt: u64| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(salt);
            h.finish()
        };
        (random(1), random(2))
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = [0u8; 32];
    hex_into(&mut out[..16], process);
    hex_into(&mut out[16..], mix64(n ^ key));
    out
}

/// `value` as 16 lower-case hex digits.
fn hex_into(out: &mut [u8], value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = DIGITS[((value >> (60 - 4 * i)) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_keep_safe_client_ids_and_replace_others() {
        let value = |bytes: &[u8]| http::HeaderValue::from_bytes(bytes).unwrap();
        assert_eq!(
            request_id(Some(&value(b"laravel-7f3a.1:x_y"))),
            "laravel-7f3a.1:x_y"
        );
        for bad in [
            &b""[..],
            b"has space",
            b"quote\"",
            &[b'a'; 129],
            "é".as_bytes(),
        ] {
            let id = request_id(Some(&value(bad)));
            assert_eq!(id.len(), 32, "{bad:?} should be replaced");
            assert!(id.as_bytes().iter().all(|b| b.is_ascii_hexdigit()));
        }
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| request_id(None)).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn timestamps_have_milliseconds_and_utc() {
        let ts = timestamp();
        assert_eq!(ts.len(), "2026-11-25T12:00:00.123Z".len(), "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.');
    }
}
