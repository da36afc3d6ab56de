//! `upstreams`: groups of instances and their routing rules.

use super::super::raw::*;
use super::super::types::{defaults, *};
use super::health;
use super::{positive, Problems};
use crate::routing::{Assign, DownPolicy, NoWorkspacePolicy, Source};
use std::collections::{BTreeMap, HashMap, HashSet};

pub(super) fn group(p: &mut Problems, name: String, raw: RawGroup) -> Group {
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

pub(super) fn routing(
    p: &mut Problems,
    at: &str,
    raw: RawRouting,
    instances: &[Instance],
) -> RoutingConfig {
    let at = format!("{at}.routing");
    let sources = match raw.sources {
        None => vec![Source::Header, Source::Session, Source::Query, Source::Body],
        Some(names) => sources(p, &at, names),
    };
    let body_limit = p.size(
        format!("{at}.body_limit"),
        &raw.body_limit,
        defaults::BODY_LIMIT as u64,
    );
    RoutingConfig {
        sources,
        header: header(p, &at, raw.header),
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
        pins: pins(p, &at, raw.pins.unwrap_or_default(), instances),
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
        learned_capacity: learned_capacity(p, &at, raw.learned_sessions.and_then(|l| l.capacity)),
        workspace_limits: raw.workspace_limits.map(|l| workspace_limits(p, &at, l)),
    }
}

/// The header that names the workspace (`X-Workspace-Id` unless set).
fn header(p: &mut Problems, at: &str, raw: Option<String>) -> http::HeaderName {
    let header = raw.unwrap_or_else(|| defaults::WORKSPACE_HEADER.to_string());
    http::HeaderName::from_bytes(header.as_bytes()).unwrap_or_else(|_| {
        p.push(
            format!("{at}.header"),
            format!("`{header}` is not a header name"),
        );
        http::HeaderName::from_static(defaults::WORKSPACE_HEADER)
    })
}

/// Workspaces pinned to an instance, by the instance's index in the group.
fn pins(
    p: &mut Problems,
    at: &str,
    raw: BTreeMap<u64, String>,
    instances: &[Instance],
) -> HashMap<u64, usize> {
    let mut pins = HashMap::new();
    for (workspace, name) in raw {
        match instances.iter().position(|i| i.name == name) {
            Some(index) => drop(pins.insert(workspace, index)),
            None => p.push(
                format!("{at}.pins.{workspace}"),
                format!("no instance named `{name}` in this group"),
            ),
        }
    }
    pins
}

fn learned_capacity(p: &mut Problems, at: &str, raw: Option<usize>) -> usize {
    match raw {
        Some(0) => {
            p.push(
                format!("{at}.learned_sessions.capacity"),
                "must be at least 1",
            );
            defaults::LEARNED_CAPACITY
        }
        other => other.unwrap_or(defaults::LEARNED_CAPACITY),
    }
}

fn workspace_limits(p: &mut Problems, at: &str, l: RawWorkspaceLimits) -> WorkspaceLimits {
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
}

pub(super) fn sources(p: &mut Problems, at: &str, names: Vec<String>) -> Vec<Source> {
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
