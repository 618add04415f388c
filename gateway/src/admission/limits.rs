//! Per-address limits on new clients: how fast an address may connect (a
//! token bucket per address) and how many connections it may hold at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

pub use runtime::rate::KeyedRate;

/// Connections held per client address, at most `max` (0: no limit).
pub struct PerAddress {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    pub fn new(max: usize) -> PerAddress {
        PerAddress { max, open: Mutex::default() }
    }

    /// A place for one more connection from `ip`, if it has one left.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<AddressPlace> {
        if self.max == 0 {
            return Some(AddressPlace(None));
        }
        let mut open = self.open.lock().unwrap();
        let held = open.entry(ip).or_default();
        if *held >= self.max {
            return None;
        }
        *held += 1;
        Some(AddressPlace(Some((self.clone(), ip))))
    }

    /// Addresses holding connections now.
    pub fn addresses(&self) -> usize {
        self.open.lock().unwrap().len()
    }
}

/// One connection's place among its address's, given back when dropped.
pub struct AddressPlace(Option<(Arc<PerAddress>, IpAddr)>);

impl Drop for AddressPlace {
    fn drop(&mut self) {
        if let Some((limit, ip)) = self.0.take() {
            let mut open = limit.open.lock().unwrap();
            if let Some(held) = open.get_mut(&ip) {
                *held -= 1;
                if *held == 0 {
                    open.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_max_and_gets_places_back() {
        let limit = Arc::new(PerAddress::new(2));
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        let first = limit.take(a).unwrap();
        let _second = limit.take(a).unwrap();
        assert!(limit.take(a).is_none());
        assert!(limit.take(b).is_some(), "another address is unaffected");
        drop(first);
        assert!(limit.take(a).is_some(), "a place comes back when its connection ends");
        assert_eq!(limit.addresses(), 1, "b's place went when it was dropped");
        let off = Arc::new(PerAddress::new(0));
        assert!((0..100).all(|_| off.take(a).is_some()));
    }
}
