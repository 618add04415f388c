//! The gateway's link to each router: it reports sessions that start and
//! end (and all of them again after every reconnect), and delivers the
//! pushes the router sends back. It also carries sessions that move
//! between gateways (see `handover`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use router::protocol::handover::{resume_generation, GatewayId, Refusal, SessionState};
use router::protocol::{Frame, FrameCodec, FrameKind, Hello, SessionId, MAX_IDS_PER_FRAME};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use crate::session::Registry;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Session starts and ends queued per router link.
const LINK_QUEUE: usize = 65_536;

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
    /// Hand `session` to gateway `to`, if `generation` is its token's.
    Resume { link: usize, session: SessionId, to: GatewayId, generation: u32 },
}

/// The answer a resume on this gateway waits for.
pub type HandoverReply = Result<SessionState, Refusal>;
type Waiting = Arc<Mutex<HashMap<SessionId, oneshot::Sender<HandoverReply>>>>;

/// Handles to every router link this gateway keeps.
pub struct RouterLinks {
    queues: Vec<mpsc::Sender<LinkEvent>>,
    linked: Vec<Arc<AtomicBool>>,
    waiting: Waiting,
}

impl RouterLinks {
    /// Requests that need the whole gateway go to `asks`.
    pub fn spawn(
        addrs: &[String],
        token: Bytes,
        registry: Arc<Registry>,
        identity: GatewayId,
        asks: mpsc::Sender<RouterAsk>,
        shutdown: CancellationToken,
    ) -> RouterLinks {
        let waiting = Waiting::default();
        let (mut queues, mut linked) = (Vec::new(), Vec::new());
        for (index, addr) in addrs.iter().enumerate() {
            let (tx, rx) = mpsc::channel(LINK_QUEUE);
            let flag = Arc::new(AtomicBool::new(false));
            let link = Link {
                index,
                addr: addr.clone(),
                token: token.clone(),
                registry: registry.clone(),
                identity,
                asks: asks.clone(),
                events: rx,
                linked: flag.clone(),
                waiting: waiting.clone(),
            };
            tokio::spawn(link.maintain(shutdown.clone()));
            queues.push(tx);
            linked.push(flag);
        }
        RouterLinks { queues, linked, waiting }
    }

    /// Which links are up now, a bit per link.
    pub fn linked_mask(&self) -> u64 {
        self.linked.iter().enumerate().filter(|(_, up)| up.load(Relaxed)).fold(0, |mask, (i, _)| mask | (1 << i))
    }

    pub async fn send_to(&self, link: usize, frame: Frame) {
        if let Some(queue) = self.queues.get(link) {
            let _ = queue.send(LinkEvent::Frame(frame)).await;
        }
    }

    pub async fn send_to_all(&self, frame: Frame) {
        for link in 0..self.queues.len() {
            self.send_to(link, frame.clone()).await;
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

    pub async fn connected(&self, id: SessionId) {
        self.notify(LinkEvent::Connected(id)).await;
    }

    pub async fn closed(&self, id: SessionId) {
        self.notify(LinkEvent::Closed(id)).await;
    }

    async fn notify(&self, event: LinkEvent) {
        for queue in &self.queues {
            // The link task always drains its queue, linked or not.
            let _ = queue.send(event.clone()).await;
        }
    }
}

/// Closes a run of CONN or CLOSE ids into frames.
fn end_run(frames: &mut Vec<Frame>, kind: Option<FrameKind>, run: &mut Vec<SessionId>) {
    if let Some(kind) = kind {
        frames.extend(Frame::for_sessions(kind, &std::mem::take(run), Bytes::new(), false));
    }
}

/// A push as the client will see it: binary when the router says so or the
/// payload is not UTF-8, text otherwise.
pub fn to_message(data: Bytes, binary: bool) -> Message {
    if binary {
        return Message::Binary(data);
    }
    if std::str::from_utf8(&data).is_err() {
        return Message::Binary(data);
    }
    Message::Text(Utf8Bytes::try_from(data).expect("checked above"))
}

struct Link {
    /// Its place among the links: the bit for it in an outbox's accept mask.
    index: usize,
    addr: String,
    /// The routers' token, sent in the AUTH that opens the link.
    token: Bytes,
    registry: Arc<Registry>,
    identity: GatewayId,
    asks: mpsc::Sender<RouterAsk>,
    events: mpsc::Receiver<LinkEvent>,
    linked: Arc<AtomicBool>,
    waiting: Waiting,
}

impl Link {
    async fn maintain(mut self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let attempt = tokio::select! {
                _ = shutdown.cancelled() => return,
                attempt = self.connect() => attempt,
            };
            match attempt {
                Ok(conn) => {
                    backoff = Duration::from_millis(100);
                    tracing::info!(router = %self.addr, "linked to router");
                    self.linked.store(true, Relaxed);
                    let served = self.serve(conn, &shutdown).await;
                    self.linked.store(false, Relaxed);
                    if let Err(reason) = served {
                        tracing::warn!(router = %self.addr, reason, "router link lost");
                    }
                    if shutdown.is_cancelled() {
                        return;
                    }
                }
                Err(err) => {
                    tracing::warn!(router = %self.addr, %err, "cannot link to router; retrying in {backoff:?}")
                }
            }
            // While unlinked, drop session events: the resync after the
            // next connect reports the sessions as they are then.
            let pause = tokio::time::sleep(backoff);
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    _ = &mut pause => break,
                    _ = shutdown.cancelled() => return,
                    event = self.events.recv() => if event.is_none() { return },
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn connect(&self) -> std::io::Result<Framed<TcpStream, FrameCodec>> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let mut conn = Framed::new(stream, FrameCodec::default());
        let GatewayId { server_id, worker_id } = self.identity;
        let hello = Hello::Gateway { server_id, worker_id, token: self.token.clone() };
        conn.feed(hello.to_frame()).await.map_err(std::io::Error::other)?;
        let ids = self.registry.ids();
        let report = Frame::for_sessions(FrameKind::Conn, &ids, Bytes::new(), false).chain(self.memberships());
        for frame in report {
            conn.feed(frame).await.map_err(std::io::Error::other)?;
        }
        conn.flush().await.map_err(std::io::Error::other)?;
        Ok(conn)
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

    async fn serve(&mut self, conn: Framed<TcpStream, FrameCodec>, shutdown: &CancellationToken) -> Result<(), String> {
        let (mut sink, mut stream) = conn.split();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                event = self.events.recv() => {
                    let Some(event) = event else { return Ok(()) };
                    for frame in self.batch(event) {
                        sink.feed(frame).await.map_err(|e| e.to_string())?;
                    }
                    sink.flush().await.map_err(|e| e.to_string())?;
                }
                frame = stream.next() => match frame {
                    Some(Ok(frame)) if frame.kind() == Some(FrameKind::Resync) => {
                        tracing::info!(router = %self.addr, "router asked for a resync");
                        for frame in self.memberships() {
                            sink.feed(frame).await.map_err(|e| e.to_string())?;
                        }
                        sink.flush().await.map_err(|e| e.to_string())?;
                    }
                    Some(Ok(frame)) => self.deliver(frame)?,
                    Some(Err(err)) => return Err(err.to_string()),
                    None => return Err("router closed the link".into()),
                },
            }
        }
    }

    /// Folds the queued events into as few CONN/CLOSE frames as possible,
    /// keeping their order.
    fn batch(&mut self, first: LinkEvent) -> Vec<Frame> {
        let mut frames = Vec::new();
        let mut run: Vec<SessionId> = Vec::new();
        let mut run_kind = None;
        let mut next = Some(first);
        while let Some(event) = next {
            next = self.events.try_recv().ok();
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

    fn deliver(&self, frame: Frame) -> Result<(), String> {
        let kind = frame.kind();
        match kind {
            Some(FrameKind::SendMsg) => {
                let ids = frame.session_ids().map_err(|e| e.to_string())?;
                self.registry.push(self.index, &ids, &to_message(frame.data, frame.binary));
            }
            Some(FrameKind::SendAll) => {
                self.registry.push_all(self.index, &to_message(frame.data, frame.binary));
            }
            Some(FrameKind::Kick) => {
                let ids = frame.session_ids().map_err(|e| e.to_string())?;
                self.registry.kick(&ids);
            }
            Some(FrameKind::Orphaned) => {
                let ids = frame.session_ids().map_err(|e| e.to_string())?;
                if self.asks.try_send(RouterAsk::Orphaned(ids)).is_err() {
                    tracing::error!(router = %self.addr, "router request queue full: close events dropped");
                }
            }
            Some(kind @ (FrameKind::Resume | FrameKind::Moved | FrameKind::Handover | FrameKind::ResumeRefused)) => {
                let session = SessionId::parse(&frame.sessions).map_err(|e| e.to_string())?;
                let (to, rest) = GatewayId::split(&frame.data).map_err(|e| e.to_string())?;
                self.move_frame(kind, session, to, rest)?;
            }
            Some(kind @ (FrameKind::ChAdd | FrameKind::ChDel)) => {
                let ids = frame.session_ids().map_err(|e| e.to_string())?;
                let channel = std::str::from_utf8(&frame.data).map_err(|e| e.to_string())?;
                self.registry.note_channel(&ids, channel, kind == FrameKind::ChAdd);
            }
            Some(FrameKind::Bind) => {
                let id = SessionId::parse(&frame.sessions).map_err(|e| e.to_string())?;
                self.registry.note_user(id, &String::from_utf8_lossy(&frame.data));
            }
            _ => return Err(format!("unexpected frame type {} from the router", frame.kind)),
        }
        Ok(())
    }

    /// A frame of a session's move between gateways (`to` is the new one).
    fn move_frame(&self, kind: FrameKind, session: SessionId, to: GatewayId, rest: Bytes) -> Result<(), String> {
        match kind {
            FrameKind::Resume => {
                let generation = resume_generation(&rest).map_err(|e| e.to_string())?;
                let ask = RouterAsk::Resume { link: self.index, session, to, generation };
                if self.asks.try_send(ask).is_err() {
                    tracing::error!(router = %self.addr, %session, "router request queue full: resume dropped");
                }
            }
            // This router routes the session to `to` now: the new gateway
            // takes its pushes from here on, the old one no longer.
            FrameKind::Moved => {
                if let Some(outbox) = self.registry.outbox(&session) {
                    outbox.accept_from(self.index, to == self.identity);
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
