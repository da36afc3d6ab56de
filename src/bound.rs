//! Where each listener listens. A listener (or the admin listener) configured on port 0 gets a
//! port from the kernel before pingora binds it: a socket bound to `ip:0` with `SO_REUSEPORT`
//! (never listening, so it takes no connection) holds the port for the life of the process, and
//! pingora binds the same port with `SO_REUSEPORT` beside it. Nothing else can take the port in
//! between, and the addresses are known before anything listens: the readiness probe checks
//! them, `GET /admin/listeners` tells them, and the start-up log names them.

use crate::config::Config;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use tokio::net::TcpSocket;

/// The addresses every listener listens on, as bound.
#[derive(Debug, Clone, Serialize)]
pub struct Addresses {
    /// Listener name → address.
    pub listeners: BTreeMap<String, SocketAddr>,
    pub admin: Option<SocketAddr>,
}

/// The addresses, and the sockets that hold the ports picked for port-0 listeners.
pub struct Bound {
    pub addresses: Addresses,
    reserved: Vec<(SocketAddr, TcpSocket)>,
}

impl Bound {
    /// Picks a port for every address on port 0 of `config`.
    pub fn resolve(config: &Config) -> std::io::Result<Self> {
        let mut reserved = Vec::new();
        let mut resolve = |addr: SocketAddr| -> std::io::Result<SocketAddr> {
            if addr.port() != 0 {
                return Ok(addr);
            }
            let socket = match addr {
                SocketAddr::V4(_) => TcpSocket::new_v4()?,
                SocketAddr::V6(_) => TcpSocket::new_v6()?,
            };
            socket.set_reuseport(true)?;
            socket.bind(addr)?;
            let bound = socket.local_addr()?;
            reserved.push((bound, socket));
            Ok(bound)
        };
        let mut listeners = BTreeMap::new();
        for listener in &config.listeners {
            listeners.insert(listener.name.clone(), resolve(listener.addr)?);
        }
        let admin = config.admin.map(&mut resolve).transpose()?;
        Ok(Self {
            addresses: Addresses { listeners, admin },
            reserved,
        })
    }

    /// The address listener `name` listens on.
    pub fn listener(&self, name: &str) -> Option<SocketAddr> {
        self.addresses.listeners.get(name).copied()
    }

    /// Whether `addr` is a port picked here (pingora must bind it with `SO_REUSEPORT`).
    pub fn is_reserved(&self, addr: SocketAddr) -> bool {
        self.reserved.iter().any(|(a, _)| *a == addr)
    }

    /// Logs where everything listens (tests and scripts read the admin address from here when
    /// it was on port 0).
    pub fn log(&self) {
        for (name, addr) in &self.addresses.listeners {
            tracing::info!(listener = %name, %addr, "listening");
        }
        if let Some(addr) = self.addresses.admin {
            tracing::info!(listener = %"admin", %addr, "listening");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_gets_a_held_port_and_other_ports_stay() {
        let yaml = "
admin: { listen: 127.0.0.1:0 }
listeners:
  a: { listen: 127.0.0.1:0 }
  b: { listen: 127.0.0.1:0 }
  c: { listen: 127.0.0.1:1 }
upstreams:
  g: { instances: [{ name: i, addr: 127.0.0.1:9 }] }
routes:
  - { name: r, listener: a, upstream: g }
";
        let config = crate::config::parse(yaml, &|_| None).expect("valid");
        let bound = Bound::resolve(&config).expect("ports");
        let (a, b) = (bound.listener("a").unwrap(), bound.listener("b").unwrap());
        let admin = bound.addresses.admin.unwrap();
        assert!(a.port() != 0 && b.port() != 0 && admin.port() != 0);
        assert!(a != b && a != admin && b != admin, "{a} {b} {admin}");
        assert_eq!(bound.listener("c").unwrap().port(), 1);
        assert!(bound.is_reserved(a) && !bound.is_reserved(bound.listener("c").unwrap()));
        // Held: binding the port without SO_REUSEPORT fails while `bound` lives.
        assert!(std::net::TcpListener::bind(a).is_err());
        drop(bound);
        assert!(std::net::TcpListener::bind(a).is_ok());
    }
}
