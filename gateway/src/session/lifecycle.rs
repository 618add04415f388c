//! A session's life as a state machine without I/O: what its client's
//! frames, the backend's answers, a close, a take-over, a failed write and
//! a deadline do to its phase and its queue of events. Each returns the one
//! [`Action`] that `task` carries out on the socket or the mailbox; the
//! connection is kept exactly while [`Lifecycle::connected`] says so.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use protocol::handover::Refusal;
use runtime::rate::TokenBucket;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::event::{Event, EventKind, Pending};
use super::policy::{self, Answered};
use super::SessionSettings;
use crate::base::close::CloseReason;
use crate::base::message::Message;
use crate::base::transport::Incoming;
use crate::metrics::Count;
use crate::metrics::Metrics;
use crate::resume::replay::{ResumeState, TakeRequest};

/// How long a client gets to answer our close frame.
pub const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// After a frame the transport could not read (too big, malformed), the
/// stream is out of step: we stop reading and give the client this long to
/// read our close frame before the socket goes. Dropped at once, unread
/// bytes would make the kernel reset the connection, losing the frame.
pub const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// The close code a kicked Pusher client gets.
const PUSHER_KICKED: u16 = 4009;

/// The connection that takes a session over, waiting for what it carries.
pub type Taker = oneshot::Sender<Result<ResumeState, Refusal>>;

/// Where the session's client is.
#[derive(Debug)]
pub enum Phase {
    /// A resumable session's client, before its session message (and, if
    /// it `resumed`, what it missed after the `last` message it got).
    Greeting {
        resumed: bool,
        last: Option<u64>,
    },
    Open,
    /// Our close frame is out; `reading` on until the client's answers it.
    Closing {
        deadline: Instant,
        reading: bool,
    },
    /// Dropped without a close: the session waits for a resume until then.
    Parked {
        until: Instant,
    },
    /// A new connection takes the session once its events are done.
    HandingOver(Taker),
    Gone,
}

/// What the task does next, on the socket or the mailbox.
#[derive(Debug, PartialEq)]
pub enum Action {
    None,
    /// Write this to the client, numbered for a replay.
    Write(Message),
    /// Hold this in the mailbox for the client's return.
    HoldForReturn(Message),
    /// Send this close frame (the phase is `Closing` already); should it
    /// fail, the client is [`Lifecycle::gone`].
    SendClose {
        code: u16,
        reason: Cow<'static, str>,
    },
    /// A Pusher client's text message, for `session::pusher` to read.
    Pusher(Bytes),
    /// Join a channel its client asked for (here and at every router, as
    /// `Host::subscribed`), then tell the client so, if there is an answer.
    Join(Box<Joining>),
    /// The backend took the session (its transport starts: an SSE
    /// stream's response), then this.
    Accepted(Box<Action>),
    /// Let the connection go: tell the client why first if `farewell`; a
    /// close asked of the mailbox that parked the session instead is
    /// `withdrawn`; once `parked`, the mailbox keeps what comes.
    LetGo {
        farewell: Option<CloseReason>,
        withdrawn: bool,
        parked: bool,
    },
}

/// A client's own join, and what it hears once joined.
#[derive(Debug, PartialEq)]
pub struct Joining {
    pub channel: protocol::cmd::Channel,
    /// The presence member a Pusher client named.
    pub member: Option<protocol::pusher::PresenceMember>,
    pub answer: Option<Message>,
}

/// One session's phase and the events it owes the backend, in order.
pub struct Lifecycle {
    phase: Phase,
    pending: Pending,
    /// The bytes of the messages in `pending` (at most
    /// `--max-pending-bytes` and one message: u32 keeps an idle session small).
    pending_bytes: u32,
    message_rate: TokenBucket,
    resumable: bool,
    /// A Pusher client's messages are `session::pusher`'s to read first.
    pusher: bool,
    /// Cleared when the connect event failed or was refused: the backend
    /// never saw the session start, so it gets no close event either.
    backend_knows_session: bool,
    close_event_queued: bool,
}

impl Lifecycle {
    /// A session in `phase`, its backend told `first` (connect, or online
    /// for a resumed one) before anything else.
    pub fn new(
        phase: Phase,
        resumable: bool,
        first: Option<EventKind>,
        settings: &SessionSettings,
        now: Instant,
    ) -> Lifecycle {
        let mut pending = Pending::default();
        if let Some(kind) = first {
            pending.push_back(Event { kind, body: Bytes::new() });
        }
        Lifecycle {
            phase,
            pending,
            pending_bytes: 0,
            message_rate: TokenBucket::full(settings.max_message_burst, now),
            resumable,
            pusher: false,
            backend_knows_session: true,
            close_event_queued: false,
        }
    }

    /// Its client speaks Pusher's protocol.
    pub fn speaks_pusher(&mut self) {
        self.pusher = true;
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Whether the connection is still the session's (it goes for good
    /// once parked, handed over or gone).
    pub fn connected(&self) -> bool {
        matches!(self.phase, Phase::Greeting { .. } | Phase::Open | Phase::Closing { .. })
    }

    /// Whether what the client sends is read.
    pub fn reading(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Closing { reading: true, .. })
    }

    /// When the client's time runs out, if it has a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Closing { deadline, .. } | Phase::Parked { until: deadline } => Some(deadline),
            _ => None,
        }
    }

    /// The bytes of client messages waiting for the backend.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes as usize
    }

    /// Leaves `Greeting` for `Open`: whether the client was greeting, and
    /// so gets its session message first.
    pub fn greet(&mut self) -> Option<(bool, Option<u64>)> {
        let Phase::Greeting { resumed, last } = self.phase else { return None };
        self.phase = Phase::Open;
        Some((resumed, last))
    }

    /// The next event for the backend, in the order they came.
    pub fn next_event(&mut self, metrics: &Metrics) -> Option<Event> {
        let event = self.pending.pop_front()?;
        self.pending_bytes -= event.body.len() as u32;
        metrics.sub(Count::PendingBytes, event.body.len());
        Some(event)
    }

    /// What the client sent (`None`: its stream ended).
    pub fn client_frame(&mut self, frame: Option<Incoming>, now: Instant, s: &SessionSettings, m: &Metrics) -> Action {
        match frame {
            Some(Incoming::Message { body, binary }) => self.client_message(body, binary, now, s, m),
            // The transport answers pings and close frames itself; after a
            // close, reading on until the stream ends completes the handshake.
            Some(Incoming::Control) => Action::None,
            // A client that says goodbye (1000, 1001 or no code) ends its
            // session at once; any other close code counts as a drop.
            Some(Incoming::Goodbye(code)) if policy::is_goodbye(code) => {
                if matches!(self.phase, Phase::Open) {
                    self.phase = Phase::Closing { deadline: now + CLOSE_HANDSHAKE_TIMEOUT, reading: true };
                    self.queue_close_event(s);
                }
                Action::None
            }
            Some(Incoming::Violation(violation)) => self.close(policy::violation_close(&violation), now, s, m),
            Some(Incoming::Goodbye(_) | Incoming::Failed(_)) | None => self.dropped(now, s, m),
        }
    }

    fn client_message(&mut self, body: Bytes, binary: bool, now: Instant, s: &SessionSettings, m: &Metrics) -> Action {
        // After our close frame, late messages are dropped.
        if !matches!(self.phase, Phase::Open) {
            return Action::None;
        }
        m.count(Count::MessagesIn);
        if s.max_message_rate > 0.0 && !self.message_rate.take(s.max_message_rate, s.max_message_burst, now) {
            return self.close(CloseReason::RateLimited, now, s, m);
        }
        if self.pusher {
            return match binary {
                false => Action::Pusher(body),
                true => self.reply(Message::text(protocol::pusher::error(None, "Pusher messages are text")), m),
            };
        }
        self.queue(body, binary, None, s, m)
    }

    /// Queues a Pusher client's event for its backend: a message, or a
    /// client event to allow (EVENT=8); never a subscribe of fk's own.
    pub fn queue_event(&mut self, body: Bytes, kind: EventKind, s: &SessionSettings, m: &Metrics) -> Action {
        self.queue(body, false, Some(kind), s, m)
    }

    /// Queues a client's message for the backend (a client's subscribe as
    /// its own event, unless `kind` says), refused with a 429 past the
    /// session's bounds.
    fn queue(
        &mut self,
        body: Bytes,
        binary: bool,
        kind: Option<EventKind>,
        s: &SessionSettings,
        m: &Metrics,
    ) -> Action {
        // Queue up to the limits, then refuse, so one client cannot pile up
        // work without bound and the others keep their share.
        let fits = u32::try_from(self.pending_bytes as usize + body.len()).is_ok();
        if !fits || !policy::admits_message(s, self.pending.len(), self.pending_bytes as usize, body.len()) {
            m.count(Count::MessagesRefusedInFlight);
            return self.reply(policy::gateway_error(429, "too many messages in flight; this one was dropped"), m);
        }
        let (kind, body) = match (kind, policy::subscribe_request(s, &body, binary)) {
            (Some(kind), _) => (kind, body),
            (None, None) => (EventKind::Message { binary }, body),
            (None, Some(Ok(channel))) => (EventKind::Subscribe, channel),
            (None, Some(Err(why))) => return self.reply(policy::gateway_error(400, why), m),
        };
        self.pending_bytes += body.len() as u32;
        m.add(Count::PendingBytes, body.len());
        self.pending.push_back(Event { kind, body });
        Action::None
    }

    /// What the backend's answer (see [`policy::answered`]) does.
    pub fn answered(&mut self, answer: Answered, now: Instant, s: &SessionSettings, m: &Metrics) -> Action {
        match answer {
            Answered::ConnectFailed => {
                self.backend_knows_session = false;
                self.close(CloseReason::BackendUnavailable, now, s, m)
            }
            Answered::Refused { code, reason } => {
                m.count(Count::ConnectRefusedByBackend);
                self.backend_knows_session = false;
                self.send_close(code, reason.into(), true, now, s)
            }
            Answered::Deliver(Some(message)) => self.reply(message, m),
            Answered::Deliver(None) | Answered::Nothing => Action::None,
        }
    }

    /// One message for the client: written while it is there, kept while
    /// it is away, dropped once it is closing.
    pub fn reply(&mut self, message: Message, m: &Metrics) -> Action {
        let action = match self.phase {
            Phase::Greeting { .. } | Phase::Open => Action::Write(message),
            Phase::Parked { .. } | Phase::HandingOver(_) => Action::HoldForReturn(message),
            Phase::Closing { .. } | Phase::Gone => return Action::None,
        };
        m.count(Count::RepliesOut);
        action
    }

    /// Closes the client for `reason`, or parks the session instead where
    /// that is the better guess (a silent resumable client).
    pub fn close(&mut self, reason: CloseReason, now: Instant, s: &SessionSettings, m: &Metrics) -> Action {
        if policy::parks_instead_of_closing(reason, self.resumable) && matches!(self.phase, Phase::Open) {
            m.closed(reason);
            let parked = matches!(self.dropped(now, s, m), Action::LetGo { .. });
            return Action::LetGo { farewell: Some(reason), withdrawn: true, parked };
        }
        if !matches!(self.phase, Phase::Open | Phase::Parked { .. }) {
            return Action::None;
        }
        m.closed(reason);
        // A kick's 4000 would send pusher-js to TLS ("tls_only"); 4009 is
        // Pusher's own for a connection the app ended: not retried.
        let code = match (self.pusher, reason) {
            (true, CloseReason::Kicked) => PUSHER_KICKED,
            _ => reason.code(),
        };
        self.send_close(code, reason.text().into(), policy::close_in_step(reason), now, s)
    }

    /// A close frame with `code` and `reason`; `in_step` says the stream
    /// can still be read, to wait for the client's half of the handshake.
    fn send_close(
        &mut self,
        code: u16,
        reason: Cow<'static, str>,
        in_step: bool,
        now: Instant,
        s: &SessionSettings,
    ) -> Action {
        match self.phase {
            Phase::Open => {
                let wait = if in_step { CLOSE_HANDSHAKE_TIMEOUT } else { CLOSE_LINGER };
                self.phase = Phase::Closing { deadline: now + wait, reading: in_step };
                // The session is over for the backend now, not when the
                // client gets round to answering the close frame.
                self.queue_close_event(s);
                Action::SendClose { code, reason }
            }
            // No one to tell: the session just ends.
            Phase::Parked { .. } => {
                self.gone(s);
                Action::None
            }
            _ => Action::None,
        }
    }

    /// A write to the client failed, or found it reading nothing for the
    /// write timeout (`timed_out`: its socket is full, so no close frame
    /// can reach it).
    pub fn write_failed(&mut self, timed_out: bool, now: Instant, s: &SessionSettings, m: &Metrics) -> Action {
        if timed_out {
            m.closed(CloseReason::SlowConsumer);
        }
        self.dropped(now, s, m)
    }

    /// The connection dropped without a goodbye. A resumable session parks
    /// for the grace period (the backend hears it is offline); any other
    /// session ends.
    fn dropped(&mut self, now: Instant, s: &SessionSettings, m: &Metrics) -> Action {
        let parks = policy::parks_on_drop(self.resumable, s.resume_grace, self.backend_knows_session);
        if !(parks && matches!(self.phase, Phase::Open)) {
            self.gone(s);
            return Action::None;
        }
        m.count(Count::Parked);
        self.phase = Phase::Parked { until: now + s.resume_grace };
        self.pending.push_back(Event { kind: EventKind::Offline, body: Bytes::new() });
        Action::LetGo { farewell: None, withdrawn: false, parked: true }
    }

    /// The client's deadline passed: a parked session was not resumed in
    /// time, or a closing client did not finish the close handshake.
    pub fn deadline_passed(&mut self, s: &SessionSettings, m: &Metrics) {
        if matches!(self.phase, Phase::Parked { .. }) {
            m.closed(CloseReason::GraceExpired);
        }
        self.gone(s);
    }

    /// A new connection presents this session's token, asking for its
    /// `generation` (the session's own is `current`; `None`: not
    /// resumable). The one it holds wins: a connection still open here is
    /// told why it goes, as its client has evidently moved on. A refused
    /// request is answered at once.
    pub fn take(&mut self, current: Option<u32>, request: TakeRequest, m: &Metrics) -> Action {
        let reachable = matches!(self.phase, Phase::Open | Phase::Parked { .. });
        if let Err(refusal) = policy::may_take(current, reachable, request.generation) {
            let _ = request.reply.send(Err(refusal));
            return Action::None;
        }
        let action = match self.phase {
            Phase::Open => {
                m.closed(CloseReason::ResumedElsewhere);
                self.pending.push_back(Event { kind: EventKind::Offline, body: Bytes::new() });
                Action::LetGo { farewell: Some(CloseReason::ResumedElsewhere), withdrawn: false, parked: true }
            }
            _ => Action::None,
        };
        self.phase = Phase::HandingOver(request.reply);
        action
    }

    /// The connection that takes the session over, once every event is
    /// sent: the session is gone from here (should the taker have given
    /// up, [`Lifecycle::gone`] ends it after all).
    pub fn hand_over(&mut self) -> Option<Taker> {
        if !self.pending.is_empty() || !matches!(self.phase, Phase::HandingOver(_)) {
            return None;
        }
        match std::mem::replace(&mut self.phase, Phase::Gone) {
            Phase::HandingOver(taker) => Some(taker),
            _ => unreachable!("handing over"),
        }
    }

    /// The client is gone for good (or the connection that was to take
    /// the session gave up): the session's last events may still wait for
    /// the backend, the close event last.
    pub fn gone(&mut self, s: &SessionSettings) {
        self.phase = Phase::Gone;
        self.queue_close_event(s);
    }

    /// Queues the close event once, behind the events still pending, so
    /// the backend sees it last.
    fn queue_close_event(&mut self, s: &SessionSettings) {
        if s.close_event && self.backend_knows_session && !self.close_event_queued {
            self.close_event_queued = true;
            self.pending.push_back(Event { kind: EventKind::Close, body: Bytes::new() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::transport::Violation;

    fn settings(flags: &[&str]) -> SessionSettings {
        let args = std::iter::once("gateway").chain(flags.iter().copied());
        SessionSettings::new(&<crate::Config as clap::Parser>::parse_from(args))
    }

    /// A session past its connect event, in `phase`.
    fn session(phase: Phase, resumable: bool, s: &SessionSettings) -> Lifecycle {
        let mut life = Lifecycle::new(phase, resumable, Some(EventKind::Connect), s, Instant::now());
        assert_eq!(life.next_event(&Metrics::default()).unwrap().kind, EventKind::Connect);
        life
    }

    fn kinds(life: &mut Lifecycle) -> Vec<EventKind> {
        std::iter::from_fn(|| life.next_event(&Metrics::default())).map(|event| event.kind).collect()
    }

    /// The events still owed by a session that is gone.
    fn gone_with(life: &mut Lifecycle) -> Vec<EventKind> {
        assert!(matches!(life.phase(), Phase::Gone), "{:?}", life.phase());
        kinds(life)
    }

    fn message(text: &str) -> Option<Incoming> {
        Some(Incoming::Message { body: Bytes::copy_from_slice(text.as_bytes()), binary: false })
    }

    fn closing(life: &Lifecycle, now: Instant) -> (Duration, bool) {
        match life.phase() {
            Phase::Closing { deadline, reading } => (*deadline - now, *reading),
            other => panic!("not closing: {other:?}"),
        }
    }

    const MESSAGE: EventKind = EventKind::Message { binary: false };

    #[test]
    fn a_greeting_client_is_open_once_greeted_and_its_first_event_goes_first() {
        let (s, now) = (settings(&[]), Instant::now());
        let mut life =
            Lifecycle::new(Phase::Greeting { resumed: true, last: Some(7) }, true, Some(EventKind::Online), &s, now);
        assert!(life.connected() && !life.reading(), "connected, but not read before its session message");
        assert_eq!(life.reply(Message::text("early"), &Metrics::default()), Action::Write(Message::text("early")));
        assert_eq!(life.greet(), Some((true, Some(7))));
        assert!(matches!(life.phase(), Phase::Open));
        assert_eq!(life.greet(), None);
        assert_eq!(kinds(&mut life), [EventKind::Online]);
        let plain = Lifecycle::new(Phase::Open, false, None, &s, now);
        assert_eq!(plain.deadline(), None);
    }

    #[test]
    fn an_open_clients_messages_queue_in_order_and_count_their_bytes() {
        let (s, m, now) = (settings(&[]), Metrics::default(), Instant::now());
        let mut life = session(Phase::Open, false, &s);
        assert!(life.connected() && life.reading());
        for text in ["one", "two"] {
            assert_eq!(life.client_frame(message(text), now, &s, &m), Action::None);
        }
        assert_eq!((life.pending_bytes(), m.get(Count::PendingBytes)), (6, 6));
        assert_eq!(life.client_frame(Some(Incoming::Control), now, &s, &m), Action::None);
        let bodies: Vec<Bytes> = std::iter::from_fn(|| life.next_event(&m)).map(|event| event.body).collect();
        assert_eq!(bodies, ["one", "two"]);
        assert_eq!((life.pending_bytes(), m.get(Count::PendingBytes), m.get(Count::MessagesIn)), (0, 0, 2));
    }

    #[test]
    fn past_the_queue_limit_a_message_is_refused_and_past_the_rate_the_client_is_closed() {
        let (m, now) = (Metrics::default(), Instant::now());
        let s = settings(&["--max-pending-events", "1"]);
        let mut life = session(Phase::Open, false, &s);
        assert_eq!(life.client_frame(message("kept"), now, &s, &m), Action::None);
        let Action::Write(refusal) = life.client_frame(message("refused"), now, &s, &m) else { panic!("no refusal") };
        assert!(refusal.payload().unwrap().data().starts_with(br#"{"type":"error""#));
        assert_eq!(kinds(&mut life), [MESSAGE]);

        let s = settings(&["--max-message-rate", "1", "--max-message-burst", "1"]);
        let mut life = session(Phase::Open, false, &s);
        assert_eq!(life.client_frame(message("within"), now, &s, &m), Action::None);
        let closed = life.client_frame(message("over"), now, &s, &m);
        let reason = CloseReason::RateLimited;
        assert_eq!(closed, Action::SendClose { code: reason.code(), reason: reason.text().into() });
        assert_eq!(closing(&life, now), (CLOSE_HANDSHAKE_TIMEOUT, true));
        assert_eq!(kinds(&mut life), [MESSAGE, EventKind::Close], "the backend hears it ended, last");
    }

    #[test]
    fn a_goodbye_closes_at_once_and_late_messages_are_dropped() {
        let (s, m, now) = (settings(&[]), Metrics::default(), Instant::now());
        for code in [None, Some(1000), Some(1001)] {
            let mut life = session(Phase::Open, true, &s);
            assert_eq!(life.client_frame(Some(Incoming::Goodbye(code)), now, &s, &m), Action::None);
            assert_eq!(closing(&life, now), (CLOSE_HANDSHAKE_TIMEOUT, true), "reads on for the handshake");
            assert_eq!(life.client_frame(message("late"), now, &s, &m), Action::None);
            assert_eq!(life.reply(Message::text("late reply"), &m), Action::None);
            assert_eq!(life.client_frame(None, now, &s, &m), Action::None);
            assert_eq!(gone_with(&mut life), vec![EventKind::Close]);
        }
    }

    #[test]
    fn a_drop_parks_a_resumable_session_and_ends_any_other() {
        let (s, m, now) = (settings(&[]), Metrics::default(), Instant::now());
        let drops = [None, Some(Incoming::Goodbye(Some(4000))), Some(Incoming::Failed("reset".into()))];
        for drop in drops {
            let mut life = session(Phase::Open, true, &s);
            let parked = Action::LetGo { farewell: None, withdrawn: false, parked: true };
            assert_eq!(life.client_frame(drop, now, &s, &m), parked);
            assert!(matches!(life.phase(), Phase::Parked { until } if *until == now + s.resume_grace));
            assert!(!life.connected() && !life.reading());
            assert_eq!(life.deadline(), Some(now + s.resume_grace));
            assert_eq!(life.reply(Message::text("kept"), &m), Action::HoldForReturn(Message::text("kept")));
            assert_eq!(kinds(&mut life), [EventKind::Offline]);
        }
        assert_eq!(m.get(Count::Parked), 3);
        let mut plain = session(Phase::Open, false, &s);
        assert_eq!(plain.client_frame(None, now, &s, &m), Action::None);
        assert_eq!(gone_with(&mut plain), vec![EventKind::Close]);
        let no_grace = settings(&["--resume-grace-ms", "0"]);
        let mut life = session(Phase::Open, true, &no_grace);
        assert_eq!(life.client_frame(None, now, &no_grace, &m), Action::None);
        assert!(matches!(life.phase(), Phase::Gone), "no grace, no resume");
    }

    #[test]
    fn a_violation_closes_out_of_step_and_a_failed_write_is_a_drop() {
        let (s, m, now) = (settings(&[]), Metrics::default(), Instant::now());
        let mut life = session(Phase::Open, true, &s);
        let too_big = Some(Incoming::Violation(Violation::TooBig("2 MB".into())));
        let code = CloseReason::TooBig.code();
        assert!(matches!(life.client_frame(too_big, now, &s, &m), Action::SendClose { code: c, .. } if c == code));
        assert_eq!(closing(&life, now), (CLOSE_LINGER, false), "not read again, lingers for the frame");
        assert_eq!(life.write_failed(false, now, &s, &m), Action::None);
        assert_eq!(gone_with(&mut life), vec![EventKind::Close]);

        let mut life = session(Phase::Open, true, &s);
        assert!(matches!(life.write_failed(true, now, &s, &m), Action::LetGo { parked: true, .. }));
        let mut life = session(Phase::Open, false, &s);
        assert_eq!(life.write_failed(true, now, &s, &m), Action::None);
        assert!(matches!(life.phase(), Phase::Gone));
    }

    #[test]
    fn the_backends_answers_deliver_refuse_or_fail_the_connect() {
        let (s, m, now) = (settings(&[]), Metrics::default(), Instant::now());
        let mut life = session(Phase::Open, false, &s);
        let hello = Answered::Deliver(Some(Message::text("hello")));
        assert_eq!(life.answered(hello, now, &s, &m), Action::Write(Message::text("hello")));
        assert_eq!(life.answered(Answered::Deliver(None), now, &s, &m), Action::None);
        assert_eq!(life.answered(Answered::Nothing, now, &s, &m), Action::None);
        assert_eq!(m.get(Count::RepliesOut), 1);

        let refused = Answered::Refused { code: 4403, reason: "no entry".into() };
        assert_eq!(life.answered(refused, now, &s, &m), Action::SendClose { code: 4403, reason: "no entry".into() });
        assert_eq!(closing(&life, now), (CLOSE_HANDSHAKE_TIMEOUT, true));
        assert_eq!(kinds(&mut life), [], "a backend that refused the session hears no close");

        let mut life = session(Phase::Open, true, &s);
        let failed = life.answered(Answered::ConnectFailed, now, &s, &m);
        assert!(matches!(failed, Action::SendClose { code: 1011, .. }), "{failed:?}");
        assert_eq!(life.client_frame(None, now, &s, &m), Action::None, "never parks: the backend never knew it");
        assert_eq!(gone_with(&mut life), vec![]);
    }

    #[test]
    fn an_idle_resumable_client_is_parked_with_a_farewell_and_any_other_is_closed() {
        let (s, m, now) = (settings(&[]), Metrics::default(), Instant::now());
        let mut life = session(Phase::Open, true, &s);
        let parked = Action::LetGo { farewell: Some(CloseReason::IdleTimeout), withdrawn: true, parked: true };
        assert_eq!(life.close(CloseReason::IdleTimeout, now, &s, &m), parked);
        assert!(matches!(life.phase(), Phase::Parked { .. }));
        assert_eq!(kinds(&mut life), [EventKind::Offline]);

        let no_grace = settings(&["--resume-grace-ms", "0"]);
        let mut life = session(Phase::Open, true, &no_grace);
        let ended = Action::LetGo { farewell: Some(CloseReason::IdleTimeout), withdrawn: true, parked: false };
        assert_eq!(life.close(CloseReason::IdleTimeout, now, &no_grace, &m), ended, "told why, then gone");
        assert!(matches!(life.phase(), Phase::Gone));

        let mut life = session(Phase::Open, false, &s);
        assert!(matches!(life.close(CloseReason::IdleTimeout, now, &s, &m), Action::SendClose { .. }));
    }

    #[test]
    fn a_parked_session_closed_or_out_of_time_ends_without_a_frame() {
        let (s, m, now) = (settings(&[]), Metrics::default(), Instant::now());
        let mut life = session(Phase::Parked { until: now }, true, &s);
        assert_eq!(life.close(CloseReason::Kicked, now, &s, &m), Action::None, "no one to tell");
        assert_eq!(gone_with(&mut life), vec![EventKind::Close]);
        assert_eq!(life.close(CloseReason::Kicked, now, &s, &m), Action::None, "gone is gone");

        let mut life = session(Phase::Parked { until: now }, true, &s);
        life.deadline_passed(&s, &m);
        assert_eq!(gone_with(&mut life), vec![EventKind::Close]);
        let mut life = session(Phase::Open, false, &s);
        life.close(CloseReason::Kicked, now, &s, &m);
        life.deadline_passed(&s, &m);
        assert_eq!(gone_with(&mut life), vec![EventKind::Close], "one close event");
    }

    /// A take-over request for `generation`, and where its answer arrives.
    fn take_request(generation: u32) -> (TakeRequest, oneshot::Receiver<Result<ResumeState, Refusal>>) {
        let (reply, answer) = oneshot::channel();
        (TakeRequest { generation, reply }, answer)
    }

    /// Asks `life` to be taken with a token of `generation`; its refusal, if any.
    fn refusal(life: &mut Lifecycle, current: Option<u32>, generation: u32) -> Option<Refusal> {
        let (request, mut answer) = take_request(generation);
        assert_eq!(life.take(current, request, &Metrics::default()), Action::None);
        answer.try_recv().ok().map(|answer| match answer {
            Err(refusal) => refusal,
            Ok(_) => panic!("answered with the session before its hand-over"),
        })
    }

    #[test]
    fn a_take_over_needs_the_current_generation_and_a_reachable_client() {
        let (s, m, now) = (settings(&[]), Metrics::default(), Instant::now());
        let mut life = session(Phase::Open, true, &s);
        assert_eq!(refusal(&mut life, Some(2), 1), Some(Refusal::Reused));
        assert_eq!(refusal(&mut life, None, 1), Some(Refusal::Expired), "not resumable");
        let (request, _answer) = take_request(1);
        let moved = Action::LetGo { farewell: Some(CloseReason::ResumedElsewhere), withdrawn: false, parked: true };
        assert_eq!(life.take(Some(1), request, &m), moved);
        assert!(matches!(life.phase(), Phase::HandingOver(_)) && !life.connected());
        assert_eq!(
            life.reply(Message::text("for the taker"), &m),
            Action::HoldForReturn(Message::text("for the taker"))
        );
        assert_eq!(refusal(&mut life, Some(1), 1), Some(Refusal::Expired), "taken already");
        assert!(life.hand_over().is_none(), "not before the backend heard it is offline");
        assert_eq!(kinds(&mut life), [EventKind::Offline]);
        assert!(life.hand_over().is_some());
        assert_eq!(gone_with(&mut life), [], "gone from here, with no close event");

        let mut parked = session(Phase::Parked { until: now }, true, &s);
        assert_eq!(refusal(&mut parked, Some(1), 1), None, "taken");
        assert_eq!(kinds(&mut parked), [], "offline was said when it parked");
        let taker = parked.hand_over().expect("handed over");
        drop(taker);
        parked.gone(&s);
        assert_eq!(gone_with(&mut parked), [EventKind::Close], "the taker gave up: the session ends");

        let mut closing = session(Phase::Open, true, &s);
        closing.client_frame(Some(Incoming::Goodbye(None)), now, &s, &m);
        assert_eq!(refusal(&mut closing, Some(1), 1), Some(Refusal::Expired));
    }

    #[test]
    fn a_gone_session_takes_nothing_more() {
        let (s, m, now) = (settings(&[]), Metrics::default(), Instant::now());
        let mut life = session(Phase::Open, true, &s);
        life.gone(&s);
        assert!(!life.connected() && !life.reading() && life.deadline().is_none());
        assert_eq!(life.client_frame(message("late"), now, &s, &m), Action::None);
        assert_eq!(life.reply(Message::text("late"), &m), Action::None);
        assert_eq!(life.close(CloseReason::Kicked, now, &s, &m), Action::None);
        assert_eq!(life.write_failed(true, now, &s, &m), Action::None);
        assert_eq!(life.answered(Answered::ConnectFailed, now, &s, &m), Action::None);
        assert_eq!(refusal(&mut life, Some(1), 1), Some(Refusal::Expired));
        assert!(life.hand_over().is_none());
        assert_eq!(gone_with(&mut life), [EventKind::Close], "one close event, whatever came after");
    }

    #[test]
    fn without_close_events_none_is_queued() {
        let (m, now) = (Metrics::default(), Instant::now());
        let s = settings(&["--close-event", "false"]);
        let mut life = session(Phase::Open, false, &s);
        life.client_frame(None, now, &s, &m);
        assert_eq!(gone_with(&mut life), vec![]);
    }
}
