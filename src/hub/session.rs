//! One WebSocket connection speaking Pusher protocol 7.
//!
//! A writer task (`super::writer`) owns the sink: it drains the connection's bounded queue (fed by
//! the fan-out engine and by this session's own replies) and performs the close asked for. The
//! reader loop (this task) decodes client frames and applies them; silence for
//! `activity_timeout` gets a `pusher:ping`, and no answer within [`PONG_TIMEOUT`] closes with 4201.
//! On exit every subscription is removed, announcing `member_removed` where a user's last socket
//! leaves a presence channel.

use super::cache::replay_cache;
use super::fanout::{AppState, Conn, Frame, Hub, Outgoing, Presence, SEND_QUEUE};
use super::presence::ClusterPresence;
use super::protocol::close;
use super::writer::write_frames;

mod client_events;
mod subscribe;
#[cfg(test)]
mod tests;
use super::{auth, channel::ChannelName, protocol};
use crate::cluster::Cluster;
use crate::rate::TokenBucket;
use futures_util::{SinkExt, StreamExt};
use pingora::server::ShutdownWatch;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// How long a client has to answer a server `pusher:ping` (Pusher's 30 s, or the app's
/// `activity_timeout` if shorter).
pub const PONG_TIMEOUT: Duration = Duration::from_secs(30);
/// Client events allowed per connection per second (Pusher's limit); beyond: close 4301.
pub const CLIENT_EVENTS_PER_SECOND: u32 = 10;
/// How long a subscription waits for the cluster's Redis subscription before it is confirmed
/// anyway.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// The transport's error type (a WebSocket's, or a test's stand-in for one).
pub type WsError = tokio_tungstenite::tungstenite::Error;

/// Serves one upgraded connection until it closes.
pub async fn serve<S>(stream: S, hub: Arc<Hub>, app: Arc<AppState>, shutdown: ShutdownWatch)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = ws_config(app.conf().max_message_size);
    let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await;
    let (sink, source) = ws.split();
    serve_frames(sink, source, hub, app, shutdown).await;
}

fn ws_config(max_message_size: usize) -> WebSocketConfig {
    let mut config = WebSocketConfig::default();
    // Frames over the limit get a pusher:error below; the transport cap is a generous backstop.
    config.max_message_size = Some(max_message_size.saturating_mul(4).max(64 * 1024));
    config.max_frame_size = config.max_message_size;
    // tungstenite's default 128 KiB read buffer is zero-filled per connection, so it is all
    // resident: 165 KiB per idle connection measured (bench/hub-bench.sh), 36 KiB with 4 KiB.
    config.read_buffer_size = 4 * 1024;
    config
}

/// The session over any sink and stream of frames: a WebSocket's halves in production, channels
/// in the unit tests (so the protocol's rules are tested without sockets).
pub async fn serve_frames<Si, St>(
    sink: Si,
    mut source: St,
    hub: Arc<Hub>,
    app: Arc<AppState>,
    shutdown: ShutdownWatch,
) where
    Si: futures_util::Sink<Message, Error = WsError> + Unpin + Send + 'static,
    St: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
{
    let conf = app.conf();
    let (tx, rx) = mpsc::channel::<Outgoing>(SEND_QUEUE);
    let (id, socket_id) = hub.next_socket();
    let conn = Conn {
        id,
        socket_id: socket_id.clone().into(),
        tx,
        closer: Default::default(),
    };
    let writer = tokio::spawn(write_frames(
        sink,
        rx,
        conn.closer.clone(),
        app.metrics.clone(),
        conf.write_timeout,
    ));
    drop(conf);

    let mut session = Session {
        hub: &hub,
        app: &app,
        conn,
        subscriptions: HashMap::new(),
        user: None,
        events: TokenBucket::full(CLIENT_EVENTS_PER_SECOND, Instant::now()),
        subscribes: TokenBucket::full(app.conf().max_subscriptions_per_second, Instant::now()),
        presence: None,
    };
    if let Some(cluster) = hub.cluster() {
        let (hub, app, conn) = (hub.clone(), app.clone(), session.conn.clone());
        session.presence = Some(ClusterPresence::start(hub, app, conn, cluster.clone()));
    }
    // pusher-js refuses a handshake whose activity_timeout is 0 (a sub-second config): at least 1.
    let activity = session.app.conf().activity_timeout.as_secs().max(1);
    session.send(protocol::connection_established(&socket_id, activity));
    session.run(&mut source, shutdown).await;
    session.leave_all();
    session.app.connections.fetch_sub(1, Ordering::Relaxed);
    // No close requested by now means the client ended the connection.
    let code = session.conn.closer.code();
    count_disconnect(&hub, Some(session.app), code);
    // Stops the writer (a close already requested, e.g. 4100, keeps its code: the first one wins).
    session.conn.closer.close(1000);
    let _ = writer.await;
}

/// Counts a closed connection by close code (0: closed by the client).
pub fn count_disconnect(hub: &Hub, app: Option<&AppState>, code: u16) {
    let app = app.map_or("unknown", |a| a.id.as_str());
    let code = match code {
        0 => "client".to_string(),
        code => code.to_string(),
    };
    hub.metrics
        .disconnects
        .with_label_values(&[app, &code])
        .inc();
}

/// A reply to send once the cluster answered (see `Session::later`).
struct Later {
    cluster: Arc<Cluster>,
    conn: Conn,
    dropped: prometheus::IntCounter,
    app: String,
    channel: String,
}

impl Later {
    fn offer(&self, text: String) {
        self.conn.offer(&Frame::from(text), None, &self.dropped);
    }
}

struct Session<'h> {
    hub: &'h Hub,
    app: &'h AppState,
    conn: Conn,
    /// Channel name → the presence user id it was joined with (None for other channels).
    subscriptions: HashMap<String, Option<String>>,
    /// The signed-in user (`pusher:signin`).
    user: Option<String>,
    /// Client events: [`CLIENT_EVENTS_PER_SECOND`] a second, as a burst too.
    events: TokenBucket,
    /// Subscribes and unsubscribes: the app's `max_subscriptions_per_second`, likewise.
    subscribes: TokenBucket,
    /// Presence across the cluster (clustered hubs only).
    presence: Option<ClusterPresence>,
}

impl Session<'_> {
    fn send(&self, text: String) {
        let frame = Frame::from(text);
        self.conn
            .offer(&frame, None, &self.app.metrics.dropped_slow);
    }

    async fn run<St>(&mut self, source: &mut St, mut shutdown: ShutdownWatch)
    where
        St: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
    {
        let idle = self.app.conf().activity_timeout;
        let mut retired = self.app.retired();
        let mut awaiting_pong = false;
        loop {
            let wait = if awaiting_pong {
                PONG_TIMEOUT.min(idle)
            } else {
                idle
            };
            let message = tokio::select! {
                m = source.next() => m,
                _ = tokio::time::sleep(wait) => {
                    if awaiting_pong {
                        self.conn.closer.close(4201);
                        return;
                    }
                    self.send(protocol::ping());
                    awaiting_pong = true;
                    continue;
                }
                _ = self.conn.closer.requested() => return,
                // Server shutting down: 4200 tells pusher-js to reconnect at once (elsewhere).
                _ = shutdown.changed() => {
                    self.conn.closer.close(4200);
                    return;
                }
                // The app was removed by a reload: the client reconnects (and is refused 4001).
                _ = retired.wait_for(|gone| *gone) => {
                    self.conn.closer.close(4200);
                    return;
                }
            };
            awaiting_pong = false;
            match message {
                Some(Ok(Message::Text(text))) => {
                    if text.len() > self.app.conf().max_message_size {
                        self.send(protocol::error(Some(4200), "Message too large"));
                        continue;
                    }
                    if !self.handle(text.as_str()) {
                        return;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    self.send(protocol::error(
                        Some(4200),
                        "Binary frames are not supported",
                    ));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
            }
        }
    }

    /// Applies one client frame; false ends the connection.
    fn handle(&mut self, text: &str) -> bool {
        use protocol::ClientMessage::*;
        match protocol::decode_client(text) {
            Err(e) => self.send(protocol::error(None, &e.to_string())),
            Ok(Ping) => self.send(protocol::pong()),
            Ok(Pong) => {}
            Ok(Subscribe { .. } | Unsubscribe { .. })
                if over(
                    &mut self.subscribes,
                    self.app.conf().max_subscriptions_per_second,
                ) =>
            {
                // Churn makes every presence member receive an event per change: bounded.
                self.conn.closer.close(close::CLIENT_EVENT_RATE_LIMIT);
                return false;
            }
            Ok(Subscribe {
                channel,
                auth,
                channel_data,
            }) => self.subscribe(&channel, auth.as_deref(), channel_data.as_deref()),
            Ok(Unsubscribe { channel }) => self.unsubscribe(&channel),
            Ok(Signin { auth, user_data }) => self.signin(&auth, &user_data),
            Ok(ClientEvent {
                event,
                channel,
                data,
            }) => return self.client_event(&event, &channel, &data),
        }
        true
    }

    /// What a task answering this client about `channel` after a cluster round trip needs.
    fn later(&self, cluster: &Arc<Cluster>, channel: &str) -> Later {
        Later {
            cluster: cluster.clone(),
            conn: self.conn.clone(),
            dropped: self.app.metrics.dropped_slow.clone(),
            app: self.app.id.clone(),
            channel: channel.to_string(),
        }
    }

    /// `member_added` to the others when this socket added a presence user (a node alone).
    fn announce(&self, presence: &Presence, name: &str, member: &Option<(String, String)>) {
        if let (Presence::Added, Some((id, info))) = (presence, member) {
            let frame = Frame::from(protocol::member_added(name, id, info));
            self.hub
                .publish(self.app, name, &frame, Some(&self.conn.socket_id));
        }
    }

    fn unsubscribe(&mut self, name: &str) {
        if let Some(user) = self.subscriptions.remove(name) {
            self.leave(name, user.as_deref());
        }
    }

    fn leave(&self, name: &str, user: Option<&str>) {
        let local = self.app.unsubscribe(name, self.conn.id, user);
        if let (Some(cluster_presence), Some(user)) = (&self.presence, user) {
            cluster_presence.leave(name, user, local);
            return;
        }
        if local == Presence::Removed {
            if let Some(user) = user {
                let frame = Frame::from(protocol::member_removed(name, user));
                self.hub.publish(self.app, name, &frame, None);
            }
        }
    }

    fn leave_all(&mut self) {
        for (name, user) in std::mem::take(&mut self.subscriptions) {
            self.leave(&name, user.as_deref());
        }
        if let Some(user) = self.user.take() {
            self.app.users.remove_if_mut(&user, |_, sockets| {
                sockets.remove(&self.conn.id);
                sockets.is_empty()
            });
        }
    }

    fn signin(&mut self, token: &str, user_data: &str) {
        let conf = self.app.conf();
        let user_id = protocol::decode_user_data(user_data).ok();
        let valid = auth::verify_signin(
            &conf.key,
            &conf.secret,
            &self.conn.socket_id,
            user_data,
            token,
        );
        let Some(user_id) = user_id.filter(|_| valid) else {
            self.send(protocol::error(Some(4009), "Invalid signin"));
            self.conn.closer.close(4009);
            return;
        };
        self.app
            .users
            .entry(user_id.clone())
            .or_default()
            .insert(self.conn.id, self.conn.clone());
        self.user = Some(user_id.clone());
        self.send(protocol::signin_success(user_data));
        let server_to_user = super::channel::server_to_user(&user_id);
        self.app.subscribe(&server_to_user, &self.conn, None);
        self.subscriptions.insert(server_to_user, None);
    }
}

/// Takes one action from `bucket` (`limit` a second, as a burst too): true when it goes over.
fn over(bucket: &mut TokenBucket, limit: u32) -> bool {
    !bucket.try_take(limit, limit, Instant::now())
}

/// `(user_id, user_info JSON)` from presence `channel_data`, if valid and within `max_info` bytes.
fn presence_member(channel_data: &str, max_info: usize) -> Option<(String, String)> {
    let member = protocol::decode_channel_data(channel_data).ok()?;
    (member.user_info.len() <= max_info).then_some((member.user_id, member.user_info))
}

/// Accepts the WebSocket only to say why it is refused: `pusher:error` with `code`, then a close
/// frame with the same code (pusher-js decides whether to reconnect from the close code).
/// Counted as a disconnect of `app` (`unknown` for none).
pub async fn reject<S>(stream: S, hub: &Hub, app: Option<&AppState>, code: u16, message: &str)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    count_disconnect(hub, app, code);
    let mut ws = WebSocketStream::from_raw_socket(stream, Role::Server, None).await;
    let _ = ws
        .send(Message::Text(protocol::error(Some(code), message).into()))
        .await;
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: message.to_string().into(),
    };
    let _ = ws.send(Message::Close(Some(frame))).await;
    let _ = ws.close(None).await;
}
