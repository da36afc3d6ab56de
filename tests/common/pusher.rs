//! Pusher protocol helpers over raw WebSocket frames (tokio-tungstenite) and the signed HTTP API.

use super::{Resp, APP_ID, KEY, SECRET};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(addr: SocketAddr, key: &str) -> Ws {
    let url = format!("ws://{addr}/app/{key}?protocol=7&client=js&version=8.4.0");
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next text frame as JSON, with a deadline (any transport: plain TCP or TLS).
pub async fn next<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no frame in time");
        match msg.expect("stream ended").expect("ws error") {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => continue,
        }
    }
}

/// Connects and returns the socket with its socket id.
pub async fn established(addr: SocketAddr) -> (Ws, String) {
    let mut ws = connect(addr, KEY).await;
    let hello = next(&mut ws).await;
    assert_eq!(hello["event"], "pusher:connection_established");
    let data: Value = serde_json::from_str(hello["data"].as_str().unwrap()).unwrap();
    (ws, data["socket_id"].as_str().unwrap().to_string())
}

/// Reads (and drops) frames until the server's close frame; its code, or None on a deadline.
pub async fn close_code(ws: &mut Ws) -> Option<u16> {
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        if let Message::Close(Some(frame)) = msg {
            return Some(u16::from(frame.code));
        }
    }
    None
}

pub async fn send_frame(ws: &mut Ws, value: Value) {
    ws.send(Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

pub async fn subscribe(
    ws: &mut Ws,
    channel: &str,
    auth: Option<String>,
    channel_data: Option<&str>,
) -> Value {
    let mut data = json!({"channel": channel});
    if let Some(auth) = auth {
        data["auth"] = json!(auth);
    }
    if let Some(cd) = channel_data {
        data["channel_data"] = json!(cd);
    }
    send_frame(ws, json!({"event": "pusher:subscribe", "data": data})).await;
    next(ws).await
}

/// Subscribes to a private channel with a valid auth and checks it succeeded.
pub async fn subscribe_private(ws: &mut Ws, socket: &str, channel: &str) {
    let ok = subscribe(ws, channel, Some(auth_for(socket, channel, None)), None).await;
    assert_eq!(
        ok["event"], "pusher_internal:subscription_succeeded",
        "{ok}"
    );
}

pub fn auth_for(socket: &str, channel: &str, channel_data: Option<&str>) -> String {
    format!(
        "{KEY}:{}",
        fleetgate::hub::auth::channel_signature(SECRET, socket, channel, channel_data)
    )
}

/// Publishes through the signed HTTP API, as Laravel's broadcaster does.
pub async fn publish(addr: SocketAddr, body: Value) -> Resp {
    post_api(addr, "events", body).await
}

/// Publishes a `{"batch": [...]}` through the signed HTTP API.
pub async fn publish_batch(addr: SocketAddr, body: Value) -> Resp {
    post_api(addr, "batch_events", body).await
}

async fn post_api(addr: SocketAddr, endpoint: &str, body: Value) -> Resp {
    post_api_as(addr, (APP_ID, KEY, SECRET), endpoint, body).await
}

/// A signed `POST /apps/{id}/{endpoint}` with the app's `(id, key, secret)`.
pub async fn post_api_as(
    addr: SocketAddr,
    (id, key, secret): (&str, &str, &str),
    endpoint: &str,
    body: Value,
) -> Resp {
    let body = body.to_string().into_bytes();
    let path = format!("/apps/{id}/{endpoint}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let query = fleetgate::hub::auth::sign_api_request(key, secret, "POST", &path, &[], &body, now);
    super::send(
        addr,
        "POST",
        &format!("{path}?{query}"),
        &[("content-type", "application/json")],
        body,
    )
    .await
}

/// Reads frames until one with `event`; panics on a deadline.
pub async fn until_event(ws: &mut Ws, event: &str) -> Value {
    loop {
        let v = next(ws).await;
        if v["event"] == event {
            return v;
        }
    }
}

/// Signs `ws` in as user `id` (`pusher:signin`) and checks it succeeded.
pub async fn signin(ws: &mut Ws, socket: &str, id: &str) {
    let user_data = json!({"id": id, "name": id}).to_string();
    let signature = fleetgate::hub::auth::sign_signin(KEY, SECRET, socket, &user_data);
    let auth = format!("{KEY}:{}", signature.split(':').next_back().unwrap());
    let signin = json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}});
    send_frame(ws, signin).await;
    assert_eq!(next(ws).await["event"], "pusher:signin_success");
}

/// A signed API request without a body (`GET` queries, `terminate_connections`): the JSON answer.
pub async fn api(addr: SocketAddr, method: &str, endpoint: &str, params: &[(&str, &str)]) -> Value {
    let path = format!("/apps/{APP_ID}/{endpoint}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let query =
        fleetgate::hub::auth::sign_api_request(KEY, SECRET, method, &path, params, b"", now);
    let r = super::send(addr, method, &format!("{path}?{query}"), &[], vec![]).await;
    assert_eq!(r.status, 200, "{method} {endpoint}: {:?}", r.body);
    r.json()
}
