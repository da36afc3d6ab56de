//! One WebSocket connection speaking Pusher protocol 7, served by one task.
//!
//! The task reads client frames ([`socket::Socket`], no buffer of its own while idle) and
//! applies them, and writes out whatever the fan-out could not write to the socket directly
//! (the connection's [`Outbox`]). Silence for `ping_interval` gets a `pusher:ping`, and no
//! answer within [`PONG_TIMEOUT`] closes with 4201. On exit every subscription is removed,
//! announcing `member_removed` where a user's last socket leaves a presence channel.

use super::cache::{missed, replay_cache};
use super::fanout::{AppState, Conn, Frame, Hub, Outbox, Presence};
use super::presence::ClusterPresence;
use super::protocol::close;
use super::wire::Incoming;
use crate::pusher::webhook::AppEvent;
pub use socket::reject;
use socket::{Ended, Socket};

mod client_events;
mod socket;
mod subscribe;
#[cfg(test)]
mod tests;
use super::{auth, channel::ChannelName, protocol};
use crate::cluster::Cluster;
use crate::rate::TokenBucket;
use pingora::server::ShutdownWatch;
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};

/// How long a client has to answer a server `pusher:ping` (Pusher's 30 s, or the app's
/// `ping_interval` if shorter).
pub const PONG_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a subscription waits for the cluster's Redis subscription before it is confirmed
/// anyway.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// How long a closed connection's late frames are read (and dropped) before the socket closes.
const LINGER: Duration = Duration::from_secs(2);

/// How a session's conversation ended.
enum End {
    /// A close was requested (the closer holds its code).
    Closing,
    /// The client sent a close frame, with this code if any.
    ClientClosed(Option<u16>),
    /// The client went away without one.
    Gone,
}

/// Serves one upgraded connection until it closes. `direct`: the descriptor of `stream` when it
/// is a plain TCP socket the fan-out may write to directly (see `fanout::conn`); `stream` owns
/// it, and the outbox is detached before `stream` closes.
pub async fn serve<S>(
    stream: S,
    direct: Option<RawFd>,
    hub: Arc<Hub>,
    app: Arc<AppState>,
    shutdown: ShutdownWatch,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let outbox = Arc::new(Outbox::new(direct));
    let mut socket = Socket::new(stream, outbox.clone());
    let (id, socket_id) = hub.next_socket();
    let conn = Conn {
        id,
        socket_id: socket_id.clone().into(),
        outbox,
        closer: Default::default(),
    };
    let mut session = Session {
        hub: &hub,
        app: &app,
        conn,
        subscriptions: HashMap::new(),
        user: None,
        events: TokenBucket::full(app.conf().client_events_per_second, Instant::now()),
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
    let end = session.run(&mut socket, shutdown).await;
    session.leave_all();
    app.close_connection();
    // No close requested means the client ended the connection.
    let code = session.conn.closer.code();
    count_disconnect(&hub, Some(&app), code);
    let write_timeout = app.conf().write_timeout;
    let (code, reason) = match end {
        End::Gone => return,
        // The client's close is answered with its code.
        End::ClientClosed(theirs) => (theirs.unwrap_or(1000), ""),
        End::Closing => (code, close::reason(code)),
    };
    socket
        .writer
        .close(code, reason, write_timeout, &app.metrics)
        .await;
    socket.reader.linger(LINGER).await;
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
    app: Arc<AppState>,
    channel: String,
}

impl Later {
    fn offer(&self, text: String) {
        self.conn.offer(&Frame::from(text), None, &self.dropped);
    }
}

struct Session<'h> {
    hub: &'h Hub,
    app: &'h Arc<AppState>,
    conn: Conn,
    /// Channel name → the presence user id it was joined with (None for other channels).
    subscriptions: HashMap<String, Option<String>>,
    /// The signed-in user (`pusher:signin`).
    user: Option<String>,
    /// Client events: the app's `client_events_per_second`, as a burst too.
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

    /// Reads and applies the client's messages, and writes out the outbox, until the
    /// conversation ends.
    async fn run<S>(&mut self, socket: &mut Socket<S>, mut shutdown: ShutdownWatch) -> End
    where
        S: AsyncRead + AsyncWrite,
    {
        let conf = self.app.conf();
        let (idle, write_timeout) = (conf.ping_interval, conf.write_timeout);
        // Frames over the limit get a pusher:error; the transport's cap is a generous backstop.
        let max_frame = conf.max_message_size.saturating_mul(4).max(64 * 1024);
        drop(conf);
        let mut retired = self.app.retired();
        let mut awaiting_pong = false;
        loop {
            let wait = match awaiting_pong {
                true => PONG_TIMEOUT.min(idle),
                false => idle,
            };
            let queued = self.conn.outbox.has_queue();
            tokio::select! {
                read = socket.reader.read(max_frame) => {
                    awaiting_pong = false;
                    if let Some(end) = self.on_read(read) {
                        return end;
                    }
                }
                flushed = socket.writer.flush(write_timeout, &self.app.metrics), if queued => match flushed {
                    Ok(()) => {}
                    // A client that stopped reading.
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                        self.conn.closer.close(close::OVER_CAPACITY);
                        return End::Closing;
                    }
                    Err(_) => return End::Gone,
                },
                _ = self.conn.outbox.queued(), if !queued => {}
                _ = tokio::time::sleep(wait) => {
                    if awaiting_pong {
                        self.conn.closer.close(4201);
                        return End::Closing;
                    }
                    self.send(protocol::ping());
                    awaiting_pong = true;
                }
                _ = self.conn.closer.requested() => return End::Closing,
                // Server shutting down: 4200 tells pusher-js to reconnect at once (elsewhere).
                _ = shutdown.changed() => {
                    self.conn.closer.close(4200);
                    return End::Closing;
                }
                // The app was removed by a reload: the client reconnects (and is refused 4001).
                _ = retired.wait_for(|gone| *gone) => {
                    self.conn.closer.close(4200);
                    return End::Closing;
                }
            }
        }
    }

    /// Applies what one read brought; `Some` ends the conversation.
    fn on_read(&mut self, read: Result<Vec<Incoming>, Ended>) -> Option<End> {
        match read {
            Ok(messages) => messages.into_iter().find_map(|m| self.on_message(m)),
            Err(Ended::Gone) => Some(End::Gone),
            Err(Ended::Broken(error)) => {
                self.conn.closer.close(error.close_code());
                Some(End::Closing)
            }
        }
    }

    /// Applies one client message; `Some` ends the conversation.
    fn on_message(&mut self, message: Incoming) -> Option<End> {
        match message {
            Incoming::Text(text) if text.len() > self.app.conf().max_message_size => {
                self.send(protocol::error(Some(4200), "Message too large"));
            }
            Incoming::Text(text) => {
                if !self.handle(&text) {
                    return Some(End::Closing);
                }
            }
            Incoming::Binary => {
                self.send(protocol::error(
                    Some(4200),
                    "Binary frames are not supported",
                ));
            }
            // Bounded like every other frame: pings from a client that does not read end in 4100.
            Incoming::Ping(payload) => drop(self.conn.offer(
                &Frame::pong(&payload),
                None,
                &self.app.metrics.dropped_slow,
            )),
            Incoming::Pong => {}
            Incoming::Close(code) => return Some(End::ClientClosed(code)),
        }
        None
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
            app: self.app.clone(),
            channel: channel.to_string(),
        }
    }

    /// `member_added` to the others when this socket added a presence user (a node alone).
    fn announce(&self, presence: &Presence, name: &str, member: &Option<(String, String)>) {
        if let (Presence::Added, Some((id, info))) = (presence, member) {
            let frame = Frame::from(protocol::member_added(name, id, info));
            self.hub
                .publish(self.app, name, &frame, Some(&self.conn.socket_id));
            self.app.emit(AppEvent::member(name, id, true));
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
