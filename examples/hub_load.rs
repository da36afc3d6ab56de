//! Load client for the hub benchmarks (`bench/hub-bench.sh`); not part of fleetgate.
//!
//! - `hub_load fanout`: `--subs` subscribers on one public channel; 100-byte events published
//!   through the signed HTTP API (`POST /apps/{id}/events`, query from
//!   `fleetgate::hub::auth::sign_api_request`). Each event's data carries its publish time (ns
//!   since this process' epoch) and its sequence number, so every delivery yields a
//!   publish→deliver latency. Prints deliveries/s, latency percentiles, events published,
//!   deliveries expected vs received, close codes (4100 = slow consumer) and the CPU both sides
//!   used in the measured window.
//! - `hub_load idle`: `--conns` connections, each subscribed to its own public channel, held
//!   `--hold` seconds; VmRSS of the gateway (`--server-pid`) before, after, and per connection.
//!
//! Publishing: `--rate 0` (default) is a closed loop: `--publishers` lanes, each posts an event
//! and, with `--gate 1`, waits until the event reached every subscriber before posting the next
//! (the backlog stays bounded whichever side is slower, so latency means something); `--gate 0`
//! only waits for the HTTP answer. `--rate R` is an open loop: event j is due at start + j/R and
//! its timestamp is that due time when the lane runs late (no coordinated omission).
//! Publishers run on their own single-thread runtime (own OS thread); subscribers on a
//! multi-thread runtime with `--threads` workers.
//!
//! Subscribers speak WebSocket on the TcpStream directly by default (`--ws raw`: the upgrade
//! request, then unmasked server frames parsed in place, one read for many frames) because the
//! load client shares one core with nothing but itself and must read faster than the gateway
//! writes; `--ws tungstenite` uses tokio-tungstenite instead (a cross-check, costlier per frame).
//! Output: human lines, then one `RESULT {json}` line. Linux only (/proc).

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

const EVENT: &str = "bench-event";
const STAMP: &[u8] = b"~T";
const PONG: &[u8] = br#"{"event":"pusher:pong","data":"{}"}"#;
/// Per-connection budget for connect + upgrade + subscribe.
const CONNECT_EACH: Duration = Duration::from_secs(15);
/// How long a gated publisher waits for its event to reach everyone before moving on.
const GATE_WAIT: Duration = Duration::from_secs(2);

// ------------------------------------------------------------------------------------ options

type OptSpec = &'static [(&'static str, &'static str, &'static str)];
const COMMON: OptSpec = &[
    (
        "addr",
        "127.0.0.1:18095",
        "hub listener(s) subscribers connect to (host:port[,host:port…], round robin)",
    ),
    ("key", "bench-key", "app key (/app/{key})"),
    ("threads", "1", "subscriber runtime worker threads"),
    ("ramp", "500", "connections opened concurrently per batch"),
    (
        "connect-timeout",
        "180",
        "seconds for the whole connect phase",
    ),
    (
        "server-pid",
        "0",
        "gateway PID: CPU and VmRSS from /proc (0 = none)",
    ),
    (
        "ws",
        "raw",
        "subscriber WebSocket implementation: raw | tungstenite",
    ),
];
const FANOUT: OptSpec = &[
    ("app-id", "bench", "app id (/apps/{id}/events)"),
    (
        "publish-addr",
        "",
        "hub listener events are published to (default: the first --addr)",
    ),
    (
        "secret-env",
        "HUB_SECRET",
        "environment variable holding the app secret",
    ),
    ("subs", "10000", "subscribers on the channel"),
    (
        "stalled",
        "0",
        "extra subscribers that stop reading once subscribed (not counted; slow consumers)",
    ),
    ("channel", "bench", "public channel"),
    (
        "publishers",
        "2",
        "concurrent publishers (HTTP keep-alive connections)",
    ),
    ("rate", "0", "events/s, open loop; 0 = closed loop"),
    (
        "gate",
        "1",
        "closed loop: 1 = wait for each event to reach every subscriber",
    ),
    ("payload", "100", "event data bytes"),
    (
        "warmup",
        "2",
        "seconds published before the measured window",
    ),
    ("duration", "10", "seconds of the measured window"),
    (
        "spin",
        "0",
        "1 = keep the subscriber threads busy while publishing (never asleep in epoll)",
    ),
    (
        "drain",
        "5",
        "seconds to wait for outstanding deliveries after publishing stops",
    ),
];
const IDLE: OptSpec = &[
    (
        "conns",
        "20000",
        "idle connections, one public channel each",
    ),
    ("hold", "5", "seconds to hold them before measuring"),
    (
        "settle",
        "30",
        "seconds after closing them before the gateway's VmRSS is read again",
    ),
    ("channel", "idle", "channel prefix (idle-0, idle-1, ...)"),
];

struct Opts(HashMap<String, String>);

impl Opts {
    fn parse(args: &[String], specs: &[OptSpec]) -> Result<Self, String> {
        let mut map: HashMap<String, String> = specs
            .iter()
            .flat_map(|s| s.iter())
            .map(|(k, v, _)| (k.to_string(), v.to_string()))
            .collect();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let name = arg
                .strip_prefix("--")
                .ok_or(format!("unexpected `{arg}`"))?;
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => (
                    name.to_string(),
                    it.next().ok_or(format!("--{name} needs a value"))?.clone(),
                ),
            };
            if !map.contains_key(&name) {
                return Err(format!("unknown option --{name}"));
            }
            map.insert(name, value);
        }
        Ok(Self(map))
    }
    fn str(&self, k: &str) -> &str {
        &self.0[k]
    }
    fn num(&self, k: &str) -> u64 {
        self.0[k]
            .parse()
            .unwrap_or_else(|_| die(&format!("--{k} must be a number")))
    }
    fn secs(&self, k: &str) -> Duration {
        Duration::from_secs_f64(
            self.0[k]
                .parse()
                .unwrap_or_else(|_| die(&format!("--{k} must be seconds"))),
        )
    }
}

fn usage() -> String {
    let mut u = String::from("usage: hub_load fanout|idle [--option value]...\n");
    for (title, spec) in [("common", COMMON), ("fanout", FANOUT), ("idle", IDLE)] {
        u += &format!("{title}:\n");
        for (k, v, help) in spec.iter() {
            u += &format!("  --{k:<16} {help} (default {v})\n");
        }
    }
    u
}

fn die(msg: &str) -> ! {
    eprintln!("hub_load: {msg}");
    std::process::exit(2)
}

// ------------------------------------------------------------------------- clock, histogram

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since this process' epoch: publishers and subscribers share it.
fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn unix_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Log-linear histogram of microseconds: exact below 64 µs, then 32 sub-buckets per power of two
/// (≤ 3 % error). Lock-free: subscribers on any thread record into it.
struct Hist(Vec<AtomicU64>);

const MAX_EXP: u32 = 40;

impl Hist {
    fn new() -> Self {
        Self(
            (0..64 + (MAX_EXP as usize - 5) * 32)
                .map(|_| AtomicU64::new(0))
                .collect(),
        )
    }
    fn index(us: u64) -> usize {
        if us < 64 {
            return us as usize;
        }
        let e = (63 - us.leading_zeros()).min(MAX_EXP);
        let sub = (us >> (e - 5)) & 31;
        64 + (e as usize - 6) * 32 + sub as usize
    }
    /// Upper bound (µs) of bucket `i`.
    fn upper(i: usize) -> u64 {
        if i < 64 {
            return i as u64;
        }
        let (e, sub) = ((i - 64) / 32 + 6, ((i - 64) % 32) as u64);
        (1u64 << e) + ((sub + 1) << (e - 5)) - 1
    }
    fn record(&self, us: u64) {
        self.0[Self::index(us).min(self.0.len() - 1)].fetch_add(1, Relaxed);
    }
    fn counts(&self) -> Vec<u64> {
        self.0.iter().map(|c| c.load(Relaxed)).collect()
    }
    /// Percentiles (µs) of the recorded values; None when empty.
    fn percentiles(&self, ps: &[f64]) -> Vec<Option<u64>> {
        let counts = self.counts();
        let total: u64 = counts.iter().sum();
        ps.iter()
            .map(|p| {
                let rank = ((p / 100.0 * total as f64).ceil() as u64).max(1);
                let mut seen = 0;
                counts.iter().enumerate().find_map(|(i, c)| {
                    seen += c;
                    (total > 0 && seen >= rank).then(|| Self::upper(i))
                })
            })
            .collect()
    }
}

fn ms(us: Option<u64>) -> String {
    us.map_or("-".into(), |u| format!("{:.2} ms", u as f64 / 1000.0))
}

// ------------------------------------------------------------------------------ shared stats

struct Stats {
    subscribed: AtomicU64,
    failed: AtomicU64,
    alive: AtomicU64,
    received: AtomicU64,
    other_frames: AtomicU64,
    last_recv_ns: AtomicU64,
    /// Only deliveries of events published at or after this time are in the latency histogram.
    measure_from_ns: AtomicU64,
    latency: Hist,
    max_latency_ns: AtomicU64,
    /// Deliveries due: each successful publish adds the subscribers alive when it was sent.
    expected: AtomicU64,
    published_ok: AtomicU64,
    published_failed: AtomicU64,
    published_window: AtomicU64,
    gate_timeouts: AtomicU64,
    api_latency: Hist,
    /// Gated publishers: the lowest `received` any of them waits for, and their wake-up.
    gate_min: AtomicU64,
    gate: Notify,
    closes: Mutex<BTreeMap<String, u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    fn new() -> Self {
        Self {
            subscribed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            alive: AtomicU64::new(0),
            received: AtomicU64::new(0),
            other_frames: AtomicU64::new(0),
            last_recv_ns: AtomicU64::new(0),
            measure_from_ns: AtomicU64::new(u64::MAX),
            latency: Hist::new(),
            max_latency_ns: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            published_ok: AtomicU64::new(0),
            published_failed: AtomicU64::new(0),
            published_window: AtomicU64::new(0),
            gate_timeouts: AtomicU64::new(0),
            api_latency: Hist::new(),
            gate_min: AtomicU64::new(u64::MAX),
            gate: Notify::new(),
            closes: Mutex::default(),
            errors: Mutex::default(),
        }
    }

    fn bump(map: &Mutex<BTreeMap<String, u64>>, key: String) {
        *map.lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default() += 1;
    }

    /// `n` deliveries read at `now`; wakes gated publishers whose target is reached.
    fn delivered(&self, n: u64, now: u64) {
        let total = self.received.fetch_add(n, SeqCst) + n;
        self.last_recv_ns.fetch_max(now, Relaxed);
        if total >= self.gate_min.load(SeqCst) {
            self.gate_min.store(u64::MAX, SeqCst);
            self.gate.notify_waiters();
        }
    }

    /// Waits until `received >= target`; false after `limit`.
    async fn wait_received(&self, target: u64, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.gate.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.gate_min.fetch_min(target, SeqCst);
            if self.received.load(SeqCst) >= target {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// A text frame read at `now`: an event (true) or something else.
    fn on_text(&self, text: &[u8], now: u64) -> Text {
        if let Some(t) = stamp_of(text) {
            if t >= self.measure_from_ns.load(Relaxed) {
                let lat = now.saturating_sub(t);
                self.latency.record(lat / 1000);
                self.max_latency_ns.fetch_max(lat, Relaxed);
            }
            return Text::Event;
        }
        self.other_frames.fetch_add(1, Relaxed);
        if find(text, b"pusher:ping").is_some() {
            Text::Ping
        } else {
            Text::Other
        }
    }
}

enum Text {
    Event,
    Ping,
    Other,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The publish timestamp after `~T` in an event's data.
fn stamp_of(text: &[u8]) -> Option<u64> {
    let at = find(text, STAMP)? + STAMP.len();
    let digits = text[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .take(20);
    Some(digits.fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Event data of exactly `size` bytes (at least the stamp): `~T<ns>~S<seq>~xxxx…`.
fn event_data(t_ns: u64, seq: u64, size: usize) -> String {
    let mut data = format!("~T{t_ns:020}~S{seq:012}~");
    let pad = size.saturating_sub(data.len());
    data.extend(std::iter::repeat_n('x', pad));
    data
}

// -------------------------------------------------------------------------- raw WebSocket

/// A client WebSocket on a bare TcpStream: frames from the server (unmasked) are parsed in
/// place in `buf[start..end]`; frames to the server are masked.
struct RawWs {
    tcp: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl RawWs {
    async fn connect(addr: &str, key: &str, buf_size: usize) -> io::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let mut ws = Self {
            tcp,
            buf: vec![0; buf_size],
            start: 0,
            end: 0,
        };
        let req = format!(
            "GET /app/{key}?protocol=7&client=hub_load&version=8.4.0&flash=false HTTP/1.1\r\nHost: {addr}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        ws.tcp.write_all(req.as_bytes()).await?;
        loop {
            if let Some(p) = find(&ws.buf[..ws.end], b"\r\n\r\n") {
                if !ws.buf.starts_with(b"HTTP/1.1 101") {
                    let line = String::from_utf8_lossy(&ws.buf[..p.min(40)]).into_owned();
                    return Err(io::Error::other(format!("upgrade refused: {line}")));
                }
                ws.start = p + 4;
                return Ok(ws);
            }
            if ws.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Reads more bytes (compacting or growing the buffer first); 0 at EOF.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let n = self.tcp.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// The next complete frame already buffered: (opcode, payload range in `buf`).
    fn frame(&mut self) -> io::Result<Option<(u8, Range<usize>)>> {
        let b = &self.buf[self.start..self.end];
        if b.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (b[0], b[1]);
        if b1 & 0x80 != 0 || b0 & 0x80 == 0 || b0 & 0x0f == 0 {
            return Err(io::Error::other("masked or fragmented server frame"));
        }
        let (len, hdr) = match b1 & 0x7f {
            126 if b.len() >= 4 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap_or_default()),
                10,
            ),
            126 | 127 => return Ok(None),
            n => (u64::from(n), 2),
        };
        let total = hdr + len as usize;
        if b.len() < total {
            return Ok(None);
        }
        let payload = self.start + hdr..self.start + total;
        self.start += total;
        Ok(Some((b0 & 0x0f, payload)))
    }

    async fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.tcp.write_all(&masked_frame(opcode, payload)).await
    }

    /// Reads until a text frame containing `want`; errors on a close, EOF or a Pusher error.
    async fn expect(&mut self, want: &[u8]) -> io::Result<()> {
        loop {
            while let Some((op, r)) = self.frame()? {
                let payload = &self.buf[r];
                match op {
                    1 if find(payload, want).is_some() => return Ok(()),
                    1 if find(payload, b"error").is_some() => {
                        return Err(io::Error::other(
                            String::from_utf8_lossy(payload).into_owned(),
                        ))
                    }
                    8 => return Err(io::Error::other(format!("closed {}", close_code(payload)))),
                    _ => {}
                }
            }
            if self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Reads until the connection ends; returns why (`close 4100`, `eof`, ...).
    async fn read_loop(&mut self, s: &Stats) -> String {
        loop {
            let now = now_ns();
            let (mut events, mut reply) = (0, None);
            loop {
                match self.frame() {
                    Err(e) => return format!("bad frame: {e}"),
                    Ok(None) => break,
                    Ok(Some((1, r))) => match s.on_text(&self.buf[r], now) {
                        Text::Event => events += 1,
                        Text::Ping => reply = Some((1, PONG.to_vec())),
                        Text::Other => {}
                    },
                    Ok(Some((8, r))) => {
                        s.delivered(events, now);
                        return format!("close {}", close_code(&self.buf[r]));
                    }
                    Ok(Some((9, r))) => reply = Some((10, self.buf[r].to_vec())),
                    Ok(Some(_)) => {}
                }
            }
            if events > 0 {
                s.delivered(events, now);
            }
            if let Some((op, payload)) = reply {
                if self.send(op, &payload).await.is_err() {
                    return "write error".into();
                }
            }
            match self.fill().await {
                Ok(0) => return "eof".into(),
                Err(e) => return format!("read error: {:?}", e.kind()),
                Ok(_) => {}
            }
        }
    }
}

fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    const MASK: [u8; 4] = [0x5a, 0x1c, 0x93, 0x2e];
    let mut f = Vec::with_capacity(payload.len() + 14);
    f.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&MASK);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    f
}

fn close_code(payload: &[u8]) -> u16 {
    match payload {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 1005,
    }
}

fn subscribe_frame(channel: &str) -> String {
    json!({"event": "pusher:subscribe", "data": {"channel": channel}}).to_string()
}

// ---------------------------------------------------------------------------- subscribers

#[derive(Clone)]
struct Target {
    /// Where subscribers connect: `--addr`, a comma list, taken round robin (several cluster nodes).
    addrs: Vec<String>,
    key: String,
    tungstenite: bool,
    buf_size: usize,
}

/// `n` subscribers of `channel` that never read after subscribing: each keeps its socket open
/// until the hub closes it (a slow consumer). Returns their tasks.
async fn stall(t: &Target, channel: &str, n: u64) -> Vec<tokio::task::JoinHandle<()>> {
    let mut stalled = Vec::new();
    for _ in 0..n {
        let mut ws = RawWs::connect(&t.addrs[0], &t.key, 2048)
            .await
            .unwrap_or_else(|e| die(&format!("stalled subscriber: {e}")));
        let subscribed = async {
            ws.expect(b"pusher:connection_established").await?;
            ws.send(1, subscribe_frame(channel).as_bytes()).await?;
            ws.expect(b"pusher_internal:subscription_succeeded").await
        };
        subscribed
            .await
            .unwrap_or_else(|e| die(&format!("stalled subscriber: {e}")));
        stalled.push(tokio::spawn(async move {
            let _held = ws;
            std::future::pending::<()>().await
        }));
    }
    if n > 0 {
        println!("  {n} stalled subscriber(s) on `{channel}`: subscribed, then never read");
    }
    stalled
}

/// One subscriber: connect (to `addr`), subscribe to `channel`, then read until the connection ends.
async fn subscriber(t: Arc<Target>, addr: String, channel: String, s: Arc<Stats>) {
    let end = if t.tungstenite {
        tungstenite_subscriber(&t, &addr, &channel, &s).await
    } else {
        let ready = tokio::time::timeout(CONNECT_EACH, async {
            let mut ws = RawWs::connect(&addr, &t.key, t.buf_size).await?;
            ws.expect(b"pusher:connection_established").await?;
            ws.send(1, subscribe_frame(&channel).as_bytes()).await?;
            ws.expect(b"pusher_internal:subscription_succeeded").await?;
            Ok::<_, io::Error>(ws)
        })
        .await;
        match ready {
            Ok(Ok(mut ws)) => {
                s.subscribed.fetch_add(1, Relaxed);
                s.alive.fetch_add(1, Relaxed);
                Ok(ws.read_loop(&s).await)
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("connect+subscribe timed out".into()),
        }
    };
    match end {
        Ok(why) => {
            s.alive.fetch_sub(1, Relaxed);
            Stats::bump(&s.closes, why);
        }
        Err(e) => {
            s.failed.fetch_add(1, Relaxed);
            Stats::bump(&s.errors, e);
        }
    }
}

/// The same subscriber over tokio-tungstenite; Ok(why it ended) once subscribed.
async fn tungstenite_subscriber(
    t: &Target,
    addr: &str,
    channel: &str,
    s: &Stats,
) -> Result<String, String> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{protocol::WebSocketConfig, Message};
    let url = format!(
        "ws://{}/app/{}?protocol=7&client=hub_load&version=8.4.0",
        addr, t.key
    );
    let config = WebSocketConfig::default().read_buffer_size(t.buf_size);
    let ready = tokio::time::timeout(CONNECT_EACH, async {
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
            .await
            .map_err(|e| e.to_string())?;
        for (want, send) in [
            (
                "pusher:connection_established",
                Some(subscribe_frame(channel)),
            ),
            ("pusher_internal:subscription_succeeded", None),
        ] {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(text))) if text.contains(want) => break,
                    Some(Ok(Message::Text(text))) if text.contains("error") => {
                        return Err(text.to_string())
                    }
                    Some(Ok(Message::Close(f))) => return Err(format!("closed {f:?}")),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("eof".into()),
                }
            }
            if let Some(frame) = send {
                ws.send(Message::Text(frame.into()))
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(ws)
    })
    .await
    .map_err(|_| "connect+subscribe timed out".to_string())??;
    let mut ws = ready;
    s.subscribed.fetch_add(1, Relaxed);
    s.alive.fetch_add(1, Relaxed);
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let now = now_ns();
                match s.on_text(text.as_bytes(), now) {
                    Text::Event => s.delivered(1, now),
                    Text::Ping => {
                        let pong = String::from_utf8_lossy(PONG).into_owned();
                        if ws.send(Message::Text(pong.into())).await.is_err() {
                            return Ok("write error".into());
                        }
                    }
                    Text::Other => {}
                }
            }
            Some(Ok(Message::Close(f))) => {
                return Ok(format!("close {}", f.map_or(1005, |f| u16::from(f.code))))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Ok(format!("read error: {e}")),
            None => return Ok("eof".into()),
        }
    }
}

/// Opens `channels.len()` subscribers in batches of `ramp`, waiting for each batch to be
/// subscribed (or failed) before the next; returns their handles and the time it took.
/// Prints the connect summary line; returns how many sockets subscribed.
fn report_connect(s: &Stats, connect_time: Duration) -> u64 {
    let subscribed = s.subscribed.load(Relaxed);
    let failed = s.failed.load(Relaxed);
    let errors = if failed > 0 {
        format!(" ({})", map_text(&s.errors))
    } else {
        String::new()
    };
    println!(
        "  connect: {subscribed} subscribed, {failed} failed in {:.1} s{errors}",
        connect_time.as_secs_f64()
    );
    subscribed
}

async fn connect_all(
    t: &Arc<Target>,
    channels: impl Iterator<Item = String>,
    total: u64,
    ramp: u64,
    budget: Duration,
    s: &Arc<Stats>,
) -> (Vec<tokio::task::JoinHandle<()>>, Duration) {
    let started_at = Instant::now();
    let mut handles = Vec::with_capacity(total as usize);
    let mut next_report = 2000;
    let mut channels = channels.peekable();
    while channels.peek().is_some() {
        for channel in channels.by_ref().take(ramp as usize) {
            let addr = t.addrs[handles.len() % t.addrs.len()].clone();
            handles.push(tokio::spawn(subscriber(
                t.clone(),
                addr,
                channel,
                s.clone(),
            )));
        }
        loop {
            let done = s.subscribed.load(Relaxed) + s.failed.load(Relaxed);
            if done >= handles.len() as u64 {
                break;
            }
            if started_at.elapsed() > budget {
                eprintln!("  connect phase over its {budget:?} budget: {done}/{total} done");
                return (handles, started_at.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if handles.len() as u64 >= next_report || handles.len() as u64 == total {
            eprintln!(
                "  connected {}/{total} ({} failed) in {:.1} s",
                s.subscribed.load(Relaxed),
                s.failed.load(Relaxed),
                started_at.elapsed().as_secs_f64()
            );
            next_report += 2000;
        }
    }
    (handles, started_at.elapsed())
}

// ------------------------------------------------------------------------------- publisher

/// A keep-alive HTTP/1.1 connection to the hub's API (raw, to stay cheap on the load core).
struct Api {
    addr: String,
    tcp: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Api {
    async fn post(&mut self, target: &str, body: &[u8]) -> io::Result<u16> {
        let result = self.exchange(target, body).await;
        if result.is_err() {
            self.tcp = None;
        }
        result
    }

    async fn exchange(&mut self, target: &str, body: &[u8]) -> io::Result<u16> {
        if self.tcp.is_none() {
            let tcp = TcpStream::connect(&self.addr).await?;
            tcp.set_nodelay(true)?;
            self.tcp = Some(tcp);
        }
        let Some(tcp) = self.tcp.as_mut() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let mut req = format!(
            "POST {target} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        tcp.write_all(&req).await?;
        self.buf.clear();
        loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..p]).to_ascii_lowercase();
                let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while self.buf.len() < p + 4 + length {
                    if tcp.read_buf(&mut self.buf).await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                if head.contains("connection: close") {
                    self.tcp = None;
                }
                return Ok(status);
            }
            if tcp.read_buf(&mut self.buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

struct Publish {
    addr: String,
    app_id: String,
    key: String,
    secret: String,
    channel: String,
    payload: usize,
    rate: f64,
    gate: bool,
    start_ns: u64,
    stop_ns: u64,
}

/// One publisher lane: posts events until `stop_ns` (see the module doc for the loop kinds).
async fn lane(p: Arc<Publish>, seq: Arc<AtomicU64>, s: Arc<Stats>) {
    let mut api = Api {
        addr: p.addr.clone(),
        tcp: None,
        buf: Vec::with_capacity(4096),
    };
    let path = format!("/apps/{}/events", p.app_id);
    loop {
        let j = seq.fetch_add(1, Relaxed);
        let t_pub = if p.rate > 0.0 {
            let due = p.start_ns + (j as f64 * 1e9 / p.rate) as u64;
            if due >= p.stop_ns {
                return;
            }
            let now = now_ns();
            if due > now {
                tokio::time::sleep(Duration::from_nanos(due - now)).await;
            }
            let now = now_ns();
            // on time: the real send time; late: the due time (the lateness is latency too)
            if now <= due + 2_000_000 {
                now
            } else {
                due
            }
        } else {
            let now = now_ns();
            if now >= p.stop_ns {
                return;
            }
            now
        };
        let alive = s.alive.load(Relaxed);
        let target = s.expected.fetch_add(alive, SeqCst) + alive;
        let body =
            json!({"name": EVENT, "channel": p.channel, "data": event_data(t_pub, j, p.payload)})
                .to_string();
        let query = fleetgate::hub::auth::sign_api_request(
            &p.key,
            &p.secret,
            "POST",
            &path,
            &[],
            body.as_bytes(),
            unix_secs(),
        );
        let sent = now_ns();
        let result = api.post(&format!("{path}?{query}"), body.as_bytes()).await;
        s.api_latency.record(now_ns().saturating_sub(sent) / 1000);
        match result {
            Ok(200) => {
                s.published_ok.fetch_add(1, Relaxed);
                if t_pub >= s.measure_from_ns.load(Relaxed) {
                    s.published_window.fetch_add(1, Relaxed);
                }
            }
            other => {
                s.expected.fetch_sub(alive, SeqCst);
                s.published_failed.fetch_add(1, Relaxed);
                Stats::bump(&s.errors, format!("publish: {other:?}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        }
        if p.gate && p.rate == 0.0 && !s.wait_received(target, GATE_WAIT).await {
            s.gate_timeouts.fetch_add(1, Relaxed);
        }
    }
}

/// Runs `lanes` publishers on a runtime of their own (own OS thread); resolves when all stop.
fn spawn_publishers(
    p: Arc<Publish>,
    lanes: u64,
    s: Arc<Stats>,
) -> tokio::sync::oneshot::Receiver<()> {
    let (done, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let Ok(rt) = rt else {
            die("cannot build the publisher runtime")
        };
        rt.block_on(async {
            let seq = Arc::new(AtomicU64::new(0));
            let tasks: Vec<_> = (0..lanes)
                .map(|_| tokio::spawn(lane(p.clone(), seq.clone(), s.clone())))
                .collect();
            for t in tasks {
                let _ = t.await;
            }
        });
        let _ = done.send(());
    });
    rx
}

// ------------------------------------------------------------------------------ /proc

/// CPU ticks (USER_HZ = 100) per cpu (total, idle), of a process, and of this one.
struct CpuSnap {
    at: Instant,
    cpus: Vec<(String, u64, u64)>,
    server: Option<u64>,
    me: Option<u64>,
}

fn proc_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn cpu_snap(server_pid: u64) -> CpuSnap {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpus = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let v: Vec<u64> = f[1..].iter().filter_map(|x| x.parse().ok()).collect();
            (v.len() >= 5).then(|| (f[0].to_string(), v.iter().sum(), v[3] + v[4]))
        })
        .collect();
    let server = (server_pid > 0)
        .then(|| proc_ticks(&server_pid.to_string()))
        .flatten();
    CpuSnap {
        at: Instant::now(),
        cpus,
        server,
        me: proc_ticks("self"),
    }
}

/// (per-cpu busy text, gateway cores used, client cores used) between two snapshots.
fn cpu_used(a: &CpuSnap, b: &CpuSnap) -> (String, Option<f64>, Option<f64>) {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
    let busy = a
        .cpus
        .iter()
        .zip(&b.cpus)
        .map(|((n, t0, i0), (_, t1, i1))| {
            let dt = (t1 - t0).max(1);
            format!("{n}={}%", 100 * (dt - (i1 - i0).min(dt)) / dt)
        })
        .collect::<Vec<_>>()
        .join(" ");
    let cores = |x: Option<u64>, y: Option<u64>| Some((y? as f64 - x? as f64) / 100.0 / secs);
    (busy, cores(a.server, b.server), cores(a.me, b.me))
}

fn vm_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Open descriptors of `pid` (sockets mostly): shows whether closed sessions were cleaned up.
fn open_fds(pid: &str) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

fn map_json(m: &Mutex<BTreeMap<String, u64>>) -> Value {
    json!(*m.lock().unwrap_or_else(|p| p.into_inner()))
}

fn map_text(m: &Mutex<BTreeMap<String, u64>>) -> String {
    let m = m.lock().unwrap_or_else(|p| p.into_inner());
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "meets the goal"
    } else {
        "MISSES the goal"
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------- fanout

async fn fanout(o: Opts, t: Arc<Target>) -> i32 {
    let s = Arc::new(Stats::new());
    let subs = o.num("subs");
    let server_pid = o.num("server-pid");
    let secret = std::env::var(o.str("secret-env")).unwrap_or_default();
    if secret.is_empty() {
        die(&format!(
            "the app secret must be in ${}",
            o.str("secret-env")
        ));
    }
    let channel = o.str("channel").to_string();
    println!(
        "hub_load fanout: {subs} subscribers on `{channel}` ({} ws), {}-byte events via POST /apps/{}/events",
        o.str("ws"),
        o.num("payload"),
        o.str("app-id")
    );
    let (handles, connect_time) = connect_all(
        &t,
        std::iter::repeat_n(channel.clone(), subs as usize),
        subs,
        o.num("ramp"),
        o.secs("connect-timeout"),
        &s,
    )
    .await;
    let subscribed = report_connect(&s, connect_time);
    let stalled = stall(&t, &channel, o.num("stalled")).await;
    if subscribed == 0 {
        println!(
            "RESULT {}",
            json!({"mode": "fanout", "error": "no subscriber", "errors": map_json(&s.errors)})
        );
        return 1;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (warmup, duration) = (o.secs("warmup"), o.secs("duration"));
    let start_ns = now_ns();
    let t0_ns = start_ns + warmup.as_nanos() as u64;
    let t1_ns = t0_ns + duration.as_nanos() as u64;
    s.measure_from_ns.store(t0_ns, Relaxed);
    let rate = o.str("rate").parse::<f64>().unwrap_or(0.0);
    let publish = Arc::new(Publish {
        addr: match o.str("publish-addr") {
            "" => t.addrs[0].clone(),
            other => other.to_string(),
        },
        app_id: o.str("app-id").into(),
        key: t.key.clone(),
        secret,
        channel: channel.clone(),
        payload: o.num("payload") as usize,
        rate,
        gate: o.num("gate") == 1,
        start_ns,
        stop_ns: t1_ns,
    });
    let publishers = o.num("publishers").max(1);
    // --spin 1: the subscriber threads never sleep in epoll_wait, so the gateway's sends on
    // loopback do not pay for waking them (a busy client population, as in the Node reference).
    let spinning = Arc::new(AtomicBool::new(o.num("spin") == 1));
    if spinning.load(Relaxed) {
        for _ in 0..o.num("threads").max(1) {
            let spinning = spinning.clone();
            tokio::spawn(async move {
                while spinning.load(Relaxed) {
                    tokio::task::yield_now().await;
                }
            });
        }
    }
    let done = spawn_publishers(publish.clone(), publishers, s.clone());

    let sleep_until =
        |ns: u64| tokio::time::sleep(Duration::from_nanos(ns.saturating_sub(now_ns())));
    sleep_until(t0_ns).await;
    let (r0, snap0) = (s.received.load(SeqCst), cpu_snap(server_pid));
    sleep_until(t1_ns).await;
    let (r1, snap1) = (s.received.load(SeqCst), cpu_snap(server_pid));
    let window_secs = snap1.at.duration_since(snap0.at).as_secs_f64();
    let _ = tokio::time::timeout(GATE_WAIT + Duration::from_secs(5), done).await;
    let drain_deadline = Instant::now() + o.secs("drain");
    while s.received.load(SeqCst) < s.expected.load(SeqCst) && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    spinning.store(false, Relaxed);
    tokio::time::sleep(Duration::from_millis(100)).await; // let close frames arrive

    report_fanout(
        &o,
        &s,
        publishers,
        rate,
        (r0, r1, window_secs),
        start_ns,
        (&snap0, &snap1),
    );
    for h in handles.into_iter().chain(stalled) {
        h.abort();
    }
    0
}

fn report_fanout(
    o: &Opts,
    s: &Stats,
    publishers: u64,
    rate: f64,
    (r0, r1, window_secs): (u64, u64, f64),
    start_ns: u64,
    (snap0, snap1): (&CpuSnap, &CpuSnap),
) {
    let (received, expected) = (s.received.load(SeqCst), s.expected.load(SeqCst));
    let in_window = r1 - r0;
    let per_sec = in_window as f64 / window_secs;
    let all_secs = s.last_recv_ns.load(Relaxed).saturating_sub(start_ns) as f64 / 1e9;
    let (busy, server_cores, client_cores) = cpu_used(snap0, snap1);
    let pct = s.latency.percentiles(&[50.0, 90.0, 99.0, 99.9]);
    let api = s.api_latency.percentiles(&[50.0, 99.0]);
    let max_us = s.max_latency_ns.load(Relaxed) / 1000;
    let closes = s.closes.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let slow = closes.get("close 4100").copied().unwrap_or(0);
    let mode = if rate > 0.0 {
        format!("open loop at {rate} events/s, {publishers} publishers")
    } else if o.num("gate") == 1 {
        format!("closed loop, {publishers} publishers, each waits for its event to reach every subscriber")
    } else {
        format!("closed loop, {publishers} publishers, each waits for the API answer only")
    };
    let (window_pub, ok, failed) = (
        s.published_window.load(Relaxed),
        s.published_ok.load(Relaxed),
        s.published_failed.load(Relaxed),
    );
    println!(
        "  publish: {mode}; warm-up {} s, measured {} s",
        o.str("warmup"),
        o.str("duration")
    );
    println!(
        "  events published: {window_pub} in the window = {:.1}/s ({ok} in all, {failed} failed, gate timeouts {}); API answer p50 {} p99 {}",
        window_pub as f64 / window_secs,
        s.gate_timeouts.load(Relaxed),
        ms(api[0]),
        ms(api[1])
    );
    println!(
        "  deliveries: expected {}, received {} (missing {}); 4100 slow-consumer disconnects: {slow}; connection ends: {}; other frames: {}",
        thousands(expected),
        thousands(received),
        expected.saturating_sub(received),
        if closes.is_empty() { "none".into() } else { map_text(&s.closes) },
        s.other_frames.load(Relaxed)
    );
    println!(
        "  deliveries/s: {} total = {} per server core (gateway threads: 1, pinned)   goal >= 500,000/core: {}   (naive Node ws hub here: 100-165k/s)",
        thousands(per_sec as u64),
        thousands(per_sec as u64),
        verdict(per_sec >= 500_000.0)
    );
    println!(
        "  latency publish->deliver: p50 {} p90 {} p99 {} p99.9 {} max {}   goal p99 < 50 ms: {}",
        ms(pct[0]),
        ms(pct[1]),
        ms(pct[2]),
        ms(pct[3]),
        ms(Some(max_us)),
        verdict(pct[2].is_some_and(|p| p < 50_000))
    );
    let fmt_cores = |c: Option<f64>| c.map_or("-".into(), |c| format!("{c:.2}"));
    println!(
        "  cpu in the window: {busy}; gateway {} core, load client {} core",
        fmt_cores(server_cores),
        fmt_cores(client_cores)
    );
    let per_server_cpu_sec = server_cores.filter(|c| *c > 0.05).map(|c| per_sec / c);
    if let Some(v) = per_server_cpu_sec {
        println!(
            "  deliveries per gateway CPU-second: {}",
            thousands(v as u64)
        );
    }
    let spin = o.num("spin") == 1;
    match (server_cores, client_cores) {
        (Some(sc), _) if spin && sc < 0.9 => println!(
            "  bottleneck: probably the load client (the gateway's core is not saturated; the client spins by design, --spin 1, so its CPU use says nothing)"
        ),
        (Some(sc), Some(cc)) if cc >= 0.9 && sc < 0.9 => println!(
            "  bottleneck: the load client (its core is saturated, the gateway's is not): deliveries/s is a floor for the gateway"
        ),
        (Some(sc), _) if sc >= 0.9 => println!("  bottleneck: the gateway's core (saturated)"),
        _ => println!("  bottleneck: neither core saturated (latency-bound: publishers wait for deliveries)"),
    }
    let result = json!({
        "mode": "fanout", "ws": o.str("ws"), "subscribers": s.subscribed.load(Relaxed),
        "connect_failed": s.failed.load(Relaxed), "connect_errors": map_json(&s.errors),
        "publishers": publishers, "rate": rate, "gate": o.num("gate"), "spin": o.num("spin"), "payload_bytes": o.num("payload"),
        "window_secs": window_secs, "events_in_window": window_pub, "events_ok": ok, "events_failed": failed,
        "gate_timeouts": s.gate_timeouts.load(Relaxed),
        "deliveries_expected": expected, "deliveries_received": received,
        "deliveries_in_window": in_window, "deliveries_per_sec": per_sec.round(),
        "deliveries_per_sec_per_core": per_sec.round(),
        "deliveries_per_sec_overall": (received as f64 / all_secs.max(1e-3)).round(),
        "deliveries_per_gateway_cpu_sec": per_server_cpu_sec.map(f64::round),
        "slow_consumer_4100": slow, "connection_ends": map_json(&s.closes),
        "latency_us": {"p50": pct[0], "p90": pct[1], "p99": pct[2], "p999": pct[3], "max": max_us},
        "api_us": {"p50": api[0], "p99": api[1]},
        "cpu_window": busy, "gateway_cores": server_cores, "client_cores": client_cores,
    });
    println!("RESULT {result}");
}

// ------------------------------------------------------------------------------------ idle

async fn idle(o: Opts, t: Arc<Target>) -> i32 {
    let s = Arc::new(Stats::new());
    let conns = o.num("conns");
    let pid = o.num("server-pid").to_string();
    let Some(before) = vm_rss_kib(&pid) else {
        die(&format!("cannot read VmRSS of --server-pid {pid}"));
    };
    let fds_before = open_fds(&pid);
    let prefix = o.str("channel").to_string();
    println!(
        "hub_load idle: {conns} connections ({} ws), one public channel each ({prefix}-0 ...)",
        o.str("ws")
    );
    let channels = (0..conns).map(|i| format!("{prefix}-{i}"));
    let (handles, connect_time) = connect_all(
        &t,
        channels,
        conns,
        o.num("ramp"),
        o.secs("connect-timeout"),
        &s,
    )
    .await;
    report_connect(&s, connect_time);
    let hold = o.secs("hold");
    let mut samples = Vec::new();
    let hold_end = Instant::now() + hold;
    while Instant::now() < hold_end {
        tokio::time::sleep(Duration::from_secs(1).min(hold_end - Instant::now())).await;
        samples.extend(vm_rss_kib(&pid));
    }
    let after = vm_rss_kib(&pid).unwrap_or(0);
    let fds_after = open_fds(&pid);
    let alive = s.alive.load(Relaxed);
    let delta = after.saturating_sub(before);
    let per_conn = if alive > 0 {
        delta as f64 / alive as f64
    } else {
        0.0
    };
    println!(
        "  gateway VmRSS: before {} KiB, after {} KiB with {alive} open (held {} s; samples {samples:?})",
        thousands(before),
        thousands(after),
        o.str("hold")
    );
    println!(
        "  RSS per idle connection: {per_conn:.2} KiB (+{} KiB / {alive})   goal <= 16 KiB: {}",
        thousands(delta),
        verdict(alive > 0 && per_conn <= 16.0)
    );
    println!(
        "  load client VmRSS: {} KiB",
        thousands(vm_rss_kib("self").unwrap_or(0))
    );
    for h in &handles {
        h.abort();
    }
    drop(handles);
    let settle = o.secs("settle");
    tokio::time::sleep(settle).await;
    let closed = vm_rss_kib(&pid);
    let fds_closed = open_fds(&pid);
    let fds = |n: Option<usize>| n.map_or("-".into(), |n| n.to_string());
    println!(
        "  gateway VmRSS {} s after closing them all: {} KiB; gateway open fds before / with them / after: {} / {} / {}; connection ends seen by the client: {}",
        settle.as_secs(),
        closed.map_or("-".into(), thousands),
        fds(fds_before),
        fds(fds_after),
        fds(fds_closed),
        map_text(&s.closes)
    );
    let result = json!({
        "mode": "idle", "ws": o.str("ws"), "connections": alive, "connect_failed": s.failed.load(Relaxed),
        "connect_errors": map_json(&s.errors), "connect_secs": connect_time.as_secs_f64(),
        "rss_before_kib": before, "rss_after_kib": after, "rss_samples_kib": samples,
        "rss_per_conn_kib": (per_conn * 100.0).round() / 100.0, "rss_after_close_kib": closed, "settle_secs": settle.as_secs(),
        "gateway_fds": {"before": fds_before, "open": fds_after, "after_close": fds_closed},
        "connection_ends": map_json(&s.closes),
    });
    println!("RESULT {result}");
    i32::from(alive == 0)
}

// ------------------------------------------------------------------------------------ main

fn main() {
    let _ = now_ns();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, rest) = match args.split_first() {
        Some((m, rest)) if m == "fanout" || m == "idle" => (m.clone(), rest),
        _ => {
            eprint!("{}", usage());
            std::process::exit(2);
        }
    };
    let specs: &[OptSpec] = if mode == "fanout" {
        &[COMMON, FANOUT]
    } else {
        &[COMMON, IDLE]
    };
    let o = Opts::parse(rest, specs).unwrap_or_else(|e| die(&format!("{e}\n{}", usage())));
    let tungstenite = match o.str("ws") {
        "raw" => false,
        "tungstenite" => true,
        other => die(&format!("--ws must be raw or tungstenite, not {other}")),
    };
    let target = Arc::new(Target {
        addrs: o.str("addr").split(',').map(str::to_string).collect(),
        key: o.str("key").to_string(),
        tungstenite,
        buf_size: if mode == "fanout" { 16 * 1024 } else { 2048 },
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.num("threads").max(1) as usize)
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&format!("runtime: {e}")));
    let code = rt.block_on(async move {
        if mode == "fanout" {
            fanout(o, target).await
        } else {
            idle(o, target).await
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}
