//! Assembles the process: one pingora listening service per listener (the data path itself is
//! hyper's, see [`crate::proxy`]), the health checker, the
//! readiness probe and the admin listener, all sharing one [`Gateway`].
//!
//! Shutdown (SIGTERM or SIGINT): `/readyz` turns 503 at once, listeners keep accepting for
//! `shutdown.drain_delay` (so load balancers polling `/readyz` move traffic away first), then
//! pingora's graceful shutdown stops the listeners and lets in-flight requests finish. SIGQUIT is
//! pingora's binary upgrade (listening sockets handed to the new process).

use crate::admin::AdminApp;
use crate::bound::Bound;
use crate::config::{Config, Listener};
use crate::hub_listener::HubApp;
use crate::proxy::ProxyApp;
use crate::state::Gateway;
use crate::tls::{CertWatcher, SniResolver};
use anyhow::Context;
use async_trait::async_trait;
use pingora::listeners::{L4BufferSettings, ListenerConfig, TcpSocketOptions};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the process starts (command-line options, not configuration).
pub struct Options {
    /// Take over the listening sockets of a running fleetgate (pingora's upgrade).
    pub upgrade: bool,
    /// Where listening sockets are handed over during an upgrade.
    pub upgrade_socket: PathBuf,
    /// Apply `gateway.yaml` when it changes on disk (`false`: only SIGHUP and `POST /admin/reload`).
    pub watch: bool,
}

/// Runs the gateway until it is told to stop. Never returns.
pub fn run(config: Config, path: PathBuf, options: Options) -> anyhow::Result<()> {
    let (resolvers, cert_watchers) = load_certificates(&config)?;
    let opt = Opt {
        upgrade: options.upgrade,
        ..Opt::default()
    };
    // After the drain delay (see `DrainFirst`) listeners stop and in-flight requests get the grace
    // period; then the runtimes stop (tasks still running are dropped within 1 s).
    let conf = ServerConf {
        threads: config.threads,
        grace_period_seconds: Some(config.shutdown.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        upgrade_sock: options.upgrade_socket.to_string_lossy().into_owned(),
        // One current-thread runtime per thread: a connection, its upstream connections (pooled
        // per thread, see `proxy::upstream`) and their wake-ups stay on one thread, with no
        // cross-thread queue or atomics on the request path.
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    let gateway = Gateway::new(config.clone(), Some(path.clone()))?;
    // Held until the process exits: the ports picked for listeners on port 0.
    let bound = Bound::resolve(&config).context("picking ports for listeners on port 0")?;

    add_listeners(&mut server, &config, &gateway, &resolvers, &bound)?;
    for watcher in cert_watchers {
        server.add_service(background_service("certificates", watcher));
    }
    add_background(&mut server, &gateway, &path, options.watch);
    add_readiness(&mut server, &config, &gateway, &bound);
    if let Some(addr) = bound.addresses.admin {
        let addresses = Arc::new(bound.addresses.clone());
        let mut admin = pingora::services::listening::Service::new(
            "admin".to_string(),
            AdminApp::new(gateway.clone(), addresses),
        );
        admin.add_listener(tcp_endpoint(addr, &bound));
        server.add_service(admin);
    }
    bound.log();
    tracing::info!(
        listeners = config.listeners.len(),
        routes = config.routes.len(),
        "fleetgate starting"
    );
    server.run(RunArgs {
        shutdown_signal: Box::new(DrainFirst { gateway }),
    });
    std::process::exit(0)
}

/// A listening service per listener: the hub's app on the hub's listener, the proxy elsewhere.
fn add_listeners(
    server: &mut Server,
    config: &Config,
    gateway: &Arc<Gateway>,
    resolvers: &Resolvers,
    bound: &Bound,
) -> anyhow::Result<()> {
    let hub_listener = config.hub.as_ref().map(|h| h.listener.clone());
    for listener in &config.listeners {
        if Some(&listener.name) == hub_listener.as_ref() {
            let Some(hub) = gateway.hub.clone() else {
                continue;
            };
            let app = HubApp {
                hub,
                gateway: gateway.clone(),
                listener: listener.name.clone(),
            };
            let mut service =
                pingora::services::listening::Service::new(listener.name.clone(), app);
            add_endpoint(&mut service, listener, resolvers, bound)?;
            server.add_service(service);
            continue;
        }
        let tls = listener.tls.is_some();
        let app = ProxyApp::new(listener.name.clone(), gateway.clone(), tls);
        let mut service = pingora::services::listening::Service::new(listener.name.clone(), app);
        add_endpoint(&mut service, listener, resolvers, bound)?;
        server.add_service(service);
    }
    Ok(())
}

/// `/readyz` turns ready once every plain listener and the admin listener accept.
fn add_readiness(server: &mut Server, config: &Config, gateway: &Arc<Gateway>, bound: &Bound) {
    // TLS listeners are not probed: a bare TCP connect there is a failed handshake in the log.
    // pingora starts every listener together, so the plain ones and the admin listener tell.
    let mut probes: Vec<_> = config
        .listeners
        .iter()
        .filter(|l| l.tls.is_none())
        .filter_map(|l| bound.listener(&l.name))
        .collect();
    probes.extend(bound.addresses.admin);
    server.add_service(background_service(
        "readiness",
        ReadinessProbe {
            gateway: gateway.clone(),
            addrs: probes,
        },
    ));
}

/// The background services: the cluster link, the spool's delivery, health checks, reloads.
fn add_background(server: &mut Server, gateway: &Arc<Gateway>, path: &Path, watch: bool) {
    if let Some(cluster) = gateway.cluster.clone() {
        let link = crate::cluster::ClusterLink {
            cluster,
            hub: gateway
                .hub
                .clone()
                .map(|hub| hub as Arc<dyn crate::cluster::LocalHub>),
        };
        server.add_service(background_service("cluster", link));
    }
    let webhooks = gateway
        .webhook_service
        .lock()
        .ok()
        .and_then(|mut s| s.take());
    if let Some(service) = webhooks {
        server.add_service(background_service("app webhooks", service));
    }
    if let Some(spool) = gateway.spool.clone() {
        let service = crate::proxy::redelivery::SpoolService {
            gateway: gateway.clone(),
            spool,
        };
        server.add_service(background_service("spool", service));
    }
    server.add_service(background_service(
        "health",
        HealthChecker {
            gateway: gateway.clone(),
        },
    ));
    server.add_service(background_service(
        "reload",
        crate::reload::ReloadTriggers {
            gateway: gateway.clone(),
            path: path.to_path_buf(),
            watch,
        },
    ));
}

/// Loads every TLS listener's certificates before anything starts, so that a missing, empty or
/// broken directory stops the process with the listener and the file named. One resolver (and
/// one watcher keeping it current) per TLS listener, by listener name.
fn load_certificates(config: &Config) -> anyhow::Result<(Resolvers, Vec<CertWatcher>)> {
    let (mut resolvers, mut watchers) = (HashMap::new(), Vec::new());
    for listener in &config.listeners {
        let Some(tls) = &listener.tls else {
            continue;
        };
        let (resolver, watcher) = crate::tls::watch(&listener.name, &tls.dir)
            .with_context(|| format!("listener `{}`", listener.name))?;
        resolvers.insert(listener.name.clone(), resolver);
        watchers.push(watcher);
    }
    Ok((resolvers, watchers))
}

/// TLS listeners' certificate resolvers, by listener name.
type Resolvers = HashMap<String, Arc<SniResolver>>;

/// Plain TCP, or TLS with the listener's certificates (HTTP/2 offered when `tls.h2`).
fn add_endpoint<A>(
    service: &mut pingora::services::listening::Service<A>,
    listener: &Listener,
    resolvers: &Resolvers,
    bound: &Bound,
) -> anyhow::Result<()> {
    let addr = bound.listener(&listener.name).unwrap_or(listener.addr);
    match (&listener.tls, resolvers.get(&listener.name)) {
        (Some(tls), Some(resolver)) => {
            let settings = crate::tls::tls_settings(resolver.clone(), tls.h2)
                .map_err(|e| anyhow::anyhow!("listener `{}`: {e}", listener.name))?;
            let options = bound.is_reserved(addr).then(reuse_port);
            service.add_tls_with_settings(&addr.to_string(), options, settings);
        }
        // hyper and the hub buffer on their own: pingora's 64 KiB read buffer and 1,460-byte
        // write buffer in front of them only copy every byte once more.
        _ => service
            .add_listener(tcp_endpoint(addr, bound).l4_buffer(L4BufferSettings::unbuffered())),
    }
    Ok(())
}

/// A plain TCP endpoint on `addr` (beside the socket that holds it, when its port was picked).
fn tcp_endpoint(addr: SocketAddr, bound: &Bound) -> ListenerConfig {
    let endpoint = ListenerConfig::tcp(addr.to_string());
    match bound.is_reserved(addr) {
        true => endpoint.tcp_socket_options(reuse_port()),
        false => endpoint,
    }
}

fn reuse_port() -> TcpSocketOptions {
    let mut options = TcpSocketOptions::default();
    options.so_reuseport = Some(true);
    options
}

/// Turns `/readyz` 503 and waits the current `shutdown.drain_delay` before handing a
/// SIGTERM/SIGINT to pingora.
struct DrainFirst {
    gateway: Arc<Gateway>,
}

#[async_trait]
impl ShutdownSignalWatch for DrainFirst {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            tracing::error!("cannot install signal handlers; stopping");
            return ShutdownSignal::FastShutdown;
        };
        let upgrade = tokio::select! {
            _ = term.recv() => false,
            _ = int.recv() => false,
            _ = quit.recv() => true,
        };
        self.gateway.set_draining();
        if upgrade {
            tracing::info!("SIGQUIT: handing listening sockets to the new process");
            return ShutdownSignal::GracefulUpgrade;
        }
        let drain_delay = self.gateway.snapshot().config.shutdown.drain_delay;
        tracing::info!(
            drain_delay_ms = drain_delay.as_millis() as u64,
            "shutting down: /readyz answers 503; listeners close after the drain delay"
        );
        tokio::time::sleep(drain_delay).await;
        ShutdownSignal::GracefulTerminate
    }
}

/// Marks the gateway ready once every listener (and the admin listener) accepts a connection.
struct ReadinessProbe {
    gateway: Arc<Gateway>,
    addrs: Vec<std::net::SocketAddr>,
}

#[async_trait]
impl BackgroundService for ReadinessProbe {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        for addr in &self.addrs {
            // A wildcard listener accepts on loopback too.
            let mut target = *addr;
            if target.ip().is_unspecified() {
                target.set_ip(match target {
                    std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            while tokio::net::TcpStream::connect(target).await.is_err() {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(READINESS_RETRY) => {}
                }
            }
        }
        self.gateway.set_ready();
        tracing::info!("ready: every listener accepts connections");
    }
}

const READINESS_RETRY: Duration = Duration::from_millis(50);

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
                        let name = (key.0.as_str(), key.1.as_str());
                        let changed = crate::health::check(&state, addr, &conf, name).await;
                        if let Some(healthy) = changed {
                            gateway.health_changed(&key.0, &key.1, healthy);
                        }
                    });
                }
            }
        }
        tasks.shutdown().await;
    }
}
