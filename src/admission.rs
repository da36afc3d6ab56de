//! Connection admission: at most so many connections open in all, and at most so many from one
//! client address (nginx's `limit_conn`, Envoy's per-listener connection limit). The fleet and
//! edge listeners answer a connection beyond either `503` and close it before any request is read
//! ([`Refusal::answer`]); the hub closes a WebSocket beyond its app's per-address limit with 4004.

use crate::errors::GatewayError;
use dashmap::DashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The open connections of one listener (or of the hub).
#[derive(Default)]
pub struct Admission {
    open: AtomicUsize,
    per_ip: DashMap<IpAddr, usize>,
}

/// Why a connection was not admitted (the metric's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Listener,
    Client,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Listener => "max_connections",
            Refusal::Client => "max_connections_per_ip",
        }
    }

    /// The answer written before closing: what a client (or a load balancer) can act on.
    pub fn answer(self) -> Vec<u8> {
        GatewayError::TooManyConnections(self.reason()).wire_answer()
    }
}

/// A place held by an open connection; given back when dropped.
pub struct Slot {
    admission: Arc<Admission>,
    client: Option<IpAddr>,
}

impl Admission {
    /// Takes a place for a connection from `client`: at most `total` open, `per_ip` per address.
    pub fn admit(
        self: &Arc<Self>,
        client: Option<IpAddr>,
        total: usize,
        per_ip: usize,
    ) -> Result<Slot, Refusal> {
        if self.open.fetch_add(1, Ordering::Relaxed) >= total {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(Refusal::Listener);
        }
        let mut slot = Slot {
            admission: self.clone(),
            client: None,
        };
        let Some(ip) = client else {
            return Ok(slot);
        };
        let mut count = self.per_ip.entry(ip).or_insert(0);
        if *count >= per_ip {
            return Err(Refusal::Client); // `slot` gives the listener's place back
        }
        *count += 1;
        slot.client = Some(ip);
        Ok(slot)
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(ip) = self.client {
            let emptied = match self.admission.per_ip.get_mut(&ip) {
                Some(mut count) => {
                    *count -= 1;
                    *count == 0
                }
                None => false,
            };
            if emptied {
                self.admission.per_ip.remove_if(&ip, |_, count| *count == 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_limited_per_listener_and_per_address_and_given_back() {
        let admission = Arc::new(Admission::default());
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = admission.admit(Some(a), 3, 2).unwrap();
        let _a2 = admission.admit(Some(a), 3, 2).unwrap();
        assert_eq!(admission.admit(Some(a), 3, 2).err(), Some(Refusal::Client));
        let _b1 = admission.admit(Some(b), 3, 2).unwrap();
        assert_eq!(
            admission.admit(Some(b), 3, 2).err(),
            Some(Refusal::Listener)
        );
        assert_eq!(admission.open(), 3);
        drop(a1);
        assert_eq!(admission.open(), 2);
        let _a3 = admission.admit(Some(a), 3, 2).unwrap();
        assert_eq!(admission.per_ip.get(&a).map(|c| *c), Some(2));
        drop(_a3);
        drop(_a2);
        assert!(
            admission.per_ip.get(&a).is_none(),
            "an address with no connection is forgotten"
        );
    }
}
