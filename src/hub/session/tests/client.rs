//! The test client: a hub of one app, and clients speaking WebSocket over in-memory streams.

use super::super::*;
use crate::config::App;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

pub(super) const KEY: &str = "app-key";
pub(super) const SECRET: &str = "app-secret";

/// How long a test waits for a frame the session must send (a hang fails, it never passes).
pub(super) const FRAME_WAIT: Duration = Duration::from_secs(10);

pub(super) fn app_conf() -> App {
    App {
        id: "app-1".into(),
        key: KEY.into(),
        secret: SECRET.into(),
        allowed_origins: vec!["*".into()],
        max_connections: 100,
        max_connections_per_ip: 100,
        max_channels: 100,
        max_subscriptions_per_second: 50,
        client_events_per_second: 10,
        api_requests_per_second: 2_000,
        max_batch_size: 10,
        max_channels_per_event: 100,
        max_channel_name_length: 164,
        write_timeout: Duration::from_secs(5),
        client_events: true,
        max_message_size: 10 * 1024,
        activity_timeout: Duration::from_secs(30),
        ping_interval: Duration::from_secs(60),
        max_presence_members: 100,
        max_user_info: 1024,
        webhooks: Vec::new(),
    }
}

/// A hub of one app with `conf` applied over the defaults above.
pub(super) fn hub(conf: impl FnOnce(&mut App)) -> (Arc<Hub>, Arc<AppState>) {
    let mut app = app_conf();
    conf(&mut app);
    let metrics = crate::metrics::Metrics::new().expect("metrics").hub;
    let hub = Arc::new(Hub::new(
        &[app],
        7,
        metrics,
        None,
        crate::hub::fanout::Lanes::default(),
        None,
    ));
    let state = hub.app_by_key(KEY).expect("the app");
    (hub, state)
}

/// One client: what it sends goes to the session's socket, what the session writes comes back
/// decoded. The socket is an in-memory duplex stream (no descriptor: every frame is queued and
/// written by the session's task).
pub(super) struct Client {
    to: Option<mpsc::UnboundedSender<Vec<u8>>>,
    from: mpsc::UnboundedReceiver<Message>,
    pub(super) socket_id: String,
    _shutdown: watch::Sender<bool>,
}

/// What the session writes, as the test reads it.
#[derive(Debug)]
pub(super) enum Message {
    Text(String),
    Close(u16),
    Other,
}

impl Client {
    /// Connects and reads `pusher:connection_established`.
    pub(super) async fn connect(hub: &Arc<Hub>, app: &Arc<AppState>) -> Self {
        Self::connect_with(hub, app, watch::channel(false)).await
    }

    pub(super) async fn connect_with(
        hub: &Arc<Hub>,
        app: &Arc<AppState>,
        (shutdown_tx, shutdown): (watch::Sender<bool>, watch::Receiver<bool>),
    ) -> Self {
        let (server, client) = tokio::io::duplex(64 * 1024);
        tokio::spawn(serve(server, None, hub.clone(), app.clone(), shutdown));
        let (mut read, mut write) = tokio::io::split(client);
        let (to, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(frame) = outgoing.recv().await {
                if write.write_all(&frame).await.is_err() {
                    return;
                }
            }
            let _ = write.shutdown().await;
        });
        let (frames, from) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(message) = server_frame(&mut read).await {
                if frames.send(message).is_err() {
                    return;
                }
            }
        });
        let mut client = Self {
            to: Some(to),
            from,
            socket_id: String::new(),
            _shutdown: shutdown_tx,
        };
        let established = client.expect("pusher:connection_established").await;
        client.socket_id = data(&established)["socket_id"]
            .as_str()
            .expect("a socket id")
            .to_string();
        client
    }

    pub(super) fn send(&self, message: Value) {
        let to = self.to.as_ref().expect("still connected");
        to.send(masked(message.to_string().as_bytes()))
            .expect("the client's writer runs");
    }

    /// The client goes away (its stream ends).
    pub(super) fn hang_up(&mut self) {
        self.to = None;
    }

    /// The next frame the session writes.
    pub(super) async fn next(&mut self) -> Message {
        self.next_within(FRAME_WAIT).await
    }

    pub(super) async fn next_within(&mut self, wait: Duration) -> Message {
        let next = tokio::time::timeout(wait, self.from.recv()).await;
        next.expect("a frame in time").expect("the session is open")
    }

    /// The next frame, which must be a text frame with this `event`.
    pub(super) async fn expect(&mut self, event: &str) -> Value {
        match self.next().await {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(&text).expect("JSON");
                assert_eq!(value["event"], event, "got {value}");
                value
            }
            other => panic!("expected {event}, got {other:?}"),
        }
    }

    /// The next frame, which must be a close frame: its code.
    pub(super) async fn closed(&mut self) -> u16 {
        self.closed_within(FRAME_WAIT).await
    }

    pub(super) async fn closed_within(&mut self, wait: Duration) -> u16 {
        loop {
            match self.next_within(wait).await {
                Message::Close(code) => return code,
                Message::Text(_) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Proves that nothing was written before now: a ping's pong is the next frame.
    pub(super) async fn nothing_pending(&mut self) {
        self.send(json!({"event": "pusher:ping", "data": {}}));
        self.expect("pusher:pong").await;
    }

    pub(super) fn subscribe(
        &self,
        channel: &str,
        auth: Option<String>,
        channel_data: Option<&str>,
    ) {
        self.send(json!({"event": "pusher:subscribe", "data": {
            "channel": channel, "auth": auth, "channel_data": channel_data,
        }}));
    }

    /// Subscribes to a presence channel as `user` (signed as the auth endpoint would).
    pub(super) async fn join(&mut self, channel: &str, user: &str) -> Value {
        let channel_data = json!({"user_id": user, "user_info": {"name": user}}).to_string();
        let auth =
            auth::sign_channel_auth(KEY, SECRET, &self.socket_id, channel, Some(&channel_data));
        self.subscribe(channel, Some(auth), Some(&channel_data));
        self.expect("pusher_internal:subscription_succeeded").await
    }
}

/// A masked client text frame.
pub(super) fn masked(payload: &[u8]) -> Vec<u8> {
    crate::hub::wire::tests::client(0x81, payload)
}

/// The next server frame (unmasked) from `read`.
pub(super) async fn server_frame(read: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Message> {
    let mut head = [0u8; 2];
    read.read_exact(&mut head).await?;
    let len = match head[1] {
        126 => usize::from(read.read_u16().await?),
        127 => read.read_u64().await? as usize,
        n => usize::from(n),
    };
    let mut payload = vec![0; len];
    read.read_exact(&mut payload).await?;
    Ok(match head[0] & 0x0f {
        0x1 => Message::Text(String::from_utf8(payload).expect("UTF-8 text")),
        0x8 => Message::Close(u16::from_be_bytes([payload[0], payload[1]])),
        _ => Message::Other,
    })
}

/// An event's `data`, decoded when it is JSON text (as Pusher sends it).
pub(super) fn data(frame: &Value) -> Value {
    match &frame["data"] {
        Value::String(text) => serde_json::from_str(text).unwrap_or(Value::String(text.clone())),
        other => other.clone(),
    }
}
