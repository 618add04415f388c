//! A session's outbound queue: pushes from the router wait here for the
//! session task to write them.
//!
//! Bounded in messages and in bytes. A push past either bound marks the
//! session a slow consumer, and it is closed instead of growing without
//! limit or stalling the others. One message always fits an empty queue. The queue allocates nothing while empty,
//! so an idle connection costs only this struct.
//!
//! While its client is away (parked), a resumable session's pushes wait
//! here for it, under the resume buffer's bounds and the gateway's resume
//! budget: while parked, everything queued counts in the budget. The mailbox
//! is also how a new connection claims a session ([`TakeRequest`]), and,
//! while a session moves between gateways, which routers' pushes it takes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use futures_util::task::AtomicWaker;

use protocol::handover::Refusal;

use crate::base::close::CloseReason;
use crate::base::message::Message;
use crate::resume::budget::ResumeBudget;
use crate::resume::replay::TakeRequest;

/// Router links a gateway may have: a session takes or skips each one's
/// pushes by a bit of a `u64` (see [`Mailbox::accept_from`]).
pub const MAX_ROUTERS: usize = 64;

#[derive(Debug)]
pub struct Limits {
    pub messages: usize,
    pub bytes: usize,
    /// The bounds while parked.
    pub parked_messages: usize,
    pub parked_bytes: usize,
    /// What parked sessions hold counts here too, with the replay logs.
    pub resume_budget: Arc<ResumeBudget>,
}

struct Queue {
    messages: VecDeque<Message>,
    bytes: usize,
    /// Set once the session must close.
    close: Option<CloseReason>,
    /// A take or a describe waiting for the task. Boxed: rare, and the
    /// mailbox stays within two cache lines.
    ask: Option<Box<Ask>>,
    parked: bool,
    /// Bit N set: pushes from router link N are taken. All set but while
    /// the session moves between gateways.
    accept: u64,
}

impl Default for Queue {
    fn default() -> Queue {
        Queue { messages: VecDeque::new(), bytes: 0, close: None, ask: None, parked: false, accept: u64::MAX }
    }
}

/// A push touches all of it, from the worker that does not run the
/// session: 112 bytes, so with the `Arc`'s counts two cache lines (one
/// allocation of 128 bytes), where it once was three.
pub struct Mailbox {
    queue: Mutex<Queue>,
    waker: AtomicWaker,
    limits: Arc<Limits>,
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
    /// From a router link whose pushes this session does not take now.
    Skipped,
}

/// What the session task takes out.
pub enum Taken {
    Messages(VecDeque<Message>),
    Close(CloseReason),
    Take(TakeRequest),
    Describe(Describe),
}

/// Where a session's description goes, for the operator's page.
pub type Describe = tokio::sync::oneshot::Sender<protocol::SessionDescription>;

/// What a session is asked besides its pushes: one at a time.
enum Ask {
    Take(TakeRequest),
    Describe(Describe),
}

impl Mailbox {
    pub fn new(limits: Arc<Limits>) -> Mailbox {
        let last_heard = AtomicU64::new(since_epoch(Instant::now()));
        Mailbox { queue: Mutex::default(), waker: AtomicWaker::new(), limits, last_heard }
    }

    /// Notes that the client was heard from (any frame, a pong included).
    pub fn heard_from_client(&self) {
        self.last_heard.store(since_epoch(Instant::now()), Ordering::Relaxed);
    }

    pub fn silent_for(&self, now: Instant) -> Duration {
        Duration::from_millis(since_epoch(now).saturating_sub(self.last_heard.load(Ordering::Relaxed)))
    }

    /// Queues a push from router link `link`.
    pub fn push_from(&self, link: usize, message: Message) -> Pushed {
        self.queue_message(Some(link), message)
    }

    /// Queues a message of the gateway's own; past the limits, the session
    /// closes as a slow consumer (or, parked, as over the resume buffer).
    pub fn push(&self, message: Message) -> Pushed {
        self.queue_message(None, message)
    }

    fn queue_message(&self, link: Option<usize>, message: Message) -> Pushed {
        let len = message.len();
        let mut queue = self.queue.lock().unwrap();
        if queue.close.is_some() {
            return Pushed::Closed;
        }
        if link.is_some_and(|link| link < MAX_ROUTERS && queue.accept & (1 << link) == 0) {
            return Pushed::Skipped;
        }
        let (max_messages, max_bytes, overflow) = match queue.parked {
            false => (self.limits.messages, self.limits.bytes, CloseReason::SlowConsumer),
            true => (self.limits.parked_messages, self.limits.parked_bytes, CloseReason::ResumeBufferFull),
        };
        // One message always fits an empty queue: the bounds are on what
        // piles up, and a push is already bounded by the frame limit.
        let full = queue.messages.len() >= max_messages || (queue.bytes + len > max_bytes && queue.bytes > 0);
        if full || (queue.parked && !self.limits.resume_budget.keep(&message)) {
            self.overflow(queue, overflow);
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

    /// Past a bound: the session closes for `reason`, and what it held goes.
    fn overflow(&self, mut queue: std::sync::MutexGuard<'_, Queue>, reason: CloseReason) {
        queue.close = Some(reason);
        let dropped = std::mem::take(&mut queue.messages);
        queue.bytes = 0;
        self.release_if_parked(&queue, &dropped);
        drop(queue);
        self.waker.wake();
    }

    /// Gives back to the resume budget what a parked queue counted there.
    fn release_if_parked<'a>(&self, queue: &Queue, messages: impl IntoIterator<Item = &'a Message>) {
        if queue.parked {
            self.limits.resume_budget.release_all(messages);
        }
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

    /// Withdraws a close request for `reason`, should it be the one made
    /// (a resumable session that parks instead of closing).
    pub fn withdraw_close(&self, reason: CloseReason) {
        let mut queue = self.queue.lock().unwrap();
        if queue.close == Some(reason) {
            queue.close = None;
        }
    }

    /// Asks the session to hand itself to a new connection. The answer
    /// comes on the request's channel; a closing session refuses at once.
    pub fn request_take(&self, request: TakeRequest) {
        let mut queue = self.queue.lock().unwrap();
        // A describe waiting gives way (its asker gets nothing); a take does not.
        if queue.close.is_some() || matches!(queue.ask.as_deref(), Some(Ask::Take(_))) {
            let _ = request.reply.send(Err(Refusal::Expired));
            return;
        }
        queue.ask = Some(Box::new(Ask::Take(request)));
        drop(queue);
        self.waker.wake();
    }

    /// Asks the session to describe itself; nothing comes back while it
    /// closes or another ask waits.
    pub fn request_describe(&self, reply: Describe) {
        let mut queue = self.queue.lock().unwrap();
        if queue.close.is_some() || queue.ask.is_some() {
            return;
        }
        queue.ask = Some(Box::new(Ask::Describe(reply)));
        drop(queue);
        self.waker.wake();
    }

    /// Waits for a close or take request, or, with `messages`, pushes
    /// (all of them, at once).
    pub fn poll_take(&self, cx: &mut Context<'_>, messages: bool) -> Poll<Taken> {
        if let Some(taken) = self.try_take(messages) {
            return Poll::Ready(taken);
        }
        self.waker.register(cx.waker());
        match self.try_take(messages) {
            Some(taken) => Poll::Ready(taken),
            None => Poll::Pending,
        }
    }

    fn try_take(&self, messages: bool) -> Option<Taken> {
        let mut queue = self.queue.lock().unwrap();
        if let Some(reason) = queue.close {
            return Some(Taken::Close(reason));
        }
        if let Some(ask) = queue.ask.take() {
            return Some(match *ask {
                Ask::Take(request) => Taken::Take(request),
                Ask::Describe(reply) => Taken::Describe(reply),
            });
        }
        if !messages || queue.messages.is_empty() {
            return None;
        }
        queue.bytes = 0;
        let taken = std::mem::take(&mut queue.messages);
        self.release_if_parked(&queue, &taken);
        Some(Taken::Messages(taken))
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.queue.lock().unwrap().bytes
    }

    /// Parked, pushes wait under the resume buffer's bounds, and the
    /// heartbeat leaves the session alone.
    /// What is queued then counts in the resume budget, or no longer does;
    /// a session whose queue does not fit the budget ends.
    pub fn park(&self, parked: bool) {
        let mut queue = self.queue.lock().unwrap();
        if queue.parked == parked {
            return;
        }
        if !parked {
            self.release_if_parked(&queue, &queue.messages);
            queue.parked = false;
        } else if self.limits.resume_budget.keep_all(&queue.messages) {
            queue.parked = true;
        } else {
            self.overflow(queue, CloseReason::ResumeBufferFull);
        }
    }

    pub fn is_parked(&self) -> bool {
        self.queue.lock().unwrap().parked
    }

    /// Takes pushes from router link `link` (`true`) or no longer does.
    pub fn accept_from(&self, link: usize, accept: bool) {
        if link < MAX_ROUTERS {
            let mut queue = self.queue.lock().unwrap();
            match accept {
                true => queue.accept |= 1 << link,
                false => queue.accept &= !(1 << link),
            }
        }
    }

    /// Takes pushes from the links in `mask` only.
    pub fn accept_only(&self, mask: u64) {
        self.queue.lock().unwrap().accept = mask;
    }

    pub fn accepted(&self) -> u64 {
        self.queue.lock().unwrap().accept
    }

    /// Everything queued, taken out (a session handed to another gateway).
    pub fn drain(&self) -> VecDeque<Message> {
        let mut queue = self.queue.lock().unwrap();
        queue.bytes = 0;
        let drained = std::mem::take(&mut queue.messages);
        self.release_if_parked(&queue, &drained);
        drained
    }

    /// Puts `messages` in front of what is queued: what an earlier gateway
    /// held for the session comes before what arrived here meanwhile.
    pub fn prepend(&self, messages: impl IntoIterator<Item = Message>) {
        let mut queue = self.queue.lock().unwrap();
        let mut all: VecDeque<Message> = messages.into_iter().collect();
        if queue.parked && !self.limits.resume_budget.keep_all(&all) {
            return self.overflow(queue, CloseReason::ResumeBufferFull);
        }
        queue.bytes += all.iter().map(Message::len).sum::<usize>();
        all.append(&mut queue.messages);
        queue.messages = all;
        drop(queue);
        self.waker.wake();
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let queue = std::mem::take(self.queue.get_mut().unwrap());
        self.release_if_parked(&queue, &queue.messages);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn take(mailbox: &Mailbox, messages: bool) -> Taken {
        std::future::poll_fn(|cx| mailbox.poll_take(cx, messages)).await
    }

    fn mailbox(messages: usize, bytes: usize) -> Mailbox {
        let resume_budget = Arc::new(ResumeBudget::new(usize::MAX));
        Mailbox::new(Arc::new(Limits { messages, bytes, parked_messages: 2, parked_bytes: 100, resume_budget }))
    }

    #[tokio::test]
    async fn a_describe_is_taken_once_and_gives_way_to_a_take() {
        let mailbox = mailbox(10, 1000);
        let (reply, described) = tokio::sync::oneshot::channel();
        mailbox.request_describe(reply);
        let (second, nothing) = tokio::sync::oneshot::channel();
        mailbox.request_describe(second);
        assert!(nothing.await.is_err(), "one ask at a time: the second gets nothing");
        match take(&mailbox, true).await {
            Taken::Describe(reply) => reply.send(Default::default()).unwrap(),
            _ => panic!("the describe"),
        }
        assert_eq!(described.await.unwrap(), protocol::SessionDescription::default());

        let (reply, described) = tokio::sync::oneshot::channel();
        mailbox.request_describe(reply);
        let (answer, _answered) = tokio::sync::oneshot::channel();
        mailbox.request_take(TakeRequest { generation: 1, reply: answer });
        assert!(described.await.is_err(), "a take replaces a waiting describe");
        assert!(matches!(take(&mailbox, true).await, Taken::Take(request) if request.generation == 1));
        let (answer, mut waiting) = tokio::sync::oneshot::channel();
        mailbox.request_take(TakeRequest { generation: 2, reply: answer });
        let (reply, _) = tokio::sync::oneshot::channel();
        mailbox.request_describe(reply);
        let (answer, again) = tokio::sync::oneshot::channel();
        mailbox.request_take(TakeRequest { generation: 3, reply: answer });
        assert!(matches!(again.await, Ok(Err(Refusal::Expired))), "a take waiting is not replaced");
        assert!(waiting.try_recv().is_err(), "the take of generation 2 still waits");
    }

    #[tokio::test]
    async fn hands_over_everything_queued_at_once() {
        let mailbox = mailbox(10, 1000);
        assert_eq!(mailbox.push(Message::text("a")), Pushed::Queued);
        assert_eq!(mailbox.push(Message::text("bc")), Pushed::Queued);
        assert_eq!(mailbox.queued_bytes(), 3);
        match take(&mailbox, true).await {
            Taken::Messages(batch) => assert_eq!(batch, [Message::text("a"), Message::text("bc")]),
            _ => panic!("not closed"),
        }
        assert_eq!(mailbox.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn overflow_in_bytes_or_count_closes_as_slow_consumer() {
        let by_bytes = mailbox(10, 4);
        assert_eq!(by_bytes.push(Message::text("abc")), Pushed::Queued);
        assert_eq!(by_bytes.push(Message::text("de")), Pushed::Overflowed);
        assert!(matches!(take(&by_bytes, true).await, Taken::Close(CloseReason::SlowConsumer)));
        assert_eq!(by_bytes.push(Message::text("f")), Pushed::Closed);

        let large = mailbox(10, 4);
        assert_eq!(large.push(Message::text("larger than the bound")), Pushed::Queued, "alone, it fits");

        let by_count = mailbox(1, 1000);
        by_count.push(Message::text("a"));
        assert_eq!(by_count.push(Message::text("b")), Pushed::Overflowed);
    }

    #[tokio::test]
    async fn parked_sessions_hold_pushes_under_the_resume_bounds() {
        let parked = mailbox(10, 1000);
        parked.park(true);
        parked.push(Message::text("a"));
        parked.push(Message::text("b"));
        assert_eq!(parked.push(Message::text("c")), Pushed::Overflowed);
        assert!(matches!(take(&parked, false).await, Taken::Close(CloseReason::ResumeBufferFull)));
    }

    #[tokio::test]
    async fn a_parked_queue_counts_in_the_resume_budget_and_ends_past_it() {
        let resume_budget = Arc::new(ResumeBudget::new(10));
        let limits = Limits { messages: 10, bytes: 1000, parked_messages: 10, parked_bytes: 1000, resume_budget };
        let limits = Arc::new(limits);
        let mailbox = Mailbox::new(limits.clone());
        mailbox.push(Message::text("1234"));
        assert_eq!(limits.resume_budget.used(), 0, "an open session's queue is not kept for a resume");
        mailbox.park(true);
        assert_eq!(limits.resume_budget.used(), 4);
        assert_eq!(mailbox.push(Message::text("567")), Pushed::Queued);
        mailbox.park(false);
        assert_eq!(limits.resume_budget.used(), 0);
        mailbox.park(true);
        assert_eq!(limits.resume_budget.used(), 7);
        let other = Mailbox::new(limits.clone());
        other.park(true);
        assert_eq!(other.push(Message::text("abcd")), Pushed::Overflowed, "7 + 4 is over 10");
        assert!(matches!(take(&other, false).await, Taken::Close(CloseReason::ResumeBufferFull)));
        assert_eq!(limits.resume_budget.used(), 7);
        drop(mailbox);
        assert_eq!(limits.resume_budget.used(), 0, "given back when the session is gone");
    }

    #[tokio::test]
    async fn pushes_from_links_not_accepted_are_skipped_and_prepends_go_first() {
        let moving = mailbox(10, 1000);
        moving.accept_only(0b01);
        assert_eq!(moving.push_from(1, Message::text("skipped")), Pushed::Skipped);
        assert_eq!(moving.push_from(0, Message::text("late")), Pushed::Queued);
        moving.accept_from(1, true);
        assert_eq!(moving.push_from(1, Message::text("later")), Pushed::Queued);
        moving.prepend([Message::text("early")]);
        match take(&moving, true).await {
            Taken::Messages(batch) => assert_eq!(batch, ["early", "late", "later"].map(Message::text)),
            _ => panic!("messages queued"),
        }
    }

    #[test]
    fn a_mailbox_and_its_counts_fit_two_cache_lines() {
        assert!(std::mem::size_of::<Mailbox>() + 16 <= 128, "{} bytes", std::mem::size_of::<Mailbox>());
    }

    #[tokio::test]
    async fn a_close_request_wakes_the_waiting_session() {
        let mailbox = Arc::new(mailbox(10, 1000));
        let waiting = tokio::spawn({
            let mailbox = mailbox.clone();
            async move { matches!(take(&mailbox, true).await, Taken::Close(CloseReason::Kicked)) }
        });
        tokio::task::yield_now().await;
        mailbox.close(CloseReason::Kicked);
        assert!(waiting.await.unwrap());
    }
}
