//! fleetgate: an edge gateway for stateful Node fleets.
//!
//! Map of the crate, each layer knowing only the one below:
//! - [`config`]: `gateway.yaml` → validated, typed [`config::Config`] (every problem at once).
//! - [`routing`]: pure workspace extraction and instance choice (modulo, rendezvous, pins, learned).
//! - [`dedupe`]: seen webhook deliveries (bounded TTL set) for replay answers.
//! - [`signing`]: pure webhook signatures: verify and sign (hex-timestamp-body, Standard Webhooks, GitHub).
//! - [`hub`]: the Pusher-protocol WebSocket hub and HTTP API.
//! - [`publish`]: pure templates mapping verified webhooks to hub events.
//! - [`health`]: instance health (active checks, passive marking).
//! - [`state`]: the shared [`state::Gateway`]: config snapshot (`ArcSwap`), health, learned sessions.
//! - [`hub_listener`]: the hub's listener: WebSocket upgrades and the HTTP API.
//! - [`proxy`]: the HTTP data path per listener on hyper (admit → locate → verify → forward →
//!   observe), with its own HTTP/1.1 upstream client, request hygiene and JSON errors.
//! - [`errors`]: the gateway's own error answers and their stable codes.
//! - [`metrics`]: every metric name.
//! - [`access_log`]: JSON access log lines and request ids.
//! - [`admin`]: the operators' listener.
//! - [`cluster`]: several nodes sharing hub traffic and learned sessions through Redis.
//! - [`spool`]: verified webhooks Laravel could not take, kept on disk and delivered later.
//! - [`reload`]: reload triggers (SIGHUP, `gateway.yaml` changing on disk).
//! - [`tls`]: TLS certificates from a directory, chosen by SNI, replaced live.
//! - [`server`]: assembles the pingora server.
//! - `fuzz`: the fuzz targets' entry points and the properties they check (`fuzz/`).
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod admission;
pub mod cluster;
pub mod config;
pub mod dedupe;
pub mod errors;
#[doc(hidden)]
pub mod fuzz;
pub mod health;
pub mod hub;
pub mod hub_listener;
pub mod metrics;
pub mod proxy;
pub mod publish;
pub mod reload;
pub mod routing;
pub mod server;
pub mod signing;
pub mod spool;
pub mod state;
pub mod tls;
