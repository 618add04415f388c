//! One router link's task: it links (AUTH, heartbeat, the full report),
//! writes what the sessions queued, reads what the router sends and
//! delivers it, and links again with backoff when the link drops.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use protocol::cmd::Channel;
use protocol::handover::{GatewayId, Refusal, ResumeAsk, SessionState};
use protocol::{Due, Frame, FrameCodec, FrameKind, Hello, Liveness, SessionId, ToGateway};
use runtime::Shutdown;
use tokio::net::TcpStream;

/// How long a session has to describe itself for a router's DESCRIBE.
const DESCRIBE_WAIT: Duration = Duration::from_secs(1);
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::codec::Framed;

use super::barriers::{Barriers, Change, Changed, Release};
use super::outgoing::{batch, tell_counts, LinkEvent, Outgoing};
use super::{LinkStats, RouterAsk, RouterLinkSettings, Waiting};
use crate::base::message::{Message, Payload};
use crate::session::Registry;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(super) struct Link {
    /// Its place among the links: the bit for it in an mailbox's accept mask.
    pub(super) index: usize,
    pub(super) addr: String,
    /// The routers' token, sent in the AUTH that opens the link.
    pub(super) token: Bytes,
    pub(super) settings: RouterLinkSettings,
    pub(super) registry: Arc<Registry>,
    pub(super) identity: GatewayId,
    pub(super) asks: mpsc::Sender<RouterAsk>,
    pub(super) outgoing: Arc<Outgoing>,
    /// Every link's, this one's among them: what all routers are told.
    pub(super) all: Arc<[Arc<Outgoing>]>,
    /// Every link's changes not yet told to the router that made them.
    pub(super) barriers: Arc<std::sync::Mutex<Barriers>>,
    pub(super) waiting: Waiting,
    pub(super) stats: Arc<LinkStats>,
    pub(super) moves: Arc<Notify>,
}

type Conn = Framed<TcpStream, FrameCodec>;

impl Link {
    pub(super) async fn maintain(self, shutdown: Shutdown) {
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
                    self.barriers.lock().unwrap().relinked(self.index);
                    self.outgoing.linked.store(true, Relaxed);
                    self.moves.notify_waiters();
                    let served = self.serve(conn, &shutdown).await;
                    self.outgoing.linked.store(false, Relaxed);
                    self.moves.notify_waiters();
                    // A router gone holds no other's change.
                    self.release_waiting();
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
        for (id, membership) in self.registry.memberships() {
            for channel in membership.channels {
                match membership.named.iter().find(|join| join.channel.as_str() == channel) {
                    Some(join) => frames.push(join.to_frame()),
                    None => by_channel.entry(channel).or_default().push(id),
                }
            }
            if let Some(user) = membership.user {
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
        let mut live = Liveness::leading(self.settings.beat(), Instant::now().into_std());
        let mut heard = false;
        loop {
            let deadline = Instant::from_std(live.next_deadline().expect("a leading side always beats"));
            tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                _ = tokio::time::sleep_until(deadline) => match live.on_timeout(Instant::now().into_std()) {
                    Some(Due::Beat) => {
                        self.release_waiting();
                        self.pushed(self.registry.sweep_catchups(Instant::now().into_std()));
                        self.write(&mut sink, vec![self.settings.beat().to_frame()]).await?
                    }
                    Some(Due::Silent(silence)) => {
                        self.stats.silent_routers.fetch_add(1, Relaxed);
                        return Err(format!("router silent for {silence:?}"));
                    }
                    None => {}
                },
                events = self.outgoing.take() => self.write(&mut sink, batch(events?)).await?,
                frame = stream.next() => {
                    if !heard {
                        // The router is alive and reading this connection: its report is in.
                        heard = true;
                        self.outgoing.pending.lock().unwrap().reporting.clear();
                    }
                    let frame = match frame {
                        Some(Ok(frame)) => ToGateway::from_frame(frame)?,
                        Some(Err(err)) => return Err(err.to_string()),
                        None => return Err("router closed the link".into()),
                    };
                    let beat = match frame {
                        ToGateway::Heartbeat(beat) => Some(beat),
                        _ => None,
                    };
                    live.on_frame(beat, Instant::now().into_std());
                    match frame {
                        ToGateway::Heartbeat(beat) => self.outgoing.router_max_frame.store(beat.max_frame, Relaxed),
                        ToGateway::Resync => {
                            tracing::info!(router = %self.addr, "router asked for a resync");
                            self.write(&mut sink, self.memberships()).await?;
                        }
                        ToGateway::Synced(protocol::Sync(barrier)) => {
                            self.barriers.lock().unwrap().synced(self.index, barrier);
                            self.release_waiting();
                            self.moves.notify_waiters();
                        }
                        frame => self.deliver(frame)?,
                    }
                }
            }
        }
    }

    /// This router's `applied`th change, to `channel`: told to it at once
    /// if no other router is linked, else once they all answer the barrier
    /// asked of them after the count (see `barriers`).
    fn changed(&self, applied: u64, channel: Channel, new_route: bool) {
        let others: Vec<&Arc<Outgoing>> = (self.all.iter().enumerate())
            .filter(|(link, outgoing)| *link != self.index && outgoing.linked.load(Relaxed))
            .map(|(_, outgoing)| outgoing)
            .collect();
        let change = Changed { upto: applied, channel: channel.clone(), new_route };
        let change = self.barriers.lock().unwrap().changed(self.index, change, others.len(), Instant::now().into_std());
        match change {
            Change::Told => self.outgoing.queue_count(self.registry.release(self.index, applied, &channel)),
            Change::Ask(barrier) => others.into_iter().for_each(|outgoing| outgoing.queue_sync(barrier)),
            Change::Queued => {}
        }
    }

    /// Tells each router of its changes that every other has the counts of
    /// (or that waited long enough).
    fn release_waiting(&self) {
        let linked = |link: usize| self.all[link].linked.load(Relaxed);
        let releases = self.barriers.lock().unwrap().releases(linked, Instant::now().into_std());
        for Release { link, upto, channel } in releases {
            self.all[link].queue_count(self.registry.release(link, upto, &channel));
        }
    }

    fn pushed(&self, sessions: usize) {
        self.stats.pushes_queued.fetch_add(sessions as u64, Relaxed);
    }

    /// A publish's pushes, or, with no member here, the count that stops
    /// this router sending the channel's publishes.
    fn published(&self, taken: Result<usize, protocol::Interest>) {
        match taken {
            Ok(taken) => self.pushed(taken),
            Err(none_here) => self.outgoing.queue_count(none_here),
        }
    }

    fn deliver(&self, frame: ToGateway) -> Result<(), String> {
        match frame {
            ToGateway::Push { sessions, payload } => {
                self.pushed(self.registry.push(self.index, sessions, &for_many(payload)));
            }
            ToGateway::Broadcast(payload) => self.pushed(self.registry.push_all(self.index, &for_many(payload))),
            ToGateway::Kick(sessions) => self.registry.kick(sessions),
            ToGateway::Orphaned(sessions) => {
                if self.asks.try_send(RouterAsk::Orphaned(sessions)).is_err() {
                    tracing::error!(router = %self.addr, "router request queue full: close events dropped");
                }
            }
            ToGateway::Describe(session) => {
                if let Some(mailbox) = self.registry.mailbox(&session) {
                    let (reply, described) = tokio::sync::oneshot::channel();
                    mailbox.request_describe(reply);
                    let (outgoing, stats) = (self.outgoing.clone(), self.stats.clone());
                    tokio::spawn(async move {
                        if let Ok(Ok(description)) = tokio::time::timeout(DESCRIBE_WAIT, described).await {
                            outgoing.queue(LinkEvent::Frame(description.to_frame(&session)), &stats);
                        }
                    });
                }
            }
            ToGateway::Drain => {
                tracing::warn!(router = %self.addr, "a router asked this gateway to drain");
                let _ = self.asks.try_send(RouterAsk::Drain);
            }
            ToGateway::Occupancy(occupancy) => {
                if self.asks.try_send(RouterAsk::Occupancy(occupancy)).is_err() {
                    tracing::error!(router = %self.addr, "router request queue full: an occupancy event dropped");
                }
            }
            ToGateway::Move { kind, session, to, rest } => self.move_frame(kind, session, to, rest)?,
            ToGateway::Publish { channel, except, payload } => {
                self.published(self.registry.publish(self.index, &channel, &for_many(payload), &except));
            }
            ToGateway::KeptPub(kept) => {
                let message = for_many(kept.payload);
                self.published(self.registry.publish_kept(
                    self.index,
                    &kept.channel,
                    kept.offset,
                    &message,
                    &kept.except,
                ));
            }
            ToGateway::KeptEnd { sessions, end } => {
                self.pushed(self.registry.history_ended(&end.channel, &sessions, end.upto, Instant::now().into_std()));
            }
            ToGateway::Joined { sessions, channel, awaiting_history } => {
                if awaiting_history {
                    // Before they join: no live message reaches them ahead of their history.
                    self.registry.await_history(&channel, &sessions, Instant::now().into_std());
                }
                self.membership_changed(&sessions, channel, true);
            }
            ToGateway::Left { sessions, channel } => self.membership_changed(&sessions, channel, false),
            ToGateway::Bound { session, user } => self.registry.note_user(session, &user),
            ToGateway::Heartbeat(_) | ToGateway::Resync | ToGateway::Synced(_) => {
                unreachable!("the link's own frames are taken in `serve`")
            }
        }
        Ok(())
    }

    /// Every other router hears the channel's new count at once; this one
    /// hears it, and that its change is applied, once the others have it.
    fn membership_changed(&self, sessions: &[SessionId], channel: Channel, joined: bool) {
        let (count, applied, new_route) = self.registry.note_channel(self.index, sessions, &channel, joined);
        if let Some(count) = count {
            tell_counts(&self.all, &[count], Some(self.index));
        }
        self.changed(applied, channel, new_route);
    }

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
                if let Some(mailbox) = self.registry.mailbox(&session) {
                    mailbox.accept_from(self.index, to == self.identity);
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

/// A router's payload as a message for many sessions: framed and
/// compressed at most once, for all.
fn for_many(payload: protocol::cmd::Payload) -> Message {
    Message::new(Payload::shared(payload.data), payload.binary)
}
