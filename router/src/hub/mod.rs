//! The router's state handle: which gateways are linked, which sessions
//! each holds, and the membership store. Commands apply themselves to it.
//!
//! Pushes are routed and queued for their gateways under one lock, with no
//! waiting: each gateway has an outbound queue of its own ([`Outbound`]),
//! so a gateway that stops reading delays no push to another. A session's
//! move switches its route under the same lock, so each push goes wholly
//! before or after the move.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use protocol::cmd::{Delivered, GatewayInfo, InfoReport};

use crate::metrics::{Gauges, RouterMetrics};
use crate::outbound::Outbound;

mod moves;
use crate::store::{Store, StoreResult};
use protocol::handover::GatewayId;
use protocol::{Frame, FrameKind, SessionId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkId(u64);

struct Gateway {
    id: GatewayId,
    outbound: Arc<Outbound>,
    sessions: usize,
    /// The largest frame data it takes, once its heartbeat said so.
    max_frame: Option<usize>,
}

#[derive(Default)]
struct Links {
    next_id: u64,
    gateways: HashMap<LinkId, Gateway>,
    sessions: HashMap<SessionId, LinkId>,
    /// Resumes passed on to the gateway that holds the session: only that
    /// gateway may answer (HANDOVER, RESUME_REFUSED), and only to the asker.
    resumes: HashMap<SessionId, Resume>,
    /// Sessions a backend joined or bound while no linked gateway held
    /// them, since when: swept unless a gateway reports them in time.
    unheld: HashMap<SessionId, Instant>,
}

#[derive(Clone, Copy)]
struct Resume {
    asker: LinkId,
    holder: LinkId,
}

/// Resumes waiting for their holder's answer, at most; more are refused.
const MAX_RESUMES: usize = 100_000;

pub struct Hub {
    links: Mutex<Links>,
    store: Store,
    /// The largest push payload this router takes (`--max-frame`).
    max_frame: usize,
    pub metrics: RouterMetrics,
}

impl Hub {
    pub fn new(store: Store, max_frame: usize) -> Hub {
        Hub { links: Mutex::default(), store, max_frame, metrics: RouterMetrics::default() }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn attach_gateway(&self, id: GatewayId, outbound: Arc<Outbound>) -> LinkId {
        let mut links = self.links.lock().unwrap();
        links.next_id += 1;
        let link = LinkId(links.next_id);
        links.gateways.insert(link, Gateway { id, outbound, sessions: 0, max_frame: None });
        link
    }

    /// `--max-frame`.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// A linked gateway said how large a frame it takes.
    pub fn gateway_takes(&self, link: LinkId, max_frame: usize) {
        if let Some(gw) = self.links.lock().unwrap().gateways.get_mut(&link) {
            gw.max_frame = Some(max_frame);
        }
    }

    /// The largest payload a push may carry: what this router and every
    /// gateway linked to it take. Anything larger is refused where it
    /// enters, so nothing is accepted that a gateway would drop.
    pub fn push_limit(&self) -> usize {
        let links = self.links.lock().unwrap();
        links.gateways.values().filter_map(|gw| gw.max_frame).fold(self.max_frame, usize::min)
    }

    /// Forgets where the link's sessions live. Their memberships stay: the
    /// gateway may be back in a moment and resync the same sessions.
    pub fn detach_gateway(&self, link: LinkId) {
        let mut links = self.links.lock().unwrap();
        links.gateways.remove(&link);
        links.sessions.retain(|_, owner| *owner != link);
        links.resumes.retain(|_, resume| resume.asker != link && resume.holder != link);
    }

    /// Records that `link` holds `ids`; returns those it was given. A
    /// session another linked gateway holds stays there: a gateway cannot
    /// take one by naming it (a move goes through MOVING from its holder).
    pub fn sessions_connected(&self, link: LinkId, ids: &[SessionId]) -> Vec<SessionId> {
        let mut links = self.links.lock().unwrap();
        let mut taken = Vec::with_capacity(ids.len());
        for id in ids {
            match links.sessions.get(id) {
                Some(owner) if *owner == link => continue,
                Some(owner) if links.gateways.contains_key(owner) => {
                    self.refuse_gateway_frame(link, "CONN for a session another gateway holds", id);
                    continue;
                }
                _ => {}
            }
            links.sessions.insert(*id, link);
            taken.push(*id);
        }
        if let Some(gw) = links.gateways.get_mut(&link) {
            gw.sessions += taken.len();
        }
        taken
    }

    /// Those of `ids` that `link` holds: what a gateway may say they belong to.
    pub fn held_by(&self, link: LinkId, ids: &[SessionId]) -> Vec<SessionId> {
        let links = self.links.lock().unwrap();
        ids.iter().filter(|id| links.sessions.get(id) == Some(&link)).copied().collect()
    }

    fn refuse_gateway_frame(&self, link: LinkId, what: &str, session: &SessionId) {
        self.metrics.gateway_frames_refused.fetch_add(1, Relaxed);
        tracing::warn!(?link, %session, "ignored from a gateway: {what}");
    }

    /// Forgets sessions that ended, but not one another gateway holds now:
    /// a session that moved lives on there, in its channels.
    pub async fn sessions_closed(&self, link: LinkId, ids: &[SessionId]) -> StoreResult<()> {
        let ended: Vec<SessionId> = {
            let mut links = self.links.lock().unwrap();
            let mut removed = 0;
            let ended = ids
                .iter()
                .filter(|id| match links.sessions.get(id) {
                    Some(owner) if *owner == link => {
                        links.sessions.remove(id);
                        removed += 1;
                        true
                    }
                    Some(_) => false,
                    None => true,
                })
                .copied()
                .collect();
            if let Some(gw) = links.gateways.get_mut(&link) {
                gw.sessions -= removed;
            }
            ended
        };
        self.store.forget(&ended).await
    }

    /// The identity under which a gateway's lease and sessions are kept.
    pub fn gateway_key(&self, link: LinkId) -> Option<String> {
        let links = self.links.lock().unwrap();
        links.gateways.get(&link).map(|gw| gw.id.to_string())
    }

    pub fn linked_gateway_keys(&self) -> Vec<String> {
        let links = self.links.lock().unwrap();
        links.gateways.values().map(|gw| gw.id.to_string()).collect()
    }

    /// Hands the sessions of a dead gateway to a live one, which sends
    /// their close events to the backend. False if no gateway took them.
    pub fn hand_over_orphans(&self, ids: &[SessionId]) -> bool {
        let links = self.links.lock().unwrap();
        let frames: Vec<Frame> = Frame::for_sessions(FrameKind::Orphaned, ids, Bytes::new(), false).collect();
        links.gateways.values().any(|gw| self.queue(gw, frames.clone()))
    }

    /// Notes those of `ids` that no linked gateway holds: a backend joined
    /// or bound them, perhaps after they closed (a script that ran on after
    /// its client left), perhaps just before their gateway's CONN arrives.
    pub fn note_unheld(&self, ids: &[SessionId]) {
        let now = Instant::now();
        let mut links = self.links.lock().unwrap();
        let Links { sessions, unheld, .. } = &mut *links;
        for id in ids.iter().filter(|id| !sessions.contains_key(id)) {
            unheld.entry(*id).or_insert(now);
        }
    }

    /// The sessions noted unheld for `grace` that no linked gateway has
    /// reported since: their memberships and user are to be forgotten, as
    /// a CLOSE would have. Every gateway reports its sessions to every
    /// router, so a live one is known here within a lease.
    pub fn sweep_unheld(&self, grace: Duration) -> Vec<SessionId> {
        let now = Instant::now();
        let mut links = self.links.lock().unwrap();
        let Links { sessions, unheld, .. } = &mut *links;
        let mut swept = Vec::new();
        unheld.retain(|id, since| match sessions.contains_key(id) {
            true => false,
            false if now.duration_since(*since) < grace => true,
            false => {
                swept.push(*id);
                false
            }
        });
        swept
    }

    /// Which of `ids` are connected to a gateway linked here.
    pub fn online(&self, ids: &[SessionId]) -> Vec<SessionId> {
        let links = self.links.lock().unwrap();
        ids.iter().filter(|id| links.sessions.contains_key(id)).copied().collect()
    }

    /// Sends `data` to `ids`: one batch of frames per gateway that holds
    /// any of them, never one message per recipient.
    pub fn deliver(&self, kind: FrameKind, ids: &[SessionId], data: Bytes, binary: bool) -> Delivered {
        let delivered = self.to_owning_gateways(kind, ids, data, binary);
        self.metrics.deliveries.fetch_add(delivered.sessions as u64, Relaxed);
        delivered
    }

    /// Tells the gateways that hold `ids` of a membership change, so each
    /// gateway knows its sessions' channels and users: after Redis loses
    /// its data, the gateways' resync puts them back.
    pub fn tell_gateways(&self, kind: FrameKind, ids: &[SessionId], data: Bytes) {
        self.to_owning_gateways(kind, ids, data, false);
    }

    /// Asks every linked gateway to report all its memberships again.
    pub fn request_resync(&self) {
        self.broadcast_frame(Frame::new(FrameKind::Resync, Bytes::new(), Bytes::new()));
    }

    fn to_owning_gateways(&self, kind: FrameKind, ids: &[SessionId], data: Bytes, binary: bool) -> Delivered {
        let links = self.links.lock().unwrap();
        let mut by_gateway: HashMap<LinkId, Vec<SessionId>> = HashMap::new();
        for id in ids {
            if let Some(link) = links.sessions.get(id).filter(|link| links.gateways.contains_key(link)) {
                by_gateway.entry(*link).or_default().push(*id);
            }
        }
        let mut delivered = Delivered::default();
        for (link, ids) in by_gateway {
            let frames = Frame::for_sessions(kind, &ids, data.clone(), binary).collect();
            if self.queue(&links.gateways[&link], frames) {
                delivered.sessions += ids.len();
                delivered.delivered_to_gateways += 1;
            }
        }
        delivered
    }

    /// Sends one frame to every linked gateway.
    pub fn broadcast(&self, frame: Frame) -> Delivered {
        let delivered = self.broadcast_frame(frame);
        self.metrics.deliveries.fetch_add(delivered.sessions as u64, Relaxed);
        delivered
    }

    fn broadcast_frame(&self, frame: Frame) -> Delivered {
        let links = self.links.lock().unwrap();
        let mut delivered = Delivered::default();
        for gw in links.gateways.values() {
            if self.queue(gw, vec![frame.clone()]) {
                delivered.sessions += gw.sessions;
                delivered.delivered_to_gateways += 1;
            }
        }
        delivered
    }

    /// Queues `frames` for a gateway; false (and counted) if it is cut off.
    fn queue(&self, gateway: &Gateway, frames: Vec<Frame>) -> bool {
        let queued = gateway.outbound.push(frames);
        if !queued {
            self.metrics.gateway_pushes_dropped.fetch_add(1, Relaxed);
        }
        queued
    }

    /// The router's metrics, as Prometheus text.
    pub fn render_metrics(&self) -> String {
        let gauges = {
            let links = self.links.lock().unwrap();
            let queued_bytes = links.gateways.values().map(|gw| gw.outbound.queued_bytes()).sum();
            Gauges {
                gateways: links.gateways.len(),
                sessions: links.sessions.len(),
                queued_bytes,
                unheld: links.unheld.len(),
            }
        };
        self.metrics.render(gauges)
    }

    pub async fn info(&self) -> StoreResult<InfoReport> {
        let (clients, gateways) = {
            let links = self.links.lock().unwrap();
            let mut per_link: HashMap<LinkId, Vec<SessionId>> = HashMap::new();
            for (id, link) in &links.sessions {
                per_link.entry(*link).or_default().push(*id);
            }
            let mut gateways: Vec<_> = links
                .gateways
                .iter()
                .map(|(link, gw)| (gw.id.server_id, gw.id.worker_id, per_link.remove(link).unwrap_or_default()))
                .collect();
            gateways.sort_by_key(|(server, worker, _)| (*server, *worker));
            (links.sessions.len(), gateways)
        };
        let mut report = InfoReport { clients, channels: self.store.channel_count().await?, gateways: Vec::new() };
        for (server_id, worker_id, ids) in gateways {
            let channels = self.store.channels_of(&ids).await?;
            report.gateways.push(GatewayInfo { server_id, worker_id, sessions: ids.len(), channels });
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Hub {
        Hub::new(Store::Memory(Box::default()), 1 << 20)
    }

    #[test]
    fn sessions_no_gateway_reports_within_the_grace_are_swept_once() {
        let hub = hub();
        let (closed, coming, live) = (SessionId::from_u64(1), SessionId::from_u64(2), SessionId::from_u64(3));
        let link = hub.attach_gateway(GatewayId { server_id: 1, worker_id: 1 }, Arc::new(Outbound::new(1 << 20)));
        hub.sessions_connected(link, &[live]);
        hub.note_unheld(&[closed, coming, live]);
        assert_eq!(hub.links.lock().unwrap().unheld.len(), 2, "a held session is never noted");
        assert!(hub.sweep_unheld(Duration::from_secs(60)).is_empty(), "within the grace");
        hub.sessions_connected(link, &[coming]);
        assert_eq!(hub.sweep_unheld(Duration::ZERO), [closed], "the one reported since stays");
        assert!(hub.sweep_unheld(Duration::ZERO).is_empty(), "and each is swept once");
    }
}
