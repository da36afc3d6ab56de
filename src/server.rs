//! Assembles the process: one pingora proxy service per listener, the health checker, and the
//! admin listener, all sharing one [`Gateway`].

use crate::admin::AdminApp;
use crate::config::Config;
use crate::hub::server::HubApp;
use crate::proxy::FleetProxy;
use crate::state::Gateway;
use async_trait::async_trait;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs the gateway until it is told to stop. Never returns.
pub fn run(config: Config, path: PathBuf, opt: Opt) -> anyhow::Result<()> {
    // Until the drain sequence lands (live-operations issue): stop accepting 1 s after SIGTERM and
    // give in-flight requests 10 s, instead of pingora's 5-minute default grace period.
    let conf = ServerConf {
        threads: config.threads,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(10),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    let gateway = Gateway::new(config.clone(), Some(path))?;

    let hub_listener = config.hub.as_ref().map(|h| h.listener.clone());
    for listener in &config.listeners {
        if Some(&listener.name) == hub_listener.as_ref() {
            let Some(hub) = gateway.hub.clone() else {
                continue;
            };
            let app = HubApp { hub };
            let mut service =
                pingora::services::listening::Service::new(listener.name.clone(), app);
            service.add_tcp(&listener.addr.to_string());
            server.add_service(service);
            continue;
        }
        let proxy = FleetProxy::new(listener.name.clone(), gateway.clone());
        let mut service = pingora_proxy::http_proxy_service_with_name(
            &server.configuration,
            proxy,
            &listener.name,
        );
        service.add_tcp(&listener.addr.to_string());
        server.add_service(service);
    }
    server.add_service(background_service(
        "health",
        HealthChecker {
            gateway: gateway.clone(),
        },
    ));
    if let Some(addr) = config.admin {
        let mut admin = pingora::services::listening::Service::new(
            "admin".to_string(),
            AdminApp::new(gateway.clone()),
        );
        admin.add_tcp(&addr.to_string());
        server.add_service(admin);
    }
    tracing::info!(
        listeners = config.listeners.len(),
        routes = config.routes.len(),
        "fleetgate starting"
    );
    server.run_forever()
}

/// Active health checks over whatever the *current* snapshot lists, so a reload that adds or
/// removes an instance changes what is checked. Each instance is checked once per its group's
/// interval; the scheduler wakes every [`HEALTH_TICK`] to see what is due.
struct HealthChecker {
    gateway: Arc<Gateway>,
}

const HEALTH_TICK: Duration = Duration::from_millis(100);

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut due: HashMap<(String, String), Instant> = HashMap::new();
        let mut tasks = tokio::task::JoinSet::new();
        let mut tick = tokio::time::interval(HEALTH_TICK);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => {}
            }
            while tasks.try_join_next().is_some() {}
            let snap = self.gateway.snapshot();
            let now = Instant::now();
            for (g, group) in snap.config.groups.iter().enumerate() {
                for (i, instance) in group.instances.iter().enumerate() {
                    let key = (group.name.clone(), instance.name.clone());
                    if due.get(&key).is_some_and(|at| *at > now) {
                        continue;
                    }
                    due.insert(key.clone(), now + group.health.interval);
                    let gateway = self.gateway.clone();
                    let (conf, addr) = (group.health.clone(), instance.addr);
                    let state = snap.groups[g].health[i].clone();
                    tasks.spawn(async move {
                        let result = crate::health::check(addr, &conf).await;
                        if let Some(healthy) = state.record_check(result, &conf) {
                            gateway.health_changed(&key.0, &key.1, healthy);
                        }
                    });
                }
            }
        }
        tasks.shutdown().await;
    }
}
