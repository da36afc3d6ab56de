//! The access log (one JSON line per proxied request) and request ids.
//!
//! Requests never wait for the log: a line is formatted into a buffer the request's thread
//! reuses and appended to the pending lines under a lock held only for the copy; a writer
//! thread takes everything pending every 100 ms and writes it with one flush. When more than
//! [`MAX_PENDING`] bytes wait (the target stalls), lines are dropped and counted
//! (`fleetgate_access_log_dropped_total`). A reload that changes `access_log` opens the new
//! target first (a file that cannot be opened refuses the reload); the old writer writes what
//! is pending and exits.

use crate::config::AccessLogTarget;
use crate::routing::assign::mix64;
use prometheus::IntCounter;
use serde::Serialize;
use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of lines that may wait for the writer before new ones are dropped.
const MAX_PENDING: usize = 16 * 1024 * 1024;
/// How long the writer gathers lines before writing them (a line appears at most this late).
const BATCH: std::time::Duration = std::time::Duration::from_millis(100);

pub struct AccessLog {
    target: AccessLogTarget,
    pending: Arc<Pending>,
    dropped: IntCounter,
}

/// Lines formatted but not written yet, shared with the writer thread.
#[derive(Default)]
struct Pending {
    lines: Mutex<Vec<u8>>,
    /// The log was replaced or turned off: write what is left and stop.
    closed: AtomicBool,
}

/// One access log line.
#[derive(Serialize)]
pub struct Entry<'a> {
    pub ts: &'a str,
    pub request_id: &'a str,
    pub listener: &'a str,
    pub route: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub duration_ms: f64,
    pub workspace: Option<u64>,
    pub instance: Option<&'a str>,
    pub upstream_status: Option<u16>,
    pub bytes_sent: usize,
    pub webhook: Option<&'static str>,
    /// The client's address (the peer, or whom a trusted proxy speaks for).
    pub client: Option<std::net::IpAddr>,
    /// The stable code of the gateway's own error answer (`None`: the instance answered).
    pub error: Option<&'static str>,
}

thread_local! {
    /// Where this thread formats a line (reused: no allocation per line).
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

impl AccessLog {
    /// Opens the target and starts its writer thread.
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
        let pending = Arc::new(Pending::default());
        let shared = pending.clone();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(&shared, out))
            .map_err(|e| format!("cannot start the access log writer: {e}"))?;
        Ok(Self {
            target: target.clone(),
            pending,
            dropped,
        })
    }

    pub fn target(&self) -> &AccessLogTarget {
        &self.target
    }

    /// Queues one line (dropped and counted when too much is waiting).
    pub fn write(&self, entry: &Entry<'_>) {
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            if serde_json::to_writer(&mut *line, entry).is_err() {
                return;
            }
            line.push(b'\n');
            let mut lines = self.pending.lines.lock().unwrap_or_else(|e| e.into_inner());
            if lines.len() + line.len() > MAX_PENDING {
                drop(lines);
                self.dropped.inc();
                return;
            }
            lines.extend_from_slice(&line);
        });
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.pending.closed.store(true, Ordering::Release);
    }
}

/// The writer thread: every [`BATCH`], everything pending in one write and one flush.
fn write_lines(pending: &Pending, mut out: Box<dyn Write + Send>) {
    let mut batch = Vec::new();
    loop {
        std::thread::sleep(BATCH);
        let closed = pending.closed.load(Ordering::Acquire);
        {
            let mut lines = pending.lines.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut *lines, &mut batch);
        }
        if !batch.is_empty() {
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            // Keep a normal batch's capacity for the next swap; give back a burst's.
            batch.clear();
            batch.shrink_to(1024 * 1024);
        }
        if closed {
            return;
        }
    }
}

/// Now as an RFC 3339 UTC timestamp with milliseconds (`2026-11-25T12:00:00.123Z`), written
/// into `out`. The date and time of day are formatted once per second per thread.
pub fn timestamp_into(out: &mut [u8; 24]) -> &str {
    thread_local! {
        static SECOND: RefCell<(u64, [u8; 19])> = const { RefCell::new((u64::MAX, [0; 19])) };
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    SECOND.with(|second| {
        let mut second = second.borrow_mut();
        if second.0 != now.as_secs() {
            let text = crate::publish::iso8601(now.as_secs() as i64);
            second.1.copy_from_slice(&text.as_bytes()[..19]);
            second.0 = now.as_secs();
        }
        out[..19].copy_from_slice(&second.1);
    });
    let millis = now.subsec_millis();
    out[19] = b'.';
    out[20] = b'0' + (millis / 100) as u8;
    out[21] = b'0' + (millis / 10 % 10) as u8;
    out[22] = b'0' + (millis % 10) as u8;
    out[23] = b'Z';
    std::str::from_utf8(out).unwrap_or_default()
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
pub fn new_request_id() -> [u8; 32] {
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
        let mut buf = [0; 24];
        let ts = timestamp_into(&mut buf);
        assert_eq!(ts.len(), "2026-11-25T12:00:00.123Z".len(), "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.');
    }
}
