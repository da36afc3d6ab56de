//! The hub: a Pusher-protocol (v7) WebSocket fan-out that Laravel Echo / pusher-js and Laravel's
//! `pusher` broadcaster use unchanged.
//!
//! Layers, each knowing only the one below:
//! - [`channel`], [`protocol`], [`auth`]: pure: channel names, frames, signatures (no I/O).
//! - [`fanout`]: apps, channels, subscribers, presence members; serialize once, bounded queues.
//! - [`session`]: one WebSocket connection (reader loop + writer task).
//! - [`api`]: the Pusher HTTP API.
//! - [`server`]: the listener (pingora `HttpServerApp`): upgrades and API requests.

pub mod api;
pub mod auth;
pub mod channel;
pub mod fanout;
pub mod presence;
pub mod protocol;
pub mod server;
pub mod session;
mod writer;
