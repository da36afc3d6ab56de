//! Phase 2, locate: which instance a request goes to. Round robin over healthy instances for
//! `balance` routes; for `workspace` routes, the workspace (header → session id → query → JSON
//! body, in the configured order; the body is read only when needed, only if JSON and within
//! `body_limit`) resolved to an instance (learned → pin → rule; a down instance rejects or
//! reassigns). Also what a successful answer will teach the learned session table ([`Learn`]).

use super::hygiene;
use super::request_body::read_whole;
use super::request_body::ClientBody;
use crate::config::{Route, RoutingConfig};
use crate::errors::GatewayError;
use crate::routing::extract::{self, Body, BodyFields, Outcome, RequestView};
use crate::routing::{self, Kind, NoWorkspacePolicy, RouteError};
use crate::state::{Gateway, GroupState, Snapshot};
use bytes::Bytes;
use std::sync::atomic::Ordering;

/// Where a request goes and what it carries for later phases.
pub struct Located {
    pub instance: usize,
    pub workspace: Option<u64>,
    /// Where the workspace was found (`header`, `session`, …; `none`).
    pub source: &'static str,
    pub learn: Learn,
    /// The body, when it was read to find the workspace (forwarded byte for byte).
    pub body: Option<Bytes>,
}

/// A request that cannot go anywhere: the error to answer, and the down instance it would have
/// gone to (counted as an `unhealthy` attempt there).
pub struct Refusal {
    pub error: GatewayError,
    pub down: Option<usize>,
}

impl From<GatewayError> for Refusal {
    fn from(error: GatewayError) -> Self {
        Refusal { error, down: None }
    }
}

/// What a successful (2xx) answer teaches the gateway.
pub enum Learn {
    Nothing,
    /// The learned session table: this session now lives on the instance that answered.
    Created(String),
    /// The learned session table: this session is gone.
    Deleted(String),
    /// The route's seen deliveries: this webhook delivery reached Laravel.
    Delivered(String),
}

impl Learn {
    /// Applies the lesson once `instance` of `group` answered 2xx on `route`.
    pub fn apply(
        self,
        gateway: &Gateway,
        snap: &Snapshot,
        group: usize,
        instance: usize,
        route: usize,
    ) {
        let state = &snap.groups[group];
        let name = &snap.config.groups[group].name;
        match self {
            Learn::Created(id) => gateway.learn_session(state, name, &id, &state.names[instance]),
            Learn::Deleted(id) => gateway.forget_session(state, name, &id),
            Learn::Delivered(key) => {
                if let Some(seen) = &snap.seen[route] {
                    seen.insert(&key, std::time::Instant::now());
                }
            }
            Learn::Nothing => {}
        }
    }
}

/// Round robin over healthy instances.
pub fn balance(snap: &Snapshot, group: usize) -> Result<usize, GatewayError> {
    let state = &snap.groups[group];
    let n = state.names.len();
    let start = state.cursor.fetch_add(1, Ordering::Relaxed);
    (0..n)
        .map(|k| (start + k) % n)
        .find(|&i| state.health[i].is_healthy())
        .ok_or(GatewayError::NoHealthyInstance {
            retry_after_secs: retry_after(snap, group),
        })
}

fn retry_after(snap: &Snapshot, group: usize) -> u64 {
    crate::health::retry_after(&snap.config.groups[group].health)
}

/// Workspace routing for one request (`body` is read only when the workspace may be in it).
pub async fn locate(
    gateway: &Gateway,
    snap: &Snapshot,
    route: &Route,
    parts: &http::request::Parts,
    body: &mut ClientBody,
) -> Result<Located, Refusal> {
    let group = &snap.config.groups[route.group];
    let state = &snap.groups[route.group];
    let rules = group.routing.as_ref().ok_or(GatewayError::Internal)?;
    // Only session creation and deletion teach the learned table.
    let session_path = matches!(parts.method, http::Method::POST | http::Method::DELETE)
        .then(|| normalized_session_path(parts.uri.path()))
        .flatten();
    let creating = parts.method == http::Method::POST && session_path.as_deref() == Some("");
    let (outcome, read) = find(parts, rules, body, creating).await?;
    let Outcome::Found {
        workspace,
        source,
        session_id,
    } = outcome
    else {
        return no_workspace(gateway, snap, route.group, rules, read);
    };
    let learn = learning(
        &parts.method,
        session_path.as_deref(),
        read.as_deref(),
        session_id.as_deref(),
    );
    let learned = match session_id.as_deref() {
        Some(id) => gateway.learned_instance(state, &group.name, id).await,
        None => None,
    }
    .and_then(|name| state.names.iter().position(|n| *n == name));
    let healthy = |i: usize| state.health[i].is_healthy();
    let decision = routing::resolve(rules, &state.names, workspace, learned, &healthy);
    let count = |kind: &str| gateway.metrics.routing_decisions.inc(source.as_str(), kind);
    match decision {
        Ok(decision) => {
            count(decision.kind.as_str());
            Ok(Located {
                instance: decision.instance,
                workspace: Some(workspace),
                source: source.as_str(),
                learn,
                body: read,
            })
        }
        Err(e) => {
            count("rejected");
            Err(refused(snap, route.group, e))
        }
    }
}

/// What the request names, and its body when it had to be read: only when the workspace may
/// be in it, or the request creates a session (whose body teaches the learned table).
async fn find(
    parts: &http::request::Parts,
    rules: &RoutingConfig,
    body: &mut ClientBody,
    creating: bool,
) -> Result<(Outcome, Option<Bytes>), Refusal> {
    let outcome = extract_from(parts, rules, Body::NotRead);
    if outcome != Outcome::NeedBody && !creating {
        return Ok((outcome, None));
    }
    let declared = hygiene::content_length(&parts.headers);
    let eligible = hygiene::is_json(&parts.headers)
        && declared.is_some_and(|len| len > 0 && len <= rules.body_limit as u64);
    let read = match eligible {
        true => Some(read_whole(body, rules.body_limit as u64).await?),
        false => None,
    };
    let body = read.as_deref().map_or(Body::Unavailable, Body::Json);
    Ok((extract_from(parts, rules, body), read))
}

/// A request that names no workspace: refused, or balanced with `when_no_workspace: any`.
fn no_workspace(
    gateway: &Gateway,
    snap: &Snapshot,
    group: usize,
    rules: &RoutingConfig,
    read: Option<Bytes>,
) -> Result<Located, Refusal> {
    let count = |kind: &str| gateway.metrics.routing_decisions.inc("none", kind);
    let instance = match rules.when_no_workspace {
        NoWorkspacePolicy::Reject => {
            count("rejected");
            return Err(GatewayError::NoWorkspace.into());
        }
        NoWorkspacePolicy::Any => {
            count(Kind::Any.as_str());
            balance(snap, group)?
        }
    };
    Ok(Located {
        instance,
        workspace: None,
        source: "none",
        learn: Learn::Nothing,
        body: read,
    })
}

/// The refusal of a workspace whose instance is down (or of a group with none healthy).
fn refused(snap: &Snapshot, group: usize, e: RouteError) -> Refusal {
    let retry_after_secs = retry_after(snap, group);
    match e {
        RouteError::InstanceDown { instance } => Refusal {
            error: GatewayError::InstanceDown { retry_after_secs },
            down: Some(instance),
        },
        _ => GatewayError::NoHealthyInstance { retry_after_secs }.into(),
    }
}

fn extract_from(parts: &http::request::Parts, rules: &RoutingConfig, body: Body<'_>) -> Outcome {
    let view = RequestView {
        header: parts.headers.get(&rules.header).map(|v| v.as_bytes()),
        path: parts.uri.path(),
        query: parts.uri.query(),
        body,
    };
    extract::extract(&rules.sources, &view)
}

/// With `when_instance_down: reassign`, the best healthy instance by rendezvous for a request
/// whose instance went down (its connect just failed); `None` if the rules keep it where it is
/// or no instance is healthy.
pub fn reassign(
    rules: &RoutingConfig,
    state: &GroupState,
    workspace: u64,
    gateway: &Gateway,
    source: &str,
) -> Option<usize> {
    if rules.when_instance_down != routing::DownPolicy::Reassign {
        return None;
    }
    let healthy = |i: usize| state.health[i].is_healthy();
    let moved = routing::resolve(rules, &state.names, workspace, None, &healthy).ok()?;
    gateway
        .metrics
        .routing_decisions
        .inc(source, moved.kind.as_str());
    Some(moved.instance)
}

/// For `/api/sessions[/…]`: what follows `/api/sessions` (empty for the collection itself).
fn normalized_session_path(path: &str) -> Option<String> {
    let normalized = hygiene::normalize_path(path);
    let rest = normalized.strip_prefix("/api/sessions")?;
    match rest.trim_end_matches('/') {
        "" => Some(String::new()),
        r if r.starts_with('/') => Some(r[1..].to_string()),
        _ => None,
    }
}

/// What a 2xx answer to this request teaches the learned session table.
fn learning(
    method: &http::Method,
    session_path: Option<&str>,
    body: Option<&[u8]>,
    extracted: Option<&str>,
) -> Learn {
    match (method, session_path) {
        (&http::Method::POST, Some("")) => {
            let from_body = body.and_then(|b| BodyFields::parse(b).session_id);
            from_body
                .or(extracted.map(String::from))
                .map_or(Learn::Nothing, Learn::Created)
        }
        (&http::Method::DELETE, Some(id)) if !id.is_empty() && !id.contains('/') => {
            Learn::Deleted(id.to_string())
        }
        _ => Learn::Nothing,
    }
}
