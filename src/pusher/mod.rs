//! Pusher protocol 7, pure (no I/O, no state): channel names and their kinds ([`channel`]), the
//! frames a client and the server exchange, socket and node ids ([`protocol`]). The hub speaks it
//! to browsers and the cluster to other nodes, so it sits under both.

pub mod channel;
pub mod protocol;
pub mod webhook;
