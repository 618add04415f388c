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
mod pusher;
mod wait;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use protocol::SessionId;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use super::event::EventKind;
use super::lifecycle::{Action, Joining, Lifecycle, Phase, CLOSE_LINGER};
use super::mailbox::{Mailbox, Taken};
use super::Host;
use crate::admission::Seat;
use crate::base::message::Message;
use crate::base::transport::Transport;
use crate::metrics::Count;
use crate::resume::replay::{ReplayLog, ResumeState};
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
    /// A new session, by the id its front chose (`SessionId::random`);
    /// its client speaks Pusher's protocol to `pusher`'s app.
    New { id: SessionId, resumable: bool, pusher: Option<super::pusher::PusherStart> },
    /// A connection that took over a session: its mailbox, what it carried,
    /// and how many messages the client says it got.
    Resumed { id: SessionId, mailbox: Arc<Mailbox>, carried: ResumeState, last: Option<u64> },
}

struct Session<T, H: Host> {
    id: SessionId,
    host: Arc<H>,
    /// The client's connection, while [`Lifecycle::connected`].
    conn: Option<T>,
    mailbox: Arc<Mailbox>,
    /// This connection's own params (address, upgrade URI, headers).
    params: ParamBlock,
    /// What the backend asked to remember (`X-Meta-*`), sent with every
    /// later event as `META_*`; none for most sessions.
    meta: Option<Box<ParamBlock>>,
    life: Lifecycle,
    /// Present when the session is resumable.
    replay_log: Option<Box<ReplayLog>>,
    /// Its place under `--max-connections`, given back when it ends.
    _seat: Seat,
    /// Runs while the client has a deadline (closing, parked).
    timer: Option<Pin<Box<Sleep>>>,
    /// Which source [`Session::poll_wake`] looks at first.
    turn: u8,
    /// When it started, or came to this gateway: seconds since the epoch.
    started: u32,
    /// A Pusher client's side of it.
    pusher: Option<Box<super::pusher::PusherClient>>,
}

/// The session's whole life. Built here, outside the returned future, so
/// the future holds the session once (not also the stream it was built
/// from): an idle connection is mostly this future, and it adds up.
/// `seat` is its place under `--max-connections`, given back when it ends.
pub fn run<T: Transport, H: Host>(
    host: Arc<H>,
    conn: T,
    params: ParamBlock,
    seat: Seat,
    start: Start,
) -> impl Future<Output = ()> + Send {
    let settings = host.session_settings();
    // A new session's backend may refuse it: its transport starts once it is taken.
    let taken = !(matches!(start, Start::New { .. }) && settings.connect_event);
    let mut pusher = None;
    let (id, mailbox, meta, replay_log, life, new) = match start {
        Start::New { id, resumable, pusher: app } => {
            let mailbox = Arc::new(Mailbox::new(settings.mailbox.clone()));
            let replay_log = resumable.then(|| Box::new(ReplayLog::new(0, 1, settings.resume_budget().clone())));
            let phase = if resumable { Phase::Greeting { resumed: false, last: None } } else { Phase::Open };
            let connect = settings.connect_event.then_some(EventKind::Connect);
            let mut life = Lifecycle::new(phase, resumable, connect, settings, Instant::now());
            if let Some(start) = app {
                life.speaks_pusher();
                let socket_id = protocol::pusher::socket_id(&id);
                pusher = Some(Box::new(super::pusher::PusherClient::new(start, socket_id, Instant::now())));
            }
            (id, mailbox, ParamBlock::default(), replay_log, life, true)
        }
        Start::Resumed { id, mailbox, carried, last } => {
            mailbox.park(false);
            let greeting = Phase::Greeting { resumed: true, last };
            let life = Lifecycle::new(greeting, true, Some(EventKind::Online), settings, Instant::now());
            (id, mailbox, carried.meta, Some(Box::new(carried.replay_log)), life, false)
        }
    };
    host.metrics().count(Count::ConnectionsOpened);
    host.metrics().add(Count::ParamsBytes, params.encoded().len());
    let mut session = Session {
        id,
        host,
        conn: Some(conn),
        mailbox,
        params,
        meta: boxed_meta(meta),
        life,
        replay_log,
        _seat: seat,
        timer: None,
        turn: 0,
        started: unix_now() as u32,
        pusher,
    };
    async move {
        if new {
            session.host.registry().insert(session.id, session.mailbox.clone());
            session.host.opened(session.id);
        }
        if taken {
            Box::pin(session.accepted()).await;
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

impl<T: Transport, H: Host> Session<T, H> {
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
                    None if matches!(self.life.phase(), Phase::Gone) => break,
                    None if self.hand_over() => return Outcome::HandedOver,
                    None => {}
                }
            }
            // The client left mid-request: the backend may stop early.
            if matches!(self.life.phase(), Phase::Gone) {
                if let Some(switch) = abort.take() {
                    let _ = switch.send(());
                }
            }
            let wake = std::future::poll_fn(|cx| self.poll_wake(&mut in_flight, cx)).await;
            let action = match wake {
                Wake::Reply(reply) => {
                    (in_flight, abort) = (None, None);
                    match self.on_reply(*reply) {
                        (action, false) => action,
                        // Boxed with the action: neither sits in an idle future.
                        (action, true) => Action::Accepted(Box::new(action)),
                    }
                }
                Wake::Frame(frame) => {
                    self.on_client_frame(&frame);
                    let (settings, metrics) = (self.host.session_settings(), self.host.metrics());
                    self.life.client_frame(frame, Instant::now(), settings, metrics)
                }
                Wake::Taken(Taken::Messages(batch)) => Box::pin(self.write_batch(batch, true)).await,
                Wake::Taken(Taken::Close(reason)) => {
                    let (settings, metrics) = (self.host.session_settings(), self.host.metrics());
                    self.life.close(reason, Instant::now(), settings, metrics)
                }
                Wake::Taken(Taken::Describe(reply)) => {
                    let _ = reply.send(self.describe());
                    Action::None
                }
                Wake::Taken(Taken::Take(request)) => {
                    let generation = self.replay_log.as_ref().map(|log| log.generation);
                    self.life.take(generation, request, self.host.metrics())
                }
                Wake::Deadline => {
                    match self.life.phase() {
                        Phase::Parked { .. } => {
                            tracing::info!(session = %self.id, "not resumed within the grace period")
                        }
                        _ => tracing::debug!(session = %self.id, "client did not finish the close handshake"),
                    }
                    self.life.deadline_passed(self.host.session_settings(), self.host.metrics());
                    Action::None
                }
            };
            match action {
                // Most wakes (a push written, a message queued) end here.
                Action::None => self.let_go_if_disconnected(),
                action => Box::pin(self.carry_out(action)).await,
            }
        }
        tracing::debug!(session = %self.id, "closed");
        Outcome::Ended
    }

    /// What the backend asked to remember.
    fn meta(&self) -> &ParamBlock {
        static NONE: ParamBlock = ParamBlock::EMPTY;
        self.meta.as_deref().unwrap_or(&NONE)
    }

    /// How it is, for the operator's page.
    fn describe(&self) -> protocol::SessionDescription {
        let param = |name: &[u8]| self.params.get(name).map(|v| String::from_utf8_lossy(&v).into_owned());
        let remote = match (param(b"REMOTE_ADDR"), param(b"REMOTE_PORT")) {
            (Some(addr), Some(port)) if self.conn.is_some() => Some(format!("{addr}:{port}")),
            _ => None,
        };
        let age_s = u64::from((unix_now() as u32).saturating_sub(self.started));
        protocol::SessionDescription { age_s, meta: self.meta().pairs_owned(), remote }
    }

    /// Carries out what the lifecycle decided, on the socket and the
    /// mailbox, and what a failed write makes of it; then lets the
    /// connection go if the session no longer has one.
    async fn carry_out(&mut self, mut action: Action) {
        loop {
            action = match action {
                Action::None => break,
                Action::Accepted(then) => {
                    self.accepted().await;
                    *then
                }
                Action::Write(message) => self.write_batch(VecDeque::from([message]), true).await,
                Action::HoldForReturn(message) => {
                    self.mailbox.push(message);
                    Action::None
                }
                Action::Pusher(text) => self.pusher_message(&text),
                Action::Join(joining) => {
                    let Joining { channel, member, answer } = *joining;
                    let host = self.host.clone();
                    host.subscribed(self.id, &channel, member).await;
                    match answer {
                        Some(message) => self.life.reply(message, self.host.metrics()),
                        None => Action::None,
                    }
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
        self.let_go_if_disconnected();
    }

    /// The connection goes once the lifecycle no longer counts it the
    /// session's (parked, handed over, gone).
    fn let_go_if_disconnected(&mut self) {
        if !self.life.connected() {
            self.conn = None;
        }
    }

    /// Gives the session to the connection that took it, once its events
    /// are sent: true when given; false if there is nothing to give yet,
    /// or that connection gave up waiting and the session ends after all.
    fn hand_over(&mut self) -> bool {
        let Some(taker) = self.life.hand_over() else { return false };
        let mut log = self.replay_log.take().expect("only resumable sessions are taken");
        log.generation += 1;
        let meta = self.meta.take().map_or_else(ParamBlock::default, |meta| *meta);
        let carried = ResumeState { meta, replay_log: *log };
        let Err(Ok(carried)) = taker.send(Ok(carried)) else { return true };
        tracing::info!(session = %self.id, "the resuming connection is gone; the session ends");
        (self.meta, self.replay_log) = (boxed_meta(carried.meta), Some(Box::new(carried.replay_log)));
        self.life.gone(self.host.session_settings());
        false
    }
}

impl<T, H: Host> Drop for Session<T, H> {
    fn drop(&mut self) {
        let metrics = self.host.metrics();
        metrics.sub(Count::PendingBytes, self.life.pending_bytes());
        metrics.sub(Count::ParamsBytes, self.params.encoded().len());
    }
}

/// Most sessions have no meta: they hold an empty pointer.
fn boxed_meta(meta: ParamBlock) -> Option<Box<ParamBlock>> {
    (!meta.is_empty()).then(|| Box::new(meta))
}

/// Seconds since the epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    /// An idle WebSocket session is mostly its task: this struct and the
    /// wait in `drive`, in one tokio cell (128-byte steps). At 296 bytes
    /// the future is 408 (release) and the cell 512; a byte more and it is
    /// 640, 128 more bytes for every idle connection (docs/BENCHMARKS.md).
    #[test]
    fn an_idle_websocket_session_stays_within_its_task_cell() {
        type WebSocket = crate::front::websocket::connection::WebSocket<tokio::net::TcpStream>;
        let size = std::mem::size_of::<super::Session<WebSocket, crate::state::Gateway>>();
        assert!(size <= 296, "{size} bytes");
    }
}
