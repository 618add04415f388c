//! Rate limits: a token bucket, and a bucket per key (a client address, a
//! login name) in one map whose work per call stays O(1).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// `rate` tokens a second, holding at most `burst`. Eight bytes: every
/// client connection holds one.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f32,
    /// When it was last refilled, in ms since [`epoch`]: a u32 wraps after
    /// 49 days, and a bucket untouched for a multiple of that would see
    /// less time pass than did (it holds at most `burst` either way).
    refilled_ms: u32,
}

/// The instant buckets count their time from: a minute before the first
/// bucket, so that an instant taken a little before it still counts.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(|| Instant::now().checked_sub(Duration::from_secs(60)).unwrap_or_else(Instant::now))
}

fn ms_since_epoch(now: Instant) -> u32 {
    now.saturating_duration_since(epoch()).as_millis() as u32
}

impl TokenBucket {
    pub fn full(burst: f32, now: Instant) -> TokenBucket {
        TokenBucket { tokens: burst, refilled_ms: ms_since_epoch(now) }
    }

    /// How long since it was last refilled.
    fn idle(&self, now: Instant) -> Duration {
        Duration::from_millis(ms_since_epoch(now).wrapping_sub(self.refilled_ms).into())
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, rate: f32, burst: f32, now: Instant) -> bool {
        self.tokens = (self.tokens + self.idle(now).as_secs_f32() * rate).min(burst);
        self.refilled_ms = ms_since_epoch(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A bucket per key. Buckets that have refilled are forgotten in a sweep
/// at most every [`SWEEP_EVERY`], so each call does O(1) work on average
/// and the map holds only the keys busy lately.
pub struct KeyedRate<K> {
    rate: f32,
    burst: f32,
    state: Mutex<Keyed<K>>,
}

struct Keyed<K> {
    buckets: HashMap<K, TokenBucket>,
    swept: Instant,
}

/// Forget full buckets at most this often.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

impl<K: Hash + Eq> KeyedRate<K> {
    /// `rate` a second per key with bursts of `burst`; a rate of 0 is no limit.
    pub fn new(rate: f32, burst: f32) -> KeyedRate<K> {
        let state = Keyed { buckets: HashMap::new(), swept: Instant::now() };
        KeyedRate { rate, burst: burst.max(1.0), state: Mutex::new(state) }
    }

    pub fn allow(&self, key: K) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        if now.saturating_duration_since(state.swept) >= SWEEP_EVERY {
            let full_after = Duration::from_secs_f32(self.burst / self.rate);
            state.buckets.retain(|_, bucket| bucket.idle(now) < full_after);
            state.swept = now;
        }
        let bucket = state.buckets.entry(key).or_insert_with(|| TokenBucket::full(self.burst, now));
        bucket.take(self.rate, self.burst, now)
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.state.lock().unwrap().buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    fn keys_have_their_own_buckets_and_zero_is_off() {
        let limit = KeyedRate::new(1.0, 2.0);
        assert!(limit.allow("a") && limit.allow("a"));
        assert!(!limit.allow("a"));
        assert!(limit.allow("b"), "another key is unaffected");
        let off = KeyedRate::new(0.0, 0.0);
        assert!((0..100).all(|_| off.allow("a")));
    }

    #[tokio::test(start_paused = true)]
    async fn refilled_buckets_are_swept_at_most_every_ten_seconds() {
        let limit = KeyedRate::new(100.0, 1.0);
        for key in 0..5000 {
            assert!(limit.allow(key));
        }
        assert_eq!(limit.len(), 5000, "no sweep on the way: each call is O(1)");
        tokio::time::advance(SWEEP_EVERY).await;
        limit.allow(-1);
        assert_eq!(limit.len(), 1, "refilled buckets are forgotten");
    }
}
