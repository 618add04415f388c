//! One client, from connect to close. A single task per connection reads
//! the client, writes pushes and replies, and runs the session's events
//! against the backend strictly one at a time: connect first, close last.
//!
//! A resumable session (the client asked with `?resume=1`) outlives a
//! connection that drops: it parks for the grace period, buffering what
//! comes for it, until a new connection takes it over (`Start::Resumed`)
//! or the grace period ends.
//!
//! What each thing that happens does is the `lifecycle`'s to decide, with
//! no I/O; the task waits (`wait`), talks to the client (`client`) and the
//! backend (`backend`), and carries out the lifecycle's actions.

mod backend;
mod client;
mod wait;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use protocol::handover::Refusal;
use protocol::SessionId;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use super::event::EventKind;
use super::lifecycle::{Action, Lifecycle, Phase, CLOSE_LINGER};
use super::mailbox::{Mailbox, Taken};
use super::Host;
use crate::admission::Seat;
use crate::base::message::Message;
use crate::base::transport::Transport;
use crate::resume::replay::{Carried, TakeRequest, Written};
use crate::upstream::fastcgi::ParamBlock;
use wait::{Reply, Wake};

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
    /// The client's connection, while [`Lifecycle::connected`].
    conn: Option<T>,
    mailbox: Arc<Mailbox>,
    /// This connection's own params (address, upgrade URI, headers).
    params: ParamBlock,
    /// What the backend asked to remember (`X-Meta-*`), sent with every
    /// later event as `META_*`.
    meta: ParamBlock,
    life: Lifecycle,
    /// The connection that takes the session over, while handing over.
    taker: Option<oneshot::Sender<Result<Carried, Refusal>>>,
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
    let settings = host.session_settings();
    let (id, mailbox, meta, written, life, new) = match start {
        Start::New { resumable } => {
            let mailbox = Arc::new(Mailbox::new(settings.mailbox.clone()));
            let written = resumable.then(|| Box::new(Written::new(0, 1, settings.resume_budget().clone())));
            let phase = if resumable { Phase::Greeting { resumed: false, last: None } } else { Phase::Open };
            let connect = settings.connect_event.then_some(EventKind::Connect);
            let life = Lifecycle::new(phase, resumable, connect, settings);
            (SessionId::random(), mailbox, ParamBlock::default(), written, life, true)
        }
        Start::Resumed { id, mailbox, carried, last } => {
            mailbox.park(false);
            let life = Lifecycle::new(Phase::Greeting { resumed: true, last }, true, Some(EventKind::Online), settings);
            (id, mailbox, carried.meta, Some(Box::new(carried.written)), life, false)
        }
    };
    host.metrics().connections_opened.fetch_add(1, Relaxed);
    host.metrics().params_bytes.fetch_add(params.encoded().len(), Relaxed);
    let mut session = Session {
        id,
        host,
        conn: Some(conn),
        mailbox,
        params,
        meta,
        life,
        taker: None,
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
        if let Some((resumed, last)) = session.life.greet() {
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
                match self.life.next_event(self.host.metrics()) {
                    Some(event) => (in_flight, abort) = self.dispatch(event),
                    None if *self.life.phase() == Phase::Gone => break,
                    None if *self.life.phase() == Phase::HandingOver => {
                        if self.hand_over() {
                            return Outcome::HandedOver;
                        }
                        continue;
                    }
                    None => {}
                }
            }
            // The client left mid-request: the backend may stop early.
            if *self.life.phase() == Phase::Gone {
                if let Some(switch) = abort.take() {
                    let _ = switch.send(());
                }
            }
            let wake = std::future::poll_fn(|cx| self.poll_wake(&mut in_flight, cx)).await;
            let (now, settings, metrics) = (Instant::now(), self.host.session_settings(), self.host.metrics());
            let action = match wake {
                Wake::Reply(reply) => {
                    (in_flight, abort) = (None, None);
                    self.on_reply(*reply)
                }
                Wake::Frame(frame) => {
                    self.on_client_frame(&frame);
                    self.life.client_frame(frame, now, settings, metrics)
                }
                Wake::Taken(Taken::Messages(batch)) => {
                    Box::pin(self.write_batch(batch, true)).await;
                    Action::None
                }
                Wake::Taken(Taken::Close(reason)) => self.life.close(reason, now, settings, metrics),
                Wake::Taken(Taken::Take(request)) => self.on_take(request),
                Wake::Deadline => {
                    match self.life.phase() {
                        Phase::Parked { .. } => {
                            tracing::info!(session = %self.id, "not resumed within the grace period")
                        }
                        _ => tracing::debug!(session = %self.id, "client did not finish the close handshake"),
                    }
                    self.life.deadline_passed(settings, metrics);
                    Action::None
                }
            };
            Box::pin(self.carry_out(action)).await;
        }
        tracing::debug!(session = %self.id, "closed");
        Outcome::Ended
    }

    /// Carries out what the lifecycle decided, on the socket and the
    /// mailbox, and what a failed write makes of it; then lets the
    /// connection go if the session no longer has one.
    async fn carry_out(&mut self, mut action: Action) {
        loop {
            action = match action {
                Action::None => break,
                Action::Write(message) => self.write_batch(VecDeque::from([message]), true).await,
                Action::Keep(message) => {
                    self.mailbox.push(message);
                    Action::None
                }
                Action::SendClose { code, reason } => {
                    tracing::info!(session = %self.id, code, %reason, "closing client");
                    let frame = Message::Close { code, reason };
                    if let Some(Err(_)) | None = self.send(frame).await {
                        self.life.gone(self.host.session_settings());
                    }
                    Action::None
                }
                Action::LetGo { farewell, withdrawn, parked } => {
                    if let Some(reason) = farewell {
                        let _ = tokio::time::timeout(CLOSE_LINGER, self.send(Message::closing(reason))).await;
                        if withdrawn {
                            self.mailbox.withdraw_close(reason);
                        }
                    }
                    if parked {
                        tracing::debug!(session = %self.id, "client let go; the session waits for a resume");
                        self.mailbox.park(true);
                    }
                    Action::None
                }
            };
        }
        if !self.life.connected() {
            self.conn = None;
        }
    }

    /// A new connection presents this session's token.
    fn on_take(&mut self, request: TakeRequest) -> Action {
        let generation = self.written.as_ref().map(|written| written.generation);
        match self.life.take(generation, request.generation, self.host.metrics()) {
            Ok(action) => {
                self.taker = Some(request.reply);
                action
            }
            Err(refusal) => {
                let _ = request.reply.send(Err(refusal));
                Action::None
            }
        }
    }

    /// Gives the session to the connection that took it; false if that
    /// connection gave up waiting, and the session ends after all.
    fn hand_over(&mut self) -> bool {
        let taker = self.taker.take().expect("handing over");
        let mut written = self.written.take().expect("only resumable sessions are taken");
        written.generation += 1;
        let carried = Carried { meta: std::mem::take(&mut self.meta), written: *written };
        let Err(Ok(carried)) = taker.send(Ok(carried)) else { return true };
        tracing::info!(session = %self.id, "the resuming connection is gone; the session ends");
        (self.meta, self.written) = (carried.meta, Some(Box::new(carried.written)));
        self.life.gone(self.host.session_settings());
        false
    }
}

impl<T> Drop for Session<T> {
    fn drop(&mut self) {
        let metrics = self.host.metrics();
        metrics.pending_bytes.fetch_sub(self.life.pending_bytes(), Relaxed);
        metrics.params_bytes.fetch_sub(self.params.encoded().len(), Relaxed);
    }
}
