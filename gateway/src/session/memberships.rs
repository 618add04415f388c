//! What the routers said this gateway's sessions belong to, and its
//! inverse: each channel's members here. A router sends a publish to each
//! gateway that holds members, once, and the gateway walks its own; so
//! the gateway tells every router how many members it holds of a channel
//! whenever that changes ([`ChannelCount`], sent as CH_SUB/CH_UNSUB).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use protocol::cmd::Channel;
use protocol::{Interest, SessionId};

use super::mailbox::Mailbox;
use super::IdMap;

/// A session's channels and user, as the router last said; and the
/// presence member a Pusher client joined each of its presence channels
/// as (reported again as MEMBER_JOIN, not CH_ADD, so a store that lost it
/// gets the member back as it was).
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub channels: Vec<String>,
    pub user: Option<String>,
    pub named: Vec<protocol::MemberJoin>,
}

/// A channel's members here, with their mailboxes: a publish walks them
/// under this lock alone, so joins to other channels and closes go on.
pub type Members = Mutex<IdMap<Arc<Mailbox>>>;

/// How many members of a channel this gateway holds now: what the routers
/// are told, each with its own `changes_seen`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelCount {
    channel: Channel,
    members: u32,
    version: u64,
    changes_seen: Vec<u64>,
}

impl ChannelCount {
    /// The channel's members here.
    pub fn members(&self) -> u32 {
        self.members
    }

    /// What router link `link` is told.
    pub fn interest(&self, link: usize) -> Interest {
        Interest {
            channel: self.channel.clone(),
            members: self.members,
            version: self.version,
            changes_seen: self.changes_seen.get(link).copied().unwrap_or(0),
        }
    }
}

#[derive(Default)]
pub struct Memberships {
    by_session: IdMap<Membership>,
    channels: HashMap<String, Arc<Members>>,
    /// Grows with every change counted: a router keeps the newest count.
    version: u64,
    /// CH_ADD and CH_DEL frames applied from each router link since it last linked.
    changes_seen: Vec<u64>,
    /// Of those, how many each router may be told of: a change is told to
    /// the router that made it once the other routers took its count (see
    /// `links` and `protocol::Sync`).
    released: Vec<u64>,
}

impl Memberships {
    pub fn membership_of(&self, id: &SessionId) -> Option<&Membership> {
        self.by_session.get(id)
    }

    pub fn by_session(&self) -> impl Iterator<Item = (&SessionId, &Membership)> {
        self.by_session.iter()
    }

    /// Whether `id` may join `channel` at its client's ask: the refusal's
    /// status if the session is in `per_session` channels (429), or the
    /// channel is new and this gateway holds members of `per_gateway` (503).
    pub fn room_for(&self, id: &SessionId, channel: &str, per_session: usize, per_gateway: usize) -> Result<(), u16> {
        let channels = self.by_session.get(id).map_or(&[][..], |m| &m.channels[..]);
        if channels.iter().any(|c| c == channel) {
            return Ok(());
        }
        if channels.len() >= per_session {
            return Err(429);
        }
        if !self.channels.contains_key(channel) && self.channels.len() >= per_gateway {
            return Err(503);
        }
        Ok(())
    }

    pub fn members(&self, channel: &str) -> Option<Arc<Members>> {
        self.channels.get(channel).cloned()
    }

    /// Adds sessions that live here to `channel`; their count if it changed.
    pub fn join(
        &mut self,
        channel: &Channel,
        here: impl IntoIterator<Item = (SessionId, Arc<Mailbox>)>,
    ) -> Option<ChannelCount> {
        let members = self.channels.entry(channel.as_str().to_owned()).or_default().clone();
        let mut members = members.lock().unwrap();
        let mut changed = false;
        for (id, mailbox) in here {
            let channels = &mut self.by_session.entry(id).or_default().channels;
            if !channels.iter().any(|c| c == channel.as_str()) {
                channels.push(channel.as_str().to_owned());
            }
            changed |= members.insert(id, mailbox).is_none();
        }
        let count = members.len();
        drop(members);
        self.counted(channel, count, changed)
    }

    /// Takes sessions out of `channel`; its count if it changed.
    pub fn leave(&mut self, channel: &Channel, ids: &[SessionId]) -> Option<ChannelCount> {
        for id in ids {
            if let Some(membership) = self.by_session.get_mut(id) {
                membership.channels.retain(|c| c != channel.as_str());
                membership.named.retain(|join| join.channel != *channel);
            }
        }
        let members = self.channels.get(channel.as_str())?.clone();
        let mut members = members.lock().unwrap();
        let before = members.len();
        ids.iter().for_each(|id| drop(members.remove(id)));
        let count = members.len();
        drop(members);
        self.counted(channel, count, count != before)
    }

    /// Forgets a session that ended or left; the counts of its channels.
    pub fn remove(&mut self, id: &SessionId) -> Vec<ChannelCount> {
        let Some(membership) = self.by_session.remove(id) else { return Vec::new() };
        let channels = membership.channels.into_iter().filter_map(|name| Channel::new(name).ok());
        channels.filter_map(|channel| self.leave(&channel, std::slice::from_ref(id))).collect()
    }

    /// The member a session joined `channel` as, for reports to come.
    pub fn name_member(&mut self, join: protocol::MemberJoin) {
        let named = &mut self.by_session.entry(join.session).or_default().named;
        named.retain(|named| named.channel != join.channel);
        named.push(join);
    }

    pub fn set_user(&mut self, id: SessionId, user: &str) {
        self.by_session.entry(id).or_default().user = Some(user.to_owned());
    }

    /// A CH_ADD or CH_DEL frame from router link `link` has been applied:
    /// how many have been, now.
    pub fn saw_change(&mut self, link: usize) -> u64 {
        if self.changes_seen.len() <= link {
            self.changes_seen.resize(link + 1, 0);
        }
        self.changes_seen[link] += 1;
        self.changes_seen[link]
    }

    /// Router link `link` may be told of its first `upto` changes.
    pub fn release(&mut self, link: usize, upto: u64) {
        if self.released.len() <= link {
            self.released.resize(link + 1, 0);
        }
        let applied = self.changes_seen.get(link).copied().unwrap_or(0);
        self.released[link] = self.released[link].max(upto.min(applied));
    }

    /// Router link `link` starts over: it is told every count afresh.
    pub fn relinked(&mut self, link: usize) -> Vec<Interest> {
        for told in [&mut self.changes_seen, &mut self.released] {
            if let Some(told) = told.get_mut(link) {
                *told = 0;
            }
        }
        let version = self.version;
        let counts = self.channels.iter().map(|(name, members)| (name, members.lock().unwrap().len()));
        counts
            .filter_map(|(name, count)| Some((Channel::new(name.clone()).ok()?, count)))
            .map(|(channel, count)| self.count(channel, count, version).interest(link))
            .collect()
    }

    /// What router link `link` is told of a channel it published to with
    /// no member here: nothing has changed since the last count.
    pub fn current(&self, channel: &Channel) -> ChannelCount {
        let count = self.channels.get(channel.as_str()).map_or(0, |members| members.lock().unwrap().len());
        self.count(channel.clone(), count, self.version)
    }

    fn counted(&mut self, channel: &Channel, count: usize, changed: bool) -> Option<ChannelCount> {
        if count == 0 {
            self.channels.remove(channel.as_str());
        }
        if !changed {
            return None;
        }
        self.version += 1;
        Some(self.count(channel.clone(), count, self.version))
    }

    fn count(&self, channel: Channel, count: usize, version: u64) -> ChannelCount {
        let members = u32::try_from(count).unwrap_or(u32::MAX);
        ChannelCount { channel, members, version, changes_seen: self.released.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::mailbox::Limits;

    fn mailbox() -> Arc<Mailbox> {
        Arc::new(Mailbox::new(Arc::new(Limits {
            messages: 8,
            bytes: 1 << 10,
            parked_messages: 8,
            parked_bytes: 1 << 10,
            resume_budget: Arc::new(crate::resume::budget::ResumeBudget::new(1 << 20)),
        })))
    }

    fn room() -> Channel {
        Channel::new("room").unwrap()
    }

    #[test]
    fn each_change_of_a_channels_count_is_told_once_with_a_newer_version() {
        let mut index = Memberships::default();
        let (a, b) = (SessionId::from_u64(1), SessionId::from_u64(2));
        assert_eq!(index.saw_change(1), 1);
        let held = index.join(&room(), [(SessionId::from_u64(3), mailbox())]).unwrap();
        assert_eq!(held.interest(1).changes_seen, 0, "not told before it is released");
        index.release(1, 5);
        let joined = index.join(&room(), [(a, mailbox()), (b, mailbox())]).unwrap();
        assert_eq!((joined.members, joined.version), (3, 2));
        assert_eq!(
            (joined.interest(0).changes_seen, joined.interest(1).changes_seen),
            (0, 1),
            "never past what was applied"
        );
        index.leave(&room(), &[SessionId::from_u64(3)]);
        assert_eq!(index.join(&room(), [(a, mailbox())]), None, "a member already");
        assert_eq!(index.membership_of(&a).unwrap().channels, ["room"], "once");
        assert_eq!(index.leave(&room(), &[SessionId::from_u64(9)]), None, "not a member");
        let left = index.leave(&room(), &[a]).unwrap();
        assert_eq!((left.members, left.version), (1, 4));
        let gone = index.remove(&b);
        assert_eq!(gone.iter().map(|c| (c.members, c.version)).collect::<Vec<_>>(), [(0, 5)]);
        assert!(index.members("room").is_none(), "an empty channel is dropped");
        assert_eq!(
            index.current(&room()).interest(1),
            Interest { channel: room(), members: 0, version: 5, changes_seen: 1 }
        );
    }

    #[test]
    fn a_clients_ask_has_room_within_its_sessions_and_the_gateways_share() {
        let mut index = Memberships::default();
        let (a, b) = (SessionId::from_u64(1), SessionId::from_u64(2));
        index.join(&room(), [(a, mailbox())]);
        assert_eq!(index.room_for(&a, "room", 1, 1), Ok(()), "already in it");
        assert_eq!(index.room_for(&a, "hall", 1, 9), Err(429), "a's one channel");
        assert_eq!(index.room_for(&b, "hall", 1, 1), Err(503), "the gateway's one channel");
        assert_eq!(index.room_for(&b, "room", 1, 1), Ok(()), "a channel already here");
    }

    #[test]
    fn a_relinked_router_hears_every_count_with_its_adds_started_over() {
        let mut index = Memberships::default();
        index.saw_change(0);
        index.join(&room(), [(SessionId::from_u64(1), mailbox())]);
        index.join(&Channel::new("hall").unwrap(), [(SessionId::from_u64(1), mailbox())]);
        let mut told = index.relinked(0);
        told.sort_by(|a, b| a.channel.as_str().cmp(b.channel.as_str()));
        let told: Vec<_> = told.iter().map(|i| (i.channel.as_str(), i.members, i.version, i.changes_seen)).collect();
        assert_eq!(told, [("hall", 1, 2, 0), ("room", 1, 2, 0)]);
        assert_eq!(index.members("room").unwrap().lock().unwrap().len(), 1);
    }
}
