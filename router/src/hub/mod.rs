//! The router's state handle: which gateways are linked, which sessions
//! each holds, and the membership store. Commands apply themselves to it.
//! Its methods neither wait nor read the store (but the operator's
//! lookup, which asks gateways in `watch`); those that need the time take
//! it, and whoever waits for a gateway waits on [`Hub::changes`].
//!
//! Pushes are routed and queued for their gateways under one lock, with no
//! waiting: each gateway has an outbound queue of its own ([`Outbound`]),
//! so a gateway that stops reading delays no push to another. A session's
//! move switches its route under the same lock, so each push goes wholly
//! before or after the move.
//!
//! A publish names its channel to each gateway that holds members, and
//! the gateway walks its own: the hub keeps, per channel, only which
//! gateways those are and how many members each said it has ([`Route`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use bytes::Bytes;

use protocol::cmd::Delivered;

use crate::metrics::{Count, Now, RouterMetrics};
use crate::outbound::Outbound;
use crate::seams::Seams;
use runtime::metrics::Snapshot;

mod moves;
pub mod watch;
use crate::store::history::{Rule, Rules};
use crate::store::Store;
use crate::webhooks::Webhooks;
use protocol::handover::GatewayId;
use protocol::{Frame, FrameKind, Interest, SessionId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkId(u64);

struct Gateway {
    id: GatewayId,
    /// `id` as the store names it.
    key: String,
    outbound: Arc<Outbound>,
    sessions: usize,
    /// CH_ADD and CH_DEL frames queued to it on this link, and applied
    /// there as its last CH_SUB or CH_UNSUB said: see [`Interest`].
    changes_sent: u64,
    changes_applied: u64,
    /// The largest frame data it takes, once its heartbeat said so.
    max_frame: Option<usize>,
    /// When it linked, and when its last heartbeat or report came.
    linked: Instant,
    heard: Instant,
    /// Its last report (STATUS), for the operator's page.
    status: Option<protocol::GatewayStatus>,
    /// Channels routed to it: its share of the routes.
    routed: usize,
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
    /// Per channel, the gateways a publish goes to.
    routes: HashMap<String, HashMap<LinkId, Route>>,
}

impl Links {
    /// The members of `channel` every gateway routed holds, as it last said.
    fn members(&self, channel: &str) -> usize {
        self.routes.get(channel).map_or(0, |gateways| gateways.values().map(|route| route.members as usize).sum())
    }
}

/// A gateway that holds members of a channel: as many as its last CH_SUB
/// said, or as this router's joins since added.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Route {
    members: u32,
    /// The newest [`Interest::version`] taken.
    version: u64,
    /// The gateway's `changes_sent` after this router's last join to the
    /// channel there: an empty count that has not seen it is no proof.
    changes_sent: u64,
}

#[derive(Clone, Copy)]
struct Resume {
    asker: LinkId,
    holder: LinkId,
}

/// How many channels may be routed: to one gateway on its own word (its
/// CH_SUB), and in all. A CH_SUB for one more is refused and counted, so
/// no gateway, nor clients through one, can grow the router without bound
/// or take the others' share.
#[derive(Clone, Copy, Debug)]
pub struct RouteBounds {
    pub per_gateway: usize,
    pub total: usize,
}

impl Default for RouteBounds {
    fn default() -> RouteBounds {
        RouteBounds { per_gateway: 1 << 18, total: 1 << 20 }
    }
}

/// Resumes waiting for their holder's answer, at most; more are refused.
const MAX_RESUMES: usize = 100_000;

pub struct Hub {
    links: Mutex<Links>,
    /// `--history`: which channels keep their last messages.
    history: Rules,
    /// See [`Seams`]: kept with the routes, used by the publishes.
    pub seams: Seams,
    /// Woken when a gateway says how many joins it has applied, reports
    /// sessions, or unlinks.
    applied: Notify,
    store: Store,
    /// The largest push payload this router takes (`--max-frame`).
    max_frame: usize,
    routes: RouteBounds,
    pub metrics: Arc<RouterMetrics>,
    /// Pusher apps' webhooks: a channel occupied or vacated here, and what
    /// presence and client events tell them.
    pub webhooks: Webhooks,
    /// What the operator's page shows.
    pub watch: watch::Watch,
}

impl Hub {
    pub fn new(store: Store, max_frame: usize, history: Rules, routes: RouteBounds) -> Hub {
        Hub {
            routes,
            links: Mutex::default(),
            history,
            seams: Seams::default(),
            applied: Notify::new(),
            store,
            max_frame,
            metrics: Arc::default(),
            webhooks: Webhooks::default(),
            watch: Default::default(),
        }
    }

    /// The hub, posting Pusher webhooks through `webhooks`.
    pub fn with_webhooks(self, webhooks: Webhooks) -> Hub {
        Hub { webhooks, ..self }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn attach_gateway(&self, id: GatewayId, outbound: Arc<Outbound>, now: Instant) -> LinkId {
        let mut links = self.links.lock().unwrap();
        links.next_id += 1;
        let link = LinkId(links.next_id);
        let key = id.to_string();
        let gateway = Gateway {
            id,
            key,
            outbound,
            sessions: 0,
            changes_sent: 0,
            changes_applied: 0,
            max_frame: None,
            linked: now,
            heard: now,
            status: None,
            routed: 0,
        };
        links.gateways.insert(link, gateway);
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
        if let Some(gone) = links.gateways.remove(&link) {
            if !links.gateways.values().any(|gw| gw.key == gone.key) {
                self.forget_gateway(&gone.key);
            }
        }
        links.sessions.retain(|_, owner| *owner != link);
        links.resumes.retain(|_, resume| resume.asker != link && resume.holder != link);
        let mut vacated = Vec::new();
        links.routes.retain(|channel, gateways| {
            let held = gateways.remove(&link).is_some_and(|route| route.members > 0);
            let left = gateways.values().any(|route| route.members > 0);
            if held && !left {
                vacated.push(channel.clone());
            }
            !gateways.is_empty()
        });
        drop(links);
        for channel in vacated {
            self.webhooks.channel_event(&channel, "channel_vacated", serde_json::json!({}));
        }
        self.applied.notify_waiters();
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
        drop(links);
        self.metrics.add(Count::SessionsOpened, taken.len());
        self.applied.notify_waiters();
        taken
    }

    /// Whether a linked gateway holds each of `ids`.
    pub fn all_held(&self, ids: &[SessionId]) -> bool {
        let links = self.links.lock().unwrap();
        ids.iter().all(|id| links.sessions.get(id).is_some_and(|link| links.gateways.contains_key(link)))
    }

    /// Woken whenever [`Hub::all_held`] or [`Hub::all_applied`] may have
    /// become true: a gateway reports sessions or applied changes, or unlinks.
    pub fn changes(&self) -> &Notify {
        &self.applied
    }

    /// Those of `ids` that were noted unheld: a backend joined them before
    /// their gateway's CONN came, so that gateway has yet to hear of it.
    pub fn take_unheld(&self, ids: &[SessionId]) -> Vec<SessionId> {
        let mut links = self.links.lock().unwrap();
        ids.iter().filter(|id| links.unheld.remove(id).is_some()).copied().collect()
    }

    /// Those of `ids` that `link` holds: what a gateway may say they belong to.
    pub fn held_by(&self, link: LinkId, ids: &[SessionId]) -> Vec<SessionId> {
        let links = self.links.lock().unwrap();
        ids.iter().filter(|id| links.sessions.get(id) == Some(&link)).copied().collect()
    }

    fn refuse_gateway_frame(&self, link: LinkId, what: &str, about: &dyn std::fmt::Display) {
        self.metrics.count(Count::GatewayFramesRefused);
        tracing::warn!(?link, %about, "ignored from a gateway: {what}");
    }

    /// Forgets where sessions that ended were, but not one another gateway
    /// holds now: a session that moved lives on there, in its channels.
    /// Returns those that ended, for the store to forget.
    pub fn sessions_closed(&self, link: LinkId, ids: &[SessionId]) -> Vec<SessionId> {
        {
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
            self.metrics.add(Count::SessionsEnded, removed);
            ended
        }
    }

    /// Queues `frame` for the gateway that holds `session`, else the one
    /// on `via`, else any linked one; false if none took it.
    pub fn send_to_holder(&self, session: SessionId, via: Option<LinkId>, frame: Frame) -> bool {
        let links = self.links.lock().unwrap();
        let holder = links.sessions.get(&session).copied().into_iter().chain(via);
        let mut candidates = holder.filter_map(|link| links.gateways.get(&link)).chain(links.gateways.values());
        candidates.any(|gw| self.queue(gw, vec![frame.clone()]))
    }

    /// Queues `frame` for the gateway on `link`, if it is still linked.
    pub fn send_to_link(&self, link: LinkId, frame: Frame) {
        let links = self.links.lock().unwrap();
        if let Some(gateway) = links.gateways.get(&link) {
            self.queue(gateway, vec![frame]);
        }
    }

    /// Whether any channel keeps history here (`--history`, Pusher's cache channels).
    pub fn keeps_history(&self) -> bool {
        self.history.any()
    }

    /// What `channel` keeps of its messages, if `--history` names it.
    pub fn history_rule(&self, channel: &str) -> Option<Rule> {
        self.history.of(channel)
    }

    /// The identity under which a gateway's lease and sessions are kept.
    pub fn gateway_key(&self, link: LinkId) -> Option<String> {
        let links = self.links.lock().unwrap();
        links.gateways.get(&link).map(|gw| gw.key.clone())
    }

    pub fn linked_gateway_keys(&self) -> Vec<String> {
        let links = self.links.lock().unwrap();
        links.gateways.values().map(|gw| gw.key.clone()).collect()
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
    pub fn note_unheld(&self, ids: &[SessionId], now: Instant) {
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
    pub fn sweep_unheld(&self, grace: Duration, now: Instant) -> Vec<SessionId> {
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
        self.metrics.add(Count::Deliveries, delivered.sessions);
        delivered
    }

    /// Tells the gateways that hold `ids` of a membership change, so each
    /// gateway knows its sessions' channels and users: after Redis loses
    /// its data, the gateways' resync puts them back.
    pub fn tell_gateways(&self, kind: FrameKind, ids: &[SessionId], data: Bytes) {
        self.to_owning_gateways(kind, ids, data, false);
    }

    /// Tells the gateways that hold `ids` that they joined `channel` (by
    /// CH_ADD, or KEPT_JOIN when history follows), and routes the
    /// channel's publishes to them from now on: the join and a later
    /// publish go out on the same link, in that order. Returns what
    /// [`Hub::all_applied`] asks about.
    pub fn joined(&self, kind: FrameKind, channel: &str, ids: &[SessionId]) -> Vec<(LinkId, u64)> {
        debug_assert!(matches!(kind, FrameKind::ChAdd | FrameKind::KeptJoin));
        self.membership_changed(kind, channel, ids)
    }

    /// Tells the gateways that hold `ids` that they left `channel`.
    pub fn left(&self, channel: &str, ids: &[SessionId]) -> Vec<(LinkId, u64)> {
        self.membership_changed(FrameKind::ChDel, channel, ids)
    }

    fn membership_changed(&self, kind: FrameKind, channel: &str, ids: &[SessionId]) -> Vec<(LinkId, u64)> {
        let mut links = self.links.lock().unwrap();
        let held = by_holder(&links.gateways, &links.sessions, ids);
        held.into_iter().filter_map(|(link, ids)| self.queue_change(&mut links, link, kind, channel, &ids)).collect()
    }

    /// CH_ADD or CH_DEL of `ids` to the gateway on `link`, which holds
    /// them, and the channel's route to it as this router now expects it;
    /// the gateway's count of changes once it has applied this one.
    fn queue_change(
        &self,
        links: &mut Links,
        link: LinkId,
        kind: FrameKind,
        channel: &str,
        ids: &[SessionId],
    ) -> Option<(LinkId, u64)> {
        let gateway = links.gateways.get_mut(&link)?;
        let name = Bytes::copy_from_slice(channel.as_bytes());
        let frames: Vec<Frame> = Frame::for_sessions(kind, ids, name, false).collect();
        gateway.changes_sent += frames.len() as u64;
        let changes_sent = gateway.changes_sent;
        if !self.queue(gateway, frames) {
            return None;
        }
        let n = ids.len() as u32;
        match kind {
            FrameKind::ChAdd | FrameKind::KeptJoin => {
                let gateways = links.routes.entry(channel.to_owned()).or_default();
                let new = !gateways.contains_key(&link);
                let route = gateways.entry(link).or_default();
                route.members = route.members.saturating_add(n);
                route.changes_sent = changes_sent;
                if new {
                    links.gateways.get_mut(&link).expect("queued to it").routed += 1;
                }
            }
            _ => {
                if let Some(route) = links.routes.get_mut(channel).and_then(|routes| routes.get_mut(&link)) {
                    route.members = route.members.saturating_sub(n);
                }
            }
        }
        Some((link, changes_sent))
    }

    /// Whether each gateway has applied the changes sent to it (its CH_SUB
    /// or CH_UNSUB says so), or unlinked.
    pub fn all_applied(&self, targets: &[(LinkId, u64)]) -> bool {
        let links = self.links.lock().unwrap();
        targets.iter().all(|(link, adds)| links.gateways.get(link).is_none_or(|gw| gw.changes_applied >= *adds))
    }

    /// A gateway says how many of its sessions are in a channel: a Pusher
    /// app's channel that gets its first member here, or loses its last,
    /// is occupied or vacated (a webhook).
    pub fn interest(&self, link: LinkId, interest: Interest) {
        let mut links = self.links.lock().unwrap();
        let before = links.members(interest.channel.as_str());
        self.route(&mut links, link, &interest);
        let after = links.members(interest.channel.as_str());
        drop(links);
        if (before == 0) != (after == 0) {
            let name = if after > 0 { "channel_occupied" } else { "channel_vacated" };
            self.webhooks.channel_event(interest.channel.as_str(), name, serde_json::json!({}));
        }
    }

    fn route(&self, links: &mut Links, link: LinkId, interest: &Interest) {
        let Some(gateway) = links.gateways.get_mut(&link) else { return };
        if interest.changes_seen > gateway.changes_applied {
            gateway.changes_applied = interest.changes_seen;
            self.applied.notify_waiters();
        }
        let name = interest.channel.as_str();
        let routed = links.routes.get(name).is_some_and(|routes| routes.contains_key(&link));
        if !routed {
            if interest.members == 0 {
                return;
            }
            let full = match () {
                _ if gateway.routed >= self.routes.per_gateway => {
                    "its share of the routes (--max-channels-per-gateway)"
                }
                _ if links.routes.len() >= self.routes.total && !links.routes.contains_key(name) => {
                    "the routes' bound (--max-routed-channels)"
                }
                _ => "",
            };
            if !full.is_empty() {
                self.metrics.count(Count::RoutesRefused);
                return tracing::warn!(?link, channel = name, "a gateway's channel not routed: past {full}");
            }
            gateway.routed += 1;
        }
        let gateways = links.routes.entry(name.to_owned()).or_default();
        let route = gateways.entry(link).or_default();
        if interest.version < route.version {
            return;
        }
        route.version = interest.version;
        route.members = interest.members;
        if interest.members == 0 && interest.changes_seen >= route.changes_sent {
            gateways.remove(&link);
            if gateways.is_empty() {
                links.routes.remove(name);
            }
            if let Some(gateway) = links.gateways.get_mut(&link) {
                gateway.routed -= 1;
            }
        }
    }

    /// Sends a publish (CH_PUB or PUBLISH_EXCEPT, as the backend gave it)
    /// to every gateway that holds members of `channel`: one frame each,
    /// whatever the channel's size. `except` are left out of the count. It
    /// reads no store: a join through any router is on this router's
    /// routes once it has answered (the gateways see to it, `protocol::Sync`).
    pub fn publish(&self, channel: &str, frame: Frame, except: &[SessionId]) -> Delivered {
        let links = self.links.lock().unwrap();
        let routes = links.routes.get(channel).into_iter().flatten();
        let mut delivered = Delivered::default();
        for (link, route) in routes {
            let Some(gateway) = links.gateways.get(link) else { continue };
            if self.queue(gateway, vec![frame.clone()]) {
                let excepted = except.iter().filter(|id| links.sessions.get(id) == Some(link)).count();
                delivered.sessions += (route.members as usize).saturating_sub(excepted);
                delivered.delivered_to_gateways += 1;
            }
        }
        self.metrics.add(Count::Deliveries, delivered.sessions);
        delivered
    }

    /// The channels whose names start with `prefix` that gateways hold
    /// members of, with how many they hold: what a publish reaches.
    pub fn routed_channels(&self, prefix: &str) -> Vec<(String, usize)> {
        let links = self.links.lock().unwrap();
        let routed = links.routes.iter().filter(|(name, _)| name.starts_with(prefix));
        routed.map(|(name, _)| (name.clone(), links.members(name))).filter(|(_, members)| *members > 0).collect()
    }

    /// How many members of `channel` the gateways hold, as they last said.
    pub fn routed_members(&self, channel: &str) -> usize {
        self.links.lock().unwrap().members(channel)
    }

    /// Asks every linked gateway to report all its memberships again.
    pub fn request_resync(&self) {
        self.broadcast_frame(Frame::new(FrameKind::Resync, Bytes::new(), Bytes::new()));
    }

    fn to_owning_gateways(&self, kind: FrameKind, ids: &[SessionId], data: Bytes, binary: bool) -> Delivered {
        let links = self.links.lock().unwrap();
        let mut delivered = Delivered::default();
        for (link, ids) in by_holder(&links.gateways, &links.sessions, ids) {
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
        self.metrics.add(Count::Deliveries, delivered.sessions);
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

    /// Queues `frames` for a gateway; false (and counted) if it is cut off,
    /// or if one is larger than the gateway takes: whoever made it, no
    /// frame goes out that would end the link (the gateway drops a link
    /// on a frame past its limit).
    fn queue(&self, gateway: &Gateway, frames: Vec<Frame>) -> bool {
        let limit = gateway.max_frame.unwrap_or(self.max_frame).min(self.max_frame);
        if let Some(frame) = frames.iter().find(|frame| frame.data.len() > limit) {
            self.metrics.count(Count::FramesTooLarge);
            tracing::error!(
                kind = frame.raw_kind,
                bytes = frame.data.len(),
                limit,
                "not sent: a frame past the gateway's limit"
            );
            return false;
        }
        let queued = gateway.outbound.push(frames);
        if !queued {
            self.metrics.count(Count::GatewayPushesDropped);
        }
        queued
    }

    /// The router's metrics, as Prometheus text.
    pub fn render_metrics(&self) -> String {
        let mut now = Snapshot::<Now>::default();
        {
            let links = self.links.lock().unwrap();
            let queued_bytes: usize = links.gateways.values().map(|gw| gw.outbound.queued_bytes()).sum();
            let routes: usize = links.routes.values().map(HashMap::len).sum();
            now.set(Now::Gateways, links.gateways.len() as f64)
                .set(Now::Sessions, links.sessions.len() as f64)
                .set(Now::QueuedBytes, queued_bytes as f64)
                .set(Now::Unheld, links.unheld.len() as f64)
                .set(Now::ChannelRoutes, routes as f64)
                .set(Now::HistoryBytes, self.metrics.history_bytes() as f64);
        }
        self.metrics.render(&now)
    }

    /// How many sessions are linked here, and each linked gateway's
    /// (server id, worker id, sessions), in that order.
    pub fn sessions_by_gateway(&self) -> (usize, Vec<(i32, i32, Vec<SessionId>)>) {
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
    }
}

/// `ids` grouped by the linked gateway that holds them; others are left out.
fn by_holder(
    gateways: &HashMap<LinkId, Gateway>,
    sessions: &HashMap<SessionId, LinkId>,
    ids: &[SessionId],
) -> HashMap<LinkId, Vec<SessionId>> {
    let mut by_gateway: HashMap<LinkId, Vec<SessionId>> = HashMap::new();
    for id in ids {
        if let Some(link) = sessions.get(id).filter(|link| gateways.contains_key(link)) {
            by_gateway.entry(*link).or_default().push(*id);
        }
    }
    by_gateway
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Hub {
        Hub::new(Store::Memory(Box::default()), 1 << 20, Rules::default(), RouteBounds::default())
    }

    #[test]
    fn sessions_no_gateway_reports_within_the_grace_are_swept_once() {
        let (hub, now) = (hub(), Instant::now());
        let (closed, coming, live) = (SessionId::from_u64(1), SessionId::from_u64(2), SessionId::from_u64(3));
        let link = hub.attach_gateway(
            GatewayId { server_id: 1, worker_id: 1 },
            Arc::new(Outbound::new(1 << 20)),
            Instant::now(),
        );
        hub.sessions_connected(link, &[live]);
        hub.note_unheld(&[closed, coming, live], now);
        assert_eq!(hub.links.lock().unwrap().unheld.len(), 2, "a held session is never noted");
        assert!(hub.sweep_unheld(Duration::from_secs(60), now).is_empty(), "within the grace");
        hub.sessions_connected(link, &[coming]);
        assert_eq!(hub.sweep_unheld(Duration::ZERO, now), [closed], "the one reported since stays");
        assert!(hub.sweep_unheld(Duration::ZERO, now).is_empty(), "and each is swept once");
    }

    fn interest(members: u32, version: u64, changes_seen: u64) -> Interest {
        let channel = protocol::cmd::Channel::new("room").unwrap();
        Interest { channel, members, version, changes_seen }
    }

    fn publish(hub: &Hub) -> Delivered {
        hub.publish("room", Frame::new(FrameKind::ChPub, Bytes::from_static(b"room"), Bytes::new()), &[])
    }

    #[test]
    fn a_publish_goes_once_to_each_gateway_that_says_it_holds_members() {
        let hub = hub();
        let (first, second) = (Arc::new(Outbound::new(1 << 20)), Arc::new(Outbound::new(1 << 20)));
        let a = hub.attach_gateway(GatewayId { server_id: 1, worker_id: 1 }, first.clone(), Instant::now());
        let b = hub.attach_gateway(GatewayId { server_id: 2, worker_id: 1 }, second.clone(), Instant::now());
        assert_eq!(publish(&hub), Delivered::default(), "no member anywhere");
        hub.interest(a, interest(10_000, 5, 0));
        hub.interest(b, interest(60, 1, 0));
        assert_eq!(publish(&hub), Delivered { sessions: 10_060, delivered_to_gateways: 2 });
        assert_eq!((first.queued_bytes(), second.queued_bytes()), (64 + 4, 64 + 4), "one small frame each");
        hub.interest(a, interest(3, 4, 0));
        assert_eq!(publish(&hub).sessions, 10_060, "an older count is ignored");
        hub.interest(b, interest(0, 2, 0));
        assert_eq!(publish(&hub), Delivered { sessions: 10_000, delivered_to_gateways: 1 });
        hub.detach_gateway(a);
        assert_eq!(publish(&hub), Delivered::default());
        assert!(hub.links.lock().unwrap().routes.is_empty());
    }

    #[test]
    fn a_gateway_routes_its_share_and_no_more_and_leaves_the_others_theirs() {
        let hub = Hub::new(
            Store::Memory(Box::default()),
            1 << 20,
            Rules::default(),
            RouteBounds { per_gateway: 2, total: 3 },
        );
        let gateway = |server_id| {
            hub.attach_gateway(GatewayId { server_id, worker_id: 1 }, Arc::new(Outbound::new(1 << 20)), Instant::now())
        };
        let (greedy, honest) = (gateway(1), gateway(2));
        let sub = |name: &str, members| Interest {
            channel: protocol::cmd::Channel::new(name).unwrap(),
            members,
            version: 1,
            changes_seen: 0,
        };
        for name in ["a", "b", "c", "d"] {
            hub.interest(greedy, sub(name, 1));
        }
        assert_eq!(hub.links.lock().unwrap().routes.len(), 2, "its share of two");
        hub.interest(honest, sub("room", 1));
        assert_eq!(publish(&hub).delivered_to_gateways, 1, "the honest gateway's channel is routed");
        hub.interest(greedy, sub("a", 0));
        hub.interest(greedy, sub("e", 1));
        assert_eq!(hub.metrics.get(Count::RoutesRefused), 2, "c and d");
        assert!(hub.links.lock().unwrap().routes.contains_key("e"), "a left, so e has room");
        hub.interest(honest, sub("f", 1));
        assert_eq!(hub.metrics.get(Count::RoutesRefused), 3, "the total of three is taken");
        let view = hub.channels_view("", 2);
        assert_eq!((view.count, view.sampled, view.top.len()), (3, false, 2));
    }

    #[test]
    fn an_empty_count_that_has_not_seen_this_routers_join_keeps_the_route() {
        let hub = hub();
        let link = hub.attach_gateway(
            GatewayId { server_id: 1, worker_id: 1 },
            Arc::new(Outbound::new(1 << 20)),
            Instant::now(),
        );
        let id = SessionId::from_u64(1);
        hub.sessions_connected(link, &[id]);
        hub.joined(FrameKind::ChAdd, "room", &[id]);
        assert_eq!(publish(&hub).delivered_to_gateways, 1, "routed as soon as the join is sent");
        hub.interest(link, interest(0, 7, 0));
        assert_eq!(publish(&hub).delivered_to_gateways, 1, "sent before the gateway applied the join");
        hub.interest(link, interest(0, 7, 1));
        assert_eq!(publish(&hub).delivered_to_gateways, 0, "sent after it");
    }
}
