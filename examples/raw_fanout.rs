//! The fan-out ceiling for `bench/hub-bench.sh`; not part of fleetgate.
//!
//! Speaks just enough of the hub's protocol for `hub_load fanout` to drive it (the WebSocket
//! upgrade, `pusher:connection_established`, a subscribe answered `subscription_succeeded`, and
//! `POST /apps/{id}/events`, unsigned), and does nothing else: each published event is framed
//! once and written to every socket with one blocking `send` per socket from one thread. What it
//! reaches is what the kernel allows on this machine, the yardstick for the hub.
//!
//! `--batch`: events that arrived while the previous fan-out ran leave together, one write of
//! all their frames per socket (the ceiling with several frames per write).
//!
//! Usage: raw_fanout [--port 18096] [--batch]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .map_or(18096, |p| p.parse().expect("--port N"));
    let batch = args.iter().any(|a| a == "--batch");
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    let sockets: Arc<Mutex<Sockets>> = Arc::default();
    let (events, published) = mpsc::channel::<Vec<u8>>();
    {
        let sockets = sockets.clone();
        std::thread::spawn(move || fan_out(&sockets, &published, batch));
    }
    eprintln!("raw_fanout: 127.0.0.1:{port} (batch: {batch})");
    for (accepted, stream) in listener.incoming().enumerate() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let (sockets, events) = (sockets.clone(), events.clone());
        // A thread per connection only until it is subscribed; publishers keep theirs.
        std::thread::spawn(move || {
            let _ = serve(stream, accepted, &sockets, &events);
        });
    }
}

/// The subscribed sockets by when they were accepted: a fan-out visits them in that order, as
/// fleetgate's does (the kernel's per-socket state is then touched in allocation order, which
/// is markedly cheaper than a random order at 10,000 sockets).
type Sockets = Vec<(usize, TcpStream)>;

/// Writes every event to every subscribed socket.
fn fan_out(sockets: &Mutex<Sockets>, published: &mpsc::Receiver<Vec<u8>>, batch: bool) {
    while let Ok(mut frames) = published.recv() {
        if batch {
            while let Ok(more) = published.try_recv() {
                frames.extend_from_slice(&more);
            }
        }
        let mut sockets = sockets.lock().unwrap();
        // A socket whose subscriber went away is dropped.
        sockets.retain_mut(|(_, s)| s.write_all(&frames).is_ok());
    }
}

fn serve(
    stream: TcpStream,
    accepted: usize,
    sockets: &Mutex<Sockets>,
    events: &mpsc::Sender<Vec<u8>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let (mut length, mut key) = (0usize, String::new());
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "sec-websocket-key" => key = value.trim().to_string(),
                _ => {}
            }
        }
        if line.starts_with("GET /app/") {
            return subscribe(reader, (accepted, writer), &key, sockets);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        if let Some(frames) = event_frames(&body) {
            let _ = events.send(frames);
        }
        writer.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
        )?;
    }
}

/// The upgrade, `connection_established`, the subscribe and its confirmation; then the socket
/// joins the fan-out.
fn subscribe(
    mut reader: BufReader<TcpStream>,
    (accepted, mut writer): (usize, TcpStream),
    key: &str,
    sockets: &Mutex<Sockets>,
) -> std::io::Result<()> {
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    write!(
        writer,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )?;
    let established = r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.1\",\"activity_timeout\":120}"}"#;
    writer.write_all(&frame(established.as_bytes()))?;
    let subscribe = read_frame(&mut reader)?;
    let text = String::from_utf8_lossy(&subscribe);
    let channel = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["data"]["channel"].as_str().map(str::to_string))
        .unwrap_or_default();
    let succeeded = serde_json::json!({
        "event": "pusher_internal:subscription_succeeded", "channel": channel, "data": "{}",
    });
    writer.write_all(&frame(succeeded.to_string().as_bytes()))?;
    let mut sockets = sockets.lock().unwrap();
    let at = sockets.partition_point(|(a, _)| *a < accepted);
    sockets.insert(at, (accepted, writer));
    Ok(())
}

/// The frames of a `POST /apps/{id}/events` body: one per channel.
fn event_frames(body: &[u8]) -> Option<Vec<u8>> {
    let event: serde_json::Value = serde_json::from_slice(body).ok()?;
    let channels: Vec<String> = match (&event["channels"], &event["channel"]) {
        (serde_json::Value::Array(list), _) => list
            .iter()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect(),
        (_, serde_json::Value::String(one)) => vec![one.clone()],
        _ => return None,
    };
    let mut frames = Vec::new();
    for channel in channels {
        let message = serde_json::json!({
            "event": event["name"], "channel": channel, "data": event["data"],
        });
        frames.extend_from_slice(&frame(message.to_string().as_bytes()));
    }
    Some(frames)
}

/// An unmasked text frame.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x81];
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// One masked client frame's payload.
fn read_frame(reader: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut head = [0u8; 2];
    reader.read_exact(&mut head)?;
    let len = match head[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            reader.read_exact(&mut n)?;
            u16::from_be_bytes(n) as usize
        }
        127 => {
            let mut n = [0u8; 8];
            reader.read_exact(&mut n)?;
            u64::from_be_bytes(n) as usize
        }
        n => n as usize,
    };
    let mut mask = [0u8; 4];
    if head[1] & 0x80 != 0 {
        reader.read_exact(&mut mask)?;
    }
    let mut payload = vec![0; len.min(1 << 20)];
    reader.read_exact(&mut payload)?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Ok(payload)
}
