//! Who may connect, decided twice:
//! - at accept, before a byte is read: the peer's connect rate and its
//!   connections held (every listener; a silent connection counts too);
//! - at the upgrade (or the TCP accept), a place under `--max-connections`.
//!
//! A peer that is a `--trusted-proxy` speaks for many clients, so its
//! connections are not limited at accept; each client's address, read from
//! the proxy's headers, is limited at the upgrade instead.
//!
//! IPv6 addresses count by their `--ipv6-prefix` (a /64 is one subscriber's),
//! so one network cannot dodge a per-address limit with 2^64 addresses.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use ipnet::IpNet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub mod limits;
pub mod proxy;

use crate::base::close::CloseReason;
use crate::metrics::Count;
use crate::metrics::Metrics;
use crate::Config;
use limits::{AddressPlace, KeyedRate, PerAddress};

pub struct AdmissionControl {
    connect_rate: KeyedRate<IpAddr>,
    per_address: Arc<PerAddress>,
    /// Places taken under `--max-connections`.
    seats: Arc<AtomicUsize>,
    max_connections: usize,
    trusted_proxies: Vec<IpNet>,
    ipv6_prefix: u8,
    /// Refused connections kept open for a moment to be told why.
    lingering: Arc<Semaphore>,
}

/// Refused connections told why at once, at most; past it, the rest are
/// closed without a word.
const MAX_LINGERING_REFUSALS: usize = 1024;

/// Why a connection is refused before it becomes a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Past its address's connect rate.
    TooFast,
    /// Past its address's connections.
    TooMany,
    /// Past `--max-connections`.
    Full,
}

impl Refusal {
    /// What an HTTP client is told.
    pub fn text(self) -> &'static str {
        match self {
            Refusal::TooFast => "connecting too fast from your address\n",
            Refusal::TooMany => "too many connections from your address\n",
            Refusal::Full => "the server is full\n",
        }
    }
}

/// A connection admitted at accept: the place it holds among its
/// address's (none behind a trusted proxy: its clients are limited at the
/// upgrade). Shared by the connection and the session it becomes.
#[derive(Clone)]
pub struct Entry {
    place: Option<Arc<AddressPlace>>,
}

/// One of the `--max-connections` places, and one of its address's, held
/// by a session for its whole life and given back when it ends.
pub struct Seat {
    taken: Arc<AtomicUsize>,
    _address: Arc<AddressPlace>,
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
            trusted_proxies: config.trusted_proxies.clone(),
            ipv6_prefix: config.ipv6_prefix,
            lingering: Arc::new(Semaphore::new(MAX_LINGERING_REFUSALS)),
        }
    }

    /// Room to tell a refused connection why, if there is any.
    pub fn linger(&self) -> Option<OwnedSemaphorePermit> {
        self.lingering.clone().try_acquire_owned().ok()
    }

    /// Whether a connection from `peer` may be served at all: its rate and
    /// its connections held, unless it is a trusted proxy. Counts refusals.
    pub fn at_accept(&self, peer: IpAddr, metrics: &Metrics) -> Result<Entry, Refusal> {
        if self.trusted_proxies.iter().any(|net| net.contains(&peer)) {
            return Ok(Entry { place: None });
        }
        let place = self.address_limits(peer, metrics)?;
        Ok(Entry { place: Some(Arc::new(place)) })
    }

    /// Whether the connection admitted as `entry` may become a session of
    /// the client at `client`: behind a trusted proxy, the client's own
    /// address limits first; then a place under the connection limit.
    pub fn admit(&self, entry: &Entry, client: IpAddr, metrics: &Metrics) -> Result<Seat, Refusal> {
        let place = match &entry.place {
            Some(place) => place.clone(),
            None => Arc::new(self.address_limits(client, metrics)?),
        };
        // Taken at the moment of decision, not counted from the registry
        // later: two upgrades racing for the last seat cannot both get it.
        let max = self.max_connections;
        if self.seats.fetch_update(Relaxed, Relaxed, |taken| (taken < max).then_some(taken + 1)).is_err() {
            metrics.count(Count::RefusedFull);
            metrics.closed(CloseReason::ServerFull);
            return Err(Refusal::Full);
        }
        Ok(Seat { taken: self.seats.clone(), _address: place })
    }

    fn address_limits(&self, ip: IpAddr, metrics: &Metrics) -> Result<AddressPlace, Refusal> {
        let key = address_key(ip, self.ipv6_prefix);
        if !self.connect_rate.allow(key) {
            metrics.count(Count::RefusedIpRate);
            return Err(Refusal::TooFast);
        }
        self.per_address.take(key).ok_or_else(|| {
            metrics.count(Count::RefusedIpConnections);
            Refusal::TooMany
        })
    }
}

/// The address an address's limits are kept under: IPv4 as it is (an
/// IPv4-mapped IPv6 address as its IPv4 one), IPv6 cut to its first
/// `prefix` bits.
pub fn address_key(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_its_prefix_and_mapped_ipv4_as_ipv4() {
        let key = |ip: &str, prefix| address_key(ip.parse().unwrap(), prefix).to_string();
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2:ffff::1", 64), "2001:db8:1:2::", "the same /64, the same key");
        assert_eq!(key("2001:db8:1:3::1", 64), "2001:db8:1:3::");
        assert_eq!(key("2001:db8:1:2:aaaa::1", 128), "2001:db8:1:2:aaaa::1");
        assert_eq!(key("2001:db8::1", 0), "::");
        assert_eq!(key("::ffff:192.0.2.7", 64), "192.0.2.7");
        assert_eq!(key("192.0.2.7", 64), "192.0.2.7");
    }
}
