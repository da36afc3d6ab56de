//! Raw structs → typed [`Config`], collecting every problem with its YAML path.

use super::raw::*;
use super::types::*;
use super::units::{parse_duration, parse_size};
use std::net::SocketAddr;
use std::time::Duration;

mod app_webhooks;
mod groups;
mod health;
mod hub;
mod listeners;
mod ops;
mod routes;

use groups::group;
use hub::hub;
use listeners::listeners;
use routes::routes;

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
    let spool = ops::spool(&mut p, raw.spool);
    let hooked = hub
        .iter()
        .flat_map(|h| &h.apps)
        .position(|a| !a.webhooks.is_empty());
    if let (Some(i), None) = (hooked, &spool) {
        p.push(
            format!("hub.apps[{i}].webhooks"),
            "app webhooks are delivered through the spool: set spool.enabled: true",
        );
    }
    let config = Config {
        threads,
        admin,
        listeners,
        groups,
        routes,
        hub,
        access_log: ops::access_log(&mut p, raw.access_log),
        log: ops::log(&mut p, raw.log),
        shutdown: ops::shutdown(&mut p, raw.shutdown),
        spool,
        cluster: ops::cluster(&mut p, raw.cluster),
    };
    (config, p.0)
}
