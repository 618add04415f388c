use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use protocol::cmd::Channel;
use protocol::{Interest, Offset, SessionId};

use tokio::sync::watch;
use tokio::time::Instant;

use super::catchups::{CatchupCounts, Catchups, Fate, Held};
use super::mailbox::{Mailbox, Pushed};
pub use super::memberships::Membership;
use super::memberships::{ChannelCount, Memberships};
use super::IdMap;
use crate::base::close::CloseReason;
use crate::base::message::Message;

/// Shards of the session map: a push to many sessions locks one shard at
/// a time, so connects, closes and other pushes go on while it walks.
const SHARDS: usize = 16;

type Shard = Mutex<IdMap<Entry>>;

/// A live session: its mailbox, and its place in the order sessions
/// registered in, so that a broadcast reaches only those there before it.
struct Entry {
    mailbox: Arc<Mailbox>,
    since: u64,
}

/// Every live session on this gateway, by id, with its mailbox; and what
/// the routers said they belong to: each channel's members here, which a
/// publish walks, and what to tell a router again after its store lost its
/// data.
pub struct Registry {
    shards: [Shard; SHARDS],
    /// Sessions registered so far: the next one's `since`.
    registered: AtomicU64,
    /// Set by [`Registry::close_all`]: a session that registers later is
    /// closed at once (a connection that was mid-upgrade at a drain).
    closing: Mutex<Option<CloseReason>>,
    /// Locked before a shard, never after.
    memberships: Mutex<Memberships>,
    /// Locked before `memberships`, never after.
    catchups: Mutex<Catchups>,
    /// How many sessions there are, for those who wait for none (a drain).
    size: watch::Sender<usize>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry {
            shards: Default::default(),
            registered: AtomicU64::new(0),
            closing: Mutex::default(),
            memberships: Mutex::default(),
            catchups: Mutex::default(),
            size: watch::Sender::new(0),
        }
    }
}

/// The shard of a session: the value of its id's last hex digit, uniform
/// since ids are random.
fn shard_of(id: &SessionId) -> usize {
    let digit = id.as_bytes()[15];
    ((digit & 0xf) + 9 * (digit >> 6)) as usize % SHARDS
}

impl Registry {
    fn shard(&self, id: &SessionId) -> std::sync::MutexGuard<'_, IdMap<Entry>> {
        self.shards[shard_of(id)].lock().unwrap()
    }

    /// Every session's mailbox, one shard at a time.
    fn each(&self, mut visit: impl FnMut(&Arc<Mailbox>)) {
        self.each_since(u64::MAX, |mailbox| visit(mailbox));
    }

    /// The mailbox of every session registered before number `before`.
    fn each_since(&self, before: u64, mut visit: impl FnMut(&Arc<Mailbox>)) {
        for shard in &self.shards {
            let shard = shard.lock().unwrap();
            shard.values().filter(|entry| entry.since < before).for_each(|entry| visit(&entry.mailbox));
        }
    }

    pub fn insert(&self, id: SessionId, mailbox: Arc<Mailbox>) {
        let mut shard = self.shard(&id);
        // Read under the shard's lock: a drain that set it either sees this
        // session when it walks the shard, or is seen here.
        if let Some(reason) = *self.closing.lock().unwrap() {
            mailbox.close(reason);
        }
        let since = self.registered.fetch_add(1, SeqCst);
        if shard.insert(id, Entry { mailbox, since }).is_none() {
            self.size.send_modify(|n| *n += 1);
        }
    }

    /// Forgets a session; the counts of the channels it was in.
    pub fn remove(&self, id: &SessionId) -> Vec<ChannelCount> {
        if self.shard(id).remove(id).is_some() {
            self.size.send_modify(|n| *n -= 1);
        }
        self.memberships.lock().unwrap().remove(id)
    }

    /// Waits until no session is left, or `deadline`; whether none is.
    pub async fn until_empty(&self, deadline: tokio::time::Instant) -> bool {
        let mut size = self.size.subscribe();
        let empty = tokio::time::timeout_at(deadline, size.wait_for(|n| *n == 0)).await.is_ok();
        empty
    }

    pub fn mailbox(&self, id: &SessionId) -> Option<Arc<Mailbox>> {
        self.shard(id).get(id).map(|entry| entry.mailbox.clone())
    }

    fn holds(&self, id: &SessionId) -> bool {
        self.shard(id).contains_key(id)
    }

    pub fn membership_of(&self, id: &SessionId) -> Membership {
        self.memberships.lock().unwrap().membership_of(id).cloned().unwrap_or_default()
    }

    /// What a session brought along from another gateway, added to what
    /// the routers said meanwhile; the counts of its channels that changed.
    pub fn set_membership(&self, id: SessionId, membership: Membership) -> Vec<ChannelCount> {
        let mut memberships = self.memberships.lock().unwrap();
        let Some(mailbox) = self.mailbox(&id) else { return Vec::new() };
        if let Some(user) = &membership.user {
            memberships.set_user(id, user);
        }
        let channels = membership.channels.into_iter().filter_map(|name| Channel::new(name).ok());
        channels.filter_map(|channel| memberships.join(&channel, [(id, mailbox.clone())])).collect()
    }

    /// Applies a CH_ADD (`joined`) or CH_DEL from router link `link` to the
    /// sessions that live here: the channel's count if it changed, how
    /// many of that router's changes are applied now, and whether the
    /// channel got its first member here (a route the routers lack).
    pub fn note_channel(
        &self,
        link: usize,
        ids: &[SessionId],
        channel: &Channel,
        joined: bool,
    ) -> (Option<ChannelCount>, u64, bool) {
        // Looked up under the lock: a session removed meanwhile is either
        // not found or removed from the channel after this.
        let mut memberships = self.memberships.lock().unwrap();
        let applied = memberships.saw_change(link);
        let members =
            |memberships: &Memberships| memberships.members(channel.as_str()).map_or(0, |m| m.lock().unwrap().len());
        let before = members(&memberships);
        let changed = match joined {
            true => {
                let here: Vec<_> = ids.iter().filter_map(|id| Some((*id, self.mailbox(id)?))).collect();
                memberships.join(channel, here)
            }
            false => memberships.leave(channel, ids),
        };
        let new_route = before == 0 && members(&memberships) > 0;
        (changed, applied, new_route)
    }

    /// Router link `link` may be told of its first `upto` changes: the
    /// channel's count, telling it so.
    pub fn release(&self, link: usize, upto: u64, channel: &Channel) -> Interest {
        let mut memberships = self.memberships.lock().unwrap();
        memberships.release(link, upto);
        memberships.current(channel).interest(link)
    }

    /// Whether a client's ask to join `channel` has room (see [`Memberships::room_for`]).
    pub fn room_for(&self, id: &SessionId, channel: &str, per_session: usize, per_gateway: usize) -> Result<(), u16> {
        self.memberships.lock().unwrap().room_for(id, channel, per_session, per_gateway)
    }

    /// Joins a session here to a channel its backend let it subscribe to
    /// (no router's change): the channel's new count, if the session is
    /// still here and was not a member yet.
    pub fn join_here(&self, id: SessionId, channel: &Channel) -> Option<ChannelCount> {
        let mut memberships = self.memberships.lock().unwrap();
        memberships.join(channel, vec![(id, self.mailbox(&id)?)])
    }

    /// Joins a session here to a presence channel as the member its client
    /// named: the channel's new count, as [`Registry::join_here`].
    pub fn join_here_as(&self, join: protocol::MemberJoin) -> Option<ChannelCount> {
        let mut memberships = self.memberships.lock().unwrap();
        let count = memberships.join(&join.channel, vec![(join.session, self.mailbox(&join.session)?)]);
        memberships.name_member(join);
        count
    }

    /// Takes a session here out of a channel its client left by itself
    /// (no router's change): the channel's new count, if it was a member.
    pub fn leave_here(&self, id: SessionId, channel: &Channel) -> Option<ChannelCount> {
        self.memberships.lock().unwrap().leave(channel, &[id])
    }

    pub fn is_member(&self, id: &SessionId, channel: &Channel) -> bool {
        let memberships = self.memberships.lock().unwrap();
        memberships.membership_of(id).is_some_and(|m| m.channels.iter().any(|joined| joined == channel.as_str()))
    }

    pub fn note_user(&self, id: SessionId, user: &str) {
        let mut memberships = self.memberships.lock().unwrap();
        if self.holds(&id) {
            memberships.set_user(id, user);
        }
    }

    /// Every session's channels and user, for a resync.
    pub fn memberships(&self) -> Vec<(SessionId, Membership)> {
        self.memberships.lock().unwrap().by_session().map(|(id, b)| (*id, b.clone())).collect()
    }

    /// Router link `link` linked again: every channel's count for it.
    pub fn relinked(&self, link: usize) -> Vec<Interest> {
        self.memberships.lock().unwrap().relinked(link)
    }

    /// A publish from router link `link` to the channel's members here but
    /// `except`; how many took it, or, with no member here, what to tell
    /// that router so it stops sending them.
    pub fn publish(
        &self,
        link: usize,
        channel: &Channel,
        message: &Message,
        except: &[SessionId],
    ) -> Result<usize, Interest> {
        self.each_member(link, channel, except, |_, mailbox| usize::from(queue(mailbox, link, message)))
    }

    /// A kept message's publish (KEPT_PUB): as [`Registry::publish`], but
    /// a member catching up on the channel's history holds it or drops it
    /// (see [`Catchups`]).
    pub fn publish_kept(
        &self,
        link: usize,
        channel: &Channel,
        offset: Offset,
        message: &Message,
        except: &[SessionId],
    ) -> Result<usize, Interest> {
        let mut catchups = self.catchups.lock().unwrap();
        if !catchups.any_in(channel.as_str()) {
            drop(catchups);
            return self.publish(link, channel, message, except);
        }
        self.each_member(link, channel, except, |id, mailbox| {
            let held = Held { link, offset, message: message.clone() };
            match catchups.offer(channel.as_str(), id, held) {
                Fate::Pass => usize::from(queue(mailbox, link, message)),
                Fate::Hold | Fate::Repeat => 0,
                Fate::Overflow(held) => pass_on(mailbox, held),
            }
        })
    }

    /// Calls `visit` on each of the channel's members here but `except`,
    /// and sums the pushes it queued; with no member here, what to tell
    /// router link `link` so it stops sending the channel's publishes.
    fn each_member(
        &self,
        link: usize,
        channel: &Channel,
        except: &[SessionId],
        mut visit: impl FnMut(&SessionId, &Mailbox) -> usize,
    ) -> Result<usize, Interest> {
        let members = {
            let memberships = self.memberships.lock().unwrap();
            memberships.members(channel.as_str()).ok_or_else(|| memberships.current(channel).interest(link))?
        };
        let except: std::collections::HashSet<&SessionId> = except.iter().collect();
        let members = members.lock().unwrap();
        Ok(members.iter().filter(|(id, _)| !except.contains(id)).map(|(id, mailbox)| visit(id, mailbox)).sum())
    }

    /// KEPT_JOIN: `ids` wait for `channel`'s history before its live messages.
    pub fn await_history(&self, channel: &Channel, ids: &[SessionId], now: std::time::Instant) {
        self.catchups.lock().unwrap().awaiting(channel.as_str(), ids, now);
    }

    /// KEPT_END: the history `ids` got reached `upto`; the live messages
    /// they held past it go out now. How many pushes were queued.
    pub fn history_ended(&self, channel: &Channel, ids: &[SessionId], upto: Offset, now: std::time::Instant) -> usize {
        let released = self.catchups.lock().unwrap().ended(channel.as_str(), ids, upto, now);
        self.pass_on_all(released)
    }

    /// Joiners whose history never ended pass on what they held.
    pub fn sweep_catchups(&self, now: std::time::Instant) -> usize {
        let released = self.catchups.lock().unwrap().sweep(now);
        self.pass_on_all(released)
    }

    pub fn catchup_counts(&self) -> CatchupCounts {
        self.catchups.lock().unwrap().counts()
    }

    fn pass_on_all(&self, released: Vec<(SessionId, Vec<Held>)>) -> usize {
        let each = |(id, held): (SessionId, Vec<Held>)| Some(pass_on(&*self.mailbox(&id)?, held));
        released.into_iter().filter_map(each).sum()
    }

    pub fn ids(&self) -> Vec<SessionId> {
        let mut ids = Vec::with_capacity(self.len());
        self.shards.iter().for_each(|shard| ids.extend(shard.lock().unwrap().keys()));
        ids
    }

    pub fn len(&self) -> usize {
        *self.size.borrow()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pushes from router link `link` to the named sessions that live
    /// here; returns how many took it.
    pub fn push(&self, link: usize, ids: impl IntoIterator<Item = SessionId>, message: &Message) -> usize {
        let taken = |id: &SessionId| self.shard(id).get(id).is_some_and(|entry| queue(&entry.mailbox, link, message));
        ids.into_iter().filter(taken).count()
    }

    /// Pushes to every session registered before this call: one that
    /// registers while the walk goes on came after the broadcast.
    pub fn push_all(&self, link: usize, message: &Message) -> usize {
        let mut taken = 0;
        let before = self.registered.load(SeqCst);
        self.each_since(before, |mailbox| taken += usize::from(queue(mailbox, link, message)));
        taken
    }

    /// Every session takes pushes from router link `link` again: it has
    /// just reported them all, so whatever it sends now is for them.
    pub fn accept_from_all(&self, link: usize) {
        self.each(|mailbox| mailbox.accept_from(link, true));
    }

    pub fn kick(&self, ids: impl IntoIterator<Item = SessionId>) {
        for id in ids {
            if let Some(entry) = self.shard(&id).get(&id) {
                entry.mailbox.close(CloseReason::Kicked);
            }
        }
    }

    /// Asks every session to close, and every one that registers from
    /// now on (a drain before exit).
    pub fn close_all(&self, reason: CloseReason) {
        *self.closing.lock().unwrap() = Some(reason);
        self.each(|mailbox| mailbox.close(reason));
    }

    /// The heartbeat: closes sessions silent for `idle_timeout`, and pings
    /// the others so a live client answers and proves itself. One sweep
    /// over all sessions instead of a timer in each.
    pub fn heartbeat(&self, idle_timeout: std::time::Duration) {
        let now = Instant::now();
        self.each(|mailbox| match mailbox.is_parked() {
            true => {}
            false if mailbox.silent_for(now) >= idle_timeout => mailbox.close(CloseReason::IdleTimeout),
            false => {
                mailbox.push(Message::Ping);
            }
        });
    }

    /// Sessions parked now.
    pub fn parked(&self) -> usize {
        let mut n = 0;
        self.each(|mailbox| n += usize::from(mailbox.is_parked()));
        n
    }

    pub fn queued_bytes(&self) -> usize {
        let mut bytes = 0;
        self.each(|mailbox| bytes += mailbox.queued_bytes());
        bytes
    }
}

fn queue(mailbox: &Mailbox, link: usize, message: &Message) -> bool {
    mailbox.push_from(link, message.clone()) == Pushed::Queued
}

/// Queues held messages in their order; how many were taken.
fn pass_on(mailbox: &Mailbox, held: Vec<Held>) -> usize {
    held.into_iter().filter(|held| queue(mailbox, held.link, &held.message)).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::message::Payload;
    use crate::session::mailbox::Limits;

    fn mailbox() -> Arc<Mailbox> {
        let mailbox = Mailbox::new(Arc::new(Limits {
            messages: 8,
            bytes: 1 << 10,
            parked_messages: 8,
            parked_bytes: 1 << 10,
            resume_budget: Arc::new(crate::resume::budget::ResumeBudget::new(1 << 20)),
        }));
        mailbox.accept_from(0, true);
        Arc::new(mailbox)
    }

    #[test]
    fn shards_spread_random_ids_and_pushes_reach_every_named_session() {
        let ids: Vec<SessionId> = (0..64).map(|_| SessionId::random()).collect();
        let mut used = [false; SHARDS];
        ids.iter().for_each(|id| used[shard_of(id)] = true);
        assert!(used.iter().filter(|u| **u).count() > SHARDS / 2, "ids spread over the shards");
        assert!(
            (0..16u64).map(|n| shard_of(&SessionId::from_u64(n))).collect::<std::collections::HashSet<_>>().len()
                == SHARDS
        );

        let registry = Registry::default();
        let boxes: Vec<Arc<Mailbox>> = ids
            .iter()
            .map(|id| {
                let mailbox = mailbox();
                registry.insert(*id, mailbox.clone());
                mailbox
            })
            .collect();
        assert_eq!((registry.len(), registry.ids().len()), (64, 64));
        let push = Message::new(Payload::shared("hi".into()), false);
        let unknown = SessionId::from_u64(7);
        assert_eq!(registry.push(0, [ids[0], unknown, ids[63]], &push), 2, "only sessions that live here");
        assert_eq!(registry.push_all(0, &push), 64);
        let before = registry.registered.load(SeqCst);
        let late = mailbox();
        registry.insert(SessionId::from_u64(99), late.clone());
        let mut reached_late = false;
        registry.each_since(before, |mailbox| reached_late |= Arc::ptr_eq(mailbox, &late));
        assert!(!reached_late, "a session that registers during a broadcast's walk came after it");
        registry.remove(&SessionId::from_u64(99));
        assert_eq!((boxes[0].drain().len(), boxes[1].drain().len(), boxes[63].drain().len()), (2, 1, 2));
        registry.remove(&ids[0]);
        assert_eq!(registry.len(), 63);
    }

    #[test]
    fn every_change_from_a_router_is_counted_and_told_once_released() {
        let registry = Registry::default();
        let (here, elsewhere) = (SessionId::from_u64(1), SessionId::from_u64(2));
        registry.insert(here, mailbox());
        let room = Channel::new("room").unwrap();
        let (count, applied, new_route) = registry.note_channel(1, &[here, elsewhere], &room, true);
        let count = count.expect("the count changed");
        assert_eq!((count.interest(1).members, count.interest(1).changes_seen, applied), (1, 0, 1), "not told yet");
        assert!(new_route, "the room's first member here");
        let (count, applied, new_route) = registry.note_channel(1, &[elsewhere], &room, false);
        assert_eq!((count, applied, new_route), (None, 2, false), "no member here left");
        let again = registry.note_channel(1, &[here], &room, true);
        assert_eq!((again.1, again.2), (3, false), "a member already: no new route");
        let told = registry.release(1, applied, &room);
        assert_eq!((told.members, told.changes_seen), (1, 2), "the router hears both are applied");
        assert_eq!(registry.release(0, 9, &room).changes_seen, 0, "never past what was applied");
    }

    #[test]
    fn a_session_that_registers_during_a_drain_is_closed_at_once() {
        let registry = Registry::default();
        let early = mailbox();
        registry.insert(SessionId::from_u64(1), early.clone());
        registry.close_all(CloseReason::ShuttingDown);
        let late = mailbox();
        registry.insert(SessionId::from_u64(2), late.clone());
        for mailbox in [early, late] {
            let taken = mailbox.poll_take(&mut std::task::Context::from_waker(std::task::Waker::noop()), true);
            assert!(matches!(
                taken,
                std::task::Poll::Ready(super::super::mailbox::Taken::Close(CloseReason::ShuttingDown))
            ));
        }
    }
}
