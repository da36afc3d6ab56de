//! Where a request goes: round robin for `balance` routes; for `workspace` routes, the workspace
//! (header → session id → query → JSON body, in the configured order) resolved to an instance
//! (learned → pin → rule; a down instance rejects or reassigns), and what a successful answer
//! teaches the learned session table.

use super::{hygiene, read_body, Ctx, FleetProxy, Learn, Target};
use crate::config::Route;
use crate::errors::GatewayError;
use crate::routing::extract::{self, Body, BodyFields, Outcome, RequestView};
use crate::routing::{self, Kind, NoWorkspacePolicy, RouteError};
use crate::state::Snapshot;
use pingora::prelude::*;
use pingora_error::ErrorType;
use std::sync::atomic::Ordering;

impl FleetProxy {
    /// Round robin over healthy instances.
    pub(super) fn balance(&self, snap: &Snapshot, group: usize) -> Result<usize, GatewayError> {
        let state = &snap.groups[group];
        let n = state.names.len();
        let start = state.cursor.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| state.health[i].is_healthy())
            .ok_or(GatewayError::NoHealthyInstance {
                retry_after_secs: self.retry_after(snap, group),
            })
    }

    fn retry_after(&self, snap: &Snapshot, group: usize) -> u64 {
        crate::health::retry_after(&snap.config.groups[group].health)
    }

    /// Workspace routing for one request.
    pub(super) async fn locate(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        route: &Route,
    ) -> Result<usize, GatewayError> {
        let snap = ctx.snap.clone();
        let group = &snap.config.groups[route.group];
        let state = &snap.groups[route.group];
        let rules = group.routing.as_ref().ok_or(GatewayError::Internal)?;
        let req = session.req_header();
        let method = req.method.clone();
        // Only session creation and deletion teach the learned table.
        let session_path = matches!(method, http::Method::POST | http::Method::DELETE)
            .then(|| normalized_session_path(req.uri.path()))
            .flatten();
        let eligible = hygiene::is_json(&req.headers)
            && hygiene::content_length(&req.headers)
                .is_some_and(|len| len > 0 && len <= rules.body_limit as u64);
        let creating = method == http::Method::POST && session_path.as_deref() == Some("");

        let mut outcome = self.extract(session, rules, Body::NotRead);
        if eligible && (outcome == Outcome::NeedBody || creating) {
            ctx.replay = Some(read_body(session, rules.body_limit as u64).await?);
        }
        if outcome == Outcome::NeedBody || creating {
            let body = ctx.replay.as_deref().map_or(Body::Unavailable, Body::Json);
            outcome = self.extract(session, rules, body);
        }

        let metrics = &self.gateway.metrics;
        let (workspace, source, session_id) = match outcome {
            Outcome::Found {
                workspace,
                source,
                session_id,
            } => (workspace, source, session_id),
            Outcome::NotFound { .. } | Outcome::NeedBody => {
                return match rules.when_no_workspace {
                    NoWorkspacePolicy::Reject => {
                        metrics
                            .routing_decisions
                            .with_label_values(&["none", "rejected"])
                            .inc();
                        Err(GatewayError::NoWorkspace)
                    }
                    NoWorkspacePolicy::Any => {
                        metrics
                            .routing_decisions
                            .with_label_values(&["none", Kind::Any.as_str()])
                            .inc();
                        self.balance(&snap, route.group)
                    }
                };
            }
        };
        ctx.workspace = Some(workspace);
        ctx.source = source.as_str();
        ctx.learn = learning(
            &method,
            session_path.as_deref(),
            ctx.replay.as_deref(),
            session_id.as_deref(),
        );
        let learned = match session_id.as_deref() {
            Some(id) => self.gateway.learned_instance(state, &group.name, id).await,
            None => None,
        }
        .and_then(|name| state.names.iter().position(|n| *n == name));
        let healthy = |i: usize| state.health[i].is_healthy();
        match routing::resolve(rules, &state.names, workspace, learned, &healthy) {
            Ok(decision) => {
                metrics
                    .routing_decisions
                    .with_label_values(&[source.as_str(), decision.kind.as_str()])
                    .inc();
                Ok(decision.instance)
            }
            Err(e) => {
                metrics
                    .routing_decisions
                    .with_label_values(&[source.as_str(), "rejected"])
                    .inc();
                let retry_after_secs = self.retry_after(&snap, route.group);
                if let RouteError::InstanceDown { instance } = e {
                    ctx.upstream_outcome = Some("unhealthy");
                    ctx.set_target(route.group, instance);
                    return Err(GatewayError::InstanceDown { retry_after_secs });
                }
                Err(GatewayError::NoHealthyInstance { retry_after_secs })
            }
        }
    }

    fn extract(
        &self,
        session: &Session,
        rules: &crate::config::RoutingConfig,
        body: Body<'_>,
    ) -> Outcome {
        let req = session.req_header();
        let view = RequestView {
            header: req.headers.get(rules.header.as_str()).map(|v| v.as_bytes()),
            path: req.uri.path(),
            query: req.uri.query(),
            body,
        };
        extract::extract(&rules.sources, &view)
    }

    /// With `when_instance_down: reassign`, moves a request whose instance went down (e.g. its
    /// connect just failed) to the best healthy instance by rendezvous.
    pub(super) fn reassign_if_down(&self, ctx: &mut Ctx) -> Result<()> {
        let (Some(target), Some((rules, workspace))) = (ctx.target, ctx.reassignable()) else {
            return Ok(());
        };
        let state = &ctx.snap.groups[target.group];
        if state.health[target.instance].is_healthy() {
            return Ok(());
        }
        let healthy = |i: usize| state.health[i].is_healthy();
        let moved = routing::resolve(rules, &state.names, workspace, None, &healthy)
            .map_err(|_| Error::explain(ErrorType::HTTPStatus(503), "no healthy instance"))?;
        state.health[target.instance]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
        state.health[moved.instance]
            .in_flight
            .fetch_add(1, Ordering::Relaxed);
        self.gateway
            .metrics
            .routing_decisions
            .with_label_values(&[ctx.source, moved.kind.as_str()])
            .inc();
        ctx.target = Some(Target {
            group: target.group,
            instance: moved.instance,
        });
        Ok(())
    }
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
