//! Rate limits: a token bucket per connection for messages, and one per
//! client address for new connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// `rate` tokens a second, holding at most `burst`.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f32,
    refilled: Instant,
}

impl TokenBucket {
    pub fn full(burst: f32, now: Instant) -> TokenBucket {
        TokenBucket { tokens: burst, refilled: now }
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, rate: f32, burst: f32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f32();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// New connections per client address. Buckets that have refilled are
/// forgotten on the way, so the map stays as small as the set of busy
/// addresses.
pub struct ConnectRate {
    rate: f32,
    burst: f32,
    buckets: Mutex<HashMap<IpAddr, TokenBucket>>,
}

/// Forget full buckets at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

impl ConnectRate {
    /// `rate` connections a second per address with bursts of `burst`; 0 is off.
    pub fn new(rate: f32, burst: f32) -> ConnectRate {
        ConnectRate { rate, burst: burst.max(1.0), buckets: Mutex::default() }
    }

    pub fn allow(&self, ip: IpAddr) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap();
        let full_after = Duration::from_secs_f32(self.burst / self.rate);
        if buckets.len() > 1024 {
            buckets.retain(|_, b| now.saturating_duration_since(b.refilled) < full_after.max(SWEEP_EVERY));
        }
        let bucket = buckets.entry(ip).or_insert_with(|| TokenBucket::full(self.burst, now));
        bucket.take(self.rate, self.burst, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_the_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(3.0, start);
        assert!((0..3).all(|_| bucket.take(10.0, 3.0, start)));
        assert!(!bucket.take(10.0, 3.0, start), "the burst is spent");
        assert!(bucket.take(10.0, 3.0, start + Duration::from_millis(100)), "one token back after 1/rate");
        assert!(!bucket.take(10.0, 3.0, start + Duration::from_millis(100)));
    }

    #[test]
    fn addresses_have_their_own_buckets_and_zero_is_off() {
        let limit = ConnectRate::new(1.0, 2.0);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        assert!(limit.allow(a) && limit.allow(a));
        assert!(!limit.allow(a));
        assert!(limit.allow(b), "another address is unaffected");
        let off = ConnectRate::new(0.0, 0.0);
        assert!((0..100).all(|_| off.allow(a)));
    }
}
