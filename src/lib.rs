//! fleetgate: an edge gateway for stateful Node fleets.
//!
//! Map of the crate, from the leaves up; a module uses only modules listed above it
//! (`tests/structure.rs` fails on an import cycle between sibling modules).
//!
//! Pure leaves (no I/O):
//! - [`routing`]: workspace extraction and instance choice (modulo, rendezvous, pins, learned).
//! - [`signing`]: webhook signatures: verify and sign (hex-timestamp-body, Standard Webhooks, GitHub).
//! - [`pusher`]: Pusher protocol 7: channel names and kinds, frames, socket and node ids.
//! - [`publish`]: templates mapping verified webhooks to hub events.
//! - [`rate`]: the token bucket behind every rate limit.
//! - [`config`]: `gateway.yaml` → validated, typed [`config::Config`] (every problem at once).
//! - [`errors`], [`metrics`], [`access_log`], [`dedupe`], [`admission`]: error answers and their
//!   stable codes, every metric name, access log lines, seen webhook deliveries, connection limits.
//!
//! What the paths share:
//! - [`cluster`]: several nodes sharing hub traffic and learned sessions through Redis; it hands
//!   deliveries back through [`cluster::LocalHub`], which the hub implements.
//! - [`hub`]: the Pusher-protocol WebSocket fan-out and its HTTP API.
//! - [`spool`]: verified webhooks Laravel could not take, kept on disk.
//! - [`health`]: instance health (active checks, passive marking).
//! - [`state`]: the shared [`state::Gateway`]: config snapshot (`ArcSwap`), health, learned
//!   sessions, the hub, the cluster and the spool.
//!
//! The three paths:
//! - Laravel → Node and the edge's webhooks: [`proxy`], the HTTP data path on hyper (admit →
//!   locate → verify → forward → observe), with its own HTTP/1.1 upstream client; a verified
//!   webhook Laravel cannot take goes to the spool and [`proxy::redelivery`] sends it later.
//! - Browsers and Laravel's broadcaster → the hub: [`hub_listener`] (WebSocket upgrades, HTTP API).
//!
//! The control plane: [`admin`] (the operators' listener), [`bound`] (where each listener
//! listens; ports picked for port 0), [`reload`] (SIGHUP, `gateway.yaml`
//! changing on disk), [`tls`] (certificates by SNI, replaced live), [`server`] (assembles the
//! pingora server); `fuzz`: the fuzz targets' entry points (`fuzz/`).
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod admission;
pub mod bound;
pub mod cluster;
pub mod config;
pub mod dedupe;
pub mod errors;
#[doc(hidden)]
pub mod fuzz;
pub mod health;
pub mod hub;
pub mod hub_listener;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod publish;
pub mod pusher;
pub mod rate;
pub mod reload;
pub mod routing;
pub mod server;
pub mod signing;
pub mod spool;
pub mod state;
pub mod tls;
