//! What a resumable session keeps so that its client misses nothing: the
//! numbering of what it wrote and the last of it, replayed after `last`;
//! and what a session hands its next connection.

use std::collections::VecDeque;

use protocol::handover::{Outgoing, Refusal};
use tokio::sync::oneshot;

use crate::front::message::{Message, Payload};
use crate::upstream::fastcgi::ParamBlock;

/// How much of what was written a session keeps: the resume buffer's bounds.
#[derive(Clone, Copy, Debug)]
pub struct Keep {
    pub messages: usize,
    pub bytes: usize,
}

/// A resumable session's numbering of what it wrote, and the last of it,
/// kept within the resume buffer's bounds.
#[derive(Debug)]
pub struct Written {
    pub generation: u32,
    /// The number the next message written gets (the first is 1).
    pub next_seq: u64,
    recent: VecDeque<Message>,
    bytes: usize,
}

/// A client that asks for messages older than the session still keeps.
#[derive(Debug, PartialEq, Eq)]
pub struct Gap;

impl Written {
    pub fn new(generation: u32, next_seq: u64) -> Written {
        Written { generation, next_seq, recent: VecDeque::new(), bytes: 0 }
    }

    /// Numbers a message about to be written and keeps it.
    /// Numbers `message` and keeps it, within `keep`: the oldest go first.
    pub fn record(&mut self, message: &Message, keep: Keep) {
        if message.payload().is_none() {
            return;
        }
        self.next_seq += 1;
        self.bytes += message.len();
        self.recent.push_back(message.clone());
        while self.recent.len() > keep.messages || self.bytes > keep.bytes {
            let dropped = self.recent.pop_front().expect("over a bound means not empty");
            self.bytes -= dropped.len();
        }
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
        let skip = (last + 1 - oldest_kept) as usize;
        for dropped in self.recent.drain(..skip) {
            self.bytes -= dropped.len();
        }
        Ok(self.recent.iter().cloned().collect())
    }

    pub fn recent(&self) -> impl Iterator<Item = &Message> {
        self.recent.iter()
    }

    /// Rebuilt from a hand-over.
    pub fn from_handover(generation: u32, next_seq: u64, recent: Vec<Outgoing>) -> Written {
        let recent: VecDeque<Message> =
            recent.into_iter().map(|m| Message::new(Payload::new(m.data), m.binary)).collect();
        let bytes = recent.iter().map(Message::len).sum();
        Written { generation, next_seq, recent, bytes }
    }
}

/// A message as a hand-over carries it.
pub fn outgoing(message: &Message) -> Outgoing {
    Outgoing { binary: message.is_binary(), data: message.payload().map(|p| p.data().clone()).unwrap_or_default() }
}

/// What a session hands its next connection: the backend's meta and the
/// numbering of what was written (its generation already moved on).
#[derive(Debug)]
pub struct Carried {
    pub meta: ParamBlock,
    pub written: Written,
}

/// A new connection's claim on a session, waiting in its outbox.
#[derive(Debug)]
pub struct TakeRequest {
    pub generation: u32,
    pub reply: oneshot::Sender<Result<Carried, Refusal>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(messages: usize, bytes: usize) -> Keep {
        Keep { messages, bytes }
    }

    #[test]
    fn replays_what_the_client_missed_or_reports_a_gap() {
        let mut written = Written::new(0, 1);
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
        let mut written = Written::new(0, 1);
        written.record(&Message::text("aaaa"), limits(10, 6));
        written.record(&Message::text("bbbb"), limits(10, 6));
        assert_eq!(written.recent().count(), 1);
        assert_eq!(written.replay_after(Some(1)), Ok(vec![Message::text("bbbb")]));
    }
}
