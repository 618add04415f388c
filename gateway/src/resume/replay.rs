//! What a resumable session keeps so that its client misses nothing: the
//! numbering of what it wrote and the last of it, replayed after `last`;
//! and what a session hands its next connection.

use std::collections::VecDeque;
use std::sync::Arc;

use protocol::handover::{Outgoing, Refusal};
use tokio::sync::oneshot;

use super::budget::ResumeBudget;
use crate::base::message::{Message, Payload};
use crate::upstream::fastcgi::ParamBlock;

/// How much of what was written a session keeps: the resume buffer's bounds.
#[derive(Clone, Copy, Debug)]
pub struct ReplayBounds {
    pub messages: usize,
    pub bytes: usize,
}

/// A resumable session's numbering of what it wrote, and the last of it,
/// kept within the resume buffer's bounds and the gateway's budget.
#[derive(Debug)]
pub struct ReplayLog {
    pub generation: u32,
    /// The number the next message written gets (the first is 1).
    pub next_seq: u64,
    recent: VecDeque<Message>,
    bytes: usize,
    budget: Arc<ResumeBudget>,
}

/// A client that asks for messages older than the session still keeps.
#[derive(Debug, PartialEq, Eq)]
pub struct Gap;

impl ReplayLog {
    pub fn new(generation: u32, next_seq: u64, budget: Arc<ResumeBudget>) -> ReplayLog {
        ReplayLog { generation, next_seq, recent: VecDeque::new(), bytes: 0, budget }
    }

    /// Numbers `message` and keeps it, within `bounds` and the gateway's
    /// budget: the oldest go first. A message the budget has no room for,
    /// even with this log emptied, is numbered and not kept.
    pub fn record(&mut self, message: &Message, bounds: ReplayBounds) {
        if message.payload().is_none() {
            return;
        }
        self.next_seq += 1;
        while !self.budget.keep(message) {
            self.budget.count_dropped();
            if self.recent.is_empty() {
                return;
            }
            self.drop_oldest();
        }
        self.bytes += message.len();
        self.recent.push_back(message.clone());
        while self.recent.len() > bounds.messages || self.bytes > bounds.bytes {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        let dropped = self.recent.pop_front().expect("only called when not empty");
        self.bytes -= dropped.len();
        self.budget.release(&dropped);
    }

    /// The messages after the client's `last` (all it got when not given),
    /// to write again; from now on only those are kept.
    pub fn replay_after(&mut self, last: Option<u64>) -> Result<Vec<Message>, Gap> {
        let newest = self.next_seq - 1;
        let last = last.unwrap_or(newest).min(newest);
        let oldest_kept = self.next_seq - self.recent.len() as u64;
        if last + 1 < oldest_kept {
            return Err(Gap);
        }
        for _ in oldest_kept..=last {
            self.drop_oldest();
        }
        Ok(self.recent.iter().cloned().collect())
    }

    pub fn recent(&self) -> impl Iterator<Item = &Message> {
        self.recent.iter()
    }

    /// Rebuilt from a hand-over, keeping the newest of it that the budget
    /// has room for.
    pub fn from_handover(
        generation: u32,
        next_seq: u64,
        recent: Vec<Outgoing>,
        budget: Arc<ResumeBudget>,
    ) -> ReplayLog {
        let mut written = ReplayLog::new(generation, next_seq, budget);
        for message in recent.into_iter().rev() {
            let message = Message::new(Payload::new(message.data), message.binary);
            if !written.budget.keep(&message) {
                written.budget.count_dropped();
                break;
            }
            written.bytes += message.len();
            written.recent.push_front(message);
        }
        written
    }
}

impl Drop for ReplayLog {
    fn drop(&mut self) {
        for message in &self.recent {
            self.budget.release(message);
        }
    }
}

/// A message as a hand-over carries it.
pub fn outgoing(message: &Message) -> Outgoing {
    Outgoing { binary: message.is_binary(), data: message.payload().map(|p| p.data().clone()).unwrap_or_default() }
}

/// What a session hands its next connection: the backend's meta and the
/// numbering of what was written (its generation already moved on).
#[derive(Debug)]
pub struct ResumeState {
    pub meta: ParamBlock,
    pub replay_log: ReplayLog,
}

/// A new connection's claim on a session, waiting in its mailbox.
#[derive(Debug)]
pub struct TakeRequest {
    pub generation: u32,
    pub reply: oneshot::Sender<Result<ResumeState, Refusal>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(messages: usize, bytes: usize) -> ReplayBounds {
        ReplayBounds { messages, bytes }
    }

    fn unbounded() -> Arc<ResumeBudget> {
        Arc::new(ResumeBudget::new(usize::MAX))
    }

    #[test]
    fn replays_what_the_client_missed_or_reports_a_gap() {
        let mut written = ReplayLog::new(0, 1, unbounded());
        for i in 1..=5 {
            written.record(&Message::text(format!("m{i}")), limits(3, 100));
        }
        written.record(&Message::Ping, limits(3, 100));
        assert_eq!(written.next_seq, 6);
        // Kept: m3, m4, m5 (numbers 3..=5).
        assert_eq!(written.replay_after(Some(1)), Err(Gap));
        assert_eq!(written.replay_after(Some(3)), Ok(vec![Message::text("m4"), Message::text("m5")]));
        assert_eq!(written.replay_after(None), Ok(vec![]));
        assert_eq!(written.recent().count(), 0);
    }

    #[test]
    fn the_byte_bound_evicts_too() {
        let mut written = ReplayLog::new(0, 1, unbounded());
        written.record(&Message::text("aaaa"), limits(10, 6));
        written.record(&Message::text("bbbb"), limits(10, 6));
        assert_eq!(written.recent().count(), 1);
        assert_eq!(written.replay_after(Some(1)), Ok(vec![Message::text("bbbb")]));
    }

    #[test]
    fn past_the_budget_a_log_gives_up_its_own_oldest_and_gives_all_back_when_dropped() {
        let budget = Arc::new(ResumeBudget::new(10));
        let mut other = ReplayLog::new(0, 1, budget.clone());
        other.record(&Message::text("123456"), limits(10, 100));
        let mut written = ReplayLog::new(0, 1, budget.clone());
        written.record(&Message::text("abc"), limits(10, 100));
        written.record(&Message::text("de"), limits(10, 100));
        assert_eq!(written.recent().count(), 1, "abc went to make room for de");
        assert_eq!(budget.used(), 8);
        written.record(&Message::text("far too large"), limits(10, 100));
        assert_eq!((written.recent().count(), written.next_seq), (0, 4), "numbered, not kept");
        assert_eq!(written.replay_after(Some(2)), Err(Gap), "a resume that needs it is told");
        assert_eq!(written.replay_after(Some(3)), Ok(vec![]));
        assert_eq!(budget.dropped(), 3);
        drop(other);
        assert_eq!(budget.used(), 0);
        let handed =
            vec![Outgoing { binary: false, data: "older".into() }, Outgoing { binary: false, data: "newest".into() }];
        let rebuilt = ReplayLog::from_handover(1, 3, handed, budget.clone());
        assert_eq!(rebuilt.recent().collect::<Vec<_>>(), [&Message::text("newest")], "the newest that fit");
        drop(rebuilt);
        assert_eq!(budget.used(), 0);
    }
}
