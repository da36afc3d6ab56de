//! `routes`: listener, prefix, upstream and treatment; webhook routes and their publish rules.

use super::super::raw::*;
use super::super::types::{defaults, *};
use super::{cidrs, token_rules, Problems};
use crate::signing::{Scheme, Secret};
use std::collections::HashSet;
use std::time::Duration;

pub(super) fn routes(
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
        out.push(route(p, &at, r, groups, hub));
    }
    out
}

fn route(
    p: &mut Problems,
    at: &str,
    r: RawRoute,
    groups: &[Group],
    hub: Option<&HubConfig>,
) -> Route {
    let group = groups.iter().position(|g| g.name == r.upstream);
    if group.is_none() {
        p.push(
            format!("{at}.upstream"),
            format!("no upstream group named `{}`", r.upstream),
        );
    }
    let group_conf = group.map(|g| &groups[g]);
    let treatment = treatment(p, at, &r.treatment);
    if treatment == Treatment::Workspace && group_conf.is_some_and(|g| g.routing.is_none()) {
        p.push(
            format!("{at}.treatment"),
            format!("`workspace` needs `upstreams.{}.routing`", r.upstream),
        );
    }
    let webhook = route_webhook(p, at, treatment, r.webhook, groups, hub);
    let (path_prefix, deny) = paths(p, at, treatment, r.path_prefix, r.deny);
    let connect_default = group_conf.map_or(defaults::CONNECT_TIMEOUT, |g| g.connect_timeout);
    let duration = |p: &mut Problems, key: &str, raw: &Option<String>, default| {
        p.duration(format!("{at}.{key}"), raw, default)
    };
    Route {
        connect_timeout: duration(p, "connect_timeout", &r.connect_timeout, connect_default),
        read_timeout: duration(p, "read_timeout", &r.read_timeout, defaults::READ_TIMEOUT),
        write_timeout: duration(
            p,
            "write_timeout",
            &r.write_timeout,
            defaults::WRITE_TIMEOUT,
        ),
        body_timeout: duration(p, "body_timeout", &r.body_timeout, defaults::BODY_TIMEOUT),
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
    }
}

fn treatment(p: &mut Problems, at: &str, raw: &Option<String>) -> Treatment {
    p.choice(
        format!("{at}.treatment"),
        raw,
        Treatment::Balance,
        &[
            ("workspace", Treatment::Workspace),
            ("balance", Treatment::Balance),
            ("webhook", Treatment::Webhook),
        ],
    )
}

/// The `webhook` section: required by `treatment: webhook`, refused beside any other.
fn route_webhook(
    p: &mut Problems,
    at: &str,
    treatment: Treatment,
    raw: Option<RawWebhook>,
    groups: &[Group],
    hub: Option<&HubConfig>,
) -> Option<WebhookConfig> {
    match (treatment, raw) {
        (Treatment::Webhook, Some(raw)) => Some(webhook(p, at, raw, groups, hub)),
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
    }
}

/// `path_prefix` and `deny`, each of which must start with `/`.
fn paths(
    p: &mut Problems,
    at: &str,
    treatment: Treatment,
    path_prefix: Option<String>,
    deny: Option<Vec<String>>,
) -> (String, Vec<String>) {
    let path_prefix = path_prefix.unwrap_or_else(|| "/".into());
    let deny = deny.unwrap_or_else(|| match treatment {
        Treatment::Workspace => defaults::WORKSPACE_DENY.map(String::from).to_vec(),
        Treatment::Balance | Treatment::Webhook => Vec::new(),
    });
    let keyed = std::iter::once(("path_prefix".to_string(), &path_prefix)).chain(
        deny.iter()
            .enumerate()
            .map(|(d, v)| (format!("deny[{d}]"), v)),
    );
    for (key, value) in keyed {
        if !value.starts_with('/') {
            p.push(
                format!("{at}.{key}"),
                format!("`{value}` must start with /"),
            );
        }
    }
    (path_prefix, deny)
}

pub(super) fn webhook(
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
    let secrets = secrets(p, &at, scheme, &raw.secrets);
    let tolerance = p.duration(
        format!("{at}.tolerance"),
        &raw.tolerance,
        defaults::WEBHOOK_TOLERANCE,
    );
    let (duplicates_ttl, duplicates_capacity) =
        duplicates(p, &at, raw.duplicates.unwrap_or_default(), tolerance);
    let (instances_group, public_url) = match raw.instances {
        None => (None, None),
        Some(inst) => instances(p, &at, inst, groups),
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

fn secrets(p: &mut Problems, at: &str, scheme: Scheme, raw: &[String]) -> Vec<Secret> {
    if raw.is_empty() {
        p.push(
            format!("{at}.secrets"),
            "at least one secret is required (a webhook route never runs unverified)",
        );
    }
    raw.iter()
        .enumerate()
        .filter_map(|(i, text)| {
            Secret::from_config(scheme, text)
                .map_err(|message| p.push(format!("{at}.secrets[{i}]"), message))
                .ok()
        })
        .collect()
}

/// `duplicates.ttl` (at least `tolerance`) and `duplicates.capacity`.
fn duplicates(
    p: &mut Problems,
    at: &str,
    raw: RawDuplicates,
    tolerance: Duration,
) -> (Duration, usize) {
    let ttl = p.duration(
        format!("{at}.duplicates.ttl"),
        &raw.ttl,
        defaults::DUPLICATES_TTL.max(tolerance),
    );
    if ttl < tolerance {
        p.push(
            format!("{at}.duplicates.ttl"),
            "must be at least `tolerance`, or a replay inside the window would pass",
        );
    }
    let capacity = match raw.capacity {
        Some(0) => {
            p.push(format!("{at}.duplicates.capacity"), "must be at least 1");
            defaults::DUPLICATES_CAPACITY
        }
        other => other.unwrap_or(defaults::DUPLICATES_CAPACITY),
    };
    (ttl, capacity)
}

/// `instances`: the group whose instances may call this route, and the URL they are told.
fn instances(
    p: &mut Problems,
    at: &str,
    inst: RawWebhookInstances,
    groups: &[Group],
) -> (Option<usize>, Option<String>) {
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

pub(super) fn publish_rule(
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
