//! Assembles the process: one pingora proxy service per listener, the health checker, and the
//! admin listener, all sharing one [`Gateway`].

use crate::admin::AdminApp;
use crate::config::Config;
use crate::proxy::FleetProxy;
use crate::state::Gateway;
use async_trait::async_trait;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use std::sync::Arc;

/// Runs the gateway until it is told to stop. Never returns.
pub fn run(config: Config, opt: Opt) -> anyhow::Result<()> {
    let conf = ServerConf {
        threads: config.threads,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    let gateway = Gateway::new(config.clone())?;

    for listener in &config.listeners {
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

/// Active health checks: one loop per instance of the current snapshot.
struct HealthChecker {
    gateway: Arc<Gateway>,
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let snap = self.gateway.snapshot();
        let mut tasks = tokio::task::JoinSet::new();
        for (g, group) in snap.config.groups.iter().enumerate() {
            for (i, instance) in group.instances.iter().enumerate() {
                let gateway = self.gateway.clone();
                let (conf, addr) = (group.health.clone(), instance.addr);
                let (group_name, name) = (group.name.clone(), instance.name.clone());
                let state = snap.groups[g].health[i].clone();
                tasks.spawn(async move {
                    let mut tick = tokio::time::interval(conf.interval);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        let result = crate::health::check(addr, &conf).await;
                        if let Some(healthy) = state.record_check(result, &conf) {
                            gateway.health_changed(&group_name, &name, healthy);
                        }
                    }
                });
            }
        }
        let _ = shutdown.changed().await;
        tasks.shutdown().await;
    }
}
