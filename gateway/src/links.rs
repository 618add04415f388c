//! The gateway's link to each router: it reports sessions that start and
//! end (and all of them again after every reconnect), and delivers the
//! pushes the router sends back. It also carries sessions that move
//! between gateways (see `handover`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use protocol::cmd::{Channel, Command};
use protocol::handover::{GatewayId, Refusal, ResumeAsk, SessionState};
use protocol::{Frame, FrameCodec, FrameKind, Heartbeat, Hello, Interest, SessionId, MAX_IDS_PER_FRAME};
use runtime::Shutdown;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;
use tokio_util::codec::Framed;

use crate::front::message::{Message, Payload};
use crate::session::memberships::ChannelCount;
use crate::session::Registry;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Session starts and ends, and frames, queued per router link; past it
/// the link starts over.
const LINK_QUEUE: usize = 65_536;
/// Ended sessions kept per link to report on its next connection.
const MAX_UNREPORTED: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
enum LinkEvent {
    Connected(SessionId),
    Closed(SessionId),
    Frame(Frame),
}

/// What a router asks of this gateway that needs more than the registry.
#[derive(Debug)]
pub enum RouterAsk {
    /// Send the close events of a dead gateway's sessions.
    Orphaned(Vec<SessionId>),
    /// Hand `session` to gateway `to`, if the ask proves a client holds
    /// its current token.
    Resume { link: usize, session: SessionId, to: GatewayId, ask: ResumeAsk },
}

/// The answer a resume on this gateway waits for.
pub type HandoverReply = Result<SessionState, Refusal>;
type Waiting = Arc<Mutex<HashMap<SessionId, oneshot::Sender<HandoverReply>>>>;

/// How the links behave: heartbeats and the largest frame this gateway takes.
#[derive(Clone, Copy, Debug)]
pub struct LinkSettings {
    pub heartbeat: Duration,
    pub max_frame: usize,
}

impl LinkSettings {
    /// The heartbeat this gateway sends.
    pub fn beat(self) -> Heartbeat {
        Heartbeat { interval: self.heartbeat, max_frame: self.max_frame }
    }
}

/// The links now, for the gateway's metrics.
#[derive(Default)]
pub struct LinkHealth {
    pub up: usize,
    pub queued: usize,
    pub unreported: usize,
}

/// Counts the links keep, for the gateway's metrics.
#[derive(Default)]
pub struct LinkStats {
    /// Links closed because the router said nothing for three of its heartbeats.
    pub silent_routers: AtomicU64,
    /// Links started over because their queue overflowed.
    pub overflows: AtomicU64,
    /// Ended sessions whose CLOSE no router will hear (past `MAX_UNREPORTED`).
    pub closes_lost: AtomicU64,
    /// Pushes queued for sessions: counted once per frame, by the link,
    /// rather than by every session that writes one.
    pub pushes_queued: AtomicU64,
}

/// One link's outgoing side, shared by the sessions (which never wait on
/// it) and the link's task.
#[derive(Default)]
struct Outgoing {
    pending: Mutex<Pending>,
    ready: Notify,
    /// The largest frame data the router takes, once its heartbeat said.
    router_max_frame: AtomicUsize,
    linked: AtomicBool,
}

#[derive(Default)]
struct Pending {
    events: VecDeque<LinkEvent>,
    /// Sessions that ended while their CLOSE could not go out: the next
    /// connection reports them, so the router forgets their memberships.
    unreported: HashSet<SessionId>,
    /// Ends sent in a new connection's report, not yet known to have
    /// reached a live router: a stopped router's kernel takes the report
    /// all the same. They count as reported once the router is heard on
    /// that connection, and are unreported again if it ends first.
    reporting: Vec<SessionId>,
    /// Channel counts not yet sent, the newest of each channel: a router
    /// keeps only the newest, so a burst of closes costs one each.
    counts: HashMap<String, Interest>,
    /// Set when the queue overflowed: the link starts over.
    overflowed: bool,
    open: bool,
}

impl Pending {
    /// An event the router will not get on this connection: a start is
    /// reported with all the others on the next, an end is kept for it.
    fn miss(&mut self, event: LinkEvent, stats: &LinkStats) {
        if let LinkEvent::Closed(id) = event {
            if self.unreported.len() < MAX_UNREPORTED {
                self.unreported.insert(id);
            } else {
                stats.closes_lost.fetch_add(1, Relaxed);
            }
        }
    }

    /// The connection is over: what it did not send is missed.
    fn close(&mut self, stats: &LinkStats) {
        self.open = false;
        self.overflowed = false;
        self.unreported.extend(self.reporting.drain(..));
        self.counts = HashMap::new();
        for event in std::mem::take(&mut self.events) {
            self.miss(event, stats);
        }
    }
}

impl Outgoing {
    /// Queues an event without waiting; one that does not fit is missed,
    /// and the link starts over.
    fn queue(&self, event: LinkEvent, stats: &LinkStats) {
        let mut pending = self.pending.lock().unwrap();
        if !pending.open || pending.overflowed {
            return pending.miss(event, stats);
        }
        if pending.events.len() >= LINK_QUEUE {
            pending.overflowed = true;
            stats.overflows.fetch_add(1, Relaxed);
            pending.miss(event, stats);
        } else {
            pending.events.push_back(event);
        }
        drop(pending);
        self.ready.notify_one();
    }

    /// Queues a channel's count, in place of an older one not yet sent.
    fn queue_count(&self, interest: Interest) {
        let mut pending = self.pending.lock().unwrap();
        if !pending.open {
            return;
        }
        match pending.counts.get_mut(interest.channel.as_str()) {
            Some(queued) if queued.version > interest.version => return,
            Some(queued) => *queued = interest,
            None => drop(pending.counts.insert(interest.channel.as_str().to_owned(), interest)),
        }
        drop(pending);
        self.ready.notify_one();
    }

    /// Waits for events and takes them all, the channel counts last; an
    /// error once the queue overflowed.
    async fn take(&self) -> Result<VecDeque<LinkEvent>, &'static str> {
        loop {
            {
                let mut pending = self.pending.lock().unwrap();
                if pending.overflowed {
                    return Err("the link's queue overflowed: starting over");
                }
                if !pending.events.is_empty() || !pending.counts.is_empty() {
                    let mut events = std::mem::take(&mut pending.events);
                    let counts = std::mem::take(&mut pending.counts).into_values();
                    events.extend(counts.map(|count| LinkEvent::Frame(count.to_frame())));
                    return Ok(events);
                }
            }
            self.ready.notified().await;
        }
    }
}

/// Handles to every router link this gateway keeps.
pub struct RouterLinks {
    links: Arc<[Arc<Outgoing>]>,
    /// Told of every MOVED applied and every link up or down: what a
    /// session's move waits on.
    moves: Arc<Notify>,
    waiting: Waiting,
    settings: LinkSettings,
    pub stats: Arc<LinkStats>,
}

impl RouterLinks {
    /// Requests that need the whole gateway go to `asks`.
    pub fn spawn(
        addrs: &[String],
        token: Bytes,
        settings: LinkSettings,
        registry: Arc<Registry>,
        identity: GatewayId,
        asks: mpsc::Sender<RouterAsk>,
        shutdown: Shutdown,
    ) -> RouterLinks {
        let waiting = Waiting::default();
        let stats = Arc::new(LinkStats::default());
        let moves = Arc::new(Notify::new());
        let links: Arc<[Arc<Outgoing>]> = addrs.iter().map(|_| Arc::default()).collect();
        for (index, (addr, outgoing)) in addrs.iter().zip(links.iter()).enumerate() {
            let link = Link {
                index,
                addr: addr.clone(),
                token: token.clone(),
                settings,
                registry: registry.clone(),
                identity,
                asks: asks.clone(),
                outgoing: outgoing.clone(),
                all: links.clone(),
                waiting: waiting.clone(),
                stats: stats.clone(),
                moves: moves.clone(),
            };
            tokio::spawn(link.maintain(shutdown.clone()));
        }
        RouterLinks { links, moves, waiting, settings, stats }
    }

    /// Returns once `done` holds, read again on every MOVED and every link
    /// up or down, or once `wait` has passed; whether it holds.
    pub async fn until(&self, wait: Duration, done: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let changed = self.moves.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done() {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return done();
            }
        }
    }

    /// Which links are up now, a bit per link.
    pub fn linked_mask(&self) -> u64 {
        self.links
            .iter()
            .enumerate()
            .filter(|(_, link)| link.linked.load(Relaxed))
            .fold(0, |mask, (i, _)| mask | (1 << i))
    }

    /// The largest frame every linked router takes (this gateway's own
    /// `--max-frame` until they said).
    pub fn router_max_frame(&self) -> usize {
        let announced = self.links.iter().map(|link| link.router_max_frame.load(Relaxed)).filter(|max| *max > 0);
        announced.fold(self.settings.max_frame, usize::min)
    }

    /// Links up now, events queued on them, and ended sessions waiting to
    /// be reported.
    pub fn health(&self) -> LinkHealth {
        let mut health = LinkHealth::default();
        for link in self.links.iter() {
            let pending = link.pending.lock().unwrap();
            health.up += usize::from(link.linked.load(Relaxed));
            health.queued += pending.events.len() + pending.counts.len();
            health.unreported += pending.unreported.len() + pending.reporting.len();
        }
        health
    }

    pub fn send_to(&self, link: usize, frame: Frame) {
        if let Some(link) = self.links.get(link) {
            link.queue(LinkEvent::Frame(frame), &self.stats);
        }
    }

    pub fn send_to_all(&self, frame: Frame) {
        for link in 0..self.links.len() {
            self.send_to(link, frame.clone());
        }
    }

    /// Waits for the router's answer to a resume of `session` asked here.
    pub fn await_handover(&self, session: SessionId) -> oneshot::Receiver<HandoverReply> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap().insert(session, tx);
        rx
    }

    pub fn stop_waiting(&self, session: &SessionId) {
        self.waiting.lock().unwrap().remove(session);
    }

    /// Reports a session that started here; never waits.
    pub fn connected(&self, id: SessionId) {
        self.notify(LinkEvent::Connected(id));
    }

    /// Reports a session that ended here, and the counts of the channels
    /// it was in; never waits.
    pub fn closed(&self, id: SessionId, counts: Vec<ChannelCount>) {
        self.notify(LinkEvent::Closed(id));
        self.channels_changed(counts);
    }

    /// Tells every router how many members of these channels are here now.
    pub fn channels_changed(&self, counts: Vec<ChannelCount>) {
        tell_counts(&self.links, &counts);
    }

    fn notify(&self, event: LinkEvent) {
        for link in self.links.iter() {
            link.queue(event.clone(), &self.stats);
        }
    }
}

/// Queues each count for every router, as CH_SUB or CH_UNSUB.
fn tell_counts(links: &[Arc<Outgoing>], counts: &[ChannelCount]) {
    for count in counts {
        for (index, link) in links.iter().enumerate() {
            link.queue_count(count.interest(index));
        }
    }
}

/// Closes a run of CONN or CLOSE ids into frames.
fn end_run(frames: &mut Vec<Frame>, kind: Option<FrameKind>, run: &mut Vec<SessionId>) {
    if let Some(kind) = kind {
        frames.extend(Frame::for_sessions(kind, &std::mem::take(run), Bytes::new(), false));
    }
}

/// Folds events into as few CONN/CLOSE frames as possible, keeping their order.
fn batch(events: VecDeque<LinkEvent>) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut run: Vec<SessionId> = Vec::new();
    let mut run_kind = None;
    for event in events {
        let (kind, id) = match event {
            LinkEvent::Connected(id) => (FrameKind::Conn, id),
            LinkEvent::Closed(id) => (FrameKind::Close, id),
            LinkEvent::Frame(frame) => {
                end_run(&mut frames, run_kind.take(), &mut run);
                frames.push(frame);
                continue;
            }
        };
        if run_kind != Some(kind) || run.len() == MAX_IDS_PER_FRAME {
            end_run(&mut frames, run_kind, &mut run);
            run_kind = Some(kind);
        }
        run.push(id);
    }
    end_run(&mut frames, run_kind, &mut run);
    frames
}

struct Link {
    /// Its place among the links: the bit for it in an outbox's accept mask.
    index: usize,
    addr: String,
    /// The routers' token, sent in the AUTH that opens the link.
    token: Bytes,
    settings: LinkSettings,
    registry: Arc<Registry>,
    identity: GatewayId,
    asks: mpsc::Sender<RouterAsk>,
    outgoing: Arc<Outgoing>,
    /// Every link's, this one's among them: what all routers are told.
    all: Arc<[Arc<Outgoing>]>,
    waiting: Waiting,
    stats: Arc<LinkStats>,
    moves: Arc<Notify>,
}

type Conn = Framed<TcpStream, FrameCodec>;

impl Link {
    async fn maintain(self, shutdown: Shutdown) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let attempt = tokio::select! {
                _ = shutdown.wait() => return,
                attempt = self.connect() => attempt,
            };
            match attempt {
                Ok(conn) => {
                    backoff = Duration::from_millis(100);
                    tracing::info!(router = %self.addr, "linked to router");
                    // The report made this router route our sessions here:
                    // every push from it from now on is for us.
                    self.registry.accept_from_all(self.index);
                    self.outgoing.linked.store(true, Relaxed);
                    self.moves.notify_waiters();
                    let served = self.serve(conn, &shutdown).await;
                    self.outgoing.linked.store(false, Relaxed);
                    self.moves.notify_waiters();
                    self.outgoing.pending.lock().unwrap().close(&self.stats);
                    if let Err(reason) = served {
                        tracing::warn!(router = %self.addr, reason, "router link lost");
                    }
                    if shutdown.is_triggered() {
                        return;
                    }
                }
                Err(err) => {
                    self.outgoing.pending.lock().unwrap().close(&self.stats);
                    tracing::warn!(router = %self.addr, %err, "cannot link to router; retrying in {backoff:?}")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.wait() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Opens the link: AUTH, a heartbeat (our interval and frame limit),
    /// every live session (CONN) and membership, how many members of each
    /// channel are here (CH_SUB), and the sessions that
    /// ended while no link could say so (CLOSE). Events queue from the
    /// moment of the snapshot and go out after it.
    async fn connect(&self) -> std::io::Result<Conn> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let mut conn = Framed::new(stream, FrameCodec::new(self.settings.max_frame));
        let GatewayId { server_id, worker_id } = self.identity;
        let hello = Hello::Gateway { server_id, worker_id, token: self.token.clone() };
        let unreported: Vec<SessionId> = {
            let mut pending = self.outgoing.pending.lock().unwrap();
            pending.open = true;
            let unreported: Vec<SessionId> = pending.unreported.drain().collect();
            pending.reporting.clone_from(&unreported);
            unreported
        };
        let ids = self.registry.ids();
        let report = [hello.to_frame(), self.settings.beat().to_frame()]
            .into_iter()
            .chain(Frame::for_sessions(FrameKind::Conn, &ids, Bytes::new(), false))
            .chain(self.memberships())
            .chain(self.registry.relinked(self.index).into_iter().map(|interest| interest.to_frame()))
            .chain(Frame::for_sessions(FrameKind::Close, &unreported, Bytes::new(), false));
        let send = async {
            for frame in report {
                conn.feed(frame).await?;
            }
            conn.flush().await
        };
        let sent = match tokio::time::timeout(self.write_timeout(), send).await {
            Ok(sent) => sent.map_err(std::io::Error::other),
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the report timed out")),
        };
        // On an error, the caller's `Pending::close` makes the ends unreported again.
        sent.map(|()| conn)
    }

    /// How long a write to the router may take: as long as it may stay silent.
    fn write_timeout(&self) -> Duration {
        self.settings.beat().dead_after()
    }

    /// Every session's channels (CH_ADD, one batch per channel) and user
    /// (BIND): sent on each link and when a router asks, so a router whose
    /// store lost its data gets it back.
    fn memberships(&self) -> Vec<Frame> {
        let mut by_channel: std::collections::HashMap<String, Vec<SessionId>> = std::collections::HashMap::new();
        let mut frames = Vec::new();
        for (id, belongs) in self.registry.belongs() {
            for channel in belongs.channels {
                by_channel.entry(channel).or_default().push(id);
            }
            if let Some(user) = belongs.user {
                frames.push(Frame::new(FrameKind::Bind, Bytes::copy_from_slice(id.as_bytes()), Bytes::from(user)));
            }
        }
        for (channel, ids) in by_channel {
            frames.extend(Frame::for_sessions(FrameKind::ChAdd, &ids, Bytes::from(channel), false));
        }
        frames
    }

    /// Writes `frames` in one flush, within the write timeout.
    async fn write(
        &self,
        sink: &mut futures_util::stream::SplitSink<Conn, Frame>,
        frames: Vec<Frame>,
    ) -> Result<(), String> {
        let write = async {
            for frame in frames {
                sink.feed(frame).await?;
            }
            sink.flush().await
        };
        match tokio::time::timeout(self.write_timeout(), write).await {
            Ok(written) => written.map_err(|e| e.to_string()),
            Err(_) => Err(format!("a write to the router took over {:?}", self.write_timeout())),
        }
    }

    /// Sends what sessions report and our heartbeats; delivers what the
    /// router sends. A router silent for three of its heartbeats is dead.
    async fn serve(&self, conn: Conn, shutdown: &Shutdown) -> Result<(), String> {
        let (mut sink, mut stream) = conn.split();
        let mut beats = tokio::time::interval_at(Instant::now() + self.settings.heartbeat, self.settings.heartbeat);
        let mut silence = self.settings.beat().dead_after();
        let mut last_heard = Instant::now();
        let mut heard = false;
        loop {
            tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                _ = beats.tick() => self.write(&mut sink, vec![self.settings.beat().to_frame()]).await?,
                events = self.outgoing.take() => self.write(&mut sink, batch(events?)).await?,
                _ = tokio::time::sleep_until(last_heard + silence) => {
                    self.stats.silent_routers.fetch_add(1, Relaxed);
                    return Err(format!("router silent for {silence:?}"));
                }
                frame = stream.next() => {
                    last_heard = Instant::now();
                    if !heard {
                        // The router is alive and reading this connection: its report is in.
                        heard = true;
                        self.outgoing.pending.lock().unwrap().reporting.clear();
                    }
                    match frame {
                        Some(Ok(frame)) if frame.kind() == Some(FrameKind::Heartbeat) => {
                            let beat = Heartbeat::from_frame(&frame).map_err(str::to_owned)?;
                            silence = beat.dead_after();
                            self.outgoing.router_max_frame.store(beat.max_frame, Relaxed);
                        }
                        Some(Ok(frame)) if frame.kind() == Some(FrameKind::Resync) => {
                            tracing::info!(router = %self.addr, "router asked for a resync");
                            self.write(&mut sink, self.memberships()).await?;
                        }
                        Some(Ok(frame)) => self.deliver(frame)?,
                        Some(Err(err)) => return Err(err.to_string()),
                        None => return Err("router closed the link".into()),
                    }
                }
            }
        }
    }

    fn pushed(&self, sessions: usize) {
        self.stats.pushes_queued.fetch_add(sessions as u64, Relaxed);
    }

    fn deliver(&self, frame: Frame) -> Result<(), String> {
        let kind = frame.kind();
        match kind {
            Some(FrameKind::SendMsg) => {
                let message = Message::new(Payload::shared(frame.data), frame.binary);
                // The session area alone: `frame.data` has moved into the message.
                let ids = SessionId::packed(&frame.sessions).map_err(|e| e.to_string())?;
                self.pushed(self.registry.push(self.index, ids, &message));
            }
            Some(FrameKind::SendAll) => {
                let message = Message::new(Payload::shared(frame.data), frame.binary);
                self.pushed(self.registry.push_all(self.index, &message));
            }
            Some(FrameKind::Kick) => {
                self.registry.kick(frame.session_ids().map_err(|e| e.to_string())?);
            }
            Some(FrameKind::Orphaned) => {
                let ids = frame.session_ids().map_err(|e| e.to_string())?.collect();
                if self.asks.try_send(RouterAsk::Orphaned(ids)).is_err() {
                    tracing::error!(router = %self.addr, "router request queue full: close events dropped");
                }
            }
            Some(kind @ (FrameKind::Resume | FrameKind::Moved | FrameKind::Handover | FrameKind::ResumeRefused)) => {
                let session = SessionId::parse(&frame.sessions).map_err(|e| e.to_string())?;
                let (to, rest) = GatewayId::split(&frame.data).map_err(|e| e.to_string())?;
                self.move_frame(kind, session, to, rest)?;
            }
            Some(FrameKind::ChPub | FrameKind::PublishExcept) => {
                let (channel, payload, except) = match Command::from_frame(frame).map_err(|e| e.to_string())? {
                    Command::Publish(publish) => (publish.channel, publish.payload, Vec::new()),
                    Command::PublishExcept(publish) => (publish.channel, publish.payload, publish.except),
                    _ => unreachable!("CH_PUB and PUBLISH_EXCEPT parse as publishes"),
                };
                let message = Message::new(Payload::shared(payload.data), payload.binary);
                match self.registry.publish(self.index, &channel, &message, &except) {
                    Ok(taken) => self.pushed(taken),
                    Err(none_here) => self.outgoing.queue_count(none_here),
                }
            }
            Some(kind @ (FrameKind::ChAdd | FrameKind::ChDel)) => {
                let ids: Vec<SessionId> = frame.session_ids().map_err(|e| e.to_string())?.collect();
                let channel = std::str::from_utf8(&frame.data).map_err(|e| e.to_string())?;
                let channel = Channel::new(channel).map_err(|e| e.to_string())?;
                // Every router hears a new count; this one hears it anyway,
                // as word that its change is applied.
                match self.registry.note_channel(self.index, &ids, &channel, kind == FrameKind::ChAdd) {
                    (count, true) => tell_counts(&self.all, &[count]),
                    (count, false) => self.outgoing.queue_count(count.interest(self.index)),
                }
            }
            Some(FrameKind::Bind) => {
                let id = SessionId::parse(&frame.sessions).map_err(|e| e.to_string())?;
                self.registry.note_user(id, &String::from_utf8_lossy(&frame.data));
            }
            _ => return Err(format!("unexpected frame type {} from the router", frame.raw_kind)),
        }
        Ok(())
    }

    /// A frame of a session's move between gateways (`to` is the new one).
    fn move_frame(&self, kind: FrameKind, session: SessionId, to: GatewayId, rest: Bytes) -> Result<(), String> {
        match kind {
            FrameKind::Resume => {
                let ask = ResumeAsk::decode(&rest).map_err(|e| e.to_string())?;
                let ask = RouterAsk::Resume { link: self.index, session, to, ask };
                if self.asks.try_send(ask).is_err() {
                    tracing::error!(router = %self.addr, %session, "router request queue full: resume dropped");
                }
            }
            // This router routes the session to `to` now: the new gateway
            // takes its pushes from here on, the old one no longer.
            FrameKind::Moved => {
                if let Some(outbox) = self.registry.outbox(&session) {
                    outbox.accept_from(self.index, to == self.identity);
                    self.moves.notify_waiters();
                }
            }
            _ => {
                let reply = match kind {
                    FrameKind::Handover => SessionState::decode(rest).map_err(|_| Refusal::Failed),
                    _ => Err(Refusal::from_u8(rest.first().copied().unwrap_or(0))),
                };
                match self.waiting.lock().unwrap().remove(&session) {
                    Some(waiting) => {
                        let _ = waiting.send(reply);
                    }
                    None => tracing::warn!(%session, "hand-over nobody waits for dropped"),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn of_a_channels_counts_not_yet_sent_only_the_newest_goes() {
        let outgoing = Outgoing::default();
        let count = |channel: &str, version: u64| Interest {
            channel: Channel::new(channel).unwrap(),
            members: version as u32,
            version,
            changes_seen: 0,
        };
        outgoing.queue_count(count("room", 1));
        assert!(outgoing.pending.lock().unwrap().counts.is_empty(), "nothing queues while the link is down");
        outgoing.pending.lock().unwrap().open = true;
        for version in [2, 4, 3] {
            outgoing.queue_count(count("room", version));
        }
        outgoing.queue_count(count("hall", 1));
        outgoing.queue(LinkEvent::Closed(SessionId::from_u64(1)), &LinkStats::default());
        let mut taken = Vec::from(outgoing.take().await.unwrap());
        assert_eq!(taken.remove(0), LinkEvent::Closed(SessionId::from_u64(1)), "counts go after the other events");
        taken.sort_by_key(|event| format!("{event:?}"));
        let frames = [count("hall", 1), count("room", 4)].map(|count| LinkEvent::Frame(count.to_frame()));
        assert_eq!(taken, frames);
    }
}
