//! A session's outbound queue: pushes from the router wait here for the
//! session task to write them.
//!
//! Bounded in messages and in bytes. A push past either bound marks the
//! session a slow consumer, and it is closed instead of growing without
//! limit or stalling the others. The queue allocates nothing while empty,
//! so an idle connection costs only this struct.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use futures_util::task::AtomicWaker;
use tokio_tungstenite::tungstenite::Message;

use super::close::CloseReason;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub messages: usize,
    pub bytes: usize,
}

#[derive(Default)]
struct Queue {
    messages: VecDeque<Message>,
    bytes: usize,
    /// Set once the session must close.
    close: Option<CloseReason>,
}

pub struct Outbox {
    queue: Mutex<Queue>,
    waker: AtomicWaker,
    limits: Limits,
    /// When the client was last heard from, as milliseconds since `EPOCH`.
    last_heard: AtomicU64,
}

/// A process-wide origin for cheap, coarse timestamps.
fn since_epoch(at: Instant) -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    at.saturating_duration_since(*EPOCH.get_or_init(Instant::now)).as_millis() as u64
}

#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Past a limit: the session is now closing as a slow consumer.
    Overflowed,
    /// The session is already closing.
    Closed,
}

/// What the session task takes out.
pub enum Taken {
    Messages(VecDeque<Message>),
    Close(CloseReason),
}

impl Outbox {
    pub fn new(limits: Limits) -> Outbox {
        let last_heard = AtomicU64::new(since_epoch(Instant::now()));
        Outbox { queue: Mutex::default(), waker: AtomicWaker::new(), limits, last_heard }
    }

    /// Notes that the client was heard from (any frame, a pong included).
    pub fn heard_from_client(&self) {
        self.last_heard.store(since_epoch(Instant::now()), Ordering::Relaxed);
    }

    pub fn silent_for(&self, now: Instant) -> Duration {
        Duration::from_millis(since_epoch(now).saturating_sub(self.last_heard.load(Ordering::Relaxed)))
    }

    /// Queues a push; past the limits, the session closes as a slow consumer.
    pub fn push(&self, message: Message) -> Pushed {
        let len = message.len();
        let mut queue = self.queue.lock().unwrap();
        if queue.close.is_some() {
            return Pushed::Closed;
        }
        if queue.messages.len() >= self.limits.messages || queue.bytes + len > self.limits.bytes {
            queue.close = Some(CloseReason::SlowConsumer);
            queue.messages = VecDeque::new();
            queue.bytes = 0;
            drop(queue);
            self.waker.wake();
            return Pushed::Overflowed;
        }
        queue.messages.push_back(message);
        queue.bytes += len;
        let first = queue.messages.len() == 1;
        drop(queue);
        if first {
            self.waker.wake();
        }
        Pushed::Queued
    }

    /// Asks the session to close (the first request wins).
    pub fn close(&self, reason: CloseReason) {
        let mut queue = self.queue.lock().unwrap();
        if queue.close.is_none() {
            queue.close = Some(reason);
        }
        drop(queue);
        self.waker.wake();
    }

    /// Waits for pushes (all of them, at once) or a close request.
    pub async fn take(&self) -> Taken {
        poll_fn(|cx| {
            if let Some(taken) = self.try_take() {
                return Poll::Ready(taken);
            }
            self.waker.register(cx.waker());
            match self.try_take() {
                Some(taken) => Poll::Ready(taken),
                None => Poll::Pending,
            }
        })
        .await
    }

    fn try_take(&self) -> Option<Taken> {
        let mut queue = self.queue.lock().unwrap();
        if let Some(reason) = queue.close {
            return Some(Taken::Close(reason));
        }
        if queue.messages.is_empty() {
            return None;
        }
        queue.bytes = 0;
        Some(Taken::Messages(std::mem::take(&mut queue.messages)))
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.queue.lock().unwrap().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(messages: usize, bytes: usize) -> Outbox {
        Outbox::new(Limits { messages, bytes })
    }

    #[tokio::test]
    async fn hands_over_everything_queued_at_once() {
        let outbox = outbox(10, 1000);
        assert_eq!(outbox.push(Message::text("a")), Pushed::Queued);
        assert_eq!(outbox.push(Message::text("bc")), Pushed::Queued);
        assert_eq!(outbox.queued_bytes(), 3);
        match outbox.take().await {
            Taken::Messages(batch) => assert_eq!(batch, [Message::text("a"), Message::text("bc")]),
            Taken::Close(_) => panic!("not closed"),
        }
        assert_eq!(outbox.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn overflow_in_bytes_or_count_closes_as_slow_consumer() {
        let by_bytes = outbox(10, 4);
        assert_eq!(by_bytes.push(Message::text("abc")), Pushed::Queued);
        assert_eq!(by_bytes.push(Message::text("de")), Pushed::Overflowed);
        assert!(matches!(by_bytes.take().await, Taken::Close(CloseReason::SlowConsumer)));
        assert_eq!(by_bytes.push(Message::text("f")), Pushed::Closed);

        let by_count = outbox(1, 1000);
        by_count.push(Message::text("a"));
        assert_eq!(by_count.push(Message::text("b")), Pushed::Overflowed);
    }

    #[tokio::test]
    async fn a_close_request_wakes_the_waiting_session() {
        let outbox = std::sync::Arc::new(outbox(10, 1000));
        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move { matches!(outbox.take().await, Taken::Close(CloseReason::Kicked)) }
        });
        tokio::task::yield_now().await;
        outbox.close(CloseReason::Kicked);
        assert!(waiting.await.unwrap());
    }
}
