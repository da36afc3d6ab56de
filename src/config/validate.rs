//! Raw structs → typed [`Config`], collecting every problem with its YAML path.

use super::raw::*;
use super::types::{defaults, *};
use super::units::{parse_duration, parse_size};
use crate::routing::{Assign, DownPolicy, NoWorkspacePolicy, Source};
use crate::signing::{Scheme, Secret};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

mod health;
mod ops;

/// Collects problems as `(path, message)` while validation goes on.
#[derive(Default)]
struct Problems(Vec<(String, String)>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push((path.into(), message.into()));
    }

    /// `parse(text)` or, when absent, `default`; a bad value is recorded and `default` returned.
    fn parse_or<T>(
        &mut self,
        path: String,
        text: Option<&str>,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> T {
        match text.map(parse) {
            None => default,
            Some(Ok(value)) => value,
            Some(Err(message)) => {
                self.push(path, message);
                default
            }
        }
    }

    fn duration(&mut self, path: String, text: &Option<String>, default: Duration) -> Duration {
        self.parse_or(path, text.as_deref(), default, |t| {
            parse_duration(t).and_then(|d| match d.is_zero() {
                true => Err("must be more than zero".to_string()),
                false => Ok(d),
            })
        })
    }

    fn size(&mut self, path: String, text: &Option<String>, default: u64) -> u64 {
        self.parse_or(path, text.as_deref(), default, parse_size)
    }

    fn addr(&mut self, path: String, text: &str) -> SocketAddr {
        self.parse_or(path, Some(text), SocketAddr::from(([0, 0, 0, 0], 0)), |t| {
            t.parse().map_err(|_| {
                format!("`{t}` is not an address (write IP:port, e.g. 127.0.0.1:3001)")
            })
        })
    }

    fn choice<T: Copy>(
        &mut self,
        path: String,
        text: &Option<String>,
        default: T,
        options: &[(&str, T)],
    ) -> T {
        self.parse_or(path, text.as_deref(), default, |t| {
            options
                .iter()
                .find(|(name, _)| *name == t)
                .map(|(_, value)| *value)
                .ok_or_else(|| {
                    let names: Vec<_> = options.iter().map(|(n, _)| *n).collect();
                    format!("`{t}` is not one of: {}", names.join(", "))
                })
        })
    }
}

pub fn validate(raw: RawConfig) -> (Config, Vec<(String, String)>) {
    let mut p = Problems::default();
    let threads = match raw.threads {
        Some(0) => {
            p.push("threads", "must be at least 1");
            1
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let admin = raw.admin.map(|a| p.addr("admin.listen".into(), &a.listen));
    let hub_listener = raw.hub.as_ref().map(|h| h.listener.as_str());
    let listeners = listeners(&mut p, raw.listeners, admin, hub_listener);
    let groups: Vec<Group> = raw
        .upstreams
        .into_iter()
        .map(|(name, group)| self::group(&mut p, name, group))
        .collect();
    let hub = raw.hub.map(|h| hub(&mut p, h, &listeners));
    let routes = routes(&mut p, raw.routes, &listeners, &groups, hub.as_ref());
    if let Some(hub) = &hub {
        if routes.iter().any(|r| r.listener == hub.listener) {
            p.push(
                "hub.listener",
                format!(
                    "`{}` is also used by routes; the hub needs a listener of its own",
                    hub.listener
                ),
            );
        }
    }
    let config = Config {
        threads,
        admin,
        listeners,
        groups,
        routes,
        hub,
        access_log: ops::access_log(&mut p, raw.access_log),
        shutdown: ops::shutdown(&mut p, raw.shutdown),
        spool: ops::spool(&mut p, raw.spool),
        cluster: ops::cluster(&mut p, raw.cluster),
    };
    (config, p.0)
}

fn listeners(
    p: &mut Problems,
    raw: std::collections::BTreeMap<String, RawListener>,
    admin: Option<SocketAddr>,
    hub_listener: Option<&str>,
) -> Vec<Listener> {
    let mut seen: HashMap<SocketAddr, String> =
        admin.into_iter().map(|a| (a, "admin".into())).collect();
    if raw.is_empty() {
        p.push("listeners", "at least one listener is required");
    }
    raw.into_iter()
        .map(|(name, l)| {
            let path = format!("listeners.{name}.listen");
            let addr = p.addr(path.clone(), &l.listen);
            if let Some(other) = seen.insert(addr, name.clone()) {
                p.push(path, format!("{addr} is also used by {other}"));
            }
            let is_hub = hub_listener == Some(name.as_str());
            let tls = l
                .tls
                .map(|t| tls(p, &format!("listeners.{name}.tls"), t, is_hub));
            let at = format!("listeners.{name}");
            let limits = ListenerLimits {
                header_timeout: p.duration(
                    format!("{at}.header_timeout"),
                    &l.header_timeout,
                    defaults::HEADER_TIMEOUT,
                ),
                idle_timeout: p.duration(
                    format!("{at}.idle_timeout"),
                    &l.idle_timeout,
                    defaults::LISTENER_IDLE_TIMEOUT,
                ),
                max_connections: positive(
                    p,
                    format!("{at}.max_connections"),
                    l.max_connections,
                    defaults::MAX_CONNECTIONS,
                ),
                max_connections_per_ip: positive(
                    p,
                    format!("{at}.max_connections_per_ip"),
                    l.max_connections_per_ip,
                    defaults::MAX_CONNECTIONS_PER_IP,
                ),
                max_head_size: head_limit(
                    p,
                    format!("{at}.max_head_size"),
                    &l.max_head_size,
                    defaults::MAX_HEAD_SIZE,
                ),
                max_uri_length: head_limit(
                    p,
                    format!("{at}.max_uri_length"),
                    &l.max_uri_length,
                    defaults::MAX_URI_LENGTH,
                ),
            };
            // The hub counts connections per app (its upgrades); a listener-wide count there
            // would be a second, silently different limit.
            for (key, set) in [
                ("max_connections", l.max_connections.is_some()),
                ("max_connections_per_ip", l.max_connections_per_ip.is_some()),
            ] {
                if is_hub && set {
                    p.push(
                        format!("{at}.{key}"),
                        format!("not on the hub's listener: set hub.apps[].{key}"),
                    );
                }
            }
            if l.proxy_protocol == Some(true) && (tls.is_some() || is_hub) {
                p.push(
                    format!("{at}.proxy_protocol"),
                    "only on plain HTTP listeners of routes (not with tls, not on the hub's)",
                );
            }
            let trusted = l
                .trusted_proxies
                .unwrap_or_else(|| defaults::TRUSTED_PROXIES.map(String::from).to_vec());
            let trusted_proxies = cidrs(p, &format!("{at}.trusted_proxies"), &trusted);
            Listener {
                name,
                addr,
                tls,
                limits,
                trust: Trust {
                    trusted_proxies,
                    proxy_protocol: l.proxy_protocol.unwrap_or(false),
                },
            }
        })
        .collect()
}

/// Address blocks (`10.0.0.0/8`, `::1`), each reported at its path when it is not one.
fn cidrs(p: &mut Problems, at: &str, list: &[String]) -> Vec<Cidr> {
    list.iter()
        .enumerate()
        .filter_map(|(i, text)| {
            let cidr = Cidr::parse(text.trim());
            if cidr.is_none() {
                p.push(
                    format!("{at}[{i}]"),
                    format!("`{text}` is not an address or address block (10.0.0.0/8, ::1)"),
                );
            }
            cidr
        })
        .collect()
}

/// `routes[].require_token`.
fn token_rules(p: &mut Problems, at: &str, raw: Vec<RawTokenRule>) -> Vec<TokenRule> {
    raw.into_iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let header = http::HeaderName::from_bytes(r.header.trim().as_bytes());
            let Ok(header) = header else {
                p.push(format!("{at}[{i}].header"), "not a valid header name");
                return None;
            };
            Some(TokenRule {
                header,
                bearer: r.bearer.unwrap_or(false),
                // An unset `${VAR:-}` leaves an empty token: it matches nothing.
                tokens: r.tokens.into_iter().filter(|t| !t.is_empty()).collect(),
            })
        })
        .collect()
}

/// A request-head size limit: between 1 KiB and 1 MiB.
fn head_limit(p: &mut Problems, path: String, text: &Option<String>, default: u64) -> usize {
    let size = p.size(path.clone(), text, default);
    if !(1024..=1 << 20).contains(&size) {
        p.push(path, "must be between 1KiB and 1MiB");
        return default as usize;
    }
    size as usize
}

/// A count that must be at least 1, or its default.
fn positive(p: &mut Problems, path: String, value: Option<usize>, default: usize) -> usize {
    match value {
        Some(0) => {
            p.push(path, "must be at least 1");
            default
        }
        Some(n) => n,
        None => default,
    }
}

/// `listeners.NAME.tls`. `h2` defaults to on, except on the hub's listener, which serves
/// HTTP/1.1 only: pingora's hub app takes WebSocket upgrades from HTTP/1 sessions alone.
fn tls(p: &mut Problems, at: &str, raw: RawTls, is_hub: bool) -> TlsConfig {
    if raw.dir.trim().is_empty() {
        p.push(
            format!("{at}.dir"),
            "must not be empty (a directory of NAME.crt + NAME.key pairs)",
        );
    }
    if is_hub && raw.h2 == Some(true) {
        p.push(
            format!("{at}.h2"),
            "the hub's listener serves HTTP/1.1 only (WebSocket upgrades need it); remove `h2`",
        );
    }
    TlsConfig {
        dir: raw.dir.into(),
        h2: !is_hub && raw.h2.unwrap_or(true),
    }
}

fn group(p: &mut Problems, name: String, raw: RawGroup) -> Group {
    let at = format!("upstreams.{name}");
    if raw.instances.is_empty() {
        p.push(
            format!("{at}.instances"),
            "at least one instance is required",
        );
    }
    let mut names = HashSet::new();
    let instances: Vec<Instance> = raw
        .instances
        .into_iter()
        .enumerate()
        .map(|(i, inst)| {
            if inst.name.is_empty() || !names.insert(inst.name.clone()) {
                p.push(
                    format!("{at}.instances[{i}].name"),
                    format!("`{}` is empty or used twice", inst.name),
                );
            }
            let addr = p.addr(format!("{at}.instances[{i}].addr"), &inst.addr);
            Instance {
                name: inst.name,
                addr,
            }
        })
        .collect();
    let health = health::health(p, &at, raw.health.unwrap_or_default());
    let routing = raw.routing.map(|r| routing(p, &at, r, &instances));
    Group {
        connect_timeout: p.duration(
            format!("{at}.connect_timeout"),
            &raw.connect_timeout,
            defaults::CONNECT_TIMEOUT,
        ),
        idle_timeout: p.duration(
            format!("{at}.idle_timeout"),
            &raw.idle_timeout,
            defaults::IDLE_TIMEOUT,
        ),
        name,
        instances,
        health,
        routing,
    }
}

fn routing(p: &mut Problems, at: &str, raw: RawRouting, instances: &[Instance]) -> RoutingConfig {
    let at = format!("{at}.routing");
    let sources = match raw.sources {
        None => vec![Source::Header, Source::Session, Source::Query, Source::Body],
        Some(names) => sources(p, &at, names),
    };
    let header = raw
        .header
        .unwrap_or_else(|| defaults::WORKSPACE_HEADER.to_string());
    let header = http::HeaderName::from_bytes(header.as_bytes()).unwrap_or_else(|_| {
        p.push(
            format!("{at}.header"),
            format!("`{header}` is not a header name"),
        );
        http::HeaderName::from_static(defaults::WORKSPACE_HEADER)
    });
    let body_limit = p.size(
        format!("{at}.body_limit"),
        &raw.body_limit,
        defaults::BODY_LIMIT as u64,
    );
    let mut pins = HashMap::new();
    for (workspace, name) in raw.pins.unwrap_or_default() {
        match instances.iter().position(|i| i.name == name) {
            Some(index) => drop(pins.insert(workspace, index)),
            None => p.push(
                format!("{at}.pins.{workspace}"),
                format!("no instance named `{name}` in this group"),
            ),
        }
    }
    let learned_capacity = match raw.learned_sessions.and_then(|l| l.capacity) {
        Some(0) => {
            p.push(
                format!("{at}.learned_sessions.capacity"),
                "must be at least 1",
            );
            defaults::LEARNED_CAPACITY
        }
        other => other.unwrap_or(defaults::LEARNED_CAPACITY),
    };
    RoutingConfig {
        sources,
        header,
        body_limit: usize::try_from(body_limit).unwrap_or(usize::MAX),
        assign: p.choice(
            format!("{at}.assign"),
            &raw.assign,
            Assign::Modulo,
            &[
                ("modulo", Assign::Modulo),
                ("rendezvous", Assign::Rendezvous),
            ],
        ),
        pins,
        when_instance_down: p.choice(
            format!("{at}.when_instance_down"),
            &raw.when_instance_down,
            DownPolicy::Reject,
            &[
                ("reject", DownPolicy::Reject),
                ("reassign", DownPolicy::Reassign),
            ],
        ),
        when_no_workspace: p.choice(
            format!("{at}.when_no_workspace"),
            &raw.when_no_workspace,
            NoWorkspacePolicy::Reject,
            &[
                ("reject", NoWorkspacePolicy::Reject),
                ("any", NoWorkspacePolicy::Any),
            ],
        ),
        learned_capacity,
        workspace_limits: raw.workspace_limits.map(|l| {
            let at = format!("{at}.workspace_limits");
            let count = |p: &mut Problems, key: &str, value: Option<u32>, default: u32| {
                positive(
                    p,
                    format!("{at}.{key}"),
                    value.map(|v| v as usize),
                    default as usize,
                ) as u32
            };
            let rate = count(p, "rate", l.rate, u32::MAX);
            WorkspaceLimits {
                rate,
                burst: count(p, "burst", l.burst, rate.saturating_mul(2)),
                concurrency: count(p, "concurrency", l.concurrency, u32::MAX),
            }
        }),
    }
}

fn sources(p: &mut Problems, at: &str, names: Vec<String>) -> Vec<Source> {
    let options = [
        ("header", Source::Header),
        ("session", Source::Session),
        ("query", Source::Query),
        ("body", Source::Body),
    ];
    let mut out = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        let source = p.choice(
            format!("{at}.sources[{i}]"),
            &Some(name),
            None,
            &options.map(|(n, s)| (n, Some(s))),
        );
        match source {
            Some(s) if out.contains(&s) => p.push(format!("{at}.sources[{i}]"), "listed twice"),
            Some(s) => out.push(s),
            None => {}
        }
    }
    if out.is_empty() {
        p.push(format!("{at}.sources"), "at least one source is required");
    }
    out
}

fn routes(
    p: &mut Problems,
    raw: Vec<RawRoute>,
    listeners: &[Listener],
    groups: &[Group],
    hub: Option<&HubConfig>,
) -> Vec<Route> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let at = format!("routes[{i}]");
        if r.name.is_empty() || !names.insert(r.name.clone()) {
            p.push(
                format!("{at}.name"),
                format!("`{}` is empty or used twice", r.name),
            );
        }
        if !listeners.iter().any(|l| l.name == r.listener) {
            p.push(
                format!("{at}.listener"),
                format!("no listener named `{}`", r.listener),
            );
        }
        let group = groups.iter().position(|g| g.name == r.upstream);
        if group.is_none() {
            p.push(
                format!("{at}.upstream"),
                format!("no upstream group named `{}`", r.upstream),
            );
        }
        let treatment = p.choice(
            format!("{at}.treatment"),
            &r.treatment,
            Treatment::Balance,
            &[
                ("workspace", Treatment::Workspace),
                ("balance", Treatment::Balance),
                ("webhook", Treatment::Webhook),
            ],
        );
        let webhook = match (treatment, r.webhook) {
            (Treatment::Webhook, Some(raw)) => Some(webhook(p, &at, raw, groups, hub)),
            (Treatment::Webhook, None) => {
                p.push(format!("{at}.webhook"), "required by `treatment: webhook`");
                None
            }
            (_, Some(_)) => {
                p.push(
                    format!("{at}.webhook"),
                    "only allowed with `treatment: webhook`",
                );
                None
            }
            (_, None) => None,
        };
        let group_conf = group.map(|g| &groups[g]);
        if treatment == Treatment::Workspace && group_conf.is_some_and(|g| g.routing.is_none()) {
            p.push(
                format!("{at}.treatment"),
                format!("`workspace` needs `upstreams.{}.routing`", r.upstream),
            );
        }
        let path_prefix = r.path_prefix.unwrap_or_else(|| "/".into());
        let deny = r.deny.unwrap_or_else(|| match treatment {
            Treatment::Workspace => defaults::WORKSPACE_DENY.map(String::from).to_vec(),
            Treatment::Balance | Treatment::Webhook => Vec::new(),
        });
        for (key, value) in std::iter::once(("path_prefix".to_string(), &path_prefix)).chain(
            deny.iter()
                .enumerate()
                .map(|(d, v)| (format!("deny[{d}]"), v)),
        ) {
            if !value.starts_with('/') {
                p.push(
                    format!("{at}.{key}"),
                    format!("`{value}` must start with /"),
                );
            }
        }
        let connect_default = group_conf.map_or(defaults::CONNECT_TIMEOUT, |g| g.connect_timeout);
        out.push(Route {
            connect_timeout: p.duration(
                format!("{at}.connect_timeout"),
                &r.connect_timeout,
                connect_default,
            ),
            read_timeout: p.duration(
                format!("{at}.read_timeout"),
                &r.read_timeout,
                defaults::READ_TIMEOUT,
            ),
            write_timeout: p.duration(
                format!("{at}.write_timeout"),
                &r.write_timeout,
                defaults::WRITE_TIMEOUT,
            ),
            body_timeout: p.duration(
                format!("{at}.body_timeout"),
                &r.body_timeout,
                defaults::BODY_TIMEOUT,
            ),
            require_token: token_rules(
                p,
                &format!("{at}.require_token"),
                r.require_token.unwrap_or_default(),
            ),
            allow_from: r
                .allow_from
                .map(|list| cidrs(p, &format!("{at}.allow_from"), &list)),
            max_body: p.size(format!("{at}.max_body"), &r.max_body, defaults::MAX_BODY),
            name: r.name,
            listener: r.listener,
            path_prefix,
            group: group.unwrap_or(0),
            treatment,
            deny,
            webhook,
        });
    }
    out
}

fn webhook(
    p: &mut Problems,
    at: &str,
    raw: RawWebhook,
    groups: &[Group],
    hub: Option<&HubConfig>,
) -> WebhookConfig {
    let publish = raw
        .publish
        .into_iter()
        .enumerate()
        .filter_map(|(i, rule)| publish_rule(p, &format!("{at}.webhook.publish[{i}]"), rule, hub))
        .collect();
    let at = format!("{at}.webhook");
    let scheme = Scheme::parse(&raw.scheme).unwrap_or_else(|| {
        let names: Vec<_> = Scheme::ALL.iter().map(|s| s.as_str()).collect();
        p.push(
            format!("{at}.scheme"),
            format!("`{}` is not one of: {}", raw.scheme, names.join(", ")),
        );
        Scheme::HexTimestampBody
    });
    if raw.secrets.is_empty() {
        p.push(
            format!("{at}.secrets"),
            "at least one secret is required (a webhook route never runs unverified)",
        );
    }
    let secrets = raw
        .secrets
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            Secret::from_config(scheme, text)
                .map_err(|message| p.push(format!("{at}.secrets[{i}]"), message))
                .ok()
        })
        .collect();
    let tolerance = p.duration(
        format!("{at}.tolerance"),
        &raw.tolerance,
        defaults::WEBHOOK_TOLERANCE,
    );
    let duplicates = raw.duplicates.unwrap_or_default();
    let duplicates_ttl = p.duration(
        format!("{at}.duplicates.ttl"),
        &duplicates.ttl,
        defaults::DUPLICATES_TTL.max(tolerance),
    );
    if duplicates_ttl < tolerance {
        p.push(
            format!("{at}.duplicates.ttl"),
            "must be at least `tolerance`, or a replay inside the window would pass",
        );
    }
    let duplicates_capacity = match duplicates.capacity {
        Some(0) => {
            p.push(format!("{at}.duplicates.capacity"), "must be at least 1");
            defaults::DUPLICATES_CAPACITY
        }
        other => other.unwrap_or(defaults::DUPLICATES_CAPACITY),
    };
    let (instances_group, public_url) = match raw.instances {
        None => (None, None),
        Some(inst) => {
            let index = groups.iter().position(|g| g.name == inst.group);
            if index.is_none() {
                p.push(
                    format!("{at}.instances.group"),
                    format!("no upstream group named `{}`", inst.group),
                );
            }
            if let Some(url) = &inst.public_url {
                let valid = (url.starts_with("http://") || url.starts_with("https://"))
                    && http::HeaderValue::from_str(url).is_ok();
                if !valid {
                    p.push(
                        format!("{at}.instances.public_url"),
                        format!("`{url}` is not an http(s) URL"),
                    );
                }
            }
            (index, inst.public_url)
        }
    };
    WebhookConfig {
        scheme,
        secrets,
        tolerance,
        duplicates_ttl,
        duplicates_capacity,
        instances_group,
        public_url,
        publish,
    }
}

fn publish_rule(
    p: &mut Problems,
    at: &str,
    raw: RawPublishRule,
    hub: Option<&HubConfig>,
) -> Option<PublishRule> {
    let Some(hub) = hub else {
        p.push(at.to_string(), "publishing needs a `hub` section");
        return None;
    };
    let app = match &raw.app {
        Some(id) => hub.apps.iter().find(|a| &a.id == id),
        None if hub.apps.len() == 1 => hub.apps.first(),
        None => None,
    }
    .map(|a| a.id.clone());
    if app.is_none() {
        p.push(
            format!("{at}.app"),
            "name a hub app id (required when the hub has several apps)",
        );
    }
    for (key, template) in [("channel", &raw.channel), ("name", &raw.name)] {
        if let Err(message) = crate::publish::check_template(template) {
            p.push(format!("{at}.{key}"), message);
        }
    }
    Some(PublishRule {
        event: raw.event,
        app: app?,
        channel: raw.channel,
        name: raw.name,
        payload: raw.payload.unwrap_or(serde_json::Value::Null),
    })
}

fn hub(p: &mut Problems, raw: RawHub, listeners: &[Listener]) -> HubConfig {
    if !listeners.iter().any(|l| l.name == raw.listener) {
        p.push(
            "hub.listener",
            format!("no listener named `{}`", raw.listener),
        );
    }
    if raw.apps.is_empty() {
        p.push("hub.apps", "at least one app is required");
    }
    let mut seen = HashSet::new();
    let apps = raw
        .apps
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let at = format!("hub.apps[{i}]");
            for (key, value) in [("id", &a.id), ("key", &a.key), ("secret", &a.secret)] {
                if value.is_empty() {
                    p.push(format!("{at}.{key}"), "must not be empty");
                }
            }
            if !seen.insert(a.id.clone()) || !seen.insert(format!("key:{}", a.key)) {
                p.push(at.clone(), "app id or key used twice");
            }
            let presence = a.presence.unwrap_or_default();
            let size = |p: &mut Problems, key: &str, text: &Option<String>, default: usize| {
                usize::try_from(p.size(format!("{at}.{key}"), text, default as u64))
                    .unwrap_or(usize::MAX)
            };
            App {
                allowed_origins: a.allowed_origins.unwrap_or_else(|| vec!["*".into()]),
                max_connections: a.max_connections.unwrap_or(defaults::HUB_MAX_CONNECTIONS),
                max_connections_per_ip: positive(
                    p,
                    format!("{at}.max_connections_per_ip"),
                    a.max_connections_per_ip,
                    defaults::HUB_MAX_CONNECTIONS_PER_IP,
                ),
                max_channels: positive(
                    p,
                    format!("{at}.max_channels"),
                    a.max_channels,
                    defaults::HUB_MAX_CHANNELS,
                ),
                max_subscriptions_per_second: positive(
                    p,
                    format!("{at}.max_subscriptions_per_second"),
                    a.max_subscriptions_per_second.map(|n| n as usize),
                    defaults::HUB_MAX_SUBSCRIPTIONS_PER_SECOND as usize,
                ) as u32,
                write_timeout: p.duration(
                    format!("{at}.write_timeout"),
                    &a.write_timeout,
                    defaults::HUB_WRITE_TIMEOUT,
                ),
                client_events: a.client_events.unwrap_or(false),
                max_message_size: size(
                    p,
                    "max_message_size",
                    &a.max_message_size,
                    defaults::HUB_MAX_MESSAGE_SIZE,
                ),
                activity_timeout: p.duration(
                    format!("{at}.activity_timeout"),
                    &a.activity_timeout,
                    defaults::HUB_ACTIVITY_TIMEOUT,
                ),
                max_presence_members: presence
                    .max_members
                    .unwrap_or(defaults::HUB_MAX_PRESENCE_MEMBERS),
                max_user_info: size(
                    p,
                    "presence.max_user_info",
                    &presence.max_user_info,
                    defaults::HUB_MAX_USER_INFO,
                ),
                id: a.id,
                key: a.key,
                secret: a.secret,
            }
        })
        .collect();
    HubConfig {
        listener: raw.listener,
        apps,
    }
}
