//! The validated configuration: what the rest of fleetgate reads. Built only by `validate`.

pub use super::app::{App, AppWebhook, HubConfig};
pub use crate::routing::{RoutingConfig, WorkspaceLimits};
use crate::signing::{Scheme, Secret};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    /// Worker threads per listener.
    pub threads: usize,
    /// The operators' listener; `None` runs without one.
    pub admin: Option<SocketAddr>,
    pub listeners: Vec<Listener>,
    pub groups: Vec<Group>,
    pub routes: Vec<Route>,
    /// The Pusher-protocol hub, if configured.
    pub hub: Option<HubConfig>,
    /// Where access log lines go; `None` when off.
    pub access_log: Option<AccessLogTarget>,
    /// Operational logs: format and level (applied on reload).
    pub log: LogConfig,
    pub shutdown: ShutdownConfig,
    /// Where verified webhooks Laravel could not take wait for redelivery; `None`: off.
    pub spool: Option<SpoolConfig>,
    /// Several nodes sharing hub traffic and learned sessions through Redis; `None`: alone.
    pub cluster: Option<ClusterConfig>,
}

/// `cluster`: the Redis every node of the cluster uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `redis://host:port[/db]`.
    pub redis: String,
    /// Prefix of every Redis key and channel (several clusters can share one Redis).
    pub prefix: String,
}

/// Where the access log is written (`access_log.path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Stdout,
    /// Appended to (created if missing).
    File(PathBuf),
}

/// `spool`: the durable queue of verified webhooks (see [`crate::spool`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// One subdirectory per webhook route; [`super::load`] makes a relative path relative to the
    /// configuration file's directory.
    pub dir: std::path::PathBuf,
    /// Bytes on disk across routes; beyond, new webhooks get 429 (the sender retries).
    pub max_bytes: u64,
    /// A webhook still undelivered after this long goes to the dead letters.
    pub max_age: Duration,
    /// Redelivery attempts before a webhook goes to the dead letters.
    pub max_attempts: u32,
}

/// What happens on SIGTERM/SIGINT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownConfig {
    /// How long `/readyz` answers 503 (so load balancers stop sending) before listeners stop
    /// accepting.
    pub drain_delay: Duration,
    /// How long in-flight requests get to finish once listeners stopped accepting (whole seconds).
    pub grace_period: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub addr: SocketAddr,
    /// Terminate TLS on this listener; `None` serves plain HTTP.
    pub tls: Option<TlsConfig>,
    pub limits: ListenerLimits,
    pub trust: Trust,
    /// Serve `GET /healthz`, `/readyz` and `/up` here as the admin listener does.
    pub health: bool,
}

/// A static credential a route requires: one of `tokens` in `header` (after `Bearer ` when
/// `bearer`). An empty token list (an unset `${VAR:-}`) lets nothing through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRule {
    pub header: http::HeaderName,
    pub bearer: bool,
    pub tokens: Vec<String>,
}

/// What one listener allows a client (fleet and edge listeners).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// From a connection's first byte (or its accept) to the end of a request head.
    pub header_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Open connections on the listener; beyond, new ones are answered 503 and closed.
    pub max_connections: usize,
    /// Open connections from one client address.
    pub max_connections_per_ip: usize,
    /// The largest request head, request line included (431 beyond).
    pub max_head_size: usize,
    /// The longest request target (414 beyond).
    pub max_uri_length: usize,
}

/// What one listener allows, and whom it trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// Peers that carry many clients (a load balancer, a local proxy, Laravel on this host):
    /// per-address connection limits do not apply to them.
    pub trusted_proxies: Vec<Cidr>,
    /// Connections start with a PROXY protocol header (v1 or v2) naming the client.
    pub proxy_protocol: bool,
}

impl Trust {
    pub fn trusts(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(ip))
    }
}

/// An address block, `10.0.0.0/8` or `::1/128` (a bare address is a block of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr.parse().ok()?, Some(prefix.parse::<u8>().ok()?)),
            None => (text.parse().ok()?, None),
        };
        let max = match addr {
            std::net::IpAddr::V4(_) => 32,
            std::net::IpAddr::V6(_) => 128,
        };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map_or(V6(v6), V4),
            v4 => v4,
        };
        let (a, b, bits) = match (self.addr, ip) {
            (V4(a), V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
            (V6(a), V6(b)) => (u128::from(a), u128::from(b), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || (a >> shift) == (b >> shift)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `listeners.NAME.tls`: certificates from a directory, chosen by SNI (see [`crate::tls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Holds `NAME.crt` (PEM chain, leaf first) + `NAME.key` pairs. [`super::load`] makes a relative
    /// path relative to the configuration file's directory.
    pub dir: PathBuf,
    /// Offer HTTP/2 by ALPN. Never on the hub's listener: WebSocket upgrades need HTTP/1.1.
    pub h2: bool,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    /// Ordered: the order `assign: modulo` indexes.
    pub instances: Vec<Instance>,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub health: HealthConfig,
    pub routing: Option<RoutingConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    pub path: String,
    pub expect: Expect,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

/// Which answers to a health check count as "alive" (`health.expect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Any HTTP answer below 500 (the default): the instance answers, so it is alive. A 404 from
    /// an app without a health route passes; a connect error, a timeout or a 5xx fails.
    Any,
    /// Only these statuses pass.
    Statuses(Vec<StatusMatch>),
}

/// One entry of `health.expect`: an exact status (`204`) or a class (`2xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Exact(u16),
    /// The hundreds digit: `2` for `2xx`.
    Class(u16),
}

impl Expect {
    pub fn passes(&self, status: u16) -> bool {
        match self {
            Expect::Any => status < 500,
            Expect::Statuses(list) => list.iter().any(|m| m.matches(status)),
        }
    }
}

impl StatusMatch {
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Exact(code) => status == code,
            StatusMatch::Class(class) => status / 100 == class,
        }
    }
}

impl std::fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusMatch::Exact(code) => write!(f, "{code}"),
            StatusMatch::Class(class) => write!(f, "{class}xx"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Pick the instance that holds the request's workspace.
    Workspace,
    /// Round robin over healthy instances.
    Balance,
    /// Verify the webhook signature at the edge, then forward the same bytes (round robin).
    Webhook,
}

/// A webhook route's verification and learning settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub scheme: Scheme,
    /// Any of these may match; the first is the one `fleetgate sign` examples use.
    pub secrets: Vec<Secret>,
    /// Accepted clock difference, both directions.
    pub tolerance: Duration,
    /// How long a delivery is remembered to answer replays (at least `tolerance`).
    pub duplicates_ttl: Duration,
    pub duplicates_capacity: usize,
    /// `X-Instance-Url` names an instance of this group (index into [`Config::groups`]) …
    pub instances_group: Option<usize>,
    /// … and is rewritten to this URL before Laravel sees it.
    pub public_url: Option<String>,
    /// Verified events that are also published to the hub.
    pub publish: Vec<PublishRule>,
}

/// Maps a verified webhook event to a hub event (templates: see [`crate::publish`]).
#[derive(Debug, Clone)]
pub struct PublishRule {
    /// The webhook's `event` field this rule applies to.
    pub event: String,
    /// The hub app's id.
    pub app: String,
    pub channel: String,
    pub name: String,
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub listener: String,
    pub path_prefix: String,
    /// Index into [`Config::groups`].
    pub group: usize,
    pub treatment: Treatment,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    /// The longest pause between two reads of a request body.
    pub body_timeout: Duration,
    /// Static credentials, any one of which lets a request through (none: no check).
    pub require_token: Vec<TokenRule>,
    /// Client addresses allowed on this route (none: any).
    pub allow_from: Option<Vec<Cidr>>,
    pub max_body: u64,
    pub deny: Vec<String>,
    /// Present exactly when `treatment` is [`Treatment::Webhook`].
    pub webhook: Option<WebhookConfig>,
}

pub use super::defaults;

impl Config {
    /// The listener named `name`.
    pub fn listener(&self, name: &str) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.name == name)
    }

    /// The group named `name`.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }
}

/// `log`: how operational logs (stderr) are written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// An `EnvFilter` directive (`info`, `fleetgate=debug,warn`); `None`: `FLEETGATE_LOG`, else
    /// `info`.
    pub level: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}
