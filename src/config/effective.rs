//! The effective configuration as JSON (`GET /admin/config`): every default filled in, in
//! `gateway.yaml`'s own shape and key names, every secret shown as [`REDACTED`]; plus its hash.
//!
//! The hash is SHA-256 over this redacted JSON (keys sorted), so it identifies what a node serves
//! without depending on, or revealing anything about, a secret. Nodes with the same file and
//! environment report the same hash; a secret rotation alone does not change it.

use super::types::*;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

pub const REDACTED: &str = "<redacted>";

impl Config {
    /// The effective configuration with secrets redacted.
    pub fn effective(&self) -> Value {
        let upstreams: Map<String, Value> = self
            .groups
            .iter()
            .map(|g| (g.name.clone(), group(g)))
            .collect();
        let listeners: Map<String, Value> = self
            .listeners
            .iter()
            .map(|l| {
                let tls = l.tls.as_ref().map(|t| json!({ "dir": t.dir, "h2": t.h2 }));
                let limits = &l.limits;
                (
                    l.name.clone(),
                    json!({
                        "listen": l.addr.to_string(),
                        "tls": tls,
                        "header_timeout": duration(limits.header_timeout),
                        "idle_timeout": duration(limits.idle_timeout),
                        "max_connections": limits.max_connections,
                        "max_connections_per_ip": limits.max_connections_per_ip,
                        "max_head_size": limits.max_head_size,
                        "max_uri_length": limits.max_uri_length,
                        "trusted_proxies": l.trust.trusted_proxies.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                        "proxy_protocol": l.trust.proxy_protocol,
                        "health": l.health,
                    }),
                )
            })
            .collect();
        json!({
            "threads": self.threads,
            "admin": self.admin.map(|a| json!({ "listen": a.to_string() })),
            "listeners": listeners,
            "upstreams": upstreams,
            "routes": self.routes.iter().map(|r| self.route(r)).collect::<Vec<_>>(),
            "hub": self.hub.as_ref().map(hub),
            "access_log": match &self.access_log {
                None => json!({ "enabled": false }),
                Some(AccessLogTarget::Stdout) => json!({ "enabled": true, "path": "stdout" }),
                Some(AccessLogTarget::File(path)) => json!({ "enabled": true, "path": path }),
            },
            "log": log(&self.log),
            "cluster": self.cluster.as_ref().map(|c| json!({ "redis": redact_url(&c.redis), "prefix": c.prefix })),
            "shutdown": {
                "drain_delay": duration(self.shutdown.drain_delay),
                "grace_period": duration(self.shutdown.grace_period),
            },
            "spool": self.spool.as_ref().map(|s| json!({
                "dir": s.dir.display().to_string(),
                "max_bytes": s.max_bytes,
                "max_age": duration(s.max_age),
                "max_attempts": s.max_attempts,
            })),
        })
    }

    /// SHA-256 (hex) of [`Config::effective`].
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.effective().to_string()))
    }

    fn route(&self, r: &Route) -> Value {
        let webhook = r.webhook.as_ref().map(|w| {
            let publish: Vec<_> = w
                .publish
                .iter()
                .map(|rule| {
                    json!({
                        "event": rule.event,
                        "app": rule.app,
                        "channel": rule.channel,
                        "name": rule.name,
                        "payload": rule.payload,
                    })
                })
                .collect();
            json!({
                "scheme": w.scheme.as_str(),
                "secrets": vec![REDACTED; w.secrets.len()],
                "tolerance": duration(w.tolerance),
                "duplicates": { "ttl": duration(w.duplicates_ttl), "capacity": w.duplicates_capacity },
                "instances": w.instances_group.map(|g| json!({
                    "group": self.groups.get(g).map(|g| &g.name),
                    "public_url": w.public_url,
                })),
                "publish": publish,
            })
        });
        json!({
            "name": r.name,
            "listener": r.listener,
            "path_prefix": r.path_prefix,
            "upstream": self.groups.get(r.group).map(|g| &g.name),
            "treatment": debug_name(r.treatment),
            "connect_timeout": duration(r.connect_timeout),
            "read_timeout": duration(r.read_timeout),
            "write_timeout": duration(r.write_timeout),
            "body_timeout": duration(r.body_timeout),
            "require_token": r.require_token.iter().map(|t| json!({
                "header": t.header.as_str(), "bearer": t.bearer, "tokens": t.tokens.iter().map(|_| REDACTED).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "allow_from": r.allow_from.as_ref().map(|l| l.iter().map(|c| c.to_string()).collect::<Vec<_>>()),
            "max_body": r.max_body,
            "deny": r.deny,
            "webhook": webhook,
        })
    }
}

fn group(g: &Group) -> Value {
    let instances: Vec<_> = g
        .instances
        .iter()
        .map(|i| json!({ "name": i.name, "addr": i.addr.to_string() }))
        .collect();
    let routing = g.routing.as_ref().map(|r| {
        let pins: Map<String, Value> = r
            .pins
            .iter()
            .map(|(ws, &i)| (ws.to_string(), json!(g.instances.get(i).map(|i| &i.name))))
            .collect();
        json!({
            "sources": r.sources.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "header": r.header.as_str(),
            "body_limit": r.body_limit,
            "assign": debug_name(r.assign),
            "pins": pins,
            "when_instance_down": debug_name(r.when_instance_down),
            "when_no_workspace": debug_name(r.when_no_workspace),
            "learned_sessions": { "capacity": r.learned_capacity },
            "workspace_limits": r.workspace_limits.map(|l| json!({
                "rate": l.rate, "burst": l.burst, "concurrency": l.concurrency,
            })),
        })
    });
    let h = &g.health;
    json!({
        "instances": instances,
        "connect_timeout": duration(g.connect_timeout),
        "idle_timeout": duration(g.idle_timeout),
        "health": {
            "path": h.path,
            "expect": expect(&h.expect),
            "interval": duration(h.interval),
            "timeout": duration(h.timeout),
            "healthy_threshold": h.healthy_threshold,
            "unhealthy_threshold": h.unhealthy_threshold,
        },
        "routing": routing,
    })
}

fn hub(h: &HubConfig) -> Value {
    let apps: Vec<_> = h
        .apps
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "key": a.key,
                "secret": REDACTED,
                "allowed_origins": a.allowed_origins,
                "max_connections": a.max_connections,
                "max_connections_per_ip": a.max_connections_per_ip,
                "max_channels": a.max_channels,
                "max_subscriptions_per_second": a.max_subscriptions_per_second,
                "client_events_per_second": a.client_events_per_second,
                "api_requests_per_second": a.api_requests_per_second,
                "max_batch_size": a.max_batch_size,
                "max_channels_per_event": a.max_channels_per_event,
                "max_channel_name_length": a.max_channel_name_length,
                "write_timeout": duration(a.write_timeout),
                "client_events": a.client_events,
                "max_message_size": a.max_message_size,
                "activity_timeout": duration(a.activity_timeout),
                "ping_interval": duration(a.ping_interval),
                "presence": { "max_members": a.max_presence_members, "max_user_info": a.max_user_info },
                "webhooks": a.webhooks.iter().map(app_webhook).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "listener": h.listener, "apps": apps })
}

fn log(l: &crate::config::LogConfig) -> Value {
    let format = match l.format {
        crate::config::LogFormat::Text => "text",
        crate::config::LogFormat::Json => "json",
    };
    json!({ "format": format, "level": l.level })
}

/// One app webhook; header values redacted (they may be credentials).
fn app_webhook(w: &crate::config::AppWebhook) -> Value {
    let headers: serde_json::Map<String, Value> = w
        .headers
        .iter()
        .map(|(name, _)| (name.to_string(), REDACTED.into()))
        .collect();
    json!({
        "url": w.url,
        "events": w.events.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "headers": headers,
        "filter": {
            "channel_name_starts_with": w.channel_name_starts_with,
            "channel_name_ends_with": w.channel_name_ends_with,
        },
    })
}

/// A Redis URL without its password (`redis://:secret@host` → `redis://:<redacted>@host`).
fn redact_url(url: &str) -> String {
    match url
        .split_once("://")
        .and_then(|(scheme, rest)| Some((scheme, rest.split_once('@')?)))
    {
        Some((scheme, (userinfo, host))) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:{REDACTED}@{host}")
        }
        None => url.to_string(),
    }
}

/// `150ms`, `5s`: whole seconds when exact, else milliseconds (the units `gateway.yaml` takes).
fn duration(d: Duration) -> String {
    match d.subsec_millis() {
        0 => format!("{}s", d.as_secs()),
        _ => format!("{}ms", d.as_millis()),
    }
}

/// The YAML spelling of a one-word enum value (`Modulo` → `modulo`).
fn debug_name(value: impl std::fmt::Debug) -> String {
    format!("{value:?}").to_lowercase()
}

/// `any`, or the list as written: numbers stay numbers, classes are `2xx`.
fn expect(expect: &Expect) -> Value {
    match expect {
        Expect::Any => json!("any"),
        Expect::Statuses(list) => list
            .iter()
            .map(|m| match m {
                StatusMatch::Exact(code) => json!(code),
                StatusMatch::Class(_) => json!(m.to_string()),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_in_units_the_config_accepts() {
        assert_eq!(duration(Duration::from_secs(5)), "5s");
        assert_eq!(duration(Duration::from_millis(150)), "150ms");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
    }
}
