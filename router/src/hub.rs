//! The router's state handle: which gateways are linked, which sessions
//! each holds, and the membership store. Commands apply themselves to it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::metrics_router::RouterMetrics;
use crate::protocol::handover::{GatewayId, Refusal};
use crate::protocol::{encode_ids, Frame, FrameKind, SessionId};
use crate::store::{Store, StoreResult};

/// How long a push may wait for room in a gateway's outbound queue before
/// that gateway is reported as not delivered to.
const GATEWAY_SEND_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkId(u64);

struct Gateway {
    server_id: i32,
    worker_id: i32,
    tx: mpsc::Sender<Frame>,
    sessions: usize,
}

impl Gateway {
    fn id(&self) -> GatewayId {
        GatewayId { server_id: self.server_id, worker_id: self.worker_id }
    }
}

#[derive(Default)]
struct Links {
    next_id: u64,
    gateways: HashMap<LinkId, Gateway>,
    sessions: HashMap<SessionId, LinkId>,
}

pub struct Hub {
    links: Mutex<Links>,
    /// Pushes hold it shared from routing to queueing; a session's move
    /// holds it alone, so each push goes wholly before or after the move.
    move_gate: tokio::sync::RwLock<()>,
    store: Store,
    pub metrics: RouterMetrics,
}

/// What a push reached: sessions found online and gateways sent to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Delivered {
    pub sessions: usize,
    pub delivered_to_gateways: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayInfo {
    pub server_id: i32,
    pub worker_id: i32,
    pub sessions: usize,
    pub channels: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InfoReport {
    pub clients: usize,
    pub channels: usize,
    pub gateways: Vec<GatewayInfo>,
}

impl InfoReport {
    /// fooking's INFO reply body.
    pub fn to_text(&self) -> String {
        let mut text = format!("clients: {}\r\nchannels: {}\r\n", self.clients, self.channels);
        for gw in &self.gateways {
            text.push_str(&format!(
                "gateway: {}\t{}\t{}\t{}\r\n",
                gw.server_id, gw.worker_id, gw.sessions, gw.channels
            ));
        }
        text
    }
}

impl Hub {
    pub fn new(store: Store) -> Hub {
        Hub { links: Mutex::default(), move_gate: Default::default(), store, metrics: RouterMetrics::default() }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn attach_gateway(&self, server_id: i32, worker_id: i32, tx: mpsc::Sender<Frame>) -> LinkId {
        let mut links = self.links.lock().unwrap();
        links.next_id += 1;
        let id = LinkId(links.next_id);
        links.gateways.insert(id, Gateway { server_id, worker_id, tx, sessions: 0 });
        id
    }

    /// Forgets where the link's sessions live. Their memberships stay: the
    /// gateway may be back in a moment and resync the same sessions.
    pub fn detach_gateway(&self, link: LinkId) {
        let mut links = self.links.lock().unwrap();
        links.gateways.remove(&link);
        links.sessions.retain(|_, owner| *owner != link);
    }

    pub fn sessions_connected(&self, link: LinkId, ids: &[SessionId]) {
        let mut links = self.links.lock().unwrap();
        let mut added = 0;
        for id in ids {
            if let Some(previous) = links.sessions.insert(*id, link) {
                if let Some(gw) = links.gateways.get_mut(&previous) {
                    gw.sessions -= 1;
                }
            }
            added += 1;
        }
        if let Some(gw) = links.gateways.get_mut(&link) {
            gw.sessions += added;
        }
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

    /// A client asks gateway `from` to resume `session`: the gateway that
    /// holds it decides; with none, the session has expired.
    pub async fn resume(&self, from: LinkId, session: SessionId, generation: u32) {
        let (asker, asker_tx, holder) = {
            let links = self.links.lock().unwrap();
            let Some(asker) = links.gateways.get(&from) else { return };
            let holder = links.sessions.get(&session).filter(|owner| **owner != from);
            (asker.id(), asker.tx.clone(), holder.and_then(|owner| links.gateways.get(owner)).map(|gw| gw.tx.clone()))
        };
        let (to, kind, payload) = match holder {
            Some(tx) => (tx, FrameKind::Resume, asker.address(&generation.to_be_bytes())),
            None => (asker_tx, FrameKind::ResumeRefused, asker.address(&[Refusal::Expired as u8])),
        };
        send_all(&to, std::iter::once(Frame::new(kind, encode_ids(&[session]), payload))).await;
    }

    /// The gateway on `from` hands `session` to gateway `to`: pushes for it
    /// go there from now on. Both hear so (MOVED) on their links, after
    /// every push sent before: the old one knows nothing more will come
    /// from this router, the new one that everything after comes to it.
    pub async fn moving(&self, from: LinkId, session: SessionId, to: GatewayId) {
        let gate = self.move_gate.write().await;
        let targets = {
            let mut links = self.links.lock().unwrap();
            let new_owner =
                links.gateways.iter().find(|(_, gw)| gw.id() == to).map(|(link, gw)| (*link, gw.tx.clone()));
            if let Some(previous) = links.sessions.remove(&session) {
                if let Some(gw) = links.gateways.get_mut(&previous) {
                    gw.sessions -= 1;
                }
            }
            if let Some((link, _)) = &new_owner {
                links.sessions.insert(session, *link);
                links.gateways.get_mut(link).expect("found above").sessions += 1;
            }
            let old_owner = links.gateways.get(&from).map(|gw| gw.tx.clone());
            old_owner.into_iter().chain(new_owner.map(|(_, tx)| tx)).collect::<Vec<_>>()
        };
        let moved = Frame::new(FrameKind::Moved, encode_ids(&[session]), to.address(&[]));
        for tx in targets {
            send_all(&tx, std::iter::once(moved.clone())).await;
        }
        drop(gate);
        if let Some(old) = self.gateway_key(from) {
            let moved = self.store.gateway_sessions(&old, &[session], false).await;
            let moved = moved.and(self.store.gateway_sessions(&to.to_string(), &[session], true).await);
            if let Err(err) = moved {
                tracing::error!(%err, %session, "could not record a session's move");
            }
        }
    }

    /// Passes a move's frame on to the gateway its data is addressed to.
    pub async fn forward(&self, to: GatewayId, frame: Frame) {
        match self.gateway_tx(to) {
            Some(tx) => {
                send_all(&tx, std::iter::once(frame)).await;
            }
            None => tracing::warn!(gateway = %to, "hand-over for a gateway not linked here dropped"),
        }
    }

    fn gateway_tx(&self, id: GatewayId) -> Option<mpsc::Sender<Frame>> {
        let links = self.links.lock().unwrap();
        links.gateways.values().find(|gw| gw.id() == id).map(|gw| gw.tx.clone())
    }

    /// The identity under which a gateway's lease and sessions are kept.
    pub fn gateway_key(&self, link: LinkId) -> Option<String> {
        let links = self.links.lock().unwrap();
        links.gateways.get(&link).map(|gw| gw.id().to_string())
    }

    pub fn linked_gateway_keys(&self) -> Vec<String> {
        let links = self.links.lock().unwrap();
        links.gateways.values().map(|gw| gw.id().to_string()).collect()
    }

    /// Hands the sessions of a dead gateway to a live one, which sends
    /// their close events to the backend. False if no gateway is linked.
    pub async fn hand_over_orphans(&self, ids: &[SessionId]) -> bool {
        let Some(tx) = self.links.lock().unwrap().gateways.values().next().map(|gw| gw.tx.clone()) else {
            return false;
        };
        send_all(&tx, Frame::for_sessions(FrameKind::Orphaned, ids, Bytes::new(), false)).await
    }

    /// Linked gateways and the sessions they hold.
    pub fn link_counts(&self) -> (usize, usize) {
        let links = self.links.lock().unwrap();
        (links.gateways.len(), links.sessions.len())
    }

    /// Which of `ids` are connected to a gateway linked here.
    pub fn online(&self, ids: &[SessionId]) -> Vec<SessionId> {
        let links = self.links.lock().unwrap();
        ids.iter().filter(|id| links.sessions.contains_key(id)).copied().collect()
    }

    /// Sends `data` to `ids`: one batch of frames per gateway that holds
    /// any of them, never one message per recipient.
    pub async fn deliver(&self, kind: FrameKind, ids: &[SessionId], data: Bytes, binary: bool) -> Delivered {
        let delivered = self.to_owning_gateways(kind, ids, data, binary).await;
        self.metrics.deliveries.fetch_add(delivered.sessions as u64, std::sync::atomic::Ordering::Relaxed);
        delivered
    }

    /// Tells the gateways that hold `ids` of a membership change, so each
    /// gateway knows its sessions' channels and users: after Redis loses
    /// its data, the gateways' resync puts them back.
    pub async fn tell_gateways(&self, kind: FrameKind, ids: &[SessionId], data: Bytes) {
        self.to_owning_gateways(kind, ids, data, false).await;
    }

    /// Asks every linked gateway to report all its memberships again.
    pub async fn request_resync(&self) {
        self.broadcast_frame(Frame::new(FrameKind::Resync, Bytes::new(), Bytes::new())).await;
    }

    async fn to_owning_gateways(&self, kind: FrameKind, ids: &[SessionId], data: Bytes, binary: bool) -> Delivered {
        let _gate = self.move_gate.read().await;
        let mut by_gateway: HashMap<LinkId, (mpsc::Sender<Frame>, Vec<SessionId>)> = HashMap::new();
        {
            let links = self.links.lock().unwrap();
            for id in ids {
                let Some(link) = links.sessions.get(id) else {
                    continue;
                };
                let Some(gw) = links.gateways.get(link) else {
                    continue;
                };
                by_gateway.entry(*link).or_insert_with(|| (gw.tx.clone(), Vec::new())).1.push(*id);
            }
        }
        let mut delivered = Delivered::default();
        for (tx, ids) in by_gateway.into_values() {
            if send_all(&tx, Frame::for_sessions(kind, &ids, data.clone(), binary)).await {
                delivered.sessions += ids.len();
                delivered.delivered_to_gateways += 1;
            } else {
                self.metrics.gateway_push_timeouts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        delivered
    }

    /// Sends one frame to every linked gateway.
    pub async fn broadcast(&self, frame: Frame) -> Delivered {
        let delivered = self.broadcast_frame(frame).await;
        self.metrics.deliveries.fetch_add(delivered.sessions as u64, std::sync::atomic::Ordering::Relaxed);
        delivered
    }

    async fn broadcast_frame(&self, frame: Frame) -> Delivered {
        let _gate = self.move_gate.read().await;
        let targets: Vec<(mpsc::Sender<Frame>, usize)> = {
            let links = self.links.lock().unwrap();
            links.gateways.values().map(|gw| (gw.tx.clone(), gw.sessions)).collect()
        };
        let mut delivered = Delivered::default();
        for (tx, sessions) in targets {
            if send_all(&tx, std::iter::once(frame.clone())).await {
                delivered.sessions += sessions;
                delivered.delivered_to_gateways += 1;
            } else {
                self.metrics.gateway_push_timeouts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        delivered
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
                .map(|(link, gw)| (gw.server_id, gw.worker_id, per_link.remove(link).unwrap_or_default()))
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

async fn send_all(tx: &mpsc::Sender<Frame>, frames: impl Iterator<Item = Frame>) -> bool {
    for frame in frames {
        match tokio::time::timeout(GATEWAY_SEND_TIMEOUT, tx.send(frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return false,
            Err(_) => {
                tracing::warn!("gateway outbound queue stayed full for {GATEWAY_SEND_TIMEOUT:?}; push not delivered");
                return false;
            }
        }
    }
    true
}
