//! `listeners`: addresses, limits, trusted proxies, tokens and TLS.

use super::super::raw::*;
use super::super::types::{defaults, *};
use super::{cidrs, positive, Problems};
use std::collections::HashMap;
use std::net::SocketAddr;

pub(super) fn listeners(
    p: &mut Problems,
    raw: std::collections::BTreeMap<String, RawListener>,
    admin: Option<SocketAddr>,
    hub_listener: Option<&str>,
) -> Vec<Listener> {
    let mut seen: HashMap<SocketAddr, String> =
        admin.into_iter().map(|a| (a, "admin".into())).collect();
    if raw.is_empty() {
        p.push("listeners", "at least one listener is required");
    }
    raw.into_iter()
        .map(|(name, mut l)| {
            let path = format!("listeners.{name}.listen");
            let addr = p.addr(path.clone(), &l.listen);
            // Port 0: each gets a port of its own at start (`crate::bound`).
            let shared = addr.port() != 0;
            if let Some(other) = seen.insert(addr, name.clone()).filter(|_| shared) {
                p.push(path, format!("{addr} is also used by {other}"));
            }
            let is_hub = hub_listener == Some(name.as_str());
            let tls = l
                .tls
                .take()
                .map(|t| tls(p, &format!("listeners.{name}.tls"), t, is_hub));
            let at = format!("listeners.{name}");
            let limits = limits(p, &at, &l);
            exclusive_settings(p, &at, &l, is_hub, tls.is_some());
            let trusted = l
                .trusted_proxies
                .unwrap_or_else(|| defaults::TRUSTED_PROXIES.map(String::from).to_vec());
            let trusted_proxies = cidrs(p, &format!("{at}.trusted_proxies"), &trusted);
            Listener {
                name,
                addr,
                tls,
                limits,
                trust: Trust {
                    trusted_proxies,
                    proxy_protocol: l.proxy_protocol.unwrap_or(false),
                },
                health: l.health.unwrap_or(false),
            }
        })
        .collect()
}

/// A request-head size limit: between 1 KiB and 1 MiB.
pub(super) fn head_limit(
    p: &mut Problems,
    path: String,
    text: &Option<String>,
    default: u64,
) -> usize {
    let size = p.size(path.clone(), text, default);
    if !(1024..=1 << 20).contains(&size) {
        p.push(path, "must be between 1KiB and 1MiB");
        return default as usize;
    }
    size as usize
}

/// `listeners.NAME.tls`. `h2` defaults to on, except on the hub's listener, which serves
/// HTTP/1.1 only: pingora's hub app takes WebSocket upgrades from HTTP/1 sessions alone.
pub(super) fn tls(p: &mut Problems, at: &str, raw: RawTls, is_hub: bool) -> TlsConfig {
    if raw.dir.trim().is_empty() {
        p.push(
            format!("{at}.dir"),
            "must not be empty (a directory of NAME.crt + NAME.key pairs)",
        );
    }
    if is_hub && raw.h2 == Some(true) {
        p.push(
            format!("{at}.h2"),
            "the hub's listener serves HTTP/1.1 only (WebSocket upgrades need it); remove `h2`",
        );
    }
    TlsConfig {
        dir: raw.dir.into(),
        h2: !is_hub && raw.h2.unwrap_or(true),
    }
}

/// `listeners.NAME`'s deadlines and limits (`at` is its YAML path).
fn limits(p: &mut Problems, at: &str, l: &RawListener) -> ListenerLimits {
    ListenerLimits {
        header_timeout: p.duration(
            format!("{at}.header_timeout"),
            &l.header_timeout,
            defaults::HEADER_TIMEOUT,
        ),
        idle_timeout: p.duration(
            format!("{at}.idle_timeout"),
            &l.idle_timeout,
            defaults::LISTENER_IDLE_TIMEOUT,
        ),
        max_connections: positive(
            p,
            format!("{at}.max_connections"),
            l.max_connections,
            defaults::MAX_CONNECTIONS,
        ),
        max_connections_per_ip: positive(
            p,
            format!("{at}.max_connections_per_ip"),
            l.max_connections_per_ip,
            defaults::MAX_CONNECTIONS_PER_IP,
        ),
        max_head_size: head_limit(
            p,
            format!("{at}.max_head_size"),
            &l.max_head_size,
            defaults::MAX_HEAD_SIZE,
        ),
        max_uri_length: head_limit(
            p,
            format!("{at}.max_uri_length"),
            &l.max_uri_length,
            defaults::MAX_URI_LENGTH,
        ),
    }
}

/// Settings a listener may not have: connection counts on the hub's (its apps count), the PROXY
/// protocol with TLS or on the hub's.
fn exclusive_settings(p: &mut Problems, at: &str, l: &RawListener, is_hub: bool, tls: bool) {
    // The hub counts connections per app (its upgrades); a listener-wide count there
    // would be a second, silently different limit.
    for (key, set) in [
        ("max_connections", l.max_connections.is_some()),
        ("max_connections_per_ip", l.max_connections_per_ip.is_some()),
    ] {
        if is_hub && set {
            p.push(
                format!("{at}.{key}"),
                format!("not on the hub's listener: set hub.apps[].{key}"),
            );
        }
    }
    if l.proxy_protocol == Some(true) && (tls || is_hub) {
        p.push(
            format!("{at}.proxy_protocol"),
            "only on plain HTTP listeners of routes (not with tls, not on the hub's)",
        );
    }
}
