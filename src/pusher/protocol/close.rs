//! WebSocket close codes (Pusher's table). pusher-js decides from the range alone: 4000–4099
//! never reconnect, 4100–4199 reconnect after a back-off, 4200–4299 reconnect at once.

/// The app accepts TLS connections only.
pub const SSL_ONLY: u16 = 4000;
/// No app has the key in the URL (`/app/{key}`).
pub const APP_NOT_FOUND: u16 = 4001;
/// The app exists but is disabled.
pub const APP_DISABLED: u16 = 4003;
/// The app is over its connection quota.
pub const OVER_CONNECTION_QUOTA: u16 = 4004;
/// The path is not `/app/{key}`.
pub const PATH_NOT_FOUND: u16 = 4005;
/// The `protocol` query parameter is not a valid version.
pub const INVALID_VERSION: u16 = 4006;
/// The `protocol` version is not supported (this hub speaks 7).
pub const UNSUPPORTED_PROTOCOL: u16 = 4007;
/// No `protocol` query parameter.
pub const NO_PROTOCOL: u16 = 4008;
/// The connection is unauthorized (failed signin, or terminated through the HTTP API).
pub const UNAUTHORIZED: u16 = 4009;
/// Over capacity: here, a slow consumer whose send queue overflowed (reconnect after back-off).
pub const OVER_CAPACITY: u16 = 4100;
/// Generic "reconnect immediately"; sent when the server shuts down.
pub const RECONNECT: u16 = 4200;
/// The client did not answer a server `pusher:ping` in time.
pub const PONG_NOT_RECEIVED: u16 = 4201;
/// Closed after a period of inactivity.
pub const INACTIVITY: u16 = 4202;
/// A client event was rejected.
pub const CLIENT_EVENT_REJECTED: u16 = 4300;
/// Client events beyond the rate limit (10 per second per connection).
pub const CLIENT_EVENT_RATE_LIMIT: u16 = 4301;

/// The close reason text for `code` (empty for codes outside the table).
pub fn reason(code: u16) -> &'static str {
    match code {
        SSL_ONLY => "Application only accepts SSL connections",
        APP_NOT_FOUND => "Application does not exist",
        APP_DISABLED => "Application disabled",
        OVER_CONNECTION_QUOTA => "Application is over connection quota",
        PATH_NOT_FOUND => "Path not found",
        INVALID_VERSION => "Invalid version string format",
        UNSUPPORTED_PROTOCOL => "Unsupported protocol version",
        NO_PROTOCOL => "No protocol version supplied",
        UNAUTHORIZED => "Connection is unauthorized",
        OVER_CAPACITY => "Over capacity",
        RECONNECT => "Generic reconnect immediately",
        PONG_NOT_RECEIVED => "Pong reply not received",
        INACTIVITY => "Closed after inactivity",
        CLIENT_EVENT_REJECTED => "Client event rejected",
        CLIENT_EVENT_RATE_LIMIT => "Client event rejected due to rate limit",
        _ => "",
    }
}
