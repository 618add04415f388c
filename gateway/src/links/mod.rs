//! The gateway's link to each router: it reports sessions that start and
//! end (and all of them again after every reconnect), and delivers the
//! pushes the router sends back. It also carries sessions that move
//! between gateways (see `handover`).
//!
//! `mod.rs` is the handle the gateway keeps, `outgoing` each link's queue
//! of what goes to its router, `socket` each link's task, `barriers` the
//! changes a router may not be told of until the others know them.

mod barriers;
mod outgoing;
mod socket;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use protocol::handover::{GatewayId, Refusal, ResumeAsk, SessionState};
use protocol::{Frame, Heartbeat, SessionId};
use runtime::Shutdown;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::session::memberships::ChannelCount;
use crate::session::Registry;
use barriers::Barriers;
use outgoing::{tell_counts, LinkEvent, Outgoing};
use socket::Link;

/// What a router asks of this gateway that needs more than the registry.
#[derive(Debug)]
pub enum RouterAsk {
    /// Send the close events of a dead gateway's sessions.
    Orphaned(Vec<SessionId>),
    /// Tell the backend that a presence channel filled or emptied.
    Occupancy(protocol::Occupancy),
    /// Drain, as on SIGTERM: the operator asked, through a router.
    Drain,
    /// Hand `session` to gateway `to`, if the ask proves a client holds
    /// its current token.
    Resume { link: usize, session: SessionId, to: GatewayId, ask: ResumeAsk },
}

/// The answer a resume on this gateway waits for.
pub type HandoverReply = Result<SessionState, Refusal>;
type Waiting = Arc<Mutex<HashMap<SessionId, oneshot::Sender<HandoverReply>>>>;

/// How the links behave: heartbeats and the largest frame this gateway takes.
#[derive(Clone, Copy, Debug)]
pub struct RouterLinkSettings {
    pub heartbeat: Duration,
    pub max_frame: usize,
}

impl RouterLinkSettings {
    pub fn from_config(config: &crate::Config) -> RouterLinkSettings {
        RouterLinkSettings {
            heartbeat: Duration::from_millis(config.link_heartbeat_ms.max(1)),
            max_frame: config.max_frame,
        }
    }

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

/// Handles to every router link this gateway keeps.
pub struct RouterLinks {
    links: Arc<[Arc<Outgoing>]>,
    /// Told of every MOVED applied, every link up or down and every
    /// SYNCED: what a session's move and a client's join wait on.
    moves: Arc<Notify>,
    waiting: Waiting,
    settings: RouterLinkSettings,
    pub stats: Arc<LinkStats>,
    barriers: Arc<Mutex<Barriers>>,
}

impl RouterLinks {
    /// Requests that need the whole gateway go to `asks`.
    pub fn spawn(
        addrs: &[String],
        token: Bytes,
        settings: RouterLinkSettings,
        registry: Arc<Registry>,
        identity: GatewayId,
        asks: mpsc::Sender<RouterAsk>,
        shutdown: Shutdown,
    ) -> RouterLinks {
        let waiting = Waiting::default();
        let stats = Arc::new(LinkStats::default());
        let moves = Arc::new(Notify::new());
        let links: Arc<[Arc<Outgoing>]> = addrs.iter().map(|_| Arc::default()).collect();
        let barriers = Arc::new(Mutex::new(Barriers::new(addrs.len())));
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
                barriers: barriers.clone(),
                waiting: waiting.clone(),
                stats: stats.clone(),
                moves: moves.clone(),
            };
            tokio::spawn(link.maintain(shutdown.clone()));
        }
        RouterLinks { links, moves, waiting, settings, stats, barriers }
    }

    /// Returns once every router linked now has taken what was queued to
    /// it before (its SYNCED), or [`barriers::BARRIER_WAIT`] has passed: a
    /// client's own join is routed here by every router.
    pub async fn all_synced(&self) {
        let barrier = self.barriers.lock().unwrap().ask_all();
        for link in self.links.iter() {
            link.queue_sync(barrier);
        }
        let linked = |link: usize| self.links[link].linked.load(Relaxed);
        if !self.until(barriers::BARRIER_WAIT, || self.barriers.lock().unwrap().answered(barrier, linked)).await {
            tracing::warn!("a router did not answer a join's barrier within {:?}", barriers::BARRIER_WAIT);
        }
    }

    /// Returns once `done` holds, read again on every MOVED and every link
    /// up or down, or once `wait` has passed; whether it holds.
    pub async fn until(&self, wait: Duration, done: impl Fn() -> bool) -> bool {
        runtime::until(&self.moves, wait, done).await
    }

    /// Which links are up now, a bit per link.
    pub fn linked_mask(&self) -> u64 {
        self.links
            .iter()
            .enumerate()
            .filter(|(_, link)| link.linked.load(Relaxed))
            .fold(0, |mask, (i, _)| mask | (1 << i))
    }

    pub fn settings(&self) -> RouterLinkSettings {
        self.settings
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

    /// Sends to one linked router (the first up); false if none is.
    pub fn send_to_any(&self, frame: Frame) -> bool {
        let Some(up) = self.links.iter().position(|link| link.linked.load(Relaxed)) else { return false };
        self.send_to(up, frame);
        true
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
        tell_counts(&self.links, &counts, None);
    }

    fn notify(&self, event: LinkEvent) {
        for link in self.links.iter() {
            link.queue(event.clone(), &self.stats);
        }
    }
}
