//! The hub: a Pusher-protocol (v7) WebSocket fan-out that Laravel Echo / pusher-js and Laravel's
//! `pusher` broadcaster use unchanged.
//!
//! Layers, each knowing only the one below:
//! - [`channel`], [`protocol`] (from [`crate::pusher`]), [`auth`]: pure: channel names, frames,
//!   signatures (no I/O).
//! - [`fanout`]: apps, channels, subscribers, presence members; serialize once, bounded queues.
//! - [`wire`]: WebSocket frames: server frames built once, client frames decoded.
//! - [`session`]: one WebSocket connection, one task.
//! - [`events`]: the one way an event is published (the HTTP API and the webhook rules).
//! - [`api`]: the Pusher HTTP API.
//!
//! The listener that serves them (pingora `HttpServerApp`: upgrades and API requests) is
//! `crate::hub_listener`, above the hub: it also needs the gateway's listener settings.

pub use crate::pusher::{channel, protocol};

pub mod api;
pub mod auth;
mod cache;
pub mod events;
pub mod fanout;
mod local;
pub mod presence;
pub mod session;
pub mod webhooks;
pub mod wire;
