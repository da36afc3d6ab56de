//! Workspace routing: which Node instance a request goes to, and why. Pure (no I/O).
//!
//! Order of precedence for a request whose workspace is known:
//! 1. **learned**: the session it names was created on (or reported by) an instance;
//! 2. **pin**: an explicit `pins` entry;
//! 3. **modulo** / **rendezvous**: the group's `assign` rule.
//!
//! If the chosen instance is down, `when_instance_down` decides: reject (503) or reassign to the
//! best healthy instance by rendezvous.

pub mod assign;
pub mod budget;
pub mod extract;
pub mod learned;

use std::collections::HashMap;

/// A group's routing rules (`upstreams.NAME.routing` in `gateway.yaml`, built by `config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingConfig {
    pub sources: Vec<Source>,
    /// The header carrying the workspace (header names are case-insensitive).
    pub header: http::HeaderName,
    pub body_limit: usize,
    pub assign: Assign,
    /// Workspace → index into the group's instances.
    pub pins: HashMap<u64, usize>,
    pub when_instance_down: DownPolicy,
    pub when_no_workspace: NoWorkspacePolicy,
    pub learned_capacity: usize,
    /// One workspace's budget on this group (none: unlimited).
    pub workspace_limits: Option<WorkspaceLimits>,
}

/// What one workspace may ask of its group: requests per second (a token bucket of `burst`) and
/// requests in flight at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkspaceLimits {
    pub rate: u32,
    pub burst: u32,
    pub concurrency: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Header,
    Session,
    Query,
    Body,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assign {
    Modulo,
    Rendezvous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownPolicy {
    Reject,
    Reassign,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoWorkspacePolicy {
    Reject,
    Any,
}

/// Why an instance was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Learned,
    Pin,
    Modulo,
    Rendezvous,
    /// The rule's instance was down and `when_instance_down: reassign` picked another.
    Reassigned,
    /// No workspace and `when_no_workspace: any`.
    Any,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Learned => "learned",
            Kind::Pin => "pin",
            Kind::Modulo => "modulo",
            Kind::Rendezvous => "rendezvous",
            Kind::Reassigned => "reassigned",
            Kind::Any => "any",
        }
    }
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Header => "header",
            Source::Session => "session",
            Source::Query => "query",
            Source::Body => "body",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Index into the group's instances.
    pub instance: usize,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// The instance that holds the workspace is down and the policy is `reject`.
    InstanceDown { instance: usize },
    /// No healthy instance at all.
    NoHealthyInstance,
}

/// The rule's choice for `workspace`, before health and learning are considered.
pub fn by_rule<N: AsRef<str>>(
    rules: &RoutingConfig,
    names: &[N],
    workspace: u64,
) -> Option<Decision> {
    if let Some(&instance) = rules.pins.get(&workspace) {
        return Some(Decision {
            instance,
            kind: Kind::Pin,
        });
    }
    match rules.assign {
        Assign::Modulo => assign::modulo(workspace, names.len()).map(|instance| Decision {
            instance,
            kind: Kind::Modulo,
        }),
        Assign::Rendezvous => {
            let all = names.iter().enumerate().map(|(i, n)| (i, n.as_ref()));
            assign::rendezvous(workspace, all).map(|instance| Decision {
                instance,
                kind: Kind::Rendezvous,
            })
        }
    }
}

/// Resolves a request for `workspace` over `names` (the group's ordered instance names).
/// `learned` is the index of the instance the request's session was learned on, if any.
pub fn resolve<N: AsRef<str>>(
    rules: &RoutingConfig,
    names: &[N],
    workspace: u64,
    learned: Option<usize>,
    healthy: &dyn Fn(usize) -> bool,
) -> Result<Decision, RouteError> {
    let chosen = match learned {
        Some(instance) => Decision {
            instance,
            kind: Kind::Learned,
        },
        None => by_rule(rules, names, workspace).ok_or(RouteError::NoHealthyInstance)?,
    };
    if healthy(chosen.instance) {
        return Ok(chosen);
    }
    match rules.when_instance_down {
        DownPolicy::Reject => Err(RouteError::InstanceDown {
            instance: chosen.instance,
        }),
        DownPolicy::Reassign => {
            let up = names
                .iter()
                .enumerate()
                .filter(|(i, _)| healthy(*i))
                .map(|(i, n)| (i, n.as_ref()));
            assign::rendezvous(workspace, up)
                .map(|instance| Decision {
                    instance,
                    kind: Kind::Reassigned,
                })
                .ok_or(RouteError::NoHealthyInstance)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::defaults;

    fn rules(assign: Assign, down: DownPolicy) -> RoutingConfig {
        RoutingConfig {
            sources: vec![Source::Header],
            header: http::HeaderName::from_static(defaults::WORKSPACE_HEADER),
            body_limit: defaults::BODY_LIMIT,
            assign,
            pins: [(42, 3)].into_iter().collect(),
            when_instance_down: down,
            when_no_workspace: NoWorkspacePolicy::Reject,
            learned_capacity: 10,
            workspace_limits: None,
        }
    }

    const FLEET: [&str; 4] = ["node-1", "node-2", "node-3", "node-4"];
    const ALL_UP: &dyn Fn(usize) -> bool = &|_| true;

    #[test]
    fn precedence_is_learned_then_pin_then_rule() {
        let r = rules(Assign::Modulo, DownPolicy::Reject);
        assert_eq!(
            resolve(&r, &FLEET, 5, None, ALL_UP),
            Ok(Decision {
                instance: 1,
                kind: Kind::Modulo
            })
        );
        assert_eq!(
            resolve(&r, &FLEET, 42, None, ALL_UP),
            Ok(Decision {
                instance: 3,
                kind: Kind::Pin
            })
        );
        assert_eq!(
            resolve(&r, &FLEET, 42, Some(0), ALL_UP),
            Ok(Decision {
                instance: 0,
                kind: Kind::Learned
            })
        );
    }

    #[test]
    fn a_down_instance_is_rejected_or_reassigned_by_policy() {
        let down_1: &dyn Fn(usize) -> bool = &|i| i != 1;
        let reject = rules(Assign::Modulo, DownPolicy::Reject);
        assert_eq!(
            resolve(&reject, &FLEET, 5, None, down_1),
            Err(RouteError::InstanceDown { instance: 1 })
        );
        let reassign = rules(Assign::Modulo, DownPolicy::Reassign);
        let moved = resolve(&reassign, &FLEET, 5, None, down_1).unwrap();
        assert_eq!(moved.kind, Kind::Reassigned);
        assert_ne!(moved.instance, 1);
        let none_up: &dyn Fn(usize) -> bool = &|_| false;
        assert_eq!(
            resolve(&reassign, &FLEET, 5, None, none_up),
            Err(RouteError::NoHealthyInstance)
        );
    }
}
