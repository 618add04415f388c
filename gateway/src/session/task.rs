//! One client, from connect to close. A single task per connection reads
//! the client, writes pushes and replies, and runs the session's events
//! against the backend strictly one at a time: connect first, close last.
//!
//! A resumable session (the client asked with `?resume=1`) outlives a
//! connection that drops: it parks for the grace period, buffering what
//! comes for it, until a new connection takes it over (`Start::Resumed`)
//! or the grace period ends.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use protocol::handover::Refusal;
use protocol::SessionId;
use tokio::sync::oneshot;
use tokio::time::error::Elapsed;
use tokio::time::{Instant, Sleep};

use super::event::{Event, EventKind};
use super::mailbox::{Mailbox, Taken};
use super::policy::{self, Answered};
use super::Host;
use crate::admission::Seat;
use crate::base::close::CloseReason;
use crate::base::message::Message;
use crate::base::transport::{Incoming, Transport};
use crate::resume::replay::{Carried, Keep, TakeRequest, Written};
use crate::resume::token::Token;
use crate::upstream::fastcgi::{CgiResponse, ParamBlock, UpstreamError};
use runtime::rate::TokenBucket;

/// How long a client gets to answer our close frame.
const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// After a frame the transport could not read (too big, malformed), the
/// stream is out of step: we stop reading and give the client this long to
/// read our close frame before the socket goes. Dropped at once, unread
/// bytes would make the kernel reset the connection, losing the frame.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

type Reply = Pin<Box<dyn Future<Output = (EventKind, Result<CgiResponse, UpstreamError>)> + Send>>;

enum Client {
    /// A resumable session's client, before its session message (and, if
    /// it `resumed`, what it missed after the `last` message it got).
    Greeting {
        resumed: bool,
        last: Option<u64>,
    },
    Open,
    Closing {
        deadline: Instant,
        reading: bool,
    },
    /// Dropped without a close: the session waits for a resume until then.
    Parked {
        until: Instant,
    },
    /// A new connection takes the session once its events are done.
    HandingOver(oneshot::Sender<Result<Carried, Refusal>>),
    Gone,
}

/// What woke an idle session.
enum Wake {
    /// Boxed: a response is large, and every idle session would hold room for one.
    Reply(Box<(EventKind, Result<CgiResponse, UpstreamError>)>),
    Frame(Option<Incoming>),
    Taken(Taken),
    Deadline,
}

/// How a session's task ends.
#[derive(PartialEq, Eq)]
enum Outcome {
    Ended,
    /// Another connection carries on with the session.
    HandedOver,
}

/// How a session begins.
pub enum Start {
    New {
        resumable: bool,
    },
    /// A connection that took over a session: its mailbox, what it carried,
    /// and how many messages the client says it got.
    Resumed {
        id: SessionId,
        mailbox: Arc<Mailbox>,
        carried: Carried,
        last: Option<u64>,
    },
}

struct Session<T> {
    id: SessionId,
    host: Arc<dyn Host>,
    /// Gone once the client is (parked, handing over, gone).
    conn: Option<T>,
    mailbox: Arc<Mailbox>,
    /// This connection's own params (address, upgrade URI, headers).
    params: ParamBlock,
    /// What the backend asked to remember (`X-Meta-*`), sent with every
    /// later event as `META_*`.
    meta: ParamBlock,
    client: Client,
    pending: VecDeque<Event>,
    /// The bytes of the messages in `pending`.
    pending_bytes: usize,
    message_rate: TokenBucket,
    /// Cleared when the connect event failed or was refused: the backend
    /// never saw the session start, so it gets no close event either.
    backend_knows_session: bool,
    close_event_queued: bool,
    /// Present when the session is resumable.
    written: Option<Box<Written>>,
    /// Its place under `--max-connections`, given back when it ends.
    _seat: Seat,
    /// Runs while the client has a deadline (closing, parked).
    timer: Option<Pin<Box<Sleep>>>,
    /// Which source [`Session::poll_wake`] looks at first.
    turn: u8,
}

/// The session's whole life. Built here, outside the returned future, so
/// the future holds the session once (not also the stream it was built
/// from): an idle connection is mostly this future, and it adds up.
/// `seat` is its place under `--max-connections`, given back when it ends.
pub fn run<T: Transport>(
    host: Arc<dyn Host>,
    conn: T,
    params: ParamBlock,
    seat: Seat,
    start: Start,
) -> impl Future<Output = ()> + Send {
    let mut pending = VecDeque::new();
    let (id, mailbox, meta, written, client, new) = match start {
        Start::New { resumable } => {
            if host.session_settings().connect_event {
                pending.push_back(Event { kind: EventKind::Connect, body: Bytes::new() });
            }
            let mailbox = Arc::new(Mailbox::new(host.session_settings().mailbox.clone()));
            let budget = host.session_settings().resume_budget();
            let written = resumable.then(|| Box::new(Written::new(0, 1, budget.clone())));
            let client = match written {
                Some(_) => Client::Greeting { resumed: false, last: None },
                None => Client::Open,
            };
            (SessionId::random(), mailbox, ParamBlock::default(), written, client, true)
        }
        Start::Resumed { id, mailbox, carried, last } => {
            pending.push_back(Event { kind: EventKind::Online, body: Bytes::new() });
            mailbox.park(false);
            let client = Client::Greeting { resumed: true, last };
            (id, mailbox, carried.meta, Some(Box::new(carried.written)), client, false)
        }
    };
    host.metrics().connections_opened.fetch_add(1, Relaxed);
    host.metrics().params_bytes.fetch_add(params.encoded().len(), Relaxed);
    let mut session = Session {
        id,
        message_rate: TokenBucket::full(host.session_settings().max_message_burst, Instant::now()),
        host,
        conn: Some(conn),
        mailbox,
        params,
        meta,
        client,
        pending,
        pending_bytes: 0,
        backend_knows_session: true,
        close_event_queued: false,
        written,
        _seat: seat,
        timer: None,
        turn: 0,
    };
    async move {
        if new {
            session.host.registry().insert(session.id, session.mailbox.clone());
            session.host.opened(session.id);
        }
        if let Client::Greeting { resumed, last } = session.client {
            session.client = Client::Open;
            Box::pin(session.greet(resumed, last)).await;
        }
        if session.drive().await == Outcome::Ended {
            let counts = session.host.registry().remove(&session.id);
            session.host.ended(session.id, counts);
        }
    }
}

impl<T: Transport> Session<T> {
    /// Handlers are boxed where they are awaited: they run briefly, and
    /// unboxed their state would sit in every idle connection's future.
    async fn drive(&mut self) -> Outcome {
        tracing::debug!(session = %self.id, "connected");
        let mut in_flight: Option<Reply> = None;
        let mut abort: Option<oneshot::Sender<()>> = None;
        loop {
            if in_flight.is_none() {
                match self.pending.pop_front() {
                    Some(event) => {
                        if self.pending.is_empty() {
                            // Idle sessions hold no queue.
                            self.pending = VecDeque::new();
                        }
                        self.pending_bytes -= event.body.len();
                        self.host.metrics().pending_bytes.fetch_sub(event.body.len(), Relaxed);
                        let (call, switch) = self.dispatch(event);
                        (in_flight, abort) = (Some(call), switch);
                    }
                    None if matches!(self.client, Client::Gone) => break,
                    None if matches!(self.client, Client::HandingOver(_)) => {
                        if self.hand_over() {
                            return Outcome::HandedOver;
                        }
                        continue;
                    }
                    None => {}
                }
            }
            // The client left mid-request: the backend may stop early.
            if matches!(self.client, Client::Gone) {
                if let Some(switch) = abort.take() {
                    let _ = switch.send(());
                }
            }
            let wake = std::future::poll_fn(|cx| self.poll_wake(&mut in_flight, cx)).await;
            match wake {
                Wake::Reply(reply) => {
                    let (kind, result) = *reply;
                    (in_flight, abort) = (None, None);
                    Box::pin(self.on_reply(kind, result)).await;
                }
                Wake::Frame(frame) => Box::pin(self.on_client_frame(frame)).await,
                Wake::Taken(Taken::Messages(batch)) => Box::pin(self.write_batch(batch, true)).await,
                Wake::Taken(Taken::Close(reason)) => Box::pin(self.close(reason)).await,
                Wake::Taken(Taken::Take(request)) => Box::pin(self.on_take(request)).await,
                Wake::Deadline => {
                    if matches!(self.client, Client::Parked { .. }) {
                        tracing::info!(session = %self.id, "not resumed within the grace period");
                        self.host.metrics().closed(CloseReason::GraceExpired);
                    } else {
                        tracing::debug!(session = %self.id, "client did not finish the close handshake");
                    }
                    self.gone();
                }
            }
        }
        tracing::debug!(session = %self.id, "closed");
        Outcome::Ended
    }

    /// Waits for the next thing the session must act on: the backend's
    /// reply, a client frame, the mailbox, or the client's deadline. Each is
    /// polled in place, so nothing of the wait is stored in an idle
    /// session but a boxed timer while a deadline runs; each wait starts at
    /// the next source in turn, so a busy one starves none.
    fn poll_wake(&mut self, in_flight: &mut Option<Reply>, cx: &mut Context<'_>) -> Poll<Wake> {
        self.turn = (self.turn + 1) % 4;
        for source in 0..4 {
            let wake = match (self.turn + source) % 4 {
                0 => match in_flight.as_mut() {
                    Some(call) => call.as_mut().poll(cx).map(|reply| Wake::Reply(Box::new(reply))),
                    None => Poll::Pending,
                },
                1 => match (&self.client, self.conn.as_mut()) {
                    (Client::Open | Client::Closing { reading: true, .. }, Some(conn)) => {
                        conn.poll_next_unpin(cx).map(Wake::Frame)
                    }
                    _ => Poll::Pending,
                },
                2 => match self.client {
                    Client::Open => self.mailbox.poll_take(cx, true).map(Wake::Taken),
                    Client::Parked { .. } => self.mailbox.poll_take(cx, false).map(Wake::Taken),
                    _ => Poll::Pending,
                },
                _ => self.poll_deadline(cx),
            };
            if wake.is_ready() {
                return wake;
            }
        }
        Poll::Pending
    }

    /// The timer lives only while the client has a deadline.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<Wake> {
        let deadline = match self.client {
            Client::Closing { deadline, .. } | Client::Parked { until: deadline } => deadline,
            _ => {
                self.timer = None;
                return Poll::Pending;
            }
        };
        let timer = match &mut self.timer {
            Some(timer) if timer.deadline() == deadline => timer,
            timer => timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        ready!(timer.as_mut().poll(cx));
        self.timer = None;
        Poll::Ready(Wake::Deadline)
    }

    /// The session message a resumable session's client gets first, then
    /// (resumed) what it missed. `last` is how many messages it says it got.
    async fn greet(&mut self, resumed: bool, last: Option<u64>) {
        let written = self.written.as_mut().expect("resumable");
        let replay = if resumed { written.replay_after(last) } else { Ok(Vec::new()) };
        let token = self.host.resume_keys().sign(Token { session: self.id, generation: written.generation });
        let hello = serde_json::json!({"type": "session", "id": self.id.as_str(), "resume": token, "resumed": resumed});
        let Ok(replay) = replay else {
            tracing::info!(session = %self.id, ?last, "client missed messages no longer kept");
            return self.close(CloseReason::ResumeGap).await;
        };
        if resumed {
            self.host.metrics().resumed.fetch_add(1, Relaxed);
            tracing::debug!(session = %self.id, replayed = replay.len(), "resumed");
        }
        // Neither is numbered again: the session message never is, the
        // replayed messages were when first written.
        let batch = std::iter::once(Message::text(hello.to_string())).chain(replay).collect();
        self.write_batch(batch, false).await;
    }

    /// A new connection presents this session's token. The one it holds
    /// (the current generation) wins: a connection still open here is
    /// closed, as its client has evidently moved on.
    async fn on_take(&mut self, request: TakeRequest) {
        let reachable = matches!(self.client, Client::Open | Client::Parked { .. });
        let generation = self.written.as_ref().map(|written| written.generation);
        if let Err(refusal) = policy::may_take(generation, reachable, request.generation) {
            let _ = request.reply.send(Err(refusal));
            return;
        }
        if matches!(self.client, Client::Open) {
            self.farewell(CloseReason::ResumedElsewhere).await;
            self.pending.push_back(Event { kind: EventKind::Offline, body: Bytes::new() });
            self.mailbox.park(true);
        }
        self.conn = None;
        self.client = Client::HandingOver(request.reply);
    }

    /// Tells a client whose session carries on without this connection
    /// why it goes, without waiting for its answer.
    async fn farewell(&mut self, reason: CloseReason) {
        self.host.metrics().closed(reason);
        if let Some(conn) = self.conn.as_mut() {
            let _ = tokio::time::timeout(CLOSE_LINGER, conn.send(Message::closing(reason))).await;
        }
    }

    /// Gives the session to the connection that took it; false if that
    /// connection gave up waiting, and the session ends after all.
    fn hand_over(&mut self) -> bool {
        let Client::HandingOver(reply) = std::mem::replace(&mut self.client, Client::Gone) else {
            unreachable!("handing over")
        };
        let mut written = self.written.take().expect("only resumable sessions are taken");
        written.generation += 1;
        let carried = Carried { meta: std::mem::take(&mut self.meta), written: *written };
        let Err(Ok(carried)) = reply.send(Ok(carried)) else { return true };
        tracing::info!(session = %self.id, "the resuming connection is gone; the session ends");
        (self.meta, self.written) = (carried.meta, Some(Box::new(carried.written)));
        self.queue_close_event();
        false
    }

    /// Encodes the event now and returns the backend call as a future, so
    /// the connection keeps reading and writing while the backend works.
    /// Returns the call and, unless it is the close event, the switch that
    /// aborts it should the client leave first.
    fn dispatch(&self, event: Event) -> (Reply, Option<oneshot::Sender<()>>) {
        let kind = event.kind;
        let request = self.host.events().encode(&[&self.params, &self.meta], &self.id, &event);
        let host = self.host.clone();
        let (abort_tx, abort_rx) = match kind {
            EventKind::Connect | EventKind::Message { .. } => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            _ => (None, None),
        };
        let id = self.id;
        let call = Box::pin(async move {
            let mut abort = abort_rx;
            let pool = host.pool_for(&event);
            let result = super::event::send(&*host, pool, kind, &request, &id, &mut abort).await;
            (kind, result)
        });
        (call, abort_tx)
    }

    /// Carries out what the backend's answer does (see [`policy::answered`]),
    /// logging and counting it.
    async fn on_reply(&mut self, kind: EventKind, result: Result<CgiResponse, UpstreamError>) {
        let metrics = self.host.metrics();
        if let Err(err) = &result {
            if !matches!(kind, EventKind::Close | EventKind::Offline) {
                tracing::warn!(session = %self.id, ?kind, %err, "backend call failed");
                metrics.backend_failed(err);
            }
        }
        match policy::answered(kind, &result, self.host.session_settings().error_reply) {
            Answered::ConnectFailed => {
                self.backend_knows_session = false;
                self.close(CloseReason::BackendUnavailable).await
            }
            Answered::Refused { code, reason } => {
                metrics.connect_refused_by_backend.fetch_add(1, Relaxed);
                self.backend_knows_session = false;
                self.send_close(code, &reason, true).await
            }
            Answered::Deliver(message) => {
                if let Ok(response) = &result {
                    self.remember_meta(response);
                }
                if let Some(message) = message {
                    self.reply(message).await;
                }
            }
            Answered::Nothing => {}
        }
    }

    /// Stores the response's `X-Meta-*` headers for the session's later events.
    fn remember_meta(&mut self, response: &CgiResponse) {
        let Some((meta, dropped)) = crate::upstream::cgi::merged_meta(&self.meta, &response.headers) else { return };
        for err in dropped {
            tracing::warn!(session = %self.id, %err, "session meta dropped");
        }
        self.meta = meta;
    }

    /// Sends one message to the client; while it is away, the mailbox
    /// keeps it for a resume. Dropped once the client is closing.
    async fn reply(&mut self, message: Message) {
        match self.client {
            Client::Greeting { .. } | Client::Open => self.write_batch(VecDeque::from([message]), true).await,
            Client::Parked { .. } | Client::HandingOver(_) => {
                self.mailbox.push(message);
            }
            Client::Closing { .. } | Client::Gone => return,
        }
        self.host.metrics().replies_out.fetch_add(1, Relaxed);
    }

    async fn on_client_frame(&mut self, frame: Option<Incoming>) {
        if frame.is_some() {
            self.mailbox.heard_from_client();
        }
        match frame {
            Some(Incoming::Message { body, binary }) => self.on_client_message(body, binary).await,
            // The transport answers pings and close frames itself; after a
            // close, reading on until the stream ends completes the handshake.
            Some(Incoming::Control) => {}
            // A client that says goodbye (1000, 1001 or no code) ends its
            // session at once; any other close code counts as a drop.
            Some(Incoming::Goodbye(code)) if policy::is_goodbye(code) => {
                if matches!(self.client, Client::Open) {
                    let deadline = Instant::now() + CLOSE_HANDSHAKE_TIMEOUT;
                    self.client = Client::Closing { deadline, reading: true };
                    self.queue_close_event();
                }
            }
            Some(Incoming::Goodbye(_)) => self.dropped(),
            Some(Incoming::Violation(violation)) => {
                tracing::info!(session = %self.id, %violation, "client sent what it may not");
                self.close(policy::violation_close(&violation)).await;
            }
            Some(Incoming::Failed(err)) => {
                tracing::debug!(session = %self.id, %err, "client connection failed");
                self.dropped();
            }
            None => self.dropped(),
        }
    }

    async fn on_client_message(&mut self, body: Bytes, binary: bool) {
        // After our close frame, late messages are dropped.
        if !matches!(self.client, Client::Open) {
            return;
        }
        let (settings, metrics) = (self.host.session_settings(), self.host.metrics());
        metrics.messages_in.fetch_add(1, Relaxed);
        if settings.max_message_rate > 0.0
            && !self.message_rate.take(settings.max_message_rate, settings.max_message_burst, Instant::now())
        {
            return self.close(CloseReason::RateLimited).await;
        }
        // Queue up to the limits, then refuse, so one client cannot pile up
        // work without bound and the others keep their share.
        if !policy::admits_message(settings, self.pending.len(), self.pending_bytes, body.len()) {
            metrics.messages_refused_in_flight.fetch_add(1, Relaxed);
            let refusal = policy::gateway_error(429, "too many messages in flight; this one was dropped");
            return self.reply(refusal).await;
        }
        self.pending_bytes += body.len();
        metrics.pending_bytes.fetch_add(body.len(), Relaxed);
        self.pending.push_back(Event { kind: EventKind::Message { binary }, body });
    }

    /// Writes messages with one flush and the write timeout (a fan-out
    /// burst costs one write per session, not one per message); `number`
    /// them, in a resumable session, to keep them for a resume.
    async fn write_batch(&mut self, batch: VecDeque<Message>, number: bool) {
        if let (Some(written), true) = (self.written.as_mut(), number) {
            let limits = &self.host.session_settings().mailbox;
            let keep = Keep { messages: limits.parked_messages, bytes: limits.parked_bytes };
            for message in &batch {
                written.record(message, keep);
            }
        }
        let Some(conn) = self.conn.as_mut() else { return };
        let timeout = self.host.session_settings().write_timeout;
        let write = async move {
            for message in batch {
                conn.feed(message).await?;
            }
            conn.flush().await
        };
        let written = tokio::time::timeout(timeout, write).await;
        self.check_write(written, timeout);
    }

    /// Every write to the client has a timeout: a client that stops reading
    /// must not hold its session forever.
    fn check_write(&mut self, written: Result<std::io::Result<()>, Elapsed>, timeout: Duration) {
        let failure = match written {
            Ok(Ok(())) => return,
            Ok(Err(err)) => err.to_string(),
            Err(_) => {
                // Its socket is full, so no close frame can reach it.
                self.host.metrics().closed(CloseReason::SlowConsumer);
                format!("client read nothing for {timeout:?}")
            }
        };
        tracing::debug!(session = %self.id, failure, "write to client failed");
        self.dropped();
    }

    async fn close(&mut self, reason: CloseReason) {
        let resumable = self.written.is_some();
        if policy::parks_instead_of_closing(reason, resumable) && matches!(self.client, Client::Open) {
            self.farewell(reason).await;
            self.mailbox.withdraw_close(reason);
            return self.dropped();
        }
        if matches!(self.client, Client::Open | Client::Parked { .. }) {
            self.host.metrics().closed(reason);
            self.send_close(reason.code(), reason.text(), policy::close_in_step(reason)).await;
        }
    }

    /// Sends a close frame; `in_step` says the stream can still be read,
    /// to wait for the client's half of the close handshake.
    async fn send_close(&mut self, code: u16, reason: &str, in_step: bool) {
        match self.client {
            Client::Open => {}
            // No one to tell: the session just ends.
            Client::Parked { .. } => return self.gone(),
            _ => return,
        }
        tracing::info!(session = %self.id, code, reason, "closing client");
        let frame = Message::Close { code, reason: reason.to_owned().into() };
        let Some(conn) = self.conn.as_mut() else { return self.gone() };
        match conn.send(frame).await {
            Ok(()) => {
                let wait = if in_step { CLOSE_HANDSHAKE_TIMEOUT } else { CLOSE_LINGER };
                self.client = Client::Closing { deadline: Instant::now() + wait, reading: in_step };
                // The session is over for the backend now, not when the
                // client gets round to answering the close frame.
                self.queue_close_event();
            }
            Err(_) => self.gone(),
        }
    }

    /// The client is gone for good: its connection goes now, while the
    /// session's last events may still wait for the backend.
    fn gone(&mut self) {
        self.client = Client::Gone;
        self.conn = None;
        self.queue_close_event();
    }

    /// The connection dropped without a goodbye. A resumable session parks
    /// for the grace period (the backend hears it is offline); any other
    /// session ends.
    fn dropped(&mut self) {
        let grace = self.host.session_settings().resume_grace;
        let parks = policy::parks_on_drop(self.written.is_some(), grace, self.backend_knows_session);
        if !(parks && matches!(self.client, Client::Open)) {
            return self.gone();
        }
        tracing::debug!(session = %self.id, "client dropped; waiting {grace:?} for it to resume");
        self.host.metrics().parked.fetch_add(1, Relaxed);
        self.conn = None;
        self.client = Client::Parked { until: Instant::now() + grace };
        self.mailbox.park(true);
        self.pending.push_back(Event { kind: EventKind::Offline, body: Bytes::new() });
    }

    /// Queues the close event once, behind the events still pending, so
    /// the backend sees it last.
    fn queue_close_event(&mut self) {
        if self.host.session_settings().close_event && self.backend_knows_session && !self.close_event_queued {
            self.close_event_queued = true;
            self.pending.push_back(Event { kind: EventKind::Close, body: Bytes::new() });
        }
    }
}

impl<T> Drop for Session<T> {
    fn drop(&mut self) {
        let metrics = self.host.metrics();
        metrics.pending_bytes.fetch_sub(self.pending_bytes, Relaxed);
        metrics.params_bytes.fetch_sub(self.params.encoded().len(), Relaxed);
    }
}
