//! One budget for everything the gateway keeps for clients that may
//! resume: the replay logs of resumable sessions, and what waits for
//! sessions whose client is away (`--resume-buffer-total-bytes`).
//!
//! Counted in the bytes a client would be sent (inflated), and once per
//! payload however many sessions keep it: a broadcast kept by ten thousand
//! sessions is one copy in memory, and costs the budget one copy.
//!
//! Past the budget, a replay log keeps what fits (its own oldest messages
//! go first; a resume that needs a message it no longer has gets 4103),
//! and an offline session that would grow ends (1008, `resume_buffer_full`)
//! as it does past its own bound. Sessions already kept are never starved
//! to make room: memory stays bounded whoever fills it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::base::message::Message;

#[derive(Debug)]
pub struct ResumeBudget {
    limit: usize,
    used: AtomicUsize,
    /// Messages a replay log gave up or never kept to stay within it.
    dropped: AtomicU64,
}

impl ResumeBudget {
    pub fn new(limit: usize) -> ResumeBudget {
        ResumeBudget { limit, used: AtomicUsize::new(0), dropped: AtomicU64::new(0) }
    }

    /// Takes room for `message`, kept by one more session; false, taking
    /// nothing, when it does not fit.
    pub fn keep(&self, message: &Message) -> bool {
        match message.payload() {
            Some(payload) => payload.keep(|len| self.charge(len), |len| self.refund(len)),
            None => true,
        }
    }

    /// Gives back what [`ResumeBudget::keep`] took for `message`.
    pub fn release(&self, message: &Message) {
        if let Some(payload) = message.payload() {
            self.refund(payload.release());
        }
    }

    /// Takes room for every one of `messages`, or, taking nothing, false.
    pub fn keep_all<'a>(&self, messages: impl IntoIterator<Item = &'a Message> + Clone) -> bool {
        let kept = messages.clone().into_iter().take_while(|message| self.keep(message)).count();
        let all = messages.clone().into_iter().count() == kept;
        if !all {
            self.release_all(messages.into_iter().take(kept));
        }
        all
    }

    pub fn release_all<'a>(&self, messages: impl IntoIterator<Item = &'a Message>) {
        messages.into_iter().for_each(|message| self.release(message));
    }

    fn charge(&self, len: usize) -> bool {
        self.used.fetch_update(Relaxed, Relaxed, |used| used.checked_add(len).filter(|sum| *sum <= self.limit)).is_ok()
    }

    fn refund(&self, len: usize) {
        self.used.fetch_sub(len, Relaxed);
    }

    /// Bytes kept now.
    pub fn used(&self) -> usize {
        self.used.load(Relaxed)
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    pub fn count_dropped(&self) {
        self.dropped.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::base::message::Payload;

    #[test]
    fn a_shared_payload_costs_once_however_many_keep_it() {
        let budget = ResumeBudget::new(100);
        let broadcast = Message::new(Payload::shared(Bytes::from("b".repeat(60))), false);
        assert!((0..1000).all(|_| budget.keep(&broadcast.clone())));
        assert_eq!(budget.used(), 60);
        let own = Message::text("o".repeat(50));
        assert!(!budget.keep(&own), "60 + 50 is over 100");
        assert_eq!(budget.used(), 60, "a refusal takes nothing");
        for _ in 0..999 {
            budget.release(&broadcast);
        }
        assert_eq!(budget.used(), 60, "still kept by one");
        budget.release(&broadcast);
        assert_eq!(budget.used(), 0);
        assert!(budget.keep(&own) && budget.keep(&Message::Ping));
        assert_eq!(budget.used(), 50);
        budget.release(&own);
        assert_eq!(budget.used(), 0);
        let three = [Message::text("a".repeat(40)), Message::text("b".repeat(40)), Message::text("c".repeat(40))];
        assert!(!budget.keep_all(&three), "120 is over 100");
        assert_eq!(budget.used(), 0, "all or nothing");
        assert!(budget.keep_all(&three[..2]));
        budget.release_all(&three[..2]);
        assert_eq!(budget.used(), 0);
    }
}
