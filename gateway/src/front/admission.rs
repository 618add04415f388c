//! Who may connect: a new client's address within its connect rate and
//! its connections, then a place under `--max-connections`. Decided at the
//! upgrade (or the TCP accept), before a session exists.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use super::limits::{AddressPlace, KeyedRate, PerAddress};
use crate::metrics::Metrics;
use crate::session::close::CloseReason;
use crate::Config;

pub struct AdmissionControl {
    connect_rate: KeyedRate<IpAddr>,
    per_address: Arc<PerAddress>,
    /// Places taken under `--max-connections`.
    seats: Arc<AtomicUsize>,
    max_connections: usize,
}

pub enum Admission {
    Welcome(Seat),
    /// Past its address's connect rate.
    TooFast,
    /// Past its address's connections.
    TooMany,
    Full,
}

/// One of the `--max-connections` places, and one of its address's, held
/// by a session for its whole life and given back when it ends.
pub struct Seat {
    taken: Arc<AtomicUsize>,
    _address: AddressPlace,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.taken.fetch_sub(1, Relaxed);
    }
}

impl AdmissionControl {
    pub fn new(config: &Config) -> AdmissionControl {
        AdmissionControl {
            connect_rate: KeyedRate::new(config.max_connect_rate_per_ip, config.max_connect_burst_per_ip as f32),
            per_address: Arc::new(PerAddress::new(config.max_connections_per_ip)),
            seats: Arc::default(),
            max_connections: config.max_connections,
        }
    }

    /// Whether a new client from `ip` may connect: its address's rate and
    /// connections, then the connection limit. Counts the refusals.
    pub fn admit(&self, ip: IpAddr, metrics: &Metrics) -> Admission {
        if !self.connect_rate.allow(ip) {
            metrics.refused_ip_rate.fetch_add(1, Relaxed);
            return Admission::TooFast;
        }
        let Some(place) = self.per_address.take(ip) else {
            metrics.refused_ip_connections.fetch_add(1, Relaxed);
            return Admission::TooMany;
        };
        // Taken at the moment of decision, not counted from the registry
        // later: two upgrades racing for the last seat cannot both get it.
        let max = self.max_connections;
        if self.seats.fetch_update(Relaxed, Relaxed, |taken| (taken < max).then_some(taken + 1)).is_err() {
            metrics.refused_full.fetch_add(1, Relaxed);
            metrics.closed(CloseReason::ServerFull);
            return Admission::Full;
        }
        Admission::Welcome(Seat { taken: self.seats.clone(), _address: place })
    }
}
